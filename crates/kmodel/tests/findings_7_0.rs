//! The findings on the 7.0 design (`docs/findings/`), pinned so that a change to the model, the
//! engine or the design that makes them disappear (or changes them) is noticed. All of them need a
//! failing execve or an `execveat(AT_EXECVE_CHECK)`. See the scenario files for the story in the
//! kernel's terms, and `tests/fixes.rs` for the fixes.

use mmcid_cid::{Cid, Mode};
use mmcid_engine::{FindingKind, Model, NoObserver, Options, check};
use mmcid_kmodel::checker::continuation_stalls;
use mmcid_kmodel::invariants::Property;
use mmcid_kmodel::scenario::{self, Scenario};
use mmcid_kmodel::state::State;
use mmcid_kmodel::{Budgets, Config, KernelModel, Rewrite, trace};

fn replay(text: &str) -> (KernelModel<Rewrite>, State<Rewrite>, Vec<(&'static str, usize)>) {
    let sc = Scenario::parse(text).unwrap();
    let model = KernelModel::<Rewrite>::new(sc.config(None)).unwrap();
    let (steps, last) = scenario::run(&model.params, model.initial_state(), &sc).unwrap();
    let mut s = *model.initial_state();
    let mut first: Vec<(&'static str, usize)> = Vec::new();
    let mut fired = Vec::new();
    for (i, st) in steps.iter().enumerate() {
        s = model.next_state(&s, st);
        fired.clear();
        model.check(&s, &mut fired);
        for &p in &fired {
            let prop = Property::from_index(p).expect("a property of the model");
            let n = prop.id();
            if prop.is_invariant() && !first.iter().any(|(x, _)| *x == n) {
                first.push((n, i + 1));
            }
        }
    }
    (model, last, first)
}

#[test]
fn f1_failed_execve_returns_to_user_space_without_a_cid() {
    let (_, s, fired) = replay(include_str!("scenarios/execve-fail-unset.scenario"));
    assert_eq!(fired, vec![("I2", 6)]);
    assert_eq!(s.task(0).cid.cid, Cid::UNSET);
    assert!(s.task(0).cid.active && s.on_cpu_settled(0));
    assert_eq!(s.task(0).cid.cid.user_value(), 0x8000_0000);
    assert_eq!(s.mm(0).mode, Mode::PER_CPU);
}

#[test]
fn f2_failed_execve_revives_a_dead_mm_with_a_leaked_bit_and_stalls_the_next_fork() {
    let (model, s, fired) = replay(include_str!("scenarios/execve-fail-revives-dead-mm.scenario"));
    assert_eq!(fired, vec![("I4", 13), ("I7", 13)]);
    assert_eq!(s.mm(0).mode, Mode::TO_TASK);
    assert_eq!(
        trace::bit_owner_lines(&s, 0),
        vec!["bit 0: nobody (leaked)", "bit 1: T2 (plain)"]
    );
    let mut spinning = Vec::new();
    model.spinning(&s, &mut spinning);
    assert_eq!(spinning, vec![0]);
    assert_eq!(
        continuation_stalls(&model.config, &s, 1_000_000).unwrap(),
        vec![0]
    );
}

#[test]
fn f1_is_found_by_the_checker_from_the_design_alone() {
    // The smallest configuration: one failing execve in a per-CPU-mode process.
    let cfg = Config::new(
        "7.0",
        2,
        3,
        Budgets {
            exec_fails: 1,
            ..Budgets::default()
        },
    );
    let model = KernelModel::<Rewrite>::new(cfg).unwrap();
    let r = check(
        &model,
        &Options {
            symmetry: true,
            ..Options::default()
        },
        &mut NoObserver,
    )
    .unwrap();
    let i2 = Property::I2.index();
    let f = r
        .findings
        .iter()
        .find(|f| f.property == Some(i2))
        .expect("I2 found");
    assert_eq!(f.kind, FindingKind::Invariant);
    assert_eq!(f.depth, 6);
    let others: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Invariant && f.property != Some(i2))
        .map(|f| {
            f.property
                .and_then(Property::from_index)
                .expect("an invariant finding")
                .id()
        })
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

#[test]
fn f4_a_failed_execve_that_flips_to_per_cpu_stalls_when_its_walker_is_preempted() {
    let (model, s, fired) = replay(include_str!("scenarios/execve-fail-walker-preempted.scenario"));
    assert_eq!(fired, vec![], "no invariant fires: the stall is the finding");
    assert_eq!(s.mm(0).mode, Mode::TO_CPU);
    assert_eq!(
        trace::bit_owner_lines(&s, 0),
        vec!["bit 0: T0 (plain)", "bit 1: T2 (plain)"]
    );
    let mut spinning = Vec::new();
    model.spinning(&s, &mut spinning);
    assert_eq!(spinning, vec![0]);
    assert_eq!(
        continuation_stalls(&model.config, &s, 1_000_000).unwrap(),
        vec![0]
    );
}

#[test]
fn f4_is_found_by_the_checker_from_the_design_alone() {
    let cfg = Config::new(
        "7.0",
        2,
        2,
        Budgets {
            forks: 1,
            exec_fails: 1,
            ..Budgets::default()
        },
    );
    let model = KernelModel::<Rewrite>::new(cfg).unwrap();
    let opts = Options {
        symmetry: true,
        stall_search: Some(1_000_000),
        ..Options::default()
    };
    let r = check(&model, &opts, &mut NoObserver).unwrap();
    let stalls: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Stall)
        .map(|f| f.depth)
        .collect();
    assert_eq!(stalls, vec![14, 14], "one per CPU (the walker may run on either)");
    let invariants: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Invariant)
        .map(|f| {
            f.property
                .and_then(Property::from_index)
                .expect("an invariant finding")
                .id()
        })
        .collect();
    assert_eq!(
        invariants,
        vec!["I2"],
        "besides the stall only F1 (a failed execve in per-CPU mode)"
    );
}

