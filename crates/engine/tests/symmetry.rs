//! Symmetry reduction: one state per class, violations found with and without it.

mod common;

use common::Tokens;
use mmcid_engine::{EngineError, FindingKind, Model, NoObserver, Options, check, trace_states};

fn binomial(n: u64, k: u64) -> u64 {
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

#[test]
fn reduced_count_is_the_number_of_multisets() {
    for (tokens, positions) in [(1usize, 4u8), (2, 3), (3, 4), (4, 5), (5, 3)] {
        let m = Tokens {
            tokens,
            positions,
            bad_sum: u32::MAX,
            init: vec![0; tokens],
        };
        let full = check(&m, &Options::default(), &mut NoObserver).unwrap();
        let sym = check(
            &m,
            &Options {
                symmetry: true,
                ..Options::default()
            },
            &mut NoObserver,
        )
        .unwrap();
        let p = positions as u64;
        let t = tokens as u64;
        assert_eq!(full.unique_states, p.pow(tokens as u32), "{tokens} tokens");
        assert_eq!(sym.unique_states, binomial(t + p - 1, t), "{tokens} tokens");
        assert!(sym.symmetry && !full.symmetry);
        assert!(sym.complete && full.complete);
        // Same depth either way: the furthest class is "all tokens at the end".
        assert_eq!(sym.max_depth, full.max_depth);
        // The Sometimes property is witnessed at the same (shortest) depth.
        let witness = |r: &mmcid_engine::Report<_>| {
            r.findings
                .iter()
                .find(|f| f.kind == FindingKind::Sometimes)
                .map(|f| f.depth)
        };
        assert_eq!(witness(&sym), witness(&full));
    }
}

#[test]
fn violation_found_with_and_without_symmetry() {
    // A non-canonical initial state: replay must start from the concrete one.
    let m = Tokens {
        tokens: 3,
        positions: 5,
        bad_sum: 9,
        init: vec![2, 0, 1],
    };
    for symmetry in [false, true] {
        let r = check(
            &m,
            &Options {
                symmetry,
                ..Options::default()
            },
            &mut NoObserver,
        )
        .unwrap();
        let f = r
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::Invariant)
            .unwrap_or_else(|| panic!("symmetry={symmetry}: no violation"));
        assert_eq!(f.property, Some(0));
        assert_eq!(f.depth, 6, "symmetry={symmetry}");
        let states = trace_states(&m, &f.trace).unwrap();
        assert_eq!(states[0], vec![2, 0, 1]);
        let last = states.last().unwrap();
        let mut fired = Vec::new();
        m.check(last, &mut fired);
        assert!(fired.contains(&0), "symmetry={symmetry}: trace ends in {last:?}");
    }
}

#[test]
fn symmetry_and_liveness_together_is_an_error() {
    let m = Tokens {
        tokens: 2,
        positions: 2,
        bad_sum: 0,
        init: vec![0, 0],
    };
    let e = check(
        &m,
        &Options {
            symmetry: true,
            liveness: true,
            ..Options::default()
        },
        &mut NoObserver,
    )
    .unwrap_err();
    assert_eq!(e, EngineError::SymmetryWithLiveness);
    assert!(e.to_string().contains("symmetry"));
}

/// Two agents pass a spin back and forth: from the start (state 2, nobody spins) to state 0,
/// where agent 0 spins; from then on each step releases the spinning agent and makes the other
/// one spin (0 <-> 1). Swapping the agents is a symmetry (states 0 and 1 are one class), but it
/// renames agents.
#[derive(Clone, Copy)]
struct Baton {
    /// Whether the model declares that its symmetry preserves agents.
    preserves: bool,
}

impl Model for Baton {
    /// The agent that spins (2: none).
    type State = u8;
    type Action = ();
    fn init_states(&self) -> Vec<u8> {
        vec![2]
    }
    fn actions(&self, _s: &u8, out: &mut Vec<()>) {
        out.push(());
    }
    fn next_state(&self, s: &u8, _a: &()) -> u8 {
        if *s == 2 { 0 } else { 1 - s }
    }
    fn properties(&self) -> Vec<mmcid_engine::PropertyInfo> {
        vec![]
    }
    fn check(&self, _s: &u8, _out: &mut Vec<usize>) {}
    fn representative(&self, s: &u8) -> u8 {
        if *s == 2 { 2 } else { 0 }
    }
    fn agents(&self) -> usize {
        2
    }
    fn agent(&self, s: &u8, _a: &()) -> mmcid_engine::Agent {
        (*s % 2) as mmcid_engine::Agent
    }
    fn is_retry(&self, _s: &u8, _a: &()) -> bool {
        false
    }
    fn spinning(&self, s: &u8, out: &mut Vec<mmcid_engine::Agent>) {
        if *s < 2 {
            out.push(*s as mmcid_engine::Agent);
        }
    }
    fn symmetry_preserves_agents(&self) -> bool {
        self.preserves
    }
}

#[test]
fn a_symmetry_that_renames_agents_does_not_fake_a_stall() {
    // The spinning agent is always released by the next step: no stall. A stall sub-search that
    // identified states up to the renaming would never look at state 1 (its class was seen) and
    // call agent 0 stalled; it must tell the twins apart.
    let opts = Options {
        symmetry: true,
        stall_search: Some(100),
        ..Options::default()
    };
    let r = check(&Baton { preserves: false }, &opts, &mut NoObserver).unwrap();
    assert!(r.complete);
    assert_eq!(r.unique_states, 2);
    assert!(
        r.findings.iter().all(|f| f.kind != FindingKind::Stall),
        "{:?}",
        r.findings
    );
    assert_eq!(r.stalls_undecided, 0);
    // Control: the same model declaring (wrongly) that its symmetry keeps agents gets the
    // sub-search on classes, and then reports the fake stall: the test can fail.
    let r = check(&Baton { preserves: true }, &opts, &mut NoObserver).unwrap();
    assert!(r.findings.iter().any(|f| f.kind == FindingKind::Stall));
}
