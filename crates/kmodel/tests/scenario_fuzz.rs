//! The scenario parser and replay on generated input (a bounded stand-in for the `cargo fuzz`
//! target `crates/cli/fuzz/fuzz_targets/scenario.rs`, run by `cargo test`): every text gets a
//! result or a one-line error, never a panic.

use mmcid_kmodel::replay::replay;
use mmcid_kmodel::trace::FUNCTIONS;
use proptest::prelude::*;

/// A number as a scenario might hold one: small, at a bound, past it, or not a number.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..10).prop_map(|n| n.to_string()),
        Just("255".to_string()),
        Just("256".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
        Just("x".to_string()),
    ]
}

fn actor() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u8..16).prop_map(|n| format!("T{n}")),
        (0u8..10).prop_map(|n| format!("CPU{n}")),
        Just("T".to_string()),
        Just("CPUx".to_string()),
        Just("T999999999999".to_string()),
    ]
}

fn function() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FUNCTIONS).prop_map(str::to_string),
        1 => "[a-z_]{1,12}",
    ]
}

fn argument() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u8..16).prop_map(|n| format!("T{n}")),
        (0u8..10).prop_map(|n| format!("CPU{n}")),
        (0u8..10).prop_map(|n| format!("+CPU{n}")),
        Just("idle".to_string()),
        "[ -~]{0,6}",
    ]
}

/// One line of a scenario: a header, a step, an `until`, a comment or noise.
fn line() -> impl Strategy<Value = String> {
    let budget_key = proptest::sample::select(&[
        "forks",
        "vforks",
        "fork_fails",
        "exits",
        "execs",
        "exec_fails",
        "affinity",
        "compactions",
        "bogus",
    ]);
    prop_oneof![
        proptest::sample::select(&["7.0", "6.19.1", "6.19", "6.19-rc7", "6.18", "6.3", "9.9"])
            .prop_map(|d| format!("design {d}")),
        number().prop_map(|n| format!("cpus {n}")),
        number().prop_map(|n| format!("threads {n}")),
        number().prop_map(|n| format!("allowed {n}")),
        proptest::collection::vec((budget_key, number()), 0..4).prop_map(|kv| {
            let kv: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("budget {}", kv.join(" "))
        }),
        (actor(), function(), proptest::option::of(argument()))
            .prop_map(|(a, f, x)| format!("{a} {f} {}", x.unwrap_or_default())),
        (actor(), function()).prop_map(|(a, f)| format!("{a} until {f}")),
        Just("# a comment".to_string()),
        Just(String::new()),
        "[ -~]{0,40}",
    ]
}

/// A plausible head (so that many texts get as far as their steps), then lines.
fn scenario() -> impl Strategy<Value = String> {
    (
        proptest::bool::weighted(0.8),
        1u8..4,
        1u8..4,
        proptest::collection::vec(line(), 0..14),
    )
        .prop_map(|(head, cpus, threads, lines)| {
            let mut text = String::new();
            if head {
                text.push_str(&format!(
                    "cpus {cpus}\nthreads {threads}\nbudget forks=1 exits=1\n"
                ));
            }
            text.push_str(&lines.join("\n"));
            text
        })
}

fn answers(text: &str) {
    match replay(text, None, 500) {
        Ok(o) => assert!(!o.design.is_empty()),
        Err(e) => {
            assert!(!e.is_empty());
            assert!(!e.contains('\n'), "a multi-line error: {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_scenarios_get_an_answer(text in scenario()) {
        answers(&text);
    }

    #[test]
    fn arbitrary_text_gets_an_answer(text in any::<String>()) {
        answers(&text);
    }
}

#[test]
fn the_committed_scenarios_replay() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios");
    for e in std::fs::read_dir(dir).expect("scenarios") {
        let text = std::fs::read_to_string(e.expect("entry").path()).expect("readable");
        assert!(replay(&text, None, 500).is_ok());
    }
}
