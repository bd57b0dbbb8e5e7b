//! The benchmark behind `mmcid bench-percid`: ns per increment of
//! [`PerCidCounter::add`](crate::PerCidCounter::add) against the usual
//! alternatives, at several thread counts, in one run.
//!
//! # Method
//!
//! For each thread count, `n` threads start together and increment in
//! batches of 1024 until the main thread says stop (after
//! [`BenchConfig::run`]). Each worker measures its own CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), so the figure is *CPU nanoseconds per
//! increment*: with more threads than CPUs, time spent waiting for a CPU is
//! not counted, while contention (cache-line transfers, restarts after
//! preemption) is. The increment is passed through [`std::hint::black_box`]
//! so that the compiler cannot merge the increments of a batch. Totals are
//! checked after each run.
//!
//! Fairness and robustness:
//!
//! * every configuration is run [`BenchConfig::repeats`] times and the
//!   **median** is reported (not the best run, which rewards luck); the
//!   repeats are interleaved (method 1, 2, .., 5, then again) so that a
//!   change in background load hits every method alike;
//! * with [`BenchConfig::pin`], worker `i` is pinned to allowed CPU
//!   `i mod cpus`, so with `n <= cpus` every worker has a CPU of its own
//!   and the shared-atomic threads really run at the same time (the cache
//!   line bounces); the same pinning is used for every method;
//! * the report names the CPU model ([`cpu_model`]) and gives the load
//!   average before and after, and the fastest run of the two main methods
//!   beside the medians (on a loaded machine the least disturbed run);
//! * each run records its *concurrency*, the workers' total CPU time over
//!   the run's wall time: about `min(n, cpus)` on an idle machine, less
//!   when other processes take CPU time. It is reported for the shared
//!   atomic (whose cost depends on it), together with the machine's load
//!   average before and after the benchmark, so a reader can judge the
//!   contention figures;
//! * each worker calls its own copy of the increment closure, so the
//!   counter's address lives in a register as it would in real code
//!   rather than being re-read from a shared closure object after every
//!   `asm!` block.
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
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{PerCid, PerCidCounter, Source, allowed_cpus, possible_cpus, rseq_abort_count, source, sys};

const BATCH: u64 = 1024;

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Thread counts to measure.
    pub threads: Vec<usize>,
    /// Length of one measured run.
    pub run: Duration,
    /// Runs per configuration; the median is reported.
    pub repeats: usize,
    /// Pin worker `i` to allowed CPU `i mod cpus` (all methods alike).
    pub pin: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            threads: vec![1, 2, 8],
            run: Duration::from_millis(200),
            repeats: 5,
            pin: true,
        }
    }
}

/// Figures for one thread count (CPU ns per increment, medians).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct BenchRow {
    /// Number of threads.
    pub n: usize,
    /// [`PerCidCounter::add`](crate::PerCidCounter::add).
    pub percid_ns: f64,
    /// The fastest `percid` run: on a loaded machine the least disturbed.
    pub percid_min_ns: f64,
    /// `thread_local!` `Cell<u64>`.
    pub thread_local_ns: f64,
    /// The fastest `thread_local` run.
    pub thread_local_min_ns: f64,
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
    /// rseq restarts during the `percid` runs (median over the repeats).
    pub percid_aborts: u64,
    /// Median concurrency of the `shared_atomic` runs: the workers' CPU
    /// time over the run's wall time (at most `min(n, cpus)`; below that,
    /// other load kept the threads from contending all the time).
    pub shared_atomic_concurrency: f64,
    /// Every run, in order, per method (ns per increment).
    pub runs_ns: MethodRuns,
}

/// Every repeat of every method for one thread count.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct MethodRuns {
    /// `percid` runs.
    pub percid: Vec<f64>,
    /// `thread_local` runs.
    pub thread_local: Vec<f64>,
    /// `shared_atomic` runs.
    pub shared_atomic: Vec<f64>,
    /// `getcpu_sharded` runs.
    pub getcpu_sharded: Vec<f64>,
    /// `thread_local_crate` runs.
    pub thread_local_crate: Vec<f64>,
}

