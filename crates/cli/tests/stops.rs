//! Clean stops: Ctrl-C during a long command prints what was found so far and exits 130;
//! `--max-memory` stops a search with its partial result and exit status 3.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Starts `mmcid args`, sends it SIGINT after `after`, and returns (exit status, stdout, stderr).
fn interrupt(args: &[&str], after: Duration) -> (Option<i32>, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_mmcid"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    std::thread::sleep(after);
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    outcome(child.wait_with_output().expect("waits"))
}

/// A finished command's (exit status, stdout, stderr).
fn outcome(out: Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SOON: Duration = Duration::from_millis(1500);

#[test]
fn ctrl_c_during_check_prints_the_partial_summary_and_exits_130() {
    // 3 CPUs, 3 threads, 2 forks: minutes of search, stopped after a second and a half.
    let (code, out, err) = interrupt(
        &[
            "check",
            "--cpus",
            "3",
            "--threads",
            "3",
            "--forks",
            "2",
            "--liveness",
            "stalls",
        ],
        SOON,
    );
    assert_eq!(code, Some(130), "{out}\n{err}");
    assert!(
        out.contains("Summary") && out.contains("INCOMPLETE (interrupted by Ctrl-C)"),
        "{out}"
    );
    assert!(out.contains("UNKNOWN"), "nothing can be claimed to hold: {out}");
    assert!(err.contains("interrupted"), "{err}");
}

#[test]
fn ctrl_c_during_check_json_says_interrupted() {
    let (code, out, _) = interrupt(
        &[
            "check",
            "--json",
            "--cpus",
            "3",
            "--threads",
            "3",
            "--forks",
            "2",
            "--liveness",
            "stalls",
        ],
        SOON,
    );
    assert_eq!(code, Some(130));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["cut"], "interrupted");
    assert_eq!(v["complete"], false);
}

#[test]
fn ctrl_c_during_hunt_matrix_and_sim_exits_130_with_what_was_found() {
    let (code, out, err) = interrupt(&["hunt", "--budget", "10m"], SOON);
    assert_eq!(code, Some(130), "{out}\n{err}");
    assert!(
        out.contains("tried") && out.contains("interrupted by Ctrl-C"),
        "{out}"
    );

    let (code, out, err) = interrupt(&["matrix", "--designs", "7.0"], SOON);
    assert_eq!(code, Some(130), "{out}\n{err}");
    assert!(
        out.contains("design") && out.contains("interrupted by Ctrl-C"),
        "{out}"
    );

    let (code, out, err) = interrupt(&["sim", "--design", "7.0", "--switches", "1000000000"], SOON);
    assert_eq!(code, Some(130), "{out}\n{err}");
    assert!(
        out.contains("context switches") && out.contains("interrupted by Ctrl-C"),
        "{out}"
    );
}

/// A Ctrl-C stops the runs under way and leaves out the ones not started: with 3,000 runs asked
/// for, the summary counts only those that ran (before, every run was still started and stopped at
/// its first progress point, minutes of work after the Ctrl-C).
#[test]
fn ctrl_c_during_sim_leaves_out_the_runs_not_started() {
    let (code, out, err) = interrupt(&["sim", "--design", "7.0", "--seeds", "3000"], SOON);
    assert_eq!(code, Some(130), "{out}\n{err}");
    let runs: u64 = out
        .lines()
        .find_map(|l| {
            l.split_once(" runs, ")
                .map(|(n, _)| n.trim().parse().expect("a count"))
        })
        .unwrap_or_else(|| panic!("a summary line: {out}"));
    assert!(
        runs < 3000,
        "{runs} runs: the runs not started were run too\n{out}"
    );
}

/// Under an address-space limit (`ulimit -v`) the default `--max-memory` stays below what the
/// limit leaves, so the search stops cleanly with its partial result (exit 3) instead of an
/// allocation failure aborting the process (exit 134, a backtrace, nothing printed).
#[test]
fn ulimit_v_stops_a_search_cleanly_instead_of_aborting() {
    let out = Command::new("sh")
        .args([
            "-c",
            "ulimit -v 450000 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_mmcid"),
            "check",
            "-q",
            "--cpus",
            "3",
            "--threads",
            "3",
            "--forks",
            "2",
            "--exits",
            "1",
            "--max-states",
            "50000000",
        ])
        .output()
        .expect("runs");
    let (code, stdout, stderr) = outcome(out);
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("INCOMPLETE (stopped by --max-memory)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("ulimit -v") && !stderr.contains("memory allocation"),
        "{stderr}"
    );
}

#[test]
fn max_memory_stops_a_search_cleanly_with_the_partial_result() {
    // Less than the process already uses: the search stops before its first batch grows it.
    let out = Command::new(env!("CARGO_BIN_EXE_mmcid"))
        .args([
            "check",
            "-q",
            "--cpus",
            "3",
            "--threads",
            "3",
            "--forks",
            "2",
            "--max-memory",
            "1M",
        ])
        .output()
        .expect("runs");
    let (code, stdout, stderr) = outcome(out);
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("INCOMPLETE (stopped by --max-memory)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("--max-memory") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn bad_max_memory_is_one_line_naming_the_flag_and_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_mmcid"))
        .args(["check", "--max-memory", "lots"])
        .output()
        .expect("runs");
    let (code, _, stderr) = outcome(out);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--max-memory") && stderr.contains("512M"),
        "{stderr}"
    );
}

/// `mmcid ... | head`: output into a closed pipe ends the process quietly with status 141
/// (128 + SIGPIPE), not with a panic about a broken pipe.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmcid"))
        .args([
            "sim",
            "--json",
            "--design",
            "7.0",
            "--switches",
            "20000",
            "--cpus",
            "8",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mmcid starts");
    // Close the reading end before the simulation prints anything.
    drop(child.stdout.take());
    let (code, _, err) = outcome(child.wait_with_output().expect("mmcid ends"));
    assert_eq!(code, Some(141), "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
}
