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
