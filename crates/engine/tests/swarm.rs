//! The swarm's random walks and the shrinker on tiny models with obvious answers.

mod common;

use common::{Counter, Digraph, Inc};
use mmcid_engine::swarm::{StallOracle, reaches};
use mmcid_engine::{FindingKind, Flow, Hit, Model, SwarmOptions, Target, Trace, shrink, swarm};

fn hits<M: Model>(model: &M, opts: &SwarmOptions) -> Vec<Hit<M::Action>> {
    let mut out = Vec::new();
    swarm(model, opts, &|_, _| 0, None, &mut |h| {
        out.push(h);
        Flow::Continue
    });
    out
}

/// A chain `0 -> 1 -> ... -> 6` of agent 0 with side loops of agent 1 at every node; agent 0
/// spins at 6 and nothing leaves 6 except a retry: a stall at the end of the chain.
fn chain_to_stall() -> Digraph {
    let mut g = Digraph::new(2, &[0]);
    for n in 0..6 {
        g = g.edge(n, n + 1, 0).edge(n, n, 1);
    }
    g.retry(6, 6, 0).spin(0, &[6]).always("P", &[4])
}

#[test]
fn walks_find_invariants_and_stalls_and_are_reproducible() {
    let g = chain_to_stall();
    let opts = SwarmOptions {
        seed: 7,
        max_walks: Some(50),
        depth: (10, 40),
        ..SwarmOptions::default()
    };
    let a = hits(&g, &opts);
    assert!(
        a.iter()
            .any(|h| h.kind == FindingKind::Invariant && h.property == Some(0))
    );
    let stall = a.iter().find(|h| h.kind == FindingKind::Stall).expect("a stall");
    assert_eq!(stall.agent, Some(0));
    // The stalled state is the end of the chain, and every hit replays.
    let states = mmcid_engine::trace_states(&g, &stall.trace).unwrap();
    assert_eq!(*states.last().unwrap(), 6);
    // Same seed, same hits; another seed, other walks.
    assert_eq!(a, hits(&g, &opts));
    let b = hits(
        &g,
        &SwarmOptions {
            seed: 8,
            ..opts.clone()
        },
    );
    assert_ne!(
        a.iter().map(|h| h.trace.actions.len()).collect::<Vec<_>>(),
        b.iter().map(|h| h.trace.actions.len()).collect::<Vec<_>>()
    );
}

#[test]
fn a_released_spin_is_not_a_stall() {
    // Agent 0 spins at 1; agent 1 can release it (1 -> 2).
    let g = Digraph::new(2, &[0])
        .edge(0, 1, 0)
        .retry(1, 1, 0)
        .edge(1, 2, 1)
        .spin(0, &[1]);
    let opts = SwarmOptions {
        max_walks: Some(100),
        ..SwarmOptions::default()
    };
    assert!(hits(&g, &opts).is_empty());
}

#[test]
fn an_undecided_spin_is_never_reported() {
    // Agent 0 spins on a long chain that agent 1 walks; the release is far beyond the limit.
    let mut g = Digraph::new(2, &[0]).edge(0, 1, 0);
    for n in 1..200 {
        g = g.retry(n, n, 0).edge(n, n + 1, 1);
    }
    let spin: Vec<u32> = (1..200).collect();
    g = g.spin(0, &spin);
    let opts = SwarmOptions {
        max_walks: Some(20),
        depth: (3, 5),
        stall_limit: Some(10),
        ..SwarmOptions::default()
    };
    let mut n = 0;
    let report = swarm(&g, &opts, &|_, _| 0, None, &mut |_| {
        n += 1;
        Flow::Continue
    });
    assert_eq!(n, 0);
    assert!(report.stalls_undecided > 0);
}

#[test]
fn budgets_and_stop_are_honoured() {
    let g = Counter {
        n: 50,
        bad_sums: vec![3],
    };
    let r = swarm(
        &g,
        &SwarmOptions {
            max_steps: 500,
            ..SwarmOptions::default()
        },
        &|_, _| 0,
        None,
        &mut |_| Flow::Continue,
    );
    assert!(r.steps <= 500 + 120 && r.walks > 0);
    let r = swarm(&g, &SwarmOptions::default(), &|_, _| 0, None, &mut |_| Flow::Stop);
    assert!(r.stopped && r.hits == 1);
}

#[test]
fn shrinking_gives_a_minimal_trace_that_still_violates() {
    // x + y == 5 violates; a long walk with many useless steps shrinks to five increments.
    let g = Counter {
        n: 20,
        bad_sums: vec![5],
    };
    let raw = Trace {
        init: 0,
        actions: vec![Inc::X, Inc::Y, Inc::X, Inc::Y, Inc::X, Inc::X, Inc::Y],
        cycle_start: None,
    };
    let mut oracle = StallOracle::new(&g, 1000, false);
    let small = shrink(&g, &raw, Target::Property(0), &mut oracle).unwrap();
    assert_eq!(small.actions.len(), 5);
    assert!(reaches(&g, 0, &small.actions, Target::Property(0), None).is_some());
    // A trace that never violates does not shrink to anything.
    let clean = Trace {
        init: 0,
        actions: vec![Inc::X; 3],
        cycle_start: None,
    };
    assert!(shrink(&g, &clean, Target::Property(0), &mut oracle).is_none());
}

#[test]
fn shrinking_a_stall_keeps_the_stall_and_drops_the_noise() {
    let g = chain_to_stall();
    // Walk the chain with agent 1's side loops in between.
    let mut actions = Vec::new();
    for n in 0..6u32 {
        for e in &g.edges[n as usize] {
            if e.to == n {
                actions.push(e.clone());
            }
        }
        actions.push(
            g.edges[n as usize]
                .iter()
                .find(|e| e.to == n + 1)
                .unwrap()
                .clone(),
        );
    }
    let raw = Trace {
        init: 0,
        actions,
        cycle_start: None,
    };
    let mut oracle = StallOracle::new(&g, 1000, false);
    let small = shrink(&g, &raw, Target::Stall(0), &mut oracle).unwrap();
    assert!(small.actions.len() <= raw.actions.len());
    assert_eq!(small.actions.len(), 6);
    assert!(small.actions.iter().all(|e| e.agent == 0));
    assert!(reaches(&g, 0, &small.actions, Target::Stall(0), Some(&mut oracle)).is_some());
}
