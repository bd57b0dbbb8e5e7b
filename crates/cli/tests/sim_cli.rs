//! `mmcid sim` end to end: the table, JSON, a custom TOML workload, errors and exit codes.

mod common;
use common::mmcid;

#[test]
fn every_design_in_one_table_and_as_json() {
    let (code, out, err) = mmcid(&["sim", "--cpus", "8", "--switches", "20000", "-q"]);
    assert_eq!(code, 0, "{out}{err}");
    for d in ["7.0", "6.19.1+vfork", "6.19-rc7", "6.18", "6.3"] {
        assert!(out.contains(d), "{d} missing:\n{out}");
    }
    assert!(out.contains("bitmap atomics / switch") && out.contains("invariants"));
    let (code, out, _) = mmcid(&[
        "sim",
        "--cpus",
        "8",
        "--switches",
        "20000",
        "--design",
        "7.0,6.3",
        "--json",
        "-q",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let runs = v["runs"].as_array().expect("an array of runs");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["design"], "7.0");
    assert!(
        runs[1]["per_switch"]["locks"].as_f64().unwrap() > 0.0,
        "6.3 takes its lock"
    );
}

#[test]
fn a_custom_workload_that_breaks_6_19_exits_1_with_a_trace() {
    let dir = std::env::temp_dir().join(format!("mmcid-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("churn.toml");
    std::fs::write(
        &f,
        "name = 'churn'\n[[group]]\nprocesses = 'cpus/4'\nthreads = 2\nburst_us = 20\nsleep_us = 20\n\
         cpuset = 4\npthread_create = 0.3\nchild_bursts = 2\nmax_threads = 10\n",
    )
    .unwrap();
    let (code, out, _) = mmcid(&[
        "sim",
        "--workload",
        f.to_str().unwrap(),
        "--design",
        "6.19,7.0",
        "--switches",
        "300000",
        "-q",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("VIOLATED D1") && out.contains("clear_bit(0x2000000"),
        "{out}"
    );
    assert!(
        out.contains("time (ns)") && out.contains("CPU"),
        "a CPU-column trace:\n{out}"
    );
}

#[test]
fn bad_input_is_a_usage_error() {
    let (code, _, err) = mmcid(&["sim", "--workload", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("thread-pool"), "lists the workloads: {err}");
    let (code, _, err) = mmcid(&["sim", "--design", "5.0"]);
    assert_eq!(code, 2);
    assert!(err.contains("7.0"), "{err}");
    let (code, _, err) = mmcid(&["sim", "--cpus", "5000"]);
    assert_eq!(code, 2);
    assert!(err.contains("4096"), "{err}");
}

/// `--bench` runs 10^7 switches unless `--switches` says otherwise, and an explicit
/// `--switches 1000000` is not mistaken for the default (it used to run 10^7).
#[test]
fn bench_takes_an_explicit_switch_count_as_given() {
    let (code, out, err) = mmcid(&[
        "sim",
        "--bench",
        "--design",
        "7.0",
        "--cpus",
        "4",
        "--switches",
        "1000000",
        "--json",
        "-q",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["runs"][0]["switches"], 1_000_000, "{out}");
}
