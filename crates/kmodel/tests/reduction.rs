//! Reduction (silent steps taken inside the transition that reaches them) must not change a
//! verdict: every property, and the stall verdict, agree with reduction on and off, on every
//! design (the single-fix variants through `7.0+fixes`), over small configurations that exercise
//! each silent point (fork and its failure, vfork, exit, execve that succeeds and fails, affinity,
//! compaction), and the exec window's facts other steps read (`fs->in_exec`, a clone in flight, a
//! failed fork's cleanup while an `AT_EXECVE_CHECK` may still start).

use mmcid_kmodel::checker::{self, CheckOptions, CheckOutcome, Liveness};
use mmcid_kmodel::{Budgets, Config, DESIGNS, FamilyKind};

fn run(cfg: &Config, reduction: bool) -> CheckOutcome {
    let opts = CheckOptions {
        symmetry: true,
        liveness: Liveness::Stalls,
        max_states: Some(3_000_000),
        max_depth: None,
        reduction,
        ..CheckOptions::default()
    };
    checker::run(cfg, &opts, &mut mmcid_engine::NoObserver).unwrap()
}

/// Each property's verdict, plus whether a stall was found.
fn verdicts(o: &CheckOutcome) -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> = o
        .properties
        .iter()
        .map(|p| (p.property.id().to_string(), p.status.as_str()))
        .collect();
    let stall = o.violations.iter().any(|v| v.kind == "stall");
    v.push(("stall".into(), if stall { "violated" } else { "holds" }));
    v
}

fn configs(family: FamilyKind) -> Vec<(u8, u8, Option<u8>, Budgets)> {
    let b = Budgets::default();
    let mut out = vec![
        (
            2,
            2,
            None,
            Budgets {
                forks: 1,
                exits: 1,
                ..b
            },
        ),
        (
            2,
            2,
            None,
            Budgets {
                forks: 1,
                fork_fails: 1,
                ..b
            },
        ),
        (
            2,
            2,
            None,
            Budgets {
                vforks: 1,
                execs: 1,
                exits: 1,
                ..b
            },
        ),
        (
            2,
            2,
            None,
            Budgets {
                forks: 1,
                exec_fails: 1,
                ..b
            },
        ),
        (
            3,
            2,
            Some(1),
            Budgets {
                forks: 1,
                affinity: 1,
                ..b
            },
        ),
        (
            2,
            2,
            None,
            Budgets {
                forks: 1,
                fork_fails: 1,
                exec_checks: 1,
                ..b
            },
        ),
    ];
    if family == FamilyKind::Lazy618 {
        out.push((
            2,
            2,
            None,
            Budgets {
                forks: 1,
                exits: 1,
                compactions: 1,
                ..b
            },
        ));
    }
    out
}

#[test]
fn reduction_keeps_every_verdict() {
    let mut factor = Vec::new();
    // The single-fix designs are covered by 7.0+fixes, which runs every fix's code at once.
    for d in DESIGNS.iter().filter(|d| !d.name.starts_with("7.0+fix-")) {
        for (cpus, threads, allowed, budgets) in configs(d.family) {
            let mut cfg = Config::new(d.name, cpus, threads, budgets);
            cfg.allowed = allowed;
            let (off, on) = (run(&cfg, false), run(&cfg, true));
            assert!(off.complete && on.complete, "{cfg:?}: a run was cut");
            assert_eq!(verdicts(&off), verdicts(&on), "{cfg:?}");
            assert!(on.unique_states <= off.unique_states, "{cfg:?}");
            factor.push(off.unique_states as f64 / on.unique_states as f64);
        }
    }
    let mean = factor.iter().sum::<f64>() / factor.len() as f64;
    eprintln!("reduction factor (states off / on): mean {mean:.2}, per run {factor:.2?}");
    assert!(mean > 1.2, "the reduction no longer reduces: {factor:?}");
}
