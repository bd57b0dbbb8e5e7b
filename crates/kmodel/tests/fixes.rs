//! Each proposed fix (`docs/findings/`) removes its finding on the configuration that shows it,
//! and the same run on 7.0 shows the finding: a checker that says "no violation" for the fix is
//! seen to say "violation" with the bug put back. Small configurations only; `mmcid matrix` runs
//! every design over the whole grid.

use mmcid_kmodel::checker::{self, CheckOptions, CheckOutcome, Liveness};
use mmcid_kmodel::{Budgets, Config};

fn check(design: &str, cpus: u8, threads: u8, allowed: Option<u8>, b: Budgets) -> CheckOutcome {
    let mut cfg = Config::new(design, cpus, threads, b);
    cfg.allowed = allowed;
    let opts = CheckOptions {
        symmetry: true,
        liveness: Liveness::Stalls,
        max_states: Some(2_000_000),
        max_depth: None,
        reduction: true,
        ..CheckOptions::default()
    };
    let o = checker::run(&cfg, &opts, &mut mmcid_engine::NoObserver).unwrap();
    assert!(o.complete, "{design} {cfg:?}: the search was cut");
    o
}

/// The violated invariants (ids) and whether a stall was found, each with its shortest depth.
fn found(o: &CheckOutcome) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = o
        .properties
        .iter()
        .filter(|p| p.status == "violated")
        .map(|p| (p.property.clone(), p.depth.unwrap_or(0)))
        .collect();
    if let Some(d) = o
        .violations
        .iter()
        .filter(|v| v.kind == "stall")
        .map(|v| v.depth)
        .min()
    {
        v.push(("stall".into(), d));
    }
    v
}

fn reached(o: &CheckOutcome, id: &str) -> bool {
    o.properties
        .iter()
        .any(|p| p.property == id && p.status == "reached")
}

fn pairs(v: &[(&str, u32)]) -> Vec<(String, u32)> {
    v.iter().map(|&(p, d)| (p.to_string(), d)).collect()
}

const B: Budgets = Budgets {
    forks: 0,
    vforks: 0,
    fork_fails: 0,
    exits: 0,
    execs: 0,
    exec_fails: 0,
    exec_checks: 0,
    affinity: 0,
    compactions: 0,
};

#[test]
fn fix_execve_cid_removes_f1_by_failure_and_by_execveat_check() {
    for b in [Budgets { exec_fails: 1, ..B }, Budgets { exec_checks: 1, ..B }] {
        assert_eq!(found(&check("7.0", 2, 3, None, b)), pairs(&[("I2", 6)]));
        assert_eq!(found(&check("7.1.3", 2, 3, None, b)), pairs(&[("I2", 6)]));
        assert_eq!(found(&check("7.0+fix-execve-cid", 2, 3, None, b)), vec![]);
    }
}

#[test]
fn fix_execve_cid_removes_f4_by_pthread_clone_and_by_vfork() {
    for b in [
        Budgets {
            forks: 1,
            exec_fails: 1,
            ..B
        },
        Budgets {
            vforks: 1,
            exec_fails: 1,
            ..B
        },
    ] {
        assert_eq!(
            found(&check("7.0", 2, 2, None, b)),
            pairs(&[("I2", 14), ("stall", 14)]),
            "{b:?}"
        );
        let fixed = check("7.0+fix-execve-cid", 2, 2, None, b);
        assert_eq!(found(&fixed), vec![], "{b:?}");
        assert_eq!(fixed.no_stall, Some(true));
    }
}

#[test]
fn the_cve_path_is_hidden_by_7_1_3_and_removed_by_fix_execve_cid() {
    let b = Budgets {
        exits: 2,
        exec_checks: 1,
        ..B
    };
    assert_eq!(
        found(&check("7.0", 4, 3, Some(2), b)),
        pairs(&[("I2", 6), ("I6", 18), ("D1", 16)])
    );
    // de3ab9bd3133: no out-of-bounds clear_bit, but the UNSET in user space and the CPU that keeps
    // its CID after the switch back stay.
    assert_eq!(
        found(&check("7.1.3", 4, 3, Some(2), b)),
        pairs(&[("I2", 6), ("I6", 18)])
    );
    assert_eq!(found(&check("7.0+fix-execve-cid", 4, 3, Some(2), b)), vec![]);
}

#[test]
fn fix_execve_revive_removes_f2_and_leaves_f1() {
    let b = Budgets {
        exits: 2,
        exec_fails: 1,
        ..B
    };
    assert_eq!(
        found(&check("7.0", 2, 3, None, b)),
        pairs(&[("I2", 6), ("I4", 13), ("I7", 13)])
    );
    assert_eq!(
        found(&check("7.0+fix-execve-revive", 2, 3, None, b)),
        pairs(&[("I2", 6)])
    );
    assert_eq!(found(&check("7.0+fixes", 2, 3, None, b)), vec![]);
}

#[test]
fn fix_affinity_switchback_makes_the_deferred_switch_reachable() {
    let b = Budgets {
        exits: 1,
        affinity: 1,
        ..B
    };
    let v70 = check("7.0", 4, 2, Some(1), b);
    assert!(!reached(&v70, "R5") && found(&v70).is_empty());
    let fixed = check("7.0+fix-affinity-switchback", 4, 2, Some(1), b);
    assert!(reached(&fixed, "R5") && found(&fixed).is_empty());
    assert!(reached(&fixed, "R2"), "the switch back runs");
}
