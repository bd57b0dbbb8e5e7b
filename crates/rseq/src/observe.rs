//! The observer behind `mmcid observe`: hold the kernel's `mm_cid` against
//! the promises of the spec.
//!
//! # What is checked
//!
//! * **I1, uniqueness among concurrently running threads.** Each worker
//!   thread repeatedly takes a *running interval*: inside one rseq critical
//!   section it reads `mm_cid` and `cpu_id`, reads the time-stamp counter,
//!   spins briefly, reads the TSC again and re-reads both IDs. If the section
//!   completes, the kernel did not preempt, migrate or signal the thread
//!   in between (it would have aborted the section), so the thread was
//!   *continuously running* with that `mm_cid` on that CPU for the whole
//!   interval `[t_start, t_end]`. A running task keeps its CID until it is
//!   switched out, so the value read is its CID throughout. Two intervals of
//!   different threads that overlap in time and carry the same `mm_cid` are
//!   a violation of I1.
//! * **I2, every CID below the number of possible CPUs**, on every sample.
//! * **I3, compaction** (best effort, reported as a finding, never a
//!   violation): whether the largest CID seen is below
//!   `min(threads, allowed CPUs)`.
//!
//! # Limits of the method
//!
//! * Timestamps come from the TSC of whichever CPU ran the thread. The
//!   method relies on the TSCs being synchronised across CPUs (the
//!   `constant_tsc`/`nonstop_tsc` norm on current x86 hardware and VMs). As
//!   a sanity check, overlapping intervals of two threads *on the same CPU*
//!   (physically impossible) are counted; a non-zero count means the clock
//!   cannot be trusted and is reported as a finding.
//! * Only the sampled intervals are checked: a duplicate that lasts less
//!   than the gap between samples can be missed. `concurrent_pairs` says how
//!   many overlapping pairs were actually compared, i.e. how much the check
//!   could see; with fewer CPUs than threads most time is spent waiting.
//! * Interrupts that do not lead to preemption do not abort the section;
//!   the thread still owns its CPU and CID during them, so this is harmless.
//! * The observer's own main thread (and any other thread of the process)
//!   also holds CIDs while it runs; it is not sampled.
//! * On architectures without critical sections here (not x86_64) no
//!   interval can be proven and the observer reports an error.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{Source, allowed_cpus, cid_area, possible_cpus, source, sys};

/// What each observed thread does between samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Busy loop (about a microsecond) between samples: threads stay
    /// runnable and compete for CPUs.
    Spin,
    /// `sched_yield()` between samples: frequent context switches.
    Yield,
    /// Sleep 50 µs between samples: threads come and go.
    Sleep,
    /// Each thread rotates through spin, yield and sleep, out of phase
    /// with the others.
    Mixed,
}

impl Workload {
    fn step(self, thread: usize, i: u64) {
        let kind = match self {
            Workload::Mixed => match (thread as u64 + i / 64) % 4 {
                0 | 1 => Workload::Spin,
                2 => Workload::Yield,
                _ => Workload::Sleep,
            },
            w => w,
        };
        match kind {
            Workload::Spin => {
                let mut x = 0u64;
                for k in 0..2000u64 {
                    x = std::hint::black_box(x.wrapping_add(k));
                }
            }
            Workload::Yield => std::thread::yield_now(),
            Workload::Sleep => std::thread::sleep(Duration::from_micros(50)),
            Workload::Mixed => unreachable!(),
        }
    }
}

/// What to observe.
#[derive(Clone, Debug)]
pub struct ObserveConfig {
    /// Number of worker threads.
    pub threads: usize,
    /// CPUs every worker is pinned to; `None` leaves the inherited mask.
    pub cpus: Option<Vec<usize>>,
    /// How long to sample.
    pub duration: Duration,
    /// What the workers do between samples.
    pub workload: Workload,
    /// Busy-loop iterations inside each running-interval critical section.
    pub interval_spin: u32,
    /// At most this many intervals are kept (for the overlap check) per
    /// thread; all samples count for the histogram.
    pub max_intervals_per_thread: usize,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            threads: 8,
            cpus: None,
            duration: Duration::from_secs(1),
            workload: Workload::Mixed,
            interval_spin: 500,
            max_intervals_per_thread: 250_000,
        }
    }
}

/// Why observing was not possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObserveError {
    /// No usable `mm_cid` (or no critical sections on this architecture).
    RseqUnavailable(String),
    /// The configuration cannot be carried out (bad CPU list, zero threads).
    BadConfig(String),
}

