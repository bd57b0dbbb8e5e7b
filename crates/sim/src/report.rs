//! Running simulations (one, or many in parallel) and what a run reports.

pub mod plots;

use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::SimConfig;
use crate::machine::{Machine, Violation};
use crate::metrics::Summary;

/// Cost of the CID code per context switch (means over all switches).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PerSwitch {
    /// Atomics on the CID bitmap.
    pub bit_ops: f64,
    /// Stores to per-CPU slots.
    pub slot_writes: f64,
    /// Lock acquisitions (6.3's per-mm `cid_lock`, 6.18's global `cid_lock`).
    pub locks: f64,
    /// All three: writes to shared cache lines, the traffic proxy.
    pub shared_writes: f64,
}

/// What one run reports. Times are simulated nanoseconds unless named otherwise.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Outcome {
    /// Design.
    pub design: String,
    /// Workload.
    pub workload: String,
    /// CPUs.
    pub cpus: u32,
    /// Seed.
    pub seed: u64,
    /// Context switches simulated.
    pub switches: u64,
    /// Simulated time.
    pub sim_ms: f64,
    /// Wall-clock seconds (not part of determinism: excluded from comparisons by [`Outcome::key`]).
    pub wall_s: f64,
    /// Context switches simulated per wall-clock second (the replay that takes a violation's trace
    /// left out).
    pub switches_per_s: f64,
    /// Largest number of tasks alive at once.
    pub peak_tasks: u32,
    /// Simulator bytes per task slot (scheduler + CID state).
    pub bytes_per_task: usize,
    /// Simulator bytes per mm at this CPU count.
    pub bytes_per_mm: usize,
    /// The first invariant violation, if any (the run stopped there).
    pub violation: Option<Violation>,
    /// The run was stopped early (Ctrl-C): its figures cover the switches simulated until then.
    #[serde(default)]
    pub interrupted: bool,
    /// Per mm and sample: CID range in use (max + 1).
    pub id_range: Summary,
    /// Per mm and sample: range in use minus running tasks (0 = optimal).
    pub id_excess: Summary,
    /// Episodes with a CID above `opt + opt/4`, `opt = min(users, allowed CPUs)`: duration (µs).
    pub high_id_us: Summary,
    /// CID code cost per context switch.
    pub per_switch: PerSwitch,
    /// Lock waits (ns) per acquisition.
    pub lock_wait_ns: Summary,
    /// Mode switches (7.0 family).
    pub mode_switches: u64,
    /// Fix-up walks: visits each.
    pub walk_len: Summary,
    /// Fix-up walks: mutex hold (ns).
    pub walk_hold_ns: Summary,
    /// Walk-length histogram: (visits, walks).
    pub walk_hist: Vec<(u64, u64)>,
    /// `get_cid` spin laps.
    pub spin_laps: u64,
    /// Spins: time with the rq lock held (ns).
    pub spin_ns: Summary,
    /// Deferred switches back to per-task queued.
    pub deferred_work: u64,
    /// 6.18 compaction scans.
    pub scans: u64,
    /// 6.18: CPUs looked at per scan (both loops).
    pub scan_visits_per_scan: f64,
    /// 6.18: age of the CIDs the scan reclaimed (µs since the slot's last use).
    pub reclaim_age_us: Summary,
    /// Kernel operations: pthread_create, exit, posix_spawn, execve ok / failed, setaffinity,
    /// migrations.
    pub ops: Ops,
    /// Invariant checks run (cheap, full).
    pub checks: (u64, u64),
    /// Samples per CID at returns to user space: (CID, samples), CIDs with samples only.
    pub cid_hist: Vec<(u32, u64)>,
    /// The same per (CPU, CID): (CPU, CID, samples), non-zero entries (up to 64 CPUs).
    pub cpu_cid_hist: Vec<(u32, u32, u64)>,
    /// Time series (simulated ms, sum of ID ranges, sum of running tasks); only with
    /// `SimConfig::series`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub series: Vec<(f64, u32, u32)>,
}

/// Operation counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Ops {
    /// pthread_create.
    pub forks: u64,
    /// exit.
    pub exits: u64,
    /// posix_spawn.
    pub spawns: u64,
    /// execve that succeeded.
    pub execs_ok: u64,
    /// execve that failed.
    pub execs_failed: u64,
    /// sched_setaffinity.
    pub affinity: u64,
    /// Migrations.
    pub migrations: u64,
}

fn us(s: Summary) -> Summary {
    Summary {
        count: s.count,
        mean: (s.mean / 10.0).round() / 100.0,
        p50: s.p50 / 1000,
        p99: s.p99 / 1000,
        max: s.max / 1000,
    }
}

