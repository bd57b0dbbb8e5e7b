//! Breadth-first exploration: counts, bounds, shortest traces, replay, fingerprints, reports.

mod common;

use common::{Counter, Digraph, Edge, Fickle, Inc};
use mmcid_engine::{
    Cut, EngineError, FindingKind, NoObserver, Observer, Options, Progress, Report, check, trace_states,
};
use std::sync::atomic::AtomicU64;

fn run<M: mmcid_engine::Model>(m: &M, opts: &Options) -> Report<M::Action> {
    check(m, opts, &mut NoObserver).expect("check succeeds")
}

#[test]
fn counter_counts_states_and_transitions() {
    for n in [0u16, 1, 5, 40] {
        let r = run(&Counter { n, bad_sums: vec![] }, &Options::default());
        let n64 = n as u64;
        assert_eq!(r.unique_states, (n64 + 1) * (n64 + 1), "n={n}");
        assert_eq!(r.transitions, 2 * n64 * (n64 + 1), "n={n}");
        assert_eq!(r.max_depth, 2 * n as u32);
        assert!(r.complete);
        assert_eq!(r.cut, None);
        assert_eq!(r.states_left_on_frontier, 0);
        assert!(r.findings.is_empty());
        assert!(r.is_clean());
    }
}

#[test]
fn bfs_reports_the_shortest_violation() {
    // The long path comes first in action order, so a depth-first search would find the
    // depth-5 violation at node 9 first; BFS must report the depth-2 one at node 2.
    let g = Digraph::new(1, &[0])
        .edge(0, 5, 0)
        .edge(5, 6, 0)
        .edge(6, 7, 0)
        .edge(7, 8, 0)
        .edge(8, 9, 0)
        .edge(0, 1, 0)
        .edge(1, 2, 0)
        .always("bad", &[9, 2]);
    let r = run(&g, &Options::default());
    assert_eq!(r.findings.len(), 1);
    let f = &r.findings[0];
    assert_eq!(f.kind, FindingKind::Invariant);
    assert_eq!(f.property, Some(0));
    assert_eq!(f.depth, 2);
    assert_eq!(f.trace.init, 0);
    assert_eq!(f.trace.cycle_start, None);
    let to: Vec<u32> = f.trace.actions.iter().map(|e| e.to).collect();
    assert_eq!(to, vec![1, 2]);
    assert_eq!(trace_states(&g, &f.trace).unwrap(), vec![0, 1, 2]);
}

#[test]
fn every_property_gets_its_own_shortest_witness() {
    let m = Counter {
        n: 10,
        bad_sums: vec![6, 3, 25],
    };
    let r = run(&m, &Options::default());
    assert!(r.complete);
    let got: Vec<(Option<usize>, u32, usize)> = r
        .findings
        .iter()
        .map(|f| (f.property, f.depth, f.trace.actions.len()))
        .collect();
    // Property 2 (sum 25) is unreachable with n = 10.
    assert_eq!(got, vec![(Some(0), 6, 6), (Some(1), 3, 3)]);
    for f in &r.findings {
        let last = *trace_states(&m, &f.trace).unwrap().last().unwrap();
        assert_eq!(last.0 + last.1, m.bad_sums[f.property.unwrap()]);
    }
    assert!(!r.is_clean());
}

#[test]
fn stop_at_first_violation_stops_early() {
    let m = Counter {
        n: 10,
        bad_sums: vec![6, 3],
    };
    let r = run(
        &m,
        &Options {
            stop_at_first_violation: true,
            ..Options::default()
        },
    );
    assert!(!r.complete);
    assert_eq!(r.cut, Some(Cut::FirstViolation));
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].property, Some(1));
    assert_eq!(r.findings[0].depth, 3);
    assert!(r.unique_states < 121);
}

#[test]
fn sometimes_and_unreached() {
    let g = Digraph::new(1, &[0])
        .edge(0, 1, 0)
        .edge(1, 2, 0)
        .sometimes("reached", &[2])
        .sometimes("never", &[7])
        .always("fine", &[]);
    let r = run(&g, &Options::default());
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].kind, FindingKind::Sometimes);
    assert_eq!(r.findings[0].depth, 2);
    assert_eq!(r.unreached_sometimes, vec![1]);
    assert!(r.is_clean());
}

