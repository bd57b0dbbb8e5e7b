//! The benchmark behind `mmcid bench-percid`: ns per increment of
//! [`PerCidCounter::add`](crate::PerCidCounter::add) against the usual
//! alternatives, at several thread counts, in one run.
//!
//! # Method
//!
//! For each thread count and each method, `n` threads start together and
//! increment in batches of 1024 until the main thread says stop (after
//! [`BenchConfig::run`]). Each worker measures its own CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), so the figure is *CPU nanoseconds per
//! increment*: with more threads than CPUs, time spent waiting for a CPU is
//! not counted, while contention (cache-line transfers, restarts after
//! preemption) is. Each configuration is run [`BenchConfig::repeats`] times
//! and the fastest run is kept. The increment is passed through
//! [`std::hint::black_box`] so that the compiler cannot merge the
//! increments of a batch. Totals are checked after each run.
//!
//! Methods:
//! * `percid`: one shared [`PerCidCounter`](crate::PerCidCounter), `add(1)`;
//! * `thread_local`: a `thread_local!` `Cell<u64>` (the floor: no sharing);
//! * `shared_atomic`: one shared `AtomicU64::fetch_add(1, Relaxed)`;
//! * `getcpu_sharded`: an `AtomicU64` per possible CPU (cache-line padded)
//!   indexed by `sched_getcpu()`, `fetch_add` (atomic because two threads can
//!   pick the same CPU's slot across a migration);
//! * `thread_local_crate`: `thread_local::ThreadLocal<Cell<u64>>`.

use std::cell::Cell;
use std::fmt;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::{PerCid, PerCidCounter, Source, possible_cpus, rseq_abort_count, source, sys};

const BATCH: u64 = 1024;

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Thread counts to measure.
    pub threads: Vec<usize>,
    /// Length of one measured run.
    pub run: Duration,
    /// Runs per configuration; the fastest is reported.
    pub repeats: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            threads: vec![1, 2, 8],
            run: Duration::from_millis(200),
            repeats: 3,
        }
    }
}

/// Figures for one thread count (CPU ns per increment).
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// Number of threads.
    pub n: usize,
    /// [`PerCidCounter::add`](crate::PerCidCounter::add).
    pub percid_ns: f64,
    /// `thread_local!` `Cell<u64>`.
    pub thread_local_ns: f64,
    /// One shared `AtomicU64::fetch_add`.
    pub shared_atomic_ns: f64,
    /// `AtomicU64` per CPU indexed by `sched_getcpu()`.
    pub getcpu_sharded_ns: f64,
    /// `thread_local::ThreadLocal<Cell<u64>>`.
    pub thread_local_crate_ns: f64,
    /// `percid_ns / thread_local_ns` (target: at most 1.5).
    pub percid_over_thread_local: f64,
    /// `shared_atomic_ns / percid_ns` (target: at least 10 at n >= 2).
    pub shared_atomic_over_percid: f64,
    /// rseq restarts during the kept `percid` runs.
    pub percid_aborts: u64,
}

/// The whole benchmark. Serialises to the `--json` object.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Where `PerCidCounter` got its IDs (`glibc-rseq`, `own-rseq`, or
    /// `thread-id-fallback`, in which case `add` is an atomic).
    pub source: Source,
    /// Online CPUs (`available_parallelism`).
    pub cpus: usize,
    /// Seconds per measured run.
    pub run_seconds: f64,
    /// Runs per configuration (fastest kept).
    pub repeats: usize,
    /// One row per thread count.
    pub threads: Vec<BenchRow>,
}

/// Runs `n` threads calling `op` in batches for `dur`; returns
/// (CPU ns per op, total ops).
fn measure<F: Fn() + Sync>(n: usize, dur: Duration, op: F) -> (f64, u64) {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(n + 1);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t0 = sys::thread_cpu_time_ns();
                    let mut ops = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..BATCH {
                            op();
                        }
                        ops += BATCH;
                    }
                    (sys::thread_cpu_time_ns() - t0, ops)
                })
            })
            .collect();
        barrier.wait();
        std::thread::sleep(dur);
        stop.store(true, Ordering::Relaxed);
        let (ns, ops) = hs
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .fold((0u64, 0u64), |a, b| (a.0 + b.0, a.1 + b.1));
        (ns as f64 / ops.max(1) as f64, ops)
    })
}

thread_local! {
    static TL_COUNT: Cell<u64> = const { Cell::new(0) };
}

fn best_of(repeats: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..repeats.max(1)).map(|_| f()).fold(f64::INFINITY, f64::min)
}

