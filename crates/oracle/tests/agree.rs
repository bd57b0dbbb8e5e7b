//! Our engine and stateright must see the same state space: same unique states, same number of
//! explored edges, and the same properties firing.

use std::collections::BTreeSet;

use mmcid_engine::{Model as _, NoObserver, Options, PropertyKind, Report};
use mmcid_kmodel::ops::Step;
use mmcid_kmodel::{Budgets, Config, KernelModel, Rewrite};
use mmcid_oracle::{OracleRun, stateright_bfs};

/// The 7.0-family model (every design these tests name is of that family).
fn kernel(design: &str, cpus: u8, threads: u8, budgets: Budgets) -> KernelModel<Rewrite> {
    KernelModel::new(Config::new(design, cpus, threads, budgets)).expect("valid configuration")
}

/// Runs both engines (ours without symmetry or liveness, stateright single-threaded), prints
/// both counts, and checks that the state spaces agree.
fn both(design: &str, cpus: u8, threads: u8, budgets: Budgets) -> (Report<Step>, OracleRun) {
    let model = kernel(design, cpus, threads, budgets);
    let opts = Options {
        symmetry: false,
        liveness: false,
        ..Default::default()
    };
    let report = mmcid_engine::check(&model, &opts, &mut NoObserver).expect("engine run");
    assert!(report.complete);
    let inits = model.init_states().len() as u64;
    let oracle = stateright_bfs(model, 1);
    eprintln!(
        "{design} cpus {cpus} threads {threads} {budgets:?}: engine {} states {} edges {:.3}s; \
         stateright {} states {} generated {:.3}s",
        report.unique_states,
        report.transitions,
        report.seconds,
        oracle.unique_states,
        oracle.states,
        oracle.seconds
    );
    assert_eq!(report.unique_states, oracle.unique_states, "unique states differ");
    assert_eq!(report.transitions + inits, oracle.states, "explored edges differ");
    assert_eq!(report.max_depth as u64 + 1, oracle.max_depth, "BFS depth differs");
    (report, oracle)
}

/// Names of the properties each engine found (Always violations and Sometimes witnesses).
fn found(
    model: &KernelModel<Rewrite>,
    report: &Report<Step>,
    oracle: &OracleRun,
) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let props = model.properties();
    let ours = report
        .findings
        .iter()
        .filter_map(|f| f.property)
        .map(|p| props[p].name)
        .collect();
    let theirs = oracle.discoveries.iter().map(|&(n, _)| n).collect();
    (ours, theirs)
}

fn agree(design: &str, cpus: u8, threads: u8, budgets: Budgets) -> (Report<Step>, OracleRun) {
    let (report, oracle) = both(design, cpus, threads, budgets);
    let (ours, theirs) = found(&kernel(design, cpus, threads, budgets), &report, &oracle);
    assert_eq!(ours, theirs, "the engines found different properties");
    (report, oracle)
}

#[test]
fn v7_0_cpus2_threads1_forks1() {
    agree(
        "7.0",
        2,
        1,
        Budgets {
            forks: 1,
            ..Default::default()
        },
    );
}

#[test]
fn v7_0_cpus2_threads2_forks1() {
    agree(
        "7.0",
        2,
        2,
        Budgets {
            forks: 1,
            ..Default::default()
        },
    );
}

#[test]
fn v7_0_cpus2_threads2_exits1() {
    agree(
        "7.0",
        2,
        2,
        Budgets {
            exits: 1,
            ..Default::default()
        },
    );
}

#[test]
fn v7_0_cpus2_threads1_vforks1_execs1() {
    agree(
        "7.0",
        2,
        1,
        Budgets {
            vforks: 1,
            execs: 1,
            ..Default::default()
        },
    );
}

#[test]
fn v6_19_1_cpus2_threads2_forks1() {
    agree(
        "6.19.1",
        2,
        2,
        Budgets {
            forks: 1,
            ..Default::default()
        },
    );
}

#[test]
fn v7_0_cpus2_threads2_exec_fails1() {
    // (This test once also had an affinity budget, which on 2 CPUs all allowed could never be
    // used; such configurations are refused now.)
    agree(
        "7.0",
        2,
        2,
        Budgets {
            exec_fails: 1,
            ..Default::default()
        },
    );
}

