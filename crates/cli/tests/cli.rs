//! The `mmcid` binary end to end: exit codes, JSON, errors, save-trace and replay.

mod common;
use common::mmcid;

#[test]
fn default_check_holds_and_exits_0() {
    let (code, out, _) = mmcid(&["check", "-q"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("design 7.0"));
    assert!(out.contains("HOLDS") && out.contains("Summary"));
    assert!(!out.contains("VIOLATED"));
}

#[test]
fn json_of_a_violation_has_the_documented_fields_and_exit_1() {
    let (code, out, _) = mmcid(&[
        "check",
        "--json",
        "--design",
        "6.19.1",
        "--cpus",
        "2",
        "--threads",
        "2",
        "--forks",
        "1",
        "--exits",
        "0",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    for k in [
        "format_version",
        "design",
        "config",
        "states",
        "transitions",
        "unique_states",
        "seconds",
        "violations",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    let viol = &v["violations"][0];
    assert_eq!(viol["property"], "I8v");
    assert_eq!(viol["kind"], "invariant");
    assert_eq!(viol["depth"], 3);
    let steps = viol["trace"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[2]["fn"], "sched_mm_cid_fork");
    assert!(steps[0].get("cpu").is_some() && steps[0].get("effect").is_some());
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let (code, _, err) = mmcid(&["check", "--design", "5.0"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown design \"5.0\"") && err.contains("7.0"),
        "{err}"
    );
    let (code, _, err) = mmcid(&["check", "--cpus", "9"]);
    assert_eq!(code, 2);
    assert!(err.contains("--cpus") && err.contains("1..=8"), "{err}");
    let (code, _, _) = mmcid(&["check", "--bogus"]);
    assert_eq!(code, 2);
    // Flags that would be silently ignored or meaningless are refused, naming the flag.
    for (args, needle) in [
        (&["check", "--affinity", "1"][..], "--allowed"),
        (&["check", "--forks", "999"][..], "--forks"),
        (
            &["check", "--engine", "stateright", "--max-states", "5"][..],
            "--max-states",
        ),
        (
            &["bench", "--stateright-threads", "0"][..],
            "--stateright-threads",
        ),
    ] {
        let (code, _, err) = mmcid(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_cut_search_has_its_own_exit_status() {
    let (code, out, _) = mmcid(&["check", "-q", "--max-depth", "0"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("UNKNOWN"), "{out}");
}

#[test]
fn a_failed_save_trace_keeps_the_report() {
    let (code, out, err) = mmcid(&[
        "check",
        "-q",
        "--design",
        "6.19.1",
        "--cpus",
        "2",
        "--threads",
        "2",
        "--forks",
        "1",
        "--exits",
        "0",
        "--liveness",
        "off",
        "--save-trace",
        "/nonexistent-dir/x.trace",
    ]);
    assert_eq!(code, 2);
    assert!(out.contains("VIOLATED"), "{out}");
    assert!(err.contains("--save-trace"), "{err}");
}

#[test]
fn save_trace_then_replay_reaches_the_same_violation() {
    let dir = std::env::temp_dir().join(format!("mmcid-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("seed.trace");
    let f = file.to_str().unwrap();
    let (code, out, _) = mmcid(&[
        "check",
        "-q",
        "--design",
        "6.19.1",
        "--cpus",
        "3",
        "--threads",
        "2",
        "--forks",
        "2",
        "--exits",
        "0",
        "--liveness",
        "stalls",
        "--max-depth",
        "13",
        "--save-trace",
        f,
    ]);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("replay: mmcid replay {f}")), "{out}");
    let (code, out, _) = mmcid(&["replay", "--json", f]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fired: Vec<&str> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["property"].as_str().unwrap())
        .collect();
    assert!(fired.contains(&"I8v"), "{fired:?}");
    assert_eq!(v["outcome"], "stall", "the stall is the trace saved");
    // the same scenario under 7.0: the user-level steps differ, so the design-specific file stops
    // with a clear error naming the line
    let (code, _, err) = mmcid(&["replay", "--design", "7.0", f]);
    assert_eq!(code, 2);
    assert!(err.contains("line "), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn replay_of_the_seed_scenario_stalls_under_6_19_1_and_completes_under_7_0() {
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kmodel/tests/scenarios/seed.scenario"
    );
    let (code, out, _) = mmcid(&["replay", seed]);
    assert_eq!(code, 1);
    assert!(out.contains("outcome: STALL: CPU2"), "{out}");
    let (code, out, _) = mmcid(&["replay", "--design", "7.0", "--no-state", seed]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("outcome: completed"));
}

#[test]
fn replay_of_a_bad_file_names_the_line() {
    let dir = std::env::temp_dir().join(format!("mmcid-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.scenario");
    std::fs::write(&file, "cpus 2\nthreads 1\nT0 exit\n").unwrap();
    let (code, _, err) = mmcid(&["replay", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("line 3: `T0 exit` is not enabled here"), "{err}");
    let (code, _, err) = mmcid(&["replay", "/nonexistent/x"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn designs_lists_every_design() {
    let (code, out, _) = mmcid(&["designs"]);
    assert_eq!(code, 0);
    for d in [
        "7.0+fixes",
        "7.0+fix-execve-cid",
        "7.0+fix-execve-revive",
        "7.0+fix-affinity-switchback",
        "7.1.3",
        "7.0",
        "6.19.1",
        "6.19",
        "6.19-rc7",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{d} "))),
            "{d} missing:\n{out}"
        );
    }
}

#[test]
fn exec_checks_find_f1_and_the_fix_design_does_not() {
    let args = |d: &'static str| {
        [
            "check",
            "--json",
            "--design",
            d,
            "--cpus",
            "2",
            "--threads",
            "3",
            "--forks",
            "0",
            "--exits",
            "0",
            "--exec-checks",
            "1",
        ]
    };
    let (code, out, _) = mmcid(&args("7.0"));
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["config"]["budgets"]["exec_checks"], 1);
    assert_eq!(v["violations"][0]["property"], "I2");
    assert_eq!(v["violations"][0]["depth"], 6);
    assert_eq!(v["violations"][0]["trace"][0]["fn"], "execveat_check");
    let (code, out, _) = mmcid(&args("7.0+fix-execve-cid"));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn hunt_prints_findings_as_json_with_a_reproducing_command() {
    // A hunt cut at 40 configurations (the ladder's smallest): 7.0's failing execve (F1) is at
    // c1t2ef1 in round 0. Deterministic: --max-configs stops it before the budget.
    let (code, out, err) = mmcid(&[
        "hunt",
        "--design",
        "7.0",
        "--budget",
        "5m",
        "--max-configs",
        "40",
        "--json",
    ]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    for k in [
        "format_version",
        "design",
        "budget_s",
        "configs_tried",
        "findings",
    ] {
        assert!(v.get(k).is_some(), "{k}");
    }
    assert_eq!(v["budget_s"], 300.0);
    assert_eq!(v["configs_tried"], 40);
    let f1 = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["signature"] == "I2 at sched_mm_cid_fork needs execve_fail")
        .expect("F1");
    for k in [
        "property",
        "kind",
        "config",
        "depth",
        "command",
        "trace",
        "facts",
        "signature",
    ] {
        assert!(f1.get(k).is_some(), "{k}");
    }
    // The command reproduces it.
    let cmd = f1["command"].as_str().unwrap();
    let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    let (code, out, _) = mmcid(&[&args[..], &["-q"]].concat());
    assert_eq!(code, 1);
    assert!(out.contains("VIOLATED") && out.contains("I2"), "{out}");
}

#[test]
fn hunt_refuses_a_bad_budget_or_design_with_exit_2() {
    for (args, msg) in [
        (&["hunt", "--budget", "ten"][..], "90s, 10m or 1h30m"),
        (&["hunt", "--budget", "0s"][..], "between 1s and 24h"),
        (&["hunt", "--design", "5.0"][..], "unknown design"),
    ] {
        let (code, _, err) = mmcid(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}