#[test]
fn f1_needs_no_failure_execveat_check_is_enough() {
    let (_, s, fired) = replay(include_str!("scenarios/execveat-check-unset.scenario"));
    assert_eq!(fired, vec![("I2", 6)]);
    assert!(s.in_user(0) && s.task(0).cid.active);
    assert_eq!(s.task(0).cid.cid.user_value(), 0x8000_0000);
}

#[test]
fn f1_then_an_exit_switch_back_clears_bit_0x80000000() {
    let (_, s, fired) = replay(include_str!("scenarios/execveat-check-oob-clear-bit.scenario"));
    assert_eq!(fired, vec![("I2", 6), ("D1", 16)]);
    assert_eq!(s.mm(0).faults.out_of_range, Some(0x8000_0000));
}

#[test]
fn f2_single_thread_revival_leaves_transit_and_the_next_fork_stalls() {
    let (model, s, fired) = replay(include_str!("scenarios/execve-fail-single-thread.scenario"));
    assert_eq!(fired, vec![("I7", 14)]);
    assert_eq!(s.mm(0).mode, Mode::TO_TASK);
    assert_eq!(
        trace::bit_owner_lines(&s, 0),
        vec!["bit 0: T2 (plain)", "bit 1: CPU1 (ONCPU)"]
    );
    assert_eq!(
        continuation_stalls(&model.config, &s, 1_000_000).unwrap(),
        vec![0]
    );
}

#[test]
fn f4_with_a_vfork_child_stalls_too() {
    let (model, s, fired) = replay(include_str!(
        "scenarios/execve-fail-walker-preempted-vfork.scenario"
    ));
    assert_eq!(fired, vec![]);
    assert_eq!(
        trace::bit_owner_lines(&s, 0),
        vec!["bit 0: T0 (plain)", "bit 1: T2 (plain)"]
    );
    assert_eq!(
        continuation_stalls(&model.config, &s, 1_000_000).unwrap(),
        vec![1]
    );
}
