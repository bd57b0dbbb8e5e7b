//! The argument layer on generated command lines (a bounded stand-in for the `cargo fuzz`
//! target `crates/cli/fuzz/fuzz_targets/cli_args.rs`, run by `cargo test`): every command line
//! is accepted or refused with one line, never a panic.

use proptest::prelude::*;

const COMMANDS: &[&str] = &[
    "check",
    "replay",
    "designs",
    "matrix",
    "hunt",
    "bench",
    "explore",
    "observe",
    "bench-percid",
    "sim",
    "help",
    "chek",
];

const FLAGS: &[&str] = &[
    "--design",
    "--cpus",
    "--threads",
    "--allowed",
    "--forks",
    "--vforks",
    "--fork-fails",
    "--exits",
    "--execs",
    "--exec-fails",
    "--affinity",
    "--compactions",
    "--no-symmetry",
    "--reduction",
    "--liveness",
    "--max-depth",
    "--max-states",
    "--json",
    "--save-trace",
    "--states",
    "--engine",
    "--quiet",
    "-q",
    "--workers",
    "--max-memory",
    "--designs",
    "--budget",
    "--seed",
    "--max-configs",
    "--save-dir",
    "--stateright-threads",
    "--port",
    "--seconds",
    "--workload",
    "--switches",
    "--seeds",
    "--check",
    "--report",
    "--bench",
    "--kernel-threads",
    "--kernel-cpus",
    "--run-ms",
    "--repeats",
    "--no-state",
    "--help",
    "--version",
    "-x",
];

const VALUES: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "8",
    "9",
    "15",
    "16",
    "255",
    "256",
    "-1",
    "99999999999999999999",
    "7.0",
    "6.19.1",
    "6.18",
    "6.3",
    "9.9",
    "full",
    "stalls",
    "off",
    "on",
    "ours",
    "stateright",
    "90s",
    "0s",
    "25h",
    "10m",
    "512M",
    "4G",
    "80%",
    "0%",
    "150%",
    "1e9",
    "",
    " ",
    "all",
    "0-3",
    "3-0",
    "mixed",
    "thread-pool",
    "every",
    "sampled",
    "nan",
    "inf",
    "é",
    "--",
];

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(FLAGS).prop_map(str::to_string),
        3 => proptest::sample::select(VALUES).prop_map(str::to_string),
        1 => "[ -~]{0,12}",
    ]
}

fn command_line() -> impl Strategy<Value = Vec<String>> {
    (
        proptest::sample::select(COMMANDS),
        proptest::collection::vec(token(), 0..10),
    )
        .prop_map(|(c, rest)| {
            let mut v = vec!["mmcid".to_string(), c.to_string()];
            v.extend(rest);
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_command_lines_are_accepted_or_refused_in_one_line(args in command_line()) {
        if let Err(e) = mmcid::validate(&args) {
            prop_assert!(e.starts_with("mmcid") && !e.contains('\n'), "{args:?}: {e}");
        }
    }
}

#[test]
fn refusals_name_the_flag() {
    let e = mmcid::validate(["mmcid", "check", "--cpus", "9"]).unwrap_err();
    assert!(e.contains("--cpus") && e.contains("mmcid check --help"), "{e}");
    let e = mmcid::validate([
        "mmcid",
        "check",
        "--threads",
        "3",
        "--forks",
        "9",
        "--vforks",
        "3",
    ])
    .unwrap_err();
    assert!(e.starts_with("mmcid check: ") && e.contains("forks"), "{e}");
    let e = mmcid::validate(["mmcid", "check", "--affinity", "1"]).unwrap_err();
    assert!(e.contains("--affinity") && e.contains("--allowed"), "{e}");
    let e = mmcid::validate(["mmcid", "hunt", "--design", "9.9"]).unwrap_err();
    assert!(e.contains("9.9") && e.contains("known designs"), "{e}");
    assert_eq!(mmcid::validate(["mmcid", "check", "--help"]), Ok(()));
}
