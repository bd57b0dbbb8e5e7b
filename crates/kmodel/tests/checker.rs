//! The checker on the kernel model: the seed's bug found from the design alone, symmetry never
//! hiding a violation, and trace replay.

use mmcid_kmodel::checker::{self, CheckOptions, CheckOutcome, Liveness, Status};
use mmcid_kmodel::invariants::Property;
use mmcid_kmodel::scenario::{self, Scenario};
use mmcid_kmodel::{Budgets, Config, Family, KernelModel, Rewrite};

fn seed_config(design: &str) -> Config {
    // The smallest configuration that exhibits the seed's bug: 3 CPUs, 2 threads (max_cids 2),
    // two concurrent forks, the second crossing max_cids.
    Config::new(
        design,
        3,
        2,
        Budgets {
            forks: 2,
            ..Budgets::default()
        },
    )
}

fn run(cfg: &Config, opts: &CheckOptions) -> CheckOutcome {
    checker::run(cfg, opts, &mut mmcid_engine::NoObserver).unwrap()
}

fn stalls_to_depth(depth: u32) -> CheckOptions {
    CheckOptions {
        symmetry: true,
        liveness: Liveness::Stalls,
        max_states: None,
        max_depth: Some(depth),
        // These tests pin exact shortest traces: one kernel step per transition.
        reduction: false,
        ..CheckOptions::default()
    }
}

#[test]
fn the_seed_bug_is_found_from_the_design_alone_as_a_shortest_stall() {
    let o = run(&seed_config("6.19.1"), &stalls_to_depth(13));
    let stall = o.violations.iter().find(|v| v.kind == "stall").expect("a stall");
    assert_eq!((stall.depth, stall.cpu), (12, Some(2)));
    let lines: Vec<&str> = stall.trace.iter().map(|s| s.line.as_str()).collect();
    assert_eq!(
        lines,
        vec![
            "T0 clone",
            "T0 copy_process T2",
            "T0 sched_mm_cid_fork T2",
            "T1 clone",
            "T1 copy_process T3",
            "T1 sched_mm_cid_fork T3",
            "T1 fixup_one T0",
            "T1 fixup_one T0",
            "T1 complete_transit",
            "CPU0 schedule idle",
            "CPU2 migrate T0",
            "CPU2 schedule T0",
        ]
    );
    assert!(
        stall.bits.iter().any(|b| b.bit == 2
            && b.owners
                == [mmcid_kmodel::facts::Owner::Task {
                    task: 2,
                    cid: mmcid_cid::Cid::new(2),
                    visible: false
                }]),
        "{:?}",
        stall.bits
    );
    assert!(
        stall.what().contains("CPU2 spins in get_cid in schedin"),
        "{}",
        stall.what()
    );
    // the root cause shows earlier: I6 right after the walk completes, I8v at the registration
    let depth = |p: Property| {
        o.properties
            .iter()
            .find(|s| s.property == p)
            .and_then(|s| s.depth)
    };
    assert_eq!(depth(Property::I6), Some(9));
    assert_eq!(depth(Property::I8v), Some(3));
}

#[test]
fn the_same_bounds_under_7_0_show_nothing() {
    let o = run(&seed_config("7.0"), &stalls_to_depth(13));
    assert!(
        o.violations.is_empty(),
        "{:?}",
        o.violations.iter().map(|v| &v.property).collect::<Vec<_>>()
    );
    assert!(
        o.properties
            .iter()
            .filter(|p| p.property.is_invariant())
            .all(|p| p.status == Status::Unknown)
    );
}

#[test]
fn symmetry_never_hides_a_violation() {
    let configs = [
        Config::new(
            "6.19.1",
            2,
            2,
            Budgets {
                forks: 1,
                ..Budgets::default()
            },
        ),
        Config::new(
            "6.19.1",
            3,
            2,
            Budgets {
                forks: 2,
                ..Budgets::default()
            },
        ),
        Config::new(
            "7.0",
            2,
            3,
            Budgets {
                exec_fails: 1,
                ..Budgets::default()
            },
        ),
        Config::new(
            "7.0",
            2,
            3,
            Budgets {
                exits: 2,
                exec_fails: 1,
                ..Budgets::default()
            },
        ),
        Config::new(
            "6.19",
            2,
            2,
            Budgets {
                forks: 1,
                exits: 1,
                ..Budgets::default()
            },
        ),
    ];
    for cfg in configs {
        let with = |symmetry| {
            let o = run(
                &cfg,
                &CheckOptions {
                    symmetry,
                    liveness: Liveness::Stalls,
                    max_states: None,
                    max_depth: Some(14),
                    reduction: false,
                    ..CheckOptions::default()
                },
            );
            let mut v: Vec<(String, u32)> = o
                .violations
                .iter()
                .map(|v| (v.property.clone(), v.depth))
                .collect();
            v.sort();
            (v, o.unique_states)
        };
        let (reduced, n_reduced) = with(true);
        let (full, n_full) = with(false);
        assert_eq!(reduced, full, "{cfg:?}");
        assert!(n_reduced <= n_full);
    }
}

#[test]
fn a_saved_trace_replays_to_the_same_violation() {
    let cfg = seed_config("6.19.1");
    let o = run(&cfg, &stalls_to_depth(13));
    let model = KernelModel::<Rewrite>::new(cfg.clone()).unwrap();
    for v in &o.violations {
        let text = scenario::write(&cfg, &model.params, model.initial_state(), &v.steps, &v.what());
        let sc = Scenario::parse(&text).unwrap();
        let m2 = KernelModel::<Rewrite>::new(sc.config(None)).unwrap();
        let (steps, last) = scenario::run(&m2.params, m2.initial_state(), &sc).unwrap();
        assert_eq!(steps, v.steps, "{}", v.property);
        assert_eq!(Rewrite::explain(&v.property, v.cpu, &last), v.facts);
    }
}