impl fmt::Display for ObserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObserveError::RseqUnavailable(s) => write!(f, "rseq mm_cid unavailable: {s}"),
            ObserveError::BadConfig(s) => write!(f, "bad configuration: {s}"),
        }
    }
}

impl std::error::Error for ObserveError {}

/// Per-thread part of the report.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ThreadSummary {
    /// Index of the worker.
    pub thread: usize,
    /// Completed running intervals.
    pub samples: u64,
    /// Intervals aborted by the kernel (preemption, migration, signal).
    pub aborted: u64,
    /// CIDs this thread was seen with.
    pub cids: Vec<u32>,
    /// CPUs this thread was seen on.
    pub cpus: Vec<u32>,
}

/// The compaction finding (I3, best effort).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Compaction {
    /// `min(threads, allowed CPUs)`.
    pub bound: usize,
    /// Largest CID observed.
    pub max_cid: Option<u32>,
    /// Whether `max_cid < bound`.
    pub holds: bool,
}

/// The observer's findings. Serialises to the `--json` object.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ObserveReport {
    /// Where the IDs came from (`glibc-rseq` or `own-rseq`).
    pub source: Source,
    /// Number of worker threads.
    pub threads: usize,
    /// The workload.
    pub workload: Workload,
    /// Seconds sampled.
    pub seconds: f64,
    /// CPUs the workers were allowed to run on.
    pub allowed_cpus: Vec<usize>,
    /// CPUs the observing (main) thread may run on: the rest of the process.
    pub process_cpus: Vec<usize>,
    /// Number of possible CPUs (`nr_cpu_ids`), the I2 bound.
    pub possible_cpus: usize,
    /// Completed running intervals, all threads.
    pub samples: u64,
    /// Aborted sampling sections, all threads.
    pub aborted_samples: u64,
    /// Intervals kept for the overlap check.
    pub intervals_checked: u64,
    /// Pairs of overlapping intervals of different threads that were
    /// compared (how much concurrency the I1 check saw).
    pub concurrent_pairs: u64,
    /// Overlapping intervals of different threads on the same CPU (must be
    /// 0; otherwise the timestamps are not trustworthy).
    pub same_cpu_overlaps: u64,
    /// Largest CID observed.
    pub max_cid: Option<u32>,
    /// Number of distinct CIDs observed.
    pub distinct_cids: usize,
    /// Samples per CID.
    pub cid_histogram: BTreeMap<u32, u64>,
    /// Samples per CPU.
    pub cpu_histogram: BTreeMap<u32, u64>,
    /// Compaction (I3) finding.
    pub compaction: Compaction,
    /// Broken promises (I1, I2), each with its evidence. Empty when all
    /// held. At most ten of each kind are listed; `i1_pairs` counts all.
    pub violations: Vec<ObservedViolation>,
    /// Overlapping same-CID pairs of intervals on different CPUs, in all
    /// (I1 violations, of which `violations` lists at most ten).
    pub i1_pairs: u64,
    /// Soft findings (compaction, method sanity), typed; the CLI words them.
    pub findings: Vec<ObserveFinding>,
    /// Per-thread detail.
    pub per_thread: Vec<ThreadSummary>,
}

/// A soft finding of `observe`: not a broken promise, but something that qualifies the result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObserveFinding {
    /// Intervals of different threads overlapped on the same CPU: the time-stamp counters are
    /// not synchronised enough for the I1 check to be trusted.
    UnsyncedClocks {
        /// How many such overlaps.
        same_cpu_overlaps: u64,
    },
    /// No two threads were seen running at the same instant, so I1 was not exercised (one
    /// allowed CPU, or too little overlap).
    NoConcurrency,
    /// I3 (best effort): whether the largest CID stayed below min(threads, allowed CPUs).
    Compaction {
        /// Largest CID observed.
        max_cid: u32,
        /// Worker threads.
        threads: usize,
        /// CPUs the workers were allowed.
        allowed_cpus: usize,
        /// min(threads, allowed CPUs).
        bound: usize,
        /// Whether `max_cid < bound`.
        holds: bool,
    },
    /// No CID was sampled at all.
    NoSamples,
    /// The workers are confined to fewer CPUs than the rest of the process may use: Linux
    /// compacts CIDs towards the CPUs the whole process has been allowed (the union of its
    /// threads' masks), so compaction to `bound` is not guaranteed.
    ProcessWider {
        /// The workers' CPUs.
        worker_cpus: Vec<usize>,
        /// How many CPUs the rest of the process may run on.
        process_cpus: usize,
        /// The compaction bound (min(threads, worker CPUs)).
        bound: usize,
    },
}

