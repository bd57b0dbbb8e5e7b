//! The full text of the traces a user meets, pinned with `insta`: the seed (6.19.1's stall) and
//! each finding of `docs/findings/`, as `mmcid check` prints them (its violations, after the
//! timed status lines) and as `mmcid replay` prints every scenario of
//! `crates/kmodel/tests/scenarios/`. A change in the model, a design or the renderer shows here as
//! a diff; review it, then accept it with `cargo insta review` (or `INSTA_UPDATE=always cargo
//! test -p mmcid --test snapshots`).

use std::path::Path;
use std::process::Command;

fn mmcid(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mmcid"))
        .args(args)
        .output()
        .expect("runs");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "{args:?} exited {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `mmcid check ARGS` without its timed lines: every violation (trace, state, bits, what went
/// wrong), trailing blanks of the CPU columns stripped.
fn check_traces(args: &str) -> String {
    let mut a = vec!["check", "-q", "--workers", "1"];
    a.extend(args.split_whitespace());
    let out = mmcid(&a);
    let summary = out.find("\n     Summary").expect("a summary line");
    let start = out[summary..]
        .find("\n\n")
        .map(|i| summary + i + 2)
        .expect("violations after the summary");
    let mut text = format!("$ mmcid check {args}\n");
    for line in out[start..].lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[test]
fn seed_check() {
    insta::assert_snapshot!(check_traces(
        "--design 6.19.1 --cpus 3 --threads 2 --forks 2 --exits 0 --liveness stalls --max-depth 13"
    ));
}

#[test]
fn f1_check() {
    insta::assert_snapshot!(check_traces(
        "--cpus 2 --threads 3 --forks 0 --exits 0 --exec-checks 1"
    ));
}

#[test]
fn f2_check() {
    insta::assert_snapshot!(check_traces(
        "--cpus 2 --threads 3 --forks 1 --exits 2 --exec-fails 1 --liveness stalls"
    ));
}

#[test]
fn f4_check() {
    insta::assert_snapshot!(check_traces(
        "--cpus 2 --threads 2 --forks 0 --vforks 1 --exits 0 --exec-fails 1 --liveness stalls"
    ));
}

#[test]
fn f5_check() {
    insta::assert_snapshot!(check_traces(
        "--cpus 4 --allowed 2 --threads 3 --forks 0 --exits 2 --exec-checks 1 --liveness off"
    ));
}

#[test]
fn every_scenario_replays_as_pinned() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kmodel/tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "scenario"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let out = mmcid(&["replay", f.to_str().unwrap()]);
        let text: String = out.lines().map(|l| format!("{}\n", l.trim_end())).collect();
        insta::assert_snapshot!(format!("replay-{name}"), text);
    }
}
