//! What a run measures, per design: ID compactness, cost per context switch, mode switches and
//! walks, spins, 6.18's compaction, and the simulator's own speed.

use serde::{Deserialize, Serialize};

/// A distribution of non-negative integers kept exactly up to 1024 and in 1/16-octave buckets
/// above (so p50/p99 are exact for small values and within 5% for large ones), O(1) per sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hist {
    small: Vec<u64>,
    large: Vec<u64>,
    n: u64,
    sum: u128,
    max: u64,
}

const SMALL: u64 = 1024;

fn bucket(v: u64) -> usize {
    // v >= 1024: octave o = floor(log2 v) - 10, 16 sub-buckets per octave
    let o = 63 - v.leading_zeros() as u64;
    let sub = (v >> (o - 4)) & 15;
    ((o - 10) * 16 + sub) as usize
}

fn bucket_low(b: usize) -> u64 {
    let o = b as u64 / 16 + 10;
    let sub = b as u64 % 16;
    (16 + sub) << (o - 4)
}

impl Hist {
    /// Records one value.
    #[inline]
    pub fn add(&mut self, v: u64) {
        self.n += 1;
        self.sum += v as u128;
        self.max = self.max.max(v);
        if v < SMALL {
            if self.small.is_empty() {
                self.small = vec![0; SMALL as usize];
            }
            self.small[v as usize] += 1;
        } else {
            let b = bucket(v);
            if self.large.len() <= b {
                self.large.resize(b + 1, 0);
            }
            self.large[b] += 1;
        }
    }
    /// Number of values.
    pub fn count(&self) -> u64 {
        self.n
    }
    /// Largest value (0 if none).
    pub fn max(&self) -> u64 {
        self.max
    }
    /// Mean (0 if none).
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum as f64 / self.n as f64
        }
    }
    /// The `q`-quantile (0 ≤ q ≤ 1), 0 if empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (v, &c) in self.small.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return v as u64;
            }
        }
        for (b, &c) in self.large.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_low(b).min(self.max);
            }
        }
        self.max
    }
    /// Merges another distribution into this one.
    pub fn merge(&mut self, o: &Hist) {
        if self.small.is_empty() && !o.small.is_empty() {
            self.small = vec![0; SMALL as usize];
        }
        for (a, b) in self.small.iter_mut().zip(&o.small) {
            *a += b;
        }
        if self.large.len() < o.large.len() {
            self.large.resize(o.large.len(), 0);
        }
        for (a, b) in self.large.iter_mut().zip(&o.large) {
            *a += b;
        }
        self.n += o.n;
        self.sum += o.sum;
        self.max = self.max.max(o.max);
    }
    /// The summary printed and serialised.
    pub fn summary(&self) -> Summary {
        Summary {
            count: self.n,
            mean: (self.mean() * 100.0).round() / 100.0,
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            max: self.max,
        }
    }
    /// (value, count) pairs, ascending, for plots.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self
            .small
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (i as u64, *c))
            .collect();
        v.extend(
            self.large
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(b, c)| (bucket_low(b), *c)),
        );
        v
    }
}

/// count, mean, p50, p99, max of a distribution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// Number of values.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

/// Counters and distributions of one run. Times are simulated nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Context switches (a CPU changing `curr`, idle included).
    pub switches: u64,
    /// Switches between two tasks of the same mm.
    pub same_mm_switches: u64,
    /// Bitmap atomics during context switches.
    pub switch_bit_ops: u64,
    /// Slot writes during context switches.
    pub switch_slot_writes: u64,
    /// Lock acquisitions by the CID code during context switches (6.3's `cid_lock`, 6.18's global
    /// `cid_lock`).
    pub switch_locks: u64,
    /// Time CPUs waited for those locks.
    pub lock_wait: Hist,
    /// Bitmap atomics, slot writes, locks outside context switches (fork, exit, walks, scans).
    pub other_bit_ops: u64,
    /// See `other_bit_ops`.
    pub other_slot_writes: u64,
    /// Mode flips (7.0 family).
    pub mode_switches: u64,
    /// Of which to per-CPU.
    pub to_percpu: u64,
    /// Fix-up walks: number of visits each.
    pub walk_len: Hist,
    /// Fix-up walks: `mm.mutex` hold time (ns).
    pub walk_hold: Hist,
    /// `get_cid` spin laps (7.0 family: schedin and fork; 6.18: busy-wait laps).
    pub spin_laps: u64,
    /// Spins: duration with the rq lock held (ns).
    pub spin_time: Hist,
    /// Deferred switches back to per-task queued (the irq_work; finding 4 says never).
    pub deferred_work: u64,
    /// 6.18 compaction scans run.
    pub scans: u64,
    /// 6.18 compaction scans: CPUs looked at.
    pub scan_visits: u64,
    /// 6.18: CIDs the scan reclaimed: time since the slot's last use (ns).
    pub reclaim_age: Hist,
    /// Per mm and sample: the CID range in use by its running tasks (max + 1) minus their number.
    pub excess: Hist,
    /// Per mm and sample: the range in use (max CID + 1).
    pub range: Hist,
    /// Episodes during which an mm ran a task with a CID above `opt + opt/4` (opt = min(users,
    /// allowed CPUs)): duration (ns) from first to last sample seen high.
    pub high_lag: Hist,
    /// 6.3: tasks that ran with mm_cid -1 (no free bit).
    pub no_cid: u64,
    /// Operations started.
    pub forks: u64,
    /// Exits.
    pub exits: u64,
    /// posix_spawns.
    pub spawns: u64,
    /// execve that succeeded / failed.
    pub execs_ok: u64,
    /// See `execs_ok`.
    pub execs_failed: u64,
    /// sched_setaffinity calls.
    pub affinity_changes: u64,
    /// Migrations (a task placed on another CPU than its last).
    pub migrations: u64,
    /// Time series: (simulated ns, sum over mms of range in use, sum of running tasks).
    pub series: Vec<(u64, u32, u32)>,
    /// Samples per CID: the CID each task has at every return to user space (where a real
    /// thread would read `rseq::mm_cid`).
    pub cid_hist: Vec<u64>,
    /// The same per (CPU, CID), `cpu * np + cid` (machines of up to 64 CPUs only; else empty).
    pub cpu_cid: Vec<u64>,
    /// Invariant checks run (cheap per-event checks and full per-mm checks).
    pub checks_cheap: u64,
    /// See `checks_cheap`.
    pub checks_full: u64,
}