/// One running interval of a thread, as the evidence of a violation: the
/// thread ran on `cpu` with `mm_cid` `cid` for the whole of `tsc_start..tsc_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RunningInterval {
    /// The worker thread (0-based).
    pub thread: u32,
    /// The CPU it ran on (`rseq::cpu_id`).
    pub cpu: u32,
    /// Time-stamp counter at the start of the interval.
    pub tsc_start: u64,
    /// Time-stamp counter at its end.
    pub tsc_end: u64,
}

/// A promise of the spec the running kernel broke, with its evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObservedViolation {
    /// I1: two threads ran with the same `mm_cid` at the same time on
    /// different CPUs (their running intervals overlap).
    SameCid {
        /// The CID both held.
        cid: u32,
        /// One thread's interval.
        a: RunningInterval,
        /// The other's.
        b: RunningInterval,
    },
    /// I2: a thread ran with a CID not below the number of possible CPUs.
    CidNotBelowPossibleCpus {
        /// The thread.
        thread: u32,
        /// The CPU it ran on.
        cpu: u32,
        /// The CID it ran with.
        cid: u32,
        /// The number of possible CPUs (`nr_cpu_ids`).
        possible_cpus: u32,
    },
    /// A worker thread has no rseq area: nothing could be sampled there.
    NoRseqArea {
        /// The thread.
        thread: u32,
    },
}

impl ObservedViolation {
    /// The promise broken: `I1`, `I2`, or `None` when the observer itself
    /// could not sample ([`ObservedViolation::NoRseqArea`]).
    pub fn property(&self) -> Option<&'static str> {
        match self {
            ObservedViolation::SameCid { .. } => Some("I1"),
            ObservedViolation::CidNotBelowPossibleCpus { .. } => Some("I2"),
            ObservedViolation::NoRseqArea { .. } => None,
        }
    }
}

#[derive(Clone, Copy)]
struct Interval {
    t_start: u64,
    t_end: u64,
    thread: u32,
    cid: u32,
    cpu: u32,
}

struct ThreadResult {
    summary: ThreadSummary,
    intervals: Vec<Interval>,
    cid_hist: BTreeMap<u32, u64>,
    cpu_hist: BTreeMap<u32, u64>,
    i2_violations: Vec<ObservedViolation>,
}

