//! The simulator's promises: determinism, 7.0's invariants at scale, each metric on a case small
//! enough to compute by hand, the known differences between designs, and a bug put back caught.

use mmcid_sim::{Checking, Outcome, SimConfig, Workload, run};

fn wl(src: &str) -> Workload {
    Workload::from_toml(src).unwrap()
}

fn go(design: &str, cpus: u32, w: &Workload, seed: u64, switches: u64) -> Outcome {
    run(SimConfig::new(design, cpus, w.clone(), seed, switches), |_| {}).unwrap()
}

fn go_every(design: &str, cpus: u32, w: &Workload, switches: u64) -> Outcome {
    let mut c = SimConfig::new(design, cpus, w.clone(), 1, switches);
    c.checking = Checking::Every;
    run(c, |_| {}).unwrap()
}

fn ok(o: &Outcome) {
    assert!(
        o.violation.is_none(),
        "{} on {}: {:#?}",
        o.design,
        o.workload,
        o.violation
    );
}

#[test]
fn same_seed_same_json_other_seed_other_run() {
    let w = Workload::named("mixed").unwrap();
    for d in ["7.0", "6.18", "6.3"] {
        let a = go(d, 16, &w, 7, 60_000).key();
        let b = go(d, 16, &w, 7, 60_000).key();
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap(),
            "{d}"
        );
        let c = go(d, 16, &w, 8, 60_000).key();
        assert_ne!(a, c, "{d}: another seed, another run");
    }
}

/// The default workload shows what distinguishes the designs, 7.0's mode switches and fix-up
/// walks among them: its fork storm crosses the per-CPU threshold and comes back (at a creation
/// rate of 0.2 it never did, and the default table showed 0 walks for every design).
#[test]
fn the_default_workload_switches_modes_under_7_0() {
    let w = Workload::named("mixed").unwrap();
    let o = go("7.0", 64, &w, 1, 300_000);
    ok(&o);
    assert!(o.mode_switches >= 2, "mode switches: {}", o.mode_switches);
    assert_eq!(
        o.walk_len.count, o.mode_switches,
        "one fix-up walk per mode switch"
    );
    assert!(o.walk_hold_ns.max > 0, "walks hold mm.mutex for a while");
    let old = go("6.18", 64, &w, 1, 300_000);
    ok(&old);
    assert_eq!(
        (old.mode_switches, old.walk_len.count),
        (0, 0),
        "6.18 has no modes"
    );
}

/// 7.0 at scale: 256 CPUs, 10,000 threads of one process (per-CPU mode), 10^6 switches, with every
/// invariant checked as it goes.
#[test]
fn v7_0_holds_every_invariant_at_256_cpus_and_10000_threads() {
    let w = wl("name='big'\n[[group]]\nprocesses=1\nthreads=10000\nburst_us=20\nsleep_us=400\n");
    let o = go("7.0", 256, &w, 1, 1_000_000);
    ok(&o);
    assert_eq!(o.switches, 1_000_000);
    assert!(o.peak_tasks >= 10_000);
    assert!(o.checks.1 > 0, "full checks ran: {:?}", o.checks);
}

/// A second process of churn at scale, with the full checks after every event: 7.0 holds.
#[test]
fn v7_0_holds_with_every_check_on_churning_cpusets() {
    let o = go_every("7.0", 16, &churn(), 40_000);
    ok(&o);
    assert!(
        o.mode_switches > 10,
        "the workload crosses the threshold: {}",
        o.mode_switches
    );
}

fn churn() -> Workload {
    wl(
        "name='churn'\n[[group]]\nprocesses='cpus/4'\nthreads=2\nburst_us=20\nsleep_us=20\ncpuset=4\n\
        pthread_create=0.3\nchild_bursts=2\nmax_threads=10\n",
    )
}

/// 6.19's unguarded `drop_on_cpu` (fixed by 1e83ccd5921a) put back: an exit that switches an mm
/// back to per-task drops a slot that mirrors a running task's TRANSIT CID, `clear_bit(0x2000000N)`.
/// The same run under 7.0 holds.
#[test]
fn the_6_19_drop_on_cpu_bug_is_caught_at_scale() {
    let w = churn();
    let o = go("6.19", 64, &w, 1, 300_000);
    let v = o.violation.as_ref().expect("6.19 violates D1");
    assert_eq!(v.property, "D1", "{v:#?}");
    assert!(v.message.contains("clear_bit(0x2000000"), "{}", v.message);
    assert!(v.trace.contains("CPU"), "a CPU-column trace: {}", v.trace);
    ok(&go("7.0", 64, &w, 1, 300_000));
}

