//! The seed's bug as a scenario: the pre-fix registration point (6.19.1) stalls, the 7.0 one
//! completes the same user-level interleaving.

use mmcid_cid::Cid;
use mmcid_engine::Model;
use mmcid_kmodel::Rewrite;
use mmcid_kmodel::checker::continuation_stalls;
use mmcid_kmodel::invariants::Property;
use mmcid_kmodel::scenario::{self, Scenario};
use mmcid_kmodel::state::{Sched, State};
use mmcid_kmodel::{KernelModel, trace};

const SEED: &str = include_str!("scenarios/seed.scenario");

fn replay(design: &str) -> (KernelModel<Rewrite>, State<Rewrite>) {
    let sc = Scenario::parse(SEED).unwrap();
    let model = KernelModel::<Rewrite>::new(sc.config(Some(design))).unwrap();
    let (_, last) = scenario::run(&model.params, model.initial_state(), &sc).unwrap();
    (model, last)
}

#[test]
fn seed_under_6_19_1_ends_in_a_stall_on_cpu2() {
    let (model, s) = replay("6.19.1");
    // CPU2 spins in schedin's get_cid with its rq lock held, scheduling T0 in.
    let mut spinning = Vec::new();
    model.spinning(&s, &mut spinning);
    assert_eq!(spinning, vec![2]);
    assert_eq!(s.curr(2), Some(0));
    // Every bit is set: 0 by CPU0, 1 by T1 (TRANSIT), 2 by the invisible T2.
    assert_eq!(
        trace::bit_owner_lines(&s, 0),
        vec![
            "bit 0: CPU0 (ONCPU)",
            "bit 1: T1 (TRANSIT)",
            "bit 2: T2 (plain, not visible)"
        ]
    );
    assert!(!s.published(2));
    assert_eq!(s.task(2).cid.cid, Cid::new(2));
    assert_eq!(s.task(2).sched, Sched::New);
    // ... and no continuation within the budgets releases CPU2.
    let stalled = continuation_stalls(&model.config, &s, 1_000_000).unwrap();
    assert_eq!(stalled, vec![2]);
}

#[test]
fn seed_under_7_0_completes_with_the_expected_cids() {
    let (model, s) = replay("7.0");
    let mut spinning = Vec::new();
    model.spinning(&s, &mut spinning);
    assert!(spinning.is_empty());
    // T2 was visible to the walk, which dropped its plain CID; T0 got CPU2's new CID.
    assert_eq!(s.task(0).cid.cid, Cid::new(2).add_cpu());
    assert_eq!(s.task(1).cid.cid, Cid::new(1).add_transit());
    assert_eq!(s.task(2).cid.cid, Cid::UNSET);
    assert_eq!(s.mm(0).slot(0), Cid::new(0).add_cpu());
    assert_eq!(s.mm(0).slot(2), Cid::new(2).add_cpu());
    let mut fired = Vec::new();
    model.check(&s, &mut fired);
    let invariants: Vec<_> = fired
        .iter()
        .map(|&i| Property::from_index(i).expect("a property of the model"))
        .filter(|p| p.is_invariant())
        .collect();
    assert!(
        invariants.is_empty(),
        "invariants fired under 7.0: {invariants:?}"
    );
}

#[test]
fn the_6_19_1_walk_counts_t0_twice_and_never_sees_t2() {
    let sc = Scenario::parse(SEED).unwrap();
    let model = KernelModel::<Rewrite>::new(sc.config(Some("6.19.1"))).unwrap();
    let (steps, _) = scenario::run(&model.params, model.initial_state(), &sc).unwrap();
    let lines: Vec<String> = trace::describe(&model.params, model.initial_state(), &steps)
        .into_iter()
        .map(|s| s.line)
        .collect();
    let walk: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("T1 fixup"))
        .collect();
    assert_eq!(walk, vec!["T1 fixup_one T0", "T1 fixup_one T0"]);
    assert!(lines.contains(&"T0 sched_mm_cid_fork T2".to_string()));
}