/// The whole benchmark. Serialises to the `--json` object.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct BenchReport {
    /// Where `PerCidCounter` got its IDs (`glibc-rseq`, `own-rseq`, or
    /// `thread-id-fallback`, in which case `add` is an atomic).
    pub source: Source,
    /// The CPU model ([`cpu_model`]), `None` if unknown.
    pub cpu_model: Option<String>,
    /// Online CPUs (`available_parallelism`).
    pub cpus: usize,
    /// Seconds per measured run.
    pub run_seconds: f64,
    /// Runs per configuration (median reported).
    pub repeats: usize,
    /// Whether workers were pinned round-robin to the allowed CPUs.
    pub pinned: bool,
    /// `/proc/loadavg`'s 1, 5 and 15 minute load averages before the
    /// benchmark (empty if unreadable).
    pub loadavg_before: Vec<f64>,
    /// The same after the benchmark.
    pub loadavg_after: Vec<f64>,
    /// One row per thread count.
    pub threads: Vec<BenchRow>,
}

/// One measured run.
struct Run {
    /// CPU ns per op.
    ns: f64,
    /// Total ops.
    ops: u64,
    /// Workers' CPU time over the run's wall time.
    concurrency: f64,
}

/// Runs `n` threads calling `op` in batches for `dur`, worker `i` pinned to
/// `cpus[i % cpus.len()]` when `cpus` is not empty.
fn measure<F: Fn() + Send + Copy>(n: usize, dur: Duration, cpus: &[usize], op: F) -> Run {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(n + 1);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (stop, barrier) = (&stop, &barrier);
                s.spawn(move || {
                    if !cpus.is_empty() {
                        let _ = sys::set_affinity(&[cpus[i % cpus.len()]]);
                    }
                    // Thread set-up (rseq area, fallback ID) outside the
                    // timed region.
                    crate::register_current_thread();
                    // A private copy: its captures stay in registers.
                    let op = op;
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
        let w0 = Instant::now();
        std::thread::sleep(dur);
        stop.store(true, Ordering::Relaxed);
        let (ns, ops) = hs
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .fold((0u64, 0u64), |a, b| (a.0 + b.0, a.1 + b.1));
        let wall = w0.elapsed().as_nanos().max(1) as f64;
        Run {
            ns: ns as f64 / ops.max(1) as f64,
            ops,
            concurrency: ns as f64 / wall,
        }
    })
}

thread_local! {
    static TL_COUNT: Cell<u64> = const { Cell::new(0) };
}

/// The median (mean of the middle two for an even count); NaN if empty.
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        l if l % 2 == 1 => v[l / 2],
        l => (v[l / 2 - 1] + v[l / 2]) / 2.0,
    }
}

/// The CPU model as `/proc/cpuinfo` names it (`model name`, or on some
/// architectures `Model`/`Hardware`/`cpu`), `None` if unreadable. Benchmark
/// figures mean little without it.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    ["model name", "Model", "Hardware", "cpu"].iter().find_map(|key| {
        info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    })
}

/// `/proc/loadavg`'s 1, 5 and 15 minute load averages (empty if
/// unreadable).
pub fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            s.split_whitespace()
                .take(3)
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn run_percid(n: usize, dur: Duration, cpus: &[usize]) -> (Run, u64) {
    let c = PerCidCounter::new();
    let a0 = rseq_abort_count();
    let c = &c;
    let r = measure(n, dur, cpus, move || c.add(black_box(1)));
    assert_eq!(c.sum(), r.ops, "PerCidCounter lost increments");
    (r, rseq_abort_count() - a0)
}

fn run_thread_local(n: usize, dur: Duration, cpus: &[usize]) -> Run {
    measure(n, dur, cpus, || {
        TL_COUNT.with(|c| c.set(c.get().wrapping_add(black_box(1))))
    })
}

fn run_shared_atomic(n: usize, dur: Duration, cpus: &[usize]) -> Run {
    let a = AtomicU64::new(0);
    let a = &a;
    let r = measure(n, dur, cpus, move || {
        a.fetch_add(black_box(1), Ordering::Relaxed);
    });
    assert_eq!(a.load(Ordering::Relaxed), r.ops);
    r
}

fn run_getcpu_sharded(n: usize, dur: Duration, cpus: &[usize]) -> Run {
    let slots: PerCid<AtomicU64> = PerCid::with_len(possible_cpus(), |_| AtomicU64::new(0));
    let len = slots.len();
    let sl = &slots;
    let r = measure(n, dur, cpus, move || {
        let cpu = sys::sched_getcpu().unwrap_or(0) as usize;
        if let Some(s) = sl.get_slot(cpu % len) {
            s.fetch_add(black_box(1), Ordering::Relaxed);
        }
    });
    let total: u64 = slots.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    assert_eq!(total, r.ops);
    r
}