/// A violation's trace comes from a replay of the run (the event loop does not record): it is
/// exactly the trace of a run that records from its start.
#[test]
fn the_replayed_trace_is_the_trace_of_a_recording_run() {
    let cfg = SimConfig::new("6.19", 64, churn(), 1, 300_000);
    let mut fast = mmcid_sim::Machine::new(cfg.clone()).unwrap();
    fast.run(|_| {});
    let mut rec = mmcid_sim::Machine::new(cfg).unwrap();
    rec.recording = true;
    rec.run(|_| {});
    let (f, r) = (fast.violation.expect("6.19 violates D1"), rec.violation.unwrap());
    assert!(r.trace.contains("CPU"), "{}", r.trace);
    assert_eq!(f, r, "same violation, same trace");
}

fn two_procs_one_cpu() -> Workload {
    wl("name='pingpong'\n[[group]]\nprocesses=2\nthreads=1\nburst_us=100\nsleep_us=0\n")
}

/// Two CPU-bound single-threaded processes on one CPU: every switch after the first is between
/// two mms. Hand-computed per design:
/// - 6.3: the first switch (from idle) gets a CID (1 lock, 1 bit op); every other one puts prev's
///   and gets next's: 2 locks, 2 bit ops.
/// - 7.0 (per-task mode): schedin's fast path mirrors the task's CID into the slot: 1 slot write,
///   no bitmap operation.
/// - 6.18: switch-out stamps the slot's time, switch-in reuses the CPU's CID and stamps it: 2 slot
///   writes (1 on the first switch); the first switch-in of each mm allocates: 1 bit op each.
#[test]
fn cost_per_switch_by_hand() {
    let w = two_procs_one_cpu();
    let n = 1000;
    let o = go("6.3", 1, &w, 1, n);
    ok(&o);
    assert_eq!(o.per_switch.locks * n as f64, (2 * n - 1) as f64);
    assert_eq!(o.per_switch.bit_ops * n as f64, (2 * n - 1) as f64);
    assert_eq!(o.per_switch.slot_writes, 0.0);
    let o = go("7.0", 1, &w, 1, n);
    ok(&o);
    assert_eq!(
        (o.per_switch.bit_ops, o.per_switch.slot_writes, o.per_switch.locks),
        (0.0, 1.0, 0.0)
    );
    let o = go("6.18", 1, &w, 1, n);
    ok(&o);
    assert_eq!(o.per_switch.slot_writes * n as f64, (2 * n - 1) as f64);
    assert_eq!(o.per_switch.bit_ops * n as f64, 2.0);
    assert_eq!(o.per_switch.locks, 0.0);
}

/// One process with two CPU-bound threads on one CPU: 6.3 hands the CID over between tasks of the
/// same mm without the lock: one lock, one bit op in the whole run.
#[test]
fn v6_3_same_mm_handover_takes_no_lock() {
    let w = wl("name='pair'\n[[group]]\nthreads=2\nburst_us=100\nsleep_us=0\n");
    let o = go("6.3", 1, &w, 1, 500);
    ok(&o);
    assert_eq!(o.per_switch.locks * 500.0, 1.0);
}

/// Four CPU-bound threads on four CPUs start together: every sample sees CIDs 0..3 in use by four
/// running tasks: range 4, nothing above the optimum, no high-ID episode.
#[test]
fn id_range_by_hand() {
    let w = wl("name='four'\n[[group]]\nthreads=4\nburst_us=1000\nsleep_us=0\n");
    for d in ["7.0", "6.18", "6.3"] {
        let mut c = SimConfig::new(d, 4, w.clone(), 1, 2000);
        c.max_sim_ms = 50.0;
        let o = run(c, |_| {}).unwrap();
        ok(&o);
        assert_eq!((o.id_range.p50, o.id_range.max), (4, 4), "{d}");
        assert_eq!(o.id_excess.max, 0, "{d}");
        assert_eq!(o.high_id_us.count, 0, "{d}");
    }
}

/// Two CPUs, two threads, one `pthread_create` allowed (max_threads 3): users 3 > max_cids 2
/// flips the mm to per-CPU once; the walk visits the other two users (current is skipped); the
/// threshold back is 1 user, so it never flips back.
#[test]
fn mode_switch_and_walk_by_hand() {
    let w = wl(
        "name='third'\n[[group]]\nthreads=2\nburst_us=50\nsleep_us=10\npthread_create=1.0\nmax_threads=3\n\
                child_bursts=1000000\n",
    );
    let o = go_every("7.0", 2, &w, 5000);
    ok(&o);
    assert_eq!(o.mode_switches, 1);
    assert_eq!((o.walk_len.count, o.walk_len.max), (1, 2));
    assert_eq!(o.ops.forks, 1);
    assert_eq!(
        o.deferred_work, 0,
        "finding 4: the deferred switch is never queued"
    );
}