/// Runs the benchmark.
pub fn run_bench(cfg: &BenchConfig) -> BenchReport {
    let dur = cfg.run;
    let mut rows = Vec::new();
    for &n in &cfg.threads {
        let n = n.max(1);
        let mut percid_aborts = u64::MAX;
        let percid_ns = best_of(cfg.repeats, || {
            let c = PerCidCounter::new();
            let a0 = rseq_abort_count();
            let (ns, ops) = measure(n, dur, || c.add(black_box(1)));
            assert_eq!(c.sum(), ops, "PerCidCounter lost increments");
            percid_aborts = percid_aborts.min(rseq_abort_count() - a0);
            ns
        });
        let thread_local_ns = best_of(cfg.repeats, || {
            measure(n, dur, || {
                TL_COUNT.with(|c| c.set(c.get().wrapping_add(black_box(1))))
            })
            .0
        });
        let shared_atomic_ns = best_of(cfg.repeats, || {
            let a = AtomicU64::new(0);
            let (ns, ops) = measure(n, dur, || {
                a.fetch_add(black_box(1), Ordering::Relaxed);
            });
            assert_eq!(a.load(Ordering::Relaxed), ops);
            ns
        });
        let getcpu_sharded_ns = best_of(cfg.repeats, || {
            let slots: PerCid<AtomicU64> = PerCid::with_len(possible_cpus(), |_| AtomicU64::new(0));
            let len = slots.len();
            let (ns, ops) = measure(n, dur, || {
                let cpu = sys::sched_getcpu().unwrap_or(0) as usize;
                if let Some(s) = slots.get_slot(cpu % len) {
                    s.fetch_add(black_box(1), Ordering::Relaxed);
                }
            });
            let total: u64 = slots.iter().map(|s| s.load(Ordering::Relaxed)).sum();
            assert_eq!(total, ops);
            ns
        });
        let thread_local_crate_ns = best_of(cfg.repeats, || {
            let tl = thread_local::ThreadLocal::<Cell<u64>>::new();
            let (ns, ops) = measure(n, dur, || {
                let c = tl.get_or_default();
                c.set(c.get().wrapping_add(black_box(1)));
            });
            let mut tl = tl;
            let total: u64 = tl.iter_mut().map(|c| c.get()).sum();
            assert_eq!(total, ops);
            ns
        });
        rows.push(BenchRow {
            n,
            percid_ns,
            thread_local_ns,
            shared_atomic_ns,
            getcpu_sharded_ns,
            thread_local_crate_ns,
            percid_over_thread_local: percid_ns / thread_local_ns,
            shared_atomic_over_percid: shared_atomic_ns / percid_ns,
            percid_aborts,
        });
    }
    BenchReport {
        source: source(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        run_seconds: dur.as_secs_f64(),
        repeats: cfg.repeats,
        threads: rows,
    }
}

impl BenchReport {
    /// Whether the targets are met: `percid` at most 1.5x the
    /// thread-local increment at every thread count, and at least 10x faster
    /// than the shared atomic at 2 or more threads.
    pub fn targets_met(&self) -> bool {
        self.threads
            .iter()
            .all(|r| r.percid_over_thread_local <= 1.5 && (r.n < 2 || r.shared_atomic_over_percid >= 10.0))
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "CPU ns per increment (source {}, {} CPUs, best of {} x {:.2}s runs)",
            self.source, self.cpus, self.repeats, self.run_seconds
        )?;
        writeln!(
            f,
            "{:>3} {:>8} {:>13} {:>14} {:>15} {:>19} {:>10} {:>12} {:>7}",
            "n",
            "percid",
            "thread_local",
            "shared_atomic",
            "getcpu_sharded",
            "thread_local_crate",
            "percid/tl",
            "atomic/percid",
            "aborts"
        )?;
        for r in &self.threads {
            writeln!(
                f,
                "{:>3} {:>8.2} {:>13.2} {:>14.2} {:>15.2} {:>19.2} {:>9.2}x {:>11.1}x {:>7}",
                r.n,
                r.percid_ns,
                r.thread_local_ns,
                r.shared_atomic_ns,
                r.getcpu_sharded_ns,
                r.thread_local_crate_ns,
                r.percid_over_thread_local,
                r.shared_atomic_over_percid,
                r.percid_aborts
            )?;
        }
        writeln!(
            f,
            "targets (percid <= 1.5x thread_local; >= 10x faster than shared atomic at n >= 2): {}",
            if self.targets_met() { "met" } else { "NOT met" }
        )
    }
}