#[test]
fn several_initial_states_and_duplicates() {
    // Two initial states; the violation is closest to the second one.
    let g = Digraph::new(1, &[0, 10, 0])
        .edge(0, 1, 0)
        .edge(1, 2, 0)
        .edge(10, 2, 0)
        .always("bad", &[2]);
    let r = run(&g, &Options::default());
    assert_eq!(r.unique_states, 4);
    let f = &r.findings[0];
    assert_eq!((f.trace.init, f.depth), (1, 1));
    assert_eq!(trace_states(&g, &f.trace).unwrap(), vec![10, 2]);
}

#[test]
fn max_states_cuts() {
    let r = run(
        &Counter {
            n: 10,
            bad_sums: vec![],
        },
        &Options {
            max_states: Some(10),
            ..Options::default()
        },
    );
    assert_eq!(r.unique_states, 10);
    assert!(!r.complete);
    assert_eq!(r.cut, Some(Cut::MaxStates));
    assert!(r.states_left_on_frontier > 0);
}

#[test]
fn max_depth_cuts() {
    let r = run(
        &Counter {
            n: 10,
            bad_sums: vec![5, 2],
        },
        &Options {
            max_depth: Some(3),
            ..Options::default()
        },
    );
    // States with x + y <= 3.
    assert_eq!(r.unique_states, 10);
    assert_eq!(r.max_depth, 3);
    assert!(!r.complete);
    assert_eq!(r.cut, Some(Cut::MaxDepth));
    assert_eq!(r.states_left_on_frontier, 4);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].property, Some(1));

    // A bound that is not reached does not cut.
    let r = run(
        &Counter {
            n: 2,
            bad_sums: vec![],
        },
        &Options {
            max_depth: Some(4),
            max_states: Some(9),
            ..Options::default()
        },
    );
    assert_eq!(r.unique_states, 9);
    assert!(
        !r.complete,
        "max_states reached: the engine cannot know nothing is left"
    );
    let r = run(
        &Counter {
            n: 2,
            bad_sums: vec![],
        },
        &Options {
            max_depth: Some(5),
            max_states: Some(10),
            ..Options::default()
        },
    );
    assert!(r.complete);
}

#[test]
fn nondeterministic_model_is_a_replay_error_not_a_panic() {
    let m = Fickle {
        len: 5,
        honest_calls: 5,
        calls: AtomicU64::new(0),
    };
    match check(&m, &Options::default(), &mut NoObserver) {
        Err(EngineError::Replay {
            init: 0,
            step: 0,
            reason,
        }) => {
            assert!(reason.contains("leads to state"), "{reason}")
        }
        other => panic!("expected a replay error, got {other:?}"),
    }
    // The same model, honest throughout, is fine.
    let m = Fickle {
        len: 5,
        honest_calls: u64::MAX,
        calls: AtomicU64::new(0),
    };
    let r = run(&m, &Options::default());
    assert_eq!(r.findings[0].depth, 5);
}

#[test]
fn narrow_fingerprints_collide_and_the_estimate_says_so() {
    let m = Counter {
        n: 31,
        bad_sums: vec![],
    };
    let wide = run(&m, &Options::default());
    assert_eq!(wide.unique_states, 1024);
    assert_eq!(wide.fingerprint_bits, 64);
    assert!(
        wide.collision_probability < 1e-12,
        "{}",
        wide.collision_probability
    );

    let narrow = run(
        &m,
        &Options {
            fingerprint_bits: 8,
            ..Options::default()
        },
    );
    assert!(narrow.unique_states <= 256, "{}", narrow.unique_states);
    assert_eq!(narrow.collision_probability, 1.0);

    // 20 bits: collisions are likely but not certain; the estimate must be large.
    let mid = run(
        &m,
        &Options {
            fingerprint_bits: 20,
            ..Options::default()
        },
    );
    assert!(mid.collision_probability > 0.4, "{}", mid.collision_probability);

    assert!(matches!(
        check(
            &m,
            &Options {
                fingerprint_bits: 0,
                ..Options::default()
            },
            &mut NoObserver
        ),
        Err(EngineError::InvalidOption(_))
    ));
}

#[test]
fn memory_per_state_is_within_budget() {
    let r = run(
        &Counter {
            n: 400,
            bad_sums: vec![],
        },
        &Options::default(),
    );
    assert_eq!(r.unique_states, 401 * 401);
    assert!(r.bytes_per_state <= 40.0, "{}", r.bytes_per_state);
    assert_eq!(
        r.bytes_per_state,
        (r.memory.seen_bytes + r.memory.parents_bytes) as f64 / r.unique_states as f64
    );
    assert!(r.memory.frontier_peak_bytes > 0);
    assert_eq!(r.memory.graph_bytes, 0);
    assert!(r.seconds > 0.0);
    assert!(r.states_per_second() > 0.0);
}

