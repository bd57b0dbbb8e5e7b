//! What the checker finds in each historical design, from the design alone, at the
//! configurations of `mmcid matrix` (depth-bounded here to keep the tests fast; findings are
//! shortest whatever the bound). Each finding is explained in the kernel's terms in the README.

use mmcid_kmodel::checker::{self, CheckOptions, CheckOutcome, Liveness};
use mmcid_kmodel::{Budgets, Config};

fn check(design: &str, cpus: u8, threads: u8, allowed: Option<u8>, b: Budgets, depth: u32) -> CheckOutcome {
    let cfg = Config {
        design: design.into(),
        cpus,
        threads,
        allowed,
        budgets: b,
    };
    let opts = CheckOptions {
        symmetry: true,
        liveness: Liveness::Stalls,
        max_states: None,
        max_depth: Some(depth),
        // The pins are exact shortest depths: one kernel step per transition.
        reduction: false,
        ..CheckOptions::default()
    };
    checker::run(&cfg, &opts, &mut mmcid_engine::NoObserver).unwrap()
}

/// (property, depth) of every violation, sorted.
fn found(o: &CheckOutcome) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = o
        .violations
        .iter()
        .map(|v| (v.property.clone(), v.depth))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn fork_exit() -> Budgets {
    Budgets {
        forks: 1,
        exits: 1,
        ..Budgets::default()
    }
}
fn seed() -> Budgets {
    Budgets {
        forks: 2,
        ..Budgets::default()
    }
}

#[test]
fn v6_19_rc7_live_locks_on_the_task_to_cpu_transition() {
    // 4327fb13fa47: without TRANSIT towards per-CPU, the forker (walking, mutex held) is preempted,
    // migrates to the other CPU and needs a CID there; the other thread's plain CID has not been
    // fixed up yet and it waits on that CPU's run queue: schedin spins with the rq lock held.
    let o = check("6.19-rc7", 2, 2, None, fork_exit(), 8);
    assert_eq!(found(&o), vec![("I8v".into(), 3), ("stall".into(), 6)]);
    assert!(
        o.violations
            .iter()
            .any(|v| v.kind == "stall" && v.trace.last().unwrap().function == "schedule")
    );
}

#[test]
fn v6_19_clears_a_bit_outside_the_bitmap_on_an_exit_switch() {
    // 1e83ccd5921a: the unguarded drop_on_cpu of a slot mirroring a TRANSIT CID clears bit
    // TRANSIT|0 = 0x20000000.
    let b = Budgets {
        forks: 1,
        exits: 2,
        ..Budgets::default()
    };
    let o = check("6.19", 4, 3, Some(2), b, 7);
    assert_eq!(found(&o), vec![("D1".into(), 6), ("I8v".into(), 3)]);
    let d1 = o.violations.iter().find(|v| v.property == "D1").unwrap();
    assert!(
        d1.what().contains("bit 536870912, outside the 4-bit bitmap"),
        "{}",
        d1.what()
    );
    // 6.19.1 (guarded drop_on_cpu) does not
    let o = check("6.19.1", 4, 3, Some(2), b, 7);
    assert_eq!(found(&o), vec![("I8v".into(), 3)]);
}

#[test]
fn v6_19_1_stalls_on_the_seed_and_its_successors_do_not() {
    let o = check("6.19.1", 3, 2, None, seed(), 13);
    assert_eq!(
        found(&o),
        vec![("I6".into(), 9), ("I8v".into(), 3), ("stall".into(), 12)]
    );
    for d in ["6.19.1+fork", "6.19.1+vfork", "7.0"] {
        let o = check(d, 3, 2, None, seed(), 13);
        assert_eq!(found(&o), vec![], "{d}");
    }
}

#[test]
fn v7_0_breaks_only_around_a_failing_execve() {
    let o = check("7.0", 2, 2, None, fork_exit(), 40);
    assert!(o.complete && o.violations.is_empty() && o.no_stall == Some(true));
    let b = Budgets {
        forks: 1,
        exits: 2,
        exec_fails: 1,
        ..Budgets::default()
    };
    let o = check("7.0", 2, 3, None, b, 18);
    assert_eq!(
        found(&o),
        vec![
            ("I2".into(), 6),
            ("I4".into(), 13),
            ("I7".into(), 13),
            ("stall".into(), 18)
        ]
    );
}

#[test]
fn v6_19_1_plus_fork_misses_a_vfork_child_and_its_successor_does_not() {
    // B' (b2e48c429ec5 alone): budget users-1 = 3; pass 1 counts T1 and T2, pass 2 counts T1
    // again and returns early, so the vfork child T3 (another thread group, same mm) keeps its plain
    // CID in per-CPU mode. B'' (28b5a1395036) lets pass 2 finish.
    let b = Budgets {
        forks: 1,
        vforks: 1,
        ..Budgets::default()
    };
    let o = check("6.19.1+fork", 3, 2, None, b, 15);
    assert_eq!(found(&o), vec![("I6".into(), 14)]);
    let i6 = o.violations.iter().find(|v| v.property == "I6").unwrap();
    let walk: Vec<&str> = i6
        .trace
        .iter()
        .map(|s| s.line.as_str())
        .filter(|l| l.contains("fixup_one"))
        .collect();
    assert_eq!(
        walk,
        vec!["T0 fixup_one T1", "T0 fixup_one T2", "T0 fixup_one T1"]
    );
    for d in ["6.19.1+vfork", "7.0"] {
        assert_eq!(found(&check(d, 3, 2, None, b, 15)), vec![], "{d}");
    }
}
