//! `mmcid bench-percid`: the figures come with what they are relative to
//! (the CPU model and the machine's load), and bad input is a usage error.

use std::process::Command;

fn mmcid(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mmcid"))
        .args(args)
        .output()
        .expect("run mmcid");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prints_cpu_model_and_load_beside_the_figures() {
    let (code, out, err) = mmcid(&[
        "bench-percid",
        "--threads",
        "1",
        "--repeats",
        "1",
        "--run-ms",
        "20",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("CPU ns per increment on "), "{out}");
    assert!(out.contains("load average before: "), "{out}");
    assert!(out.contains("(min)"), "{out}");
    let (code, out, err) = mmcid(&[
        "bench-percid",
        "--threads",
        "1",
        "--repeats",
        "1",
        "--run-ms",
        "20",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(j.get("cpu_model").is_some(), "{out}");
    assert!(j["loadavg_before"].is_array(), "{out}");
    let row = &j["threads"][0];
    assert!(
        row["percid_min_ns"].as_f64().unwrap() <= row["percid_ns"].as_f64().unwrap(),
        "{out}"
    );
}

#[test]
fn bad_input_is_a_usage_error() {
    for args in [
        &["bench-percid", "--threads", "0"][..],
        &["bench-percid", "--repeats", "0"],
    ] {
        let (code, _, err) = mmcid(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("mmcid bench-percid:"), "{err}");
    }
}