impl Outcome {
    /// The outcome of a finished machine.
    pub fn of(mc: &Machine, wall_s: f64) -> Outcome {
        let m = &mc.m;
        let n = m.switches.max(1) as f64;
        let (bt, bm) = mc.footprint();
        let r2 = |x: f64| (x * 1000.0).round() / 1000.0;
        let sim_s = wall_s - mc.replay_s; // the replay for a violation's trace is not simulation
        Outcome {
            design: mc.cfg.design.clone(),
            workload: mc.cfg.workload.name.clone(),
            cpus: mc.cfg.cpus,
            seed: mc.cfg.seed,
            switches: m.switches,
            sim_ms: mc.now as f64 / 1e6,
            wall_s,
            switches_per_s: if sim_s > 0.0 {
                (m.switches as f64 / sim_s).round()
            } else {
                0.0
            },
            peak_tasks: mc.peak_tasks,
            bytes_per_task: bt,
            bytes_per_mm: bm,
            violation: mc.violation.clone(),
            interrupted: mc.interrupted,
            id_range: m.range.summary(),
            id_excess: m.excess.summary(),
            high_id_us: us(m.high_lag.summary()),
            per_switch: PerSwitch {
                bit_ops: r2(m.switch_bit_ops as f64 / n),
                slot_writes: r2(m.switch_slot_writes as f64 / n),
                locks: r2(m.switch_locks as f64 / n),
                shared_writes: r2((m.switch_bit_ops + m.switch_slot_writes + m.switch_locks) as f64 / n),
            },
            lock_wait_ns: m.lock_wait.summary(),
            mode_switches: m.mode_switches,
            walk_len: m.walk_len.summary(),
            walk_hold_ns: m.walk_hold.summary(),
            walk_hist: m.walk_len.buckets(),
            spin_laps: m.spin_laps,
            spin_ns: m.spin_time.summary(),
            deferred_work: m.deferred_work,
            scans: m.scans,
            scan_visits_per_scan: if m.scans == 0 {
                0.0
            } else {
                m.scan_visits as f64 / m.scans as f64
            },
            reclaim_age_us: us(m.reclaim_age.summary()),
            ops: Ops {
                forks: m.forks,
                exits: m.exits,
                spawns: m.spawns,
                execs_ok: m.execs_ok,
                execs_failed: m.execs_failed,
                affinity: m.affinity_changes,
                migrations: m.migrations,
            },
            checks: (m.checks_cheap, m.checks_full),
            cid_hist: m
                .cid_hist
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| (c as u32, *n))
                .collect(),
            cpu_cid_hist: m
                .cpu_cid
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i as u32 / mc.cfg.cpus, i as u32 % mc.cfg.cpus, *n))
                .collect(),
            series: m.series.iter().map(|&(t, a, b)| (t as f64 / 1e6, a, b)).collect(),
        }
    }

    /// The outcome without its wall-clock figures (equal for equal configurations).
    pub fn key(&self) -> Outcome {
        Outcome {
            wall_s: 0.0,
            switches_per_s: 0.0,
            ..self.clone()
        }
    }
}

/// Runs one simulation to its end. `progress(switches)` is called now and then.
pub fn run(cfg: SimConfig, progress: impl FnMut(u64)) -> Result<Outcome, String> {
    run_until(cfg, progress, &|| false)
}

/// [`run`] that stops early once `stop()` says so (Ctrl-C): [`Outcome::interrupted`].
pub fn run_until(
    cfg: SimConfig,
    progress: impl FnMut(u64),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Outcome, String> {
    let t0 = Instant::now();
    let mut mc = Machine::new(cfg)?;
    mc.run_until(progress, stop);
    mc.finish();
    Ok(Outcome::of(&mc, t0.elapsed().as_secs_f64()))
}

/// Runs independent simulations on every core (rayon); results in the order given.
/// `progress(done_switches_total)` is called from the worker threads.
pub fn run_all(cfgs: Vec<SimConfig>, progress: &(dyn Fn(u64) + Sync)) -> Vec<Result<Outcome, String>> {
    run_all_until(cfgs, progress, &|| false)
}

/// [`run_all`] that stops every run early once `stop()` says so (Ctrl-C): runs under way stop at
/// their next progress point, runs not yet started are left out (so a stop is prompt however many
/// runs were asked for); the results keep the order given.
pub fn run_all_until(
    cfgs: Vec<SimConfig>,
    progress: &(dyn Fn(u64) + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Vec<Result<Outcome, String>> {
    cfgs.into_par_iter()
        .filter(|_| !stop())
        .map(|c| {
            let mut last = 0;
            run_until(
                c,
                |s| {
                    progress(s - last);
                    last = s;
                },
                stop,
            )
        })
        .collect()
}
