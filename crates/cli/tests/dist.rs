//! `mmcid dist` on the kernel model: on threads of one process and on two processes connected
//! over 127.0.0.1, it counts exactly what `mmcid check --liveness off` counts and reports the
//! same verdicts (including a violation, with a trace of the same depth).

mod common;

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::Duration;

use common::mmcid;
use serde_json::Value;

fn json(out: &str, err: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\n{err}"))
}

/// The JSON a spawned `mmcid` printed.
fn output_json(o: &Output) -> Value {
    json(
        &String::from_utf8_lossy(&o.stdout),
        &String::from_utf8_lossy(&o.stderr),
    )
}

/// (property, status, depth).
type Verdict = (String, String, Option<u64>);

/// Counts, completeness and the verdict per property.
fn verdicts(j: &Value) -> (u64, u64, bool, Vec<Verdict>) {
    let props = j["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .map(|p| {
            (
                p["property"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
                p["depth"].as_u64(),
            )
        })
        .collect();
    (
        j["unique_states"].as_u64().unwrap(),
        j["transitions"].as_u64().unwrap(),
        j["complete"].as_bool().unwrap(),
        props,
    )
}

/// A small configuration with a violation (F1: a failing execve returns without a CID) next to
/// one without.
const BOUNDS: [&[&str]; 2] = [
    &["--cpus", "2", "--threads", "2", "--forks", "1", "--exits", "1"],
    &[
        "--cpus",
        "2",
        "--threads",
        "2",
        "--forks",
        "1",
        "--exits",
        "1",
        "--exec-fails",
        "1",
    ],
];

#[test]
fn threads_agree_with_check() {
    for bounds in BOUNDS {
        let mut check = vec!["check", "--liveness", "off", "--json", "-q"];
        check.extend_from_slice(bounds);
        let (c_code, c_out, c_err) = mmcid(&check);
        let mut dist = vec!["dist", "--json"];
        dist.extend_from_slice(bounds);
        dist.extend_from_slice(&["--", "-w", "2"]);
        let (d_code, d_out, d_err) = mmcid(&dist);
        assert_eq!(d_code, c_code, "exit status, {bounds:?}");
        let (dj, cj) = (json(&d_out, &d_err), json(&c_out, &c_err));
        assert_eq!(verdicts(&dj), verdicts(&cj), "{bounds:?}");
        assert_eq!(
            dj["violations"].as_array().map(Vec::len),
            cj["violations"].as_array().map(Vec::len)
        );
        let per_worker: Vec<u64> = dj["states_per_worker"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert_eq!(per_worker.len(), 2);
        assert_eq!(
            per_worker.iter().sum::<u64>(),
            dj["unique_states"].as_u64().unwrap()
        );
    }
    // The violating configuration is one: the test would see a lost finding.
    let mut dist = vec!["dist", "--json"];
    dist.extend_from_slice(BOUNDS[1]);
    assert_eq!(mmcid(&dist).0, 1);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn two_processes_on_localhost_agree_with_check() {
    let dir = std::env::temp_dir().join(format!("mmcid-cli-dist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts.txt");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let hosts = hosts.to_str().unwrap().to_string();
    let bounds = BOUNDS[1];
    let process = |p: &str| {
        let mut args: Vec<String> = ["dist", "--json"].iter().map(|s| s.to_string()).collect();
        args.extend(bounds.iter().map(|s| s.to_string()));
        args.extend(
            ["--", "-w", "1", "-n", "2", "-p", p, "-h", &hosts]
                .iter()
                .map(|s| s.to_string()),
        );
        Command::new(env!("CARGO_BIN_EXE_mmcid"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("mmcid runs")
    };
    let (p0, p1) = (process("0"), process("1"));
    // A watchdog: a connection problem must fail the test, not hang it.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(300));
        eprintln!("two_processes_on_localhost_agree_with_check: no answer after 300 s");
        std::process::exit(1);
    });
    let (o0, o1) = (p0.wait_with_output().unwrap(), p1.wait_with_output().unwrap());
    std::fs::remove_dir_all(&dir).ok();
    let mut check = vec!["check", "--liveness", "off", "--json", "-q"];
    check.extend_from_slice(bounds);
    let (_, c_out, c_err) = mmcid(&check);
    let c = json(&c_out, &c_err);
    for o in [&o0, &o1] {
        assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
        let j = output_json(o);
        assert_eq!(verdicts(&j), verdicts(&c));
        assert_eq!(j["workers"].as_u64(), Some(2));
    }
}