/// 6.19.1 registers a forked child before it is visible: both engines find the I8v violation,
/// and stateright's counterexample really violates I8v (replayed on the kernel model).
#[test]
fn both_find_i8v_on_6_19_1() {
    let budgets = Budgets {
        forks: 1,
        ..Default::default()
    };
    let (report, oracle) = agree("6.19.1", 2, 2, budgets);
    let model = kernel("6.19.1", 2, 2, budgets);
    let props = model.properties();
    let i8v = props.iter().position(|p| p.name == "I8v").expect("I8v exists");
    assert_eq!(props[i8v].kind, PropertyKind::Always);
    let ours = report
        .findings
        .iter()
        .find(|f| f.property == Some(i8v))
        .expect("engine finds I8v");
    let &(_, len) = oracle
        .discoveries
        .iter()
        .find(|(n, _)| *n == "I8v")
        .expect("stateright finds I8v");
    eprintln!(
        "I8v: engine's shortest witness {} steps, stateright's witness {len} steps",
        ours.depth
    );
    assert!(
        len as u32 >= ours.depth,
        "stateright's witness is shorter than the engine's shortest"
    );
}

/// More threads change stateright's exploration order, not its state space.
#[test]
fn multithreaded_stateright_counts_the_same() {
    let budgets = Budgets {
        forks: 1,
        ..Default::default()
    };
    let one = stateright_bfs(kernel("7.0", 2, 2, budgets), 1);
    let four = stateright_bfs(kernel("7.0", 2, 2, budgets), 4);
    assert_eq!(one.unique_states, four.unique_states);
    assert_eq!(one.states, four.states);
    let names = |r: &OracleRun| r.discoveries.iter().map(|&(n, _)| n).collect::<Vec<_>>();
    assert_eq!(names(&one), names(&four));
}

/// Larger configurations (a few seconds in all; stateright's memory grows quickly beyond):
/// `cargo test -p mmcid-oracle -- --ignored`.
#[test]
#[ignore]
fn larger_configurations() {
    let b = Budgets::default;
    agree("7.0", 3, 2, Budgets { forks: 1, ..b() });
    agree(
        "7.0",
        2,
        2,
        Budgets {
            forks: 1,
            exits: 1,
            ..b()
        },
    );
    agree(
        "6.19.1",
        2,
        2,
        Budgets {
            forks: 1,
            exits: 1,
            ..b()
        },
    );
    agree(
        "7.0",
        2,
        2,
        Budgets {
            forks: 1,
            fork_fails: 1,
            ..b()
        },
    );
    agree(
        "7.0",
        2,
        3,
        Budgets {
            forks: 1,
            exits: 1,
            ..b()
        },
    );
    agree(
        "7.0",
        2,
        2,
        Budgets {
            vforks: 1,
            execs: 1,
            exits: 1,
            ..b()
        },
    );
    agree(
        "6.19-rc7",
        2,
        2,
        Budgets {
            forks: 1,
            exits: 1,
            ..b()
        },
    );
    agree(
        "6.19.1+fork",
        2,
        2,
        Budgets {
            forks: 1,
            exits: 1,
            ..b()
        },
    );
}

/// The Explorer shows kernel steps by name, with their effects; a caller's step text (the CLI's,
/// which adds the state after the step) replaces the model's.
#[test]
fn kernel_steps_are_named_for_the_explorer() {
    use mmcid_oracle::{Presentation, StaterightAdapter};
    use stateright::Model as _;
    let model = kernel(
        "7.0",
        2,
        2,
        Budgets {
            forks: 1,
            ..Default::default()
        },
    );
    let init = model.init_states().remove(0);
    let mut actions = Vec::new();
    model.actions(&init, &mut actions);
    assert!(!actions.is_empty());
    for a in &actions {
        let label = model.format_action(a);
        let step = model.format_step(&init, a);
        assert!(label.starts_with("CPU") || label.starts_with('T'), "{label}");
        let name = mmcid_kmodel::trace::name(&model.params, &init, *a).to_string();
        assert_eq!(step.lines().next(), Some(name.as_str()), "{step}");
    }
    let first = actions[0];
    let mut adapter = StaterightAdapter::new(model);
    adapter.step_text = Some(|m, _, a| format!("said by the caller: {}", m.format_action(a)));
    let said = adapter.format_step(&init, first).expect("a step text");
    assert!(said.starts_with("said by the caller: "), "{said}");
}
