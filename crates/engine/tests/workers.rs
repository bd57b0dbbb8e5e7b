//! Every configuration gives the same report whatever the number of workers and whether the
//! model stores states whole or encoded: same counts, same state numbering (so the same
//! shortest traces), same findings, same cut position.

mod common;

use common::{Coded, Counter, Digraph, Tokens, Wide};
use mmcid_engine::{Cut, Memory, Model, NoObserver, Options, Report, check};

/// The parts of a report that may differ between runs (time, memory, workers) are cleared.
fn normal<A: Clone>(r: &Report<A>) -> Report<A> {
    let mut r = r.clone();
    r.seconds = 0.0;
    r.memory = Memory::default();
    r.bytes_per_state = 0.0;
    r.peak_rss_bytes = None;
    r.peak_rss_per_state = None;
    r.workers = 0;
    r
}

/// Runs `m` plain and encoded, with 1, 2 and 4 workers; all six reports must agree.
fn same_everywhere<M>(what: &str, m: M, opts: &Options) -> Report<M::Action>
where
    M: Model,
    M::State: common::Bytes,
    M::Action: PartialEq + std::fmt::Debug,
{
    let coded = Coded(m);
    let reference = check(
        &coded.0,
        &Options {
            workers: 1,
            ..opts.clone()
        },
        &mut NoObserver,
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    for workers in [1, 2, 4] {
        let o = Options {
            workers,
            ..opts.clone()
        };
        let plain = check(&coded.0, &o, &mut NoObserver).unwrap();
        let packed = check(&coded, &o, &mut NoObserver).unwrap();
        assert_eq!(plain.workers, workers, "{what}");
        assert_eq!(
            normal(&plain),
            normal(&reference),
            "{what}: plain, {workers} workers"
        );
        assert_eq!(
            normal(&packed),
            normal(&reference),
            "{what}: encoded, {workers} workers"
        );
    }
    reference
}

fn opts() -> Options {
    Options::default()
}

#[test]
fn counters_with_violations_and_cuts() {
    let m = || Counter {
        n: 60,
        bad_sums: vec![61, 3, 200],
    };
    let r = same_everywhere("counter", m(), &opts());
    assert_eq!(r.unique_states, 61 * 61);
    for max_states in [1, 2, 10, 1000, 3000] {
        let o = Options {
            max_states: Some(max_states),
            ..opts()
        };
        let r = same_everywhere("counter max_states", m(), &o);
        assert_eq!(r.cut, Some(Cut::MaxStates));
        assert_eq!(r.unique_states, max_states);
    }
    let o = Options {
        stop_at_first_violation: true,
        ..opts()
    };
    let r = same_everywhere("counter first violation", m(), &o);
    assert_eq!(r.cut, Some(Cut::FirstViolation));
    let o = Options {
        max_depth: Some(30),
        ..opts()
    };
    same_everywhere("counter max_depth", m(), &o);
}

#[test]
fn wide_levels_across_batches() {
    let m = || Wide {
        width: 40_000,
        depth: 4,
    };
    let r = same_everywhere("wide", m(), &opts());
    assert!(r.complete);
    assert!(r.unique_states > 100_000, "{}", r.unique_states);
    assert_eq!(r.findings.len(), 2, "{:?}", r.findings);
    // Cuts in the middle of a level, of a batch and of a chunk.
    for max_states in [39_999, 40_001, 57_345, 98_765] {
        let o = Options {
            max_states: Some(max_states),
            ..opts()
        };
        let r = same_everywhere("wide max_states", m(), &o);
        assert_eq!((r.unique_states, r.cut), (max_states, Some(Cut::MaxStates)));
        assert!(r.states_left_on_frontier > 0);
    }
    let o = Options {
        stop_at_first_violation: true,
        ..opts()
    };
    let r = same_everywhere("wide first violation", m(), &o);
    assert_eq!(r.cut, Some(Cut::FirstViolation));
    assert!(
        r.unique_states > 40_001 && r.unique_states < 80_000,
        "{}",
        r.unique_states
    );
}

#[test]
fn wide_stall_search_and_liveness() {
    let m = || Wide {
        width: 20_000,
        depth: 3,
    };
    let o = Options {
        stall_search: Some(100),
        ..opts()
    };
    let r = same_everywhere("wide stall search", m(), &o);
    let stalls: Vec<_> = r.findings.iter().filter(|f| f.agent == Some(0)).collect();
    assert_eq!(stalls.len(), 1);
    assert_eq!(stalls[0].depth, 3);
    let o = Options {
        liveness: true,
        ..opts()
    };
    let full = same_everywhere("wide liveness", m(), &o);
    assert!(full.liveness_checked);
    assert_eq!(
        full.findings.iter().find(|f| f.agent == Some(0)).map(|f| f.depth),
        Some(3)
    );
}

#[test]
fn symmetry() {
    for symmetry in [false, true] {
        let m = Tokens {
            tokens: 4,
            positions: 7,
            bad_sum: 13,
            init: vec![2, 0, 1, 0],
        };
        let o = Options { symmetry, ..opts() };
        let r = same_everywhere("tokens", m, &o);
        assert!(!r.findings.is_empty());
    }
}

#[test]
fn liveness_graphs() {
    // The random graphs of tests/liveness.rs, with the graph and with the on-the-fly search.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: u64| {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    };
    for _ in 0..200 {
        let n = 2 + next(30) as u32;
        let agents = 1 + next(3) as usize;
        let mut g = Digraph::new(agents, &[0]);
        for s in 0..n {
            for _ in 0..next(4) {
                let (to, agent) = (next(n as u64) as u32, next(agents as u64) as u16);
                g = if next(4) == 0 {
                    g.retry(s, to, agent)
                } else {
                    g.edge(s, to, agent)
                };
            }
            if next(3) == 0 {
                g = g.spin(next(agents as u64) as u16, &[s]);
            }
        }
        let g = g.edge(n - 1, n - 1, 0).always("bad", &[n / 2]);
        for o in [
            Options {
                liveness: true,
                ..opts()
            },
            Options {
                stall_search: Some(50),
                ..opts()
            },
        ] {
            same_everywhere("random graph", g.clone(), &o);
        }
    }
}