#[derive(Default)]
struct Recorder {
    calls: Vec<Progress>,
    done: usize,
}

impl Observer for Recorder {
    fn progress(&mut self, p: &Progress) {
        self.calls.push(p.clone());
    }
    fn done(&mut self) {
        self.done += 1;
    }
}

#[test]
fn observer_sees_levels_and_done() {
    let mut rec = Recorder::default();
    let r = check(
        &Counter {
            n: 3,
            bad_sums: vec![],
        },
        &Options::default(),
        &mut rec,
    )
    .unwrap();
    assert_eq!(rec.done, 1);
    // One call per level (depths 0..=6) and a final one.
    assert_eq!(rec.calls.len(), 8);
    assert_eq!(rec.calls.last().unwrap().states, r.unique_states);
    assert_eq!(rec.calls.last().unwrap().transitions, r.transitions);
    assert!(rec.calls.windows(2).all(|w| w[0].states <= w[1].states));
    assert!(rec.calls.iter().all(|p| p.memory_bytes > 0));
}

#[test]
fn report_serializes() {
    let g = Digraph::new(1, &[0]).edge(0, 1, 0).always("bad", &[1]);
    let r = run(&g, &Options::default());
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["unique_states"], 2);
    assert_eq!(v["complete"], true);
    assert_eq!(v["findings"][0]["kind"], "invariant");
    assert_eq!(v["findings"][0]["trace"]["actions"][0]["to"], 1);
    assert!(v["findings"][0]["trace"]["cycle_start"].is_null());
    assert!(v["memory"]["seen_bytes"].as_u64().unwrap() > 0);
    let _: Edge = g.edges[0][0].clone();
    let _ = Inc::X;
}

/// Sets a cancel flag once the search has passed `after` states.
struct CancelAfter {
    flag: mmcid_engine::Cancel,
    after: u64,
}

impl Observer for CancelAfter {
    fn progress(&mut self, p: &Progress) {
        if p.states >= self.after {
            self.flag.cancel();
        }
    }
}

#[test]
fn cancel_stops_cleanly_with_a_partial_report() {
    let m = common::Wide {
        width: 100_000,
        depth: 6,
    };
    let flag = mmcid_engine::Cancel::new();
    let opts = Options {
        cancel: Some(flag.clone()),
        ..Options::default()
    };
    // Set before the start: only the roots are stored.
    flag.cancel();
    let r = run(&m, &opts);
    assert_eq!(
        (r.cut, r.complete, r.unique_states),
        (Some(Cut::Interrupted), false, 1)
    );
    assert_eq!(r.states_left_on_frontier, 1);
    // Set from the progress callback at a level boundary (after level 1: 100,001 states).
    let flag = mmcid_engine::Cancel::new();
    let opts = Options {
        cancel: Some(flag.clone()),
        ..Options::default()
    };
    let r = check(&m, &opts, &mut CancelAfter { flag, after: 2 }).unwrap();
    assert_eq!(r.cut, Some(Cut::Interrupted));
    assert!(
        r.unique_states >= 100_001 && r.unique_states < 400_000,
        "{}",
        r.unique_states
    );
    // The findings so far are reported, with replayable traces.
    assert!(r.findings.iter().all(|f| trace_states(&m, &f.trace).is_ok()));
}

#[test]
fn memory_limit_stops_before_passing_it() {
    let m = common::Wide {
        width: 1_000_000,
        depth: 4,
    };
    let tiny = Options {
        memory_limit: Some(1),
        ..Options::default()
    };
    let r = run(&m, &tiny);
    assert_eq!((r.cut, r.unique_states), (Some(Cut::MemoryLimit), 1));
    // A limit 40 MiB above today's resident size: the search (which would need far more)
    // stops part way, cleanly.
    let now = mmcid_engine::chunked::rss().map_or(0, |r| r.current);
    let some = Options {
        memory_limit: Some(now + (40 << 20)),
        ..Options::default()
    };
    let r = run(&m, &some);
    assert_eq!(r.cut, Some(Cut::MemoryLimit), "{} states", r.unique_states);
    assert!(r.unique_states > 1 && !r.complete);
    let enough = Options {
        memory_limit: Some(u64::MAX),
        ..Options::default()
    };
    assert!(
        run(
            &common::Counter {
                n: 30,
                bad_sums: vec![]
            },
            &enough
        )
        .complete
    );
}
