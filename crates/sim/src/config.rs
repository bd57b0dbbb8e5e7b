//! What to simulate: machine size, design, workload, seed, length, and the cost model.

use serde::{Deserialize, Serialize};

use crate::workload::Workload;

/// Simulated time costs (nanoseconds). Only relative sizes matter for the CID code: they decide
/// how long locks are held and walks run while other CPUs keep switching.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Costs {
    /// A context switch without the CID code.
    pub switch_ns: u64,
    /// One atomic on the CID bitmap (a shared cache line).
    pub bit_op_ns: u64,
    /// One store to a per-CPU slot.
    pub slot_write_ns: u64,
    /// Holding a lock taken by the CID code (6.3's `cid_lock`, 6.18's global `cid_lock`, 7.0's
    /// `mm.lock` section).
    pub lock_hold_ns: u64,
    /// `copy_process` of a thread, split around the CID registration.
    pub fork_ns: u64,
    /// `do_exit` up to the final schedule.
    pub exit_ns: u64,
    /// `execve` (loading the new image).
    pub exec_ns: u64,
    /// One visit of a fix-up walk (an rq lock, a cmpxchg).
    pub walk_visit_ns: u64,
    /// One lap of a busy-wait (`cpu_relax` loop, lock spin, mutex wait).
    pub lap_ns: u64,
    /// Scheduler time slice: a running task is preempted after this when others wait.
    pub slice_ns: u64,
    /// 6.18: the compaction scan's period and age limit (`MM_CID_SCAN_DELAY`, 100 ms).
    pub scan_period_ns: u64,
    /// 6.18: the scan's cost per CPU looked at.
    pub scan_visit_ns: u64,
    /// A spin with the rq lock held longer than this is reported as a stall.
    pub stall_ns: u64,
    /// Metric sampling period (ID range in use).
    pub sample_ns: u64,
}

impl Default for Costs {
    fn default() -> Self {
        Costs {
            switch_ns: 1_000,
            bit_op_ns: 40,
            slot_write_ns: 5,
            lock_hold_ns: 40,
            fork_ns: 20_000,
            exit_ns: 10_000,
            exec_ns: 60_000,
            walk_visit_ns: 150,
            lap_ns: 100,
            slice_ns: 3_000_000,
            scan_period_ns: 100_000_000,
            scan_visit_ns: 150,
            stall_ns: 50_000_000,
            sample_ns: 100_000,
        }
    }
}

/// How thoroughly invariants are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Checking {
    /// On every event the cheap checks (I1 on the task switched in, I2 on every return to user
    /// space, D1 and W after every CID call); the full per-mm checks (I4 bit ownership, I5–I8)
    /// after every operation of an mm whose size is below 64, else after every
    /// `(np + users) / 64`-th, and over all mms every 2^20 switches.
    Sampled,
    /// The full per-mm checks after every CID operation and every context switch (slow; tests).
    Every,
}

/// A simulation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Design name (`mmcid designs`).
    pub design: String,
    /// Possible CPUs.
    pub cpus: u32,
    /// The workload.
    pub workload: Workload,
    /// Seed of the random choices.
    pub seed: u64,
    /// Stop after this many context switches.
    pub switches: u64,
    /// ... or after this much simulated time (ms), whichever comes first (CPU-bound tasks alone
    /// on their CPUs never switch).
    pub max_sim_ms: f64,
    /// Costs.
    pub costs: Costs,
    /// Invariant checking.
    pub checking: Checking,
    /// Keep a time series of the ID range for plots (one point per sample).
    pub series: bool,
    /// Count the per-CID (and per CPU and CID) samples of this workload group only (None: all).
    pub hist_group: Option<u16>,
}

impl SimConfig {
    /// A run of `design` on `cpus` CPUs with the named defaults.
    pub fn new(design: &str, cpus: u32, workload: Workload, seed: u64, switches: u64) -> SimConfig {
        SimConfig {
            design: design.to_string(),
            cpus,
            workload,
            seed,
            switches,
            max_sim_ms: 3_600_000.0,
            costs: Costs::default(),
            checking: Checking::Sampled,
            series: false,
            hist_group: None,
        }
    }
}