/// Spawns the workers, samples, and checks the promises.
pub fn observe(cfg: &ObserveConfig) -> Result<ObserveReport, ObserveError> {
    if cfg.threads == 0 {
        return Err(ObserveError::BadConfig("need at least one thread".into()));
    }
    if !cfg!(target_arch = "x86_64") {
        return Err(ObserveError::RseqUnavailable(
            "running intervals need rseq critical sections, implemented on x86_64 only".into(),
        ));
    }
    let src = source();
    if !src.is_mm_cid() {
        let info = crate::rseq_info();
        return Err(ObserveError::RseqUnavailable(format!(
            "source is {src} (glibc __rseq_size {:?}, AT_RSEQ_FEATURE_SIZE {}, active size {}, \
             rseq registered: {}, forced fallback: {})",
            info.glibc_rseq_size,
            info.kernel_feature_size,
            info.active_size,
            crate::rseq_registered(),
            info.forced_fallback
        )));
    }
    let possible = possible_cpus();
    let allowed = match &cfg.cpus {
        Some(c) => {
            if let Some(bad) = c.iter().find(|&&c| c >= possible) {
                return Err(ObserveError::BadConfig(format!(
                    "CPU {bad} is not possible here (possible CPUs: 0-{})",
                    possible - 1
                )));
            }
            c.clone()
        }
        None => allowed_cpus(),
    };

    let barrier = Arc::new(Barrier::new(cfg.threads));
    let mut handles = Vec::new();
    for t in 0..cfg.threads {
        let barrier = barrier.clone();
        let cfg = cfg.clone();
        let pin = cfg.cpus.clone();
        handles.push(std::thread::spawn(move || {
            let pinned = pin.as_deref().map(sys::set_affinity);
            // Wait for everybody even on failure, so nobody hangs.
            barrier.wait();
            if let Some(Err(e)) = pinned {
                return Err(ObserveError::BadConfig(format!(
                    "sched_setaffinity({:?}) failed: {}",
                    pin.unwrap_or_default(),
                    std::io::Error::from_raw_os_error(e)
                )));
            }
            Ok(sample_thread(t, &cfg, possible))
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.join().expect("observer thread panicked")?);
    }
    let mut report = analyse(cfg, src, allowed, possible, results);
    let process = allowed_cpus();
    if report.allowed_cpus.len() < process.len() {
        report.findings.push(ObserveFinding::ProcessWider {
            worker_cpus: report.allowed_cpus.clone(),
            process_cpus: process.len(),
            bound: report.compaction.bound,
        });
    }
    report.process_cpus = process;
    Ok(report)
}

fn sample_thread(t: usize, cfg: &ObserveConfig, possible: usize) -> ThreadResult {
    let area = cid_area();
    let mut r = ThreadResult {
        summary: ThreadSummary {
            thread: t,
            samples: 0,
            aborted: 0,
            cids: vec![],
            cpus: vec![],
        },
        intervals: Vec::with_capacity(cfg.max_intervals_per_thread.min(1 << 16)),
        cid_hist: BTreeMap::new(),
        cpu_hist: BTreeMap::new(),
        i2_violations: vec![],
    };
    let Some(area) = area else {
        r.i2_violations
            .push(ObservedViolation::NoRseqArea { thread: t as u32 });
        return r;
    };
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < cfg.duration {
        match area.running_interval(cfg.interval_spin) {
            Some(iv) => {
                r.summary.samples += 1;
                *r.cid_hist.entry(iv.cid).or_default() += 1;
                *r.cpu_hist.entry(iv.cpu).or_default() += 1;
                if iv.cid as usize >= possible && r.i2_violations.len() < 10 {
                    r.i2_violations.push(ObservedViolation::CidNotBelowPossibleCpus {
                        thread: t as u32,
                        cpu: iv.cpu,
                        cid: iv.cid,
                        possible_cpus: possible as u32,
                    });
                }
                if r.intervals.len() < cfg.max_intervals_per_thread {
                    r.intervals.push(Interval {
                        t_start: iv.t_start,
                        t_end: iv.t_end,
                        thread: t as u32,
                        cid: iv.cid,
                        cpu: iv.cpu,
                    });
                }
            }
            None => r.summary.aborted += 1,
        }
        cfg.workload.step(t, i);
        i += 1;
    }
    r.summary.cids = r.cid_hist.keys().copied().collect();
    r.summary.cpus = r.cpu_hist.keys().copied().collect();
    r
}

fn analyse(
    cfg: &ObserveConfig,
    src: Source,
    allowed: Vec<usize>,
    possible: usize,
    results: Vec<ThreadResult>,
) -> ObserveReport {
    let mut violations = Vec::new();
    let mut findings = Vec::new();
    let mut cid_histogram = BTreeMap::new();
    let mut cpu_histogram = BTreeMap::new();
    let mut intervals = Vec::new();
    let mut per_thread = Vec::new();
    let (mut samples, mut aborted) = (0, 0);
    for r in results {
        for (k, v) in r.cid_hist {
            *cid_histogram.entry(k).or_insert(0) += v;
        }
        for (k, v) in r.cpu_hist {
            *cpu_histogram.entry(k).or_insert(0) += v;
        }
        violations.extend(r.i2_violations);
        intervals.extend(r.intervals);
        samples += r.summary.samples;
        aborted += r.summary.aborted;
        per_thread.push(r.summary);
    }

    // I1: sweep intervals by start time, comparing each with those still
    // active (at most a handful: only as many as CPUs can truly overlap).
    intervals.sort_unstable_by_key(|i| i.t_start);
    let mut active: Vec<Interval> = Vec::new();
    let (mut concurrent_pairs, mut same_cpu_overlaps, mut i1_count) = (0u64, 0u64, 0u64);
    let mut i1_pairs = Vec::new();
    for iv in &intervals {
        active.retain(|a| a.t_end > iv.t_start);
        for a in &active {
            if a.thread == iv.thread {
                continue;
            }
            concurrent_pairs += 1;
            if a.cpu == iv.cpu {
                same_cpu_overlaps += 1;
            } else if a.cid == iv.cid {
                i1_count += 1;
                if i1_pairs.len() < 10 {
                    let run = |x: &Interval| RunningInterval {
                        thread: x.thread,
                        cpu: x.cpu,
                        tsc_start: x.t_start,
                        tsc_end: x.t_end,
                    };
                    i1_pairs.push(ObservedViolation::SameCid {
                        cid: a.cid,
                        a: run(a),
                        b: run(iv),
                    });
                }
            }
        }
        active.push(*iv);
    }
    violations.extend(i1_pairs);
    if same_cpu_overlaps > 0 {
        findings.push(ObserveFinding::UnsyncedClocks { same_cpu_overlaps });
    }
    if concurrent_pairs == 0 {
        findings.push(ObserveFinding::NoConcurrency);
    }

    let max_cid = cid_histogram.keys().next_back().copied();
    let bound = cfg.threads.min(allowed.len());
    let holds = max_cid.is_some_and(|m| (m as usize) < bound);
    findings.push(match max_cid {
        Some(max_cid) => ObserveFinding::Compaction {
            max_cid,
            threads: cfg.threads,
            allowed_cpus: allowed.len(),
            bound,
            holds,
        },
        None => ObserveFinding::NoSamples,
    });

    ObserveReport {
        source: src,
        threads: cfg.threads,
        workload: cfg.workload,
        seconds: cfg.duration.as_secs_f64(),
        allowed_cpus: allowed,
        process_cpus: vec![],
        possible_cpus: possible,
        samples,
        aborted_samples: aborted,
        intervals_checked: intervals.len() as u64,
        concurrent_pairs,
        same_cpu_overlaps,
        max_cid,
        distinct_cids: cid_histogram.len(),
        cid_histogram,
        cpu_histogram,
        compaction: Compaction {
            bound,
            max_cid,
            holds,
        },
        violations,
        i1_pairs: i1_count,
        findings,
        per_thread,
    }
}

/// A CPU list as `taskset` writes it: `0-2,5,7-8`.
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_list_format() {
        assert_eq!(cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(cpu_list(&[3]), "3");
    }

    fn iv(thread: u32, cid: u32, cpu: u32, t: (u64, u64)) -> Interval {
        Interval {
            t_start: t.0,
            t_end: t.1,
            thread,
            cid,
            cpu,
        }
    }

    fn result(t: usize, ivs: Vec<Interval>) -> ThreadResult {
        let mut cid_hist = BTreeMap::new();
        for i in &ivs {
            *cid_hist.entry(i.cid).or_default() += 1;
        }
        ThreadResult {
            summary: ThreadSummary {
                thread: t,
                samples: ivs.len() as u64,
                aborted: 0,
                cids: vec![],
                cpus: vec![],
            },
            intervals: ivs,
            cid_hist,
            cpu_hist: BTreeMap::new(),
            i2_violations: vec![],
        }
    }

    /// The analysis flags same-CID overlap on different CPUs as I1, and
    /// same-CPU overlap as a method problem, not as I1.
    #[test]
    fn analysis_detects_overlaps() {
        let cfg = ObserveConfig {
            threads: 2,
            ..Default::default()
        };
        let rep = analyse(
            &cfg,
            Source::GlibcRseq,
            vec![0, 1],
            2,
            vec![
                result(0, vec![iv(0, 0, 0, (10, 20)), iv(0, 1, 1, (30, 40))]),
                result(1, vec![iv(1, 1, 1, (15, 25)), iv(1, 1, 0, (35, 45))]),
            ],
        );
        assert_eq!(rep.concurrent_pairs, 2);
        assert_eq!(rep.same_cpu_overlaps, 0);
        assert_eq!(rep.violations.len(), 1, "{:?}", rep.violations);
        assert_eq!(rep.violations[0].property(), Some("I1"));
        assert_eq!(rep.i1_pairs, 1);
        let ObservedViolation::SameCid { cid, a, b } = rep.violations[0] else {
            panic!("{:?}", rep.violations[0])
        };
        assert_eq!((cid, a.thread, a.cpu, b.thread, b.cpu), (1, 0, 1, 1, 0));
        assert_eq!(rep.max_cid, Some(1));
        assert!(rep.compaction.holds, "1 < min(2 threads, 2 CPUs)");

        let rep = analyse(
            &cfg,
            Source::GlibcRseq,
            vec![0, 1],
            2,
            vec![
                result(0, vec![iv(0, 0, 0, (10, 20))]),
                result(1, vec![iv(1, 0, 0, (15, 25))]),
            ],
        );
        assert_eq!(rep.same_cpu_overlaps, 1);
        assert!(rep.violations.is_empty());
        assert!(rep.compaction.holds);

        // One allowed CPU: CID 1 means compaction was not reached.
        let rep = analyse(
            &cfg,
            Source::GlibcRseq,
            vec![0],
            2,
            vec![result(0, vec![iv(0, 1, 0, (10, 20))])],
        );
        assert!(!rep.compaction.holds);
        assert!(rep.violations.is_empty(), "I3 is a finding, not a violation");
    }
}