fn run_thread_local_crate(n: usize, dur: Duration, cpus: &[usize]) -> Run {
    let mut tl = thread_local::ThreadLocal::<Cell<u64>>::new();
    let t = &tl;
    let r = measure(n, dur, cpus, move || {
        let c = t.get_or_default();
        c.set(c.get().wrapping_add(black_box(1)));
    });
    let total: u64 = tl.iter_mut().map(|c| c.get()).sum();
    assert_eq!(total, r.ops);
    r
}

/// Runs the benchmark.
pub fn run_bench(cfg: &BenchConfig) -> BenchReport {
    let dur = cfg.run;
    let cpus = if cfg.pin { allowed_cpus() } else { Vec::new() };
    let loadavg_before = loadavg();
    let mut rows = Vec::new();
    for &n in &cfg.threads {
        let n = n.max(1);
        let mut runs = MethodRuns::default();
        let mut aborts = Vec::new();
        let mut concurrency = Vec::new();
        for _ in 0..cfg.repeats.max(1) {
            let (r, a) = run_percid(n, dur, &cpus);
            runs.percid.push(r.ns);
            aborts.push(a as f64);
            runs.thread_local.push(run_thread_local(n, dur, &cpus).ns);
            let r = run_shared_atomic(n, dur, &cpus);
            runs.shared_atomic.push(r.ns);
            concurrency.push(r.concurrency);
            runs.getcpu_sharded.push(run_getcpu_sharded(n, dur, &cpus).ns);
            runs.thread_local_crate
                .push(run_thread_local_crate(n, dur, &cpus).ns);
        }
        let percid_ns = median(&runs.percid);
        let thread_local_ns = median(&runs.thread_local);
        let shared_atomic_ns = median(&runs.shared_atomic);
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        rows.push(BenchRow {
            n,
            percid_ns,
            percid_min_ns: min(&runs.percid),
            thread_local_ns,
            thread_local_min_ns: min(&runs.thread_local),
            shared_atomic_ns,
            getcpu_sharded_ns: median(&runs.getcpu_sharded),
            thread_local_crate_ns: median(&runs.thread_local_crate),
            percid_over_thread_local: percid_ns / thread_local_ns,
            shared_atomic_over_percid: shared_atomic_ns / percid_ns,
            percid_aborts: median(&aborts) as u64,
            shared_atomic_concurrency: median(&concurrency),
            runs_ns: runs,
        });
    }
    BenchReport {
        source: source(),
        cpu_model: cpu_model(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        run_seconds: dur.as_secs_f64(),
        repeats: cfg.repeats.max(1),
        pinned: cfg.pin,
        loadavg_before,
        loadavg_after: loadavg(),
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
        let la = |v: &[f64]| {
            if v.is_empty() {
                "?".to_string()
            } else {
                v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ")
            }
        };
        writeln!(
            f,
            "CPU ns per increment on {} (source {}, {} CPUs, median of {} x {:.2}s runs, threads {})",
            self.cpu_model.as_deref().unwrap_or("an unknown CPU"),
            self.source,
            self.cpus,
            self.repeats,
            self.run_seconds,
            if self.pinned {
                "pinned round-robin"
            } else {
                "not pinned"
            }
        )?;
        writeln!(
            f,
            "load average before: {}, after: {}",
            la(&self.loadavg_before),
            la(&self.loadavg_after)
        )?;
        writeln!(
            f,
            "{:>3} {:>8} {:>7} {:>13} {:>7} {:>14} {:>15} {:>19} {:>10} {:>12} {:>7} {:>11}",
            "n",
            "percid",
            "(min)",
            "thread_local",
            "(min)",
            "shared_atomic",
            "getcpu_sharded",
            "thread_local_crate",
            "percid/tl",
            "atomic/percid",
            "aborts",
            "atomic_conc"
        )?;
        for r in &self.threads {
            writeln!(
                f,
                "{:>3} {:>8.3} {:>7.3} {:>13.3} {:>7.3} {:>14.2} {:>15.2} {:>19.2} {:>9.2}x {:>11.1}x {:>7} {:>11.2}",
                r.n,
                r.percid_ns,
                r.percid_min_ns,
                r.thread_local_ns,
                r.thread_local_min_ns,
                r.shared_atomic_ns,
                r.getcpu_sharded_ns,
                r.thread_local_crate_ns,
                r.percid_over_thread_local,
                r.shared_atomic_over_percid,
                r.percid_aborts,
                r.shared_atomic_concurrency
            )?;
        }
        writeln!(
            f,
            "targets (percid <= 1.5x thread_local; >= 10x faster than shared atomic at n >= 2): {}",
            if self.targets_met() { "met" } else { "NOT met" }
        )
    }
}