/// A process of 8 threads on 8 CPUs loses all but one: 7.0 shrinks max_cids at the exits and the
/// survivor's next schedin converges its CID; 6.18's survivor keeps its CPU's high CID (the fast
/// path reuses it) until the compaction scan's clear-high loop, on its 100 ms period, marks it for
/// the next switch-out: a lag of the order of the period.
#[test]
fn v6_18_compaction_lag_where_7_0_has_none() {
    let w = wl("name='shrink'\n[[group]]\nthreads=8\nburst_us=100\nsleep_us=50\nexit=0.05\n");
    let a = go("7.0", 8, &w, 3, 400_000);
    let b = go("6.18", 8, &w, 3, 400_000);
    ok(&a);
    ok(&b);
    assert!(b.sim_ms > 300.0, "long enough for scans: {}", b.sim_ms);
    assert!(b.scans > 0, "{b:#?}");
    assert!(
        a.high_id_us.max < 2_000,
        "7.0 converges at the next schedin: {:?}",
        a.high_id_us
    );
    assert!(
        b.high_id_us.max >= 50_000,
        "6.18 waits for its scan: {:?}",
        b.high_id_us
    );
}

/// 6.3 takes its per-mm lock on every switch that puts or gets a CID (all but the handovers between
/// two tasks of one mm); 7.0 never takes a lock in a context switch.
#[test]
fn v6_3_locks_on_every_switch_7_0_never() {
    let w = Workload::named("many-small").unwrap();
    let a = go("7.0", 16, &w, 1, 100_000);
    let b = go("6.3", 16, &w, 1, 100_000);
    ok(&a);
    ok(&b);
    assert_eq!(a.per_switch.locks, 0.0);
    assert!(b.per_switch.locks >= 1.0, "{:?}", b.per_switch);
}

#[test]
fn every_design_runs_every_named_workload_briefly() {
    for (name, _) in mmcid_sim::workload::NAMED {
        let w = Workload::named(name).unwrap();
        for d in mmcid_kmodel::DESIGNS
            .iter()
            .filter(|d| mmcid_sim::machine::simulated(d).is_ok())
        {
            let o = go(d.name, 8, &w, 1, 5_000);
            if d.name != "6.19" {
                ok(&o);
            }
        }
    }
}

/// `--report`: one SVG per plot and an index.html that shows them with captions; each design in
/// its own colour, identical designs drawn once and named together, and a workload without walks
/// says so instead of drawing an empty histogram.
#[test]
fn report_draws_every_plot_with_one_colour_per_design() {
    let w = churn();
    let runs: Vec<Outcome> = ["7.0", "7.1.3", "6.18", "6.3"]
        .iter()
        .map(|d| {
            let mut c = SimConfig::new(d, 16, w.clone(), 1, 20_000);
            c.series = true;
            run(c, |_| {}).unwrap()
        })
        .chain(std::iter::once({
            let mut c = SimConfig::new("7.0", 16, Workload::named("thread-pool").unwrap(), 1, 5_000);
            c.series = true;
            run(c, |_| {}).unwrap()
        }))
        .collect();
    let dir = std::env::temp_dir().join(format!("mmcid-sim-report-{}", std::process::id()));
    mmcid_sim::report::plots::write(&dir, &runs).unwrap();
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for kind in ["compact", "range", "cost", "walks"] {
        let f = format!("churn-{kind}.svg");
        assert!(html.contains(&f), "index.html shows {f}");
        assert!(dir.join(&f).exists(), "{f} written");
    }
    assert_eq!(html.matches("<figcaption>").count(), 4 + 3, "a caption per plot");
    assert!(
        html.contains("none in this workload"),
        "thread-pool has no walks: said, not drawn"
    );
    assert!(!dir.join("thread-pool-walks.svg").exists());
    let range = std::fs::read_to_string(dir.join("churn-range.svg"))
        .unwrap()
        .to_lowercase();
    for d in ["7.0", "6.18", "6.3"] {
        let c = mmcid_sim::report::plots::colour(d);
        let hex = format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2);
        assert!(range.contains(&hex), "{d}'s colour {hex} in the range plot");
    }
    // 7.0 and 7.1.3 differ only where 7.1.3's guard matters, which this run never reaches
    assert_eq!(runs[0].series, runs[1].series);
    assert!(
        range.contains("7.0 = 7.1.3 (identical)"),
        "identical designs named together"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
