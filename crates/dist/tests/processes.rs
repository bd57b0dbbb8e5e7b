//! The distributed checker counts exactly what the single-process engine counts: on threads of
//! one process, and on two processes connected over 127.0.0.1.

mod toy;

use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mmcid_dist::{DistOptions, DistReport, check_from_args};
use mmcid_engine::{NoObserver, Options, Report, trace_states};
use toy::Cube;

fn model() -> Cube {
    Cube {
        k: 5,
        n: 6,
        bad_sum: 17,
        codec: true,
    }
}

fn engine(m: &Cube, symmetry: bool) -> Report<(u8, u8)> {
    let opts = Options {
        symmetry,
        ..Options::default()
    };
    mmcid_engine::check(m, &opts, &mut NoObserver).unwrap()
}

/// Counts and findings (property, depth) agree with the engine, and every trace replays to a
/// state that fires its property.
fn agrees(m: &Cube, d: &DistReport<(u8, u8)>, symmetry: bool) {
    let e = engine(m, symmetry);
    assert_eq!(
        (d.unique_states, d.transitions, d.max_depth, d.complete),
        (e.unique_states, e.transitions, e.max_depth, e.complete)
    );
    assert_eq!(d.states_per_worker.iter().sum::<u64>(), d.unique_states);
    let got: Vec<_> = d
        .findings
        .iter()
        .map(|f| (f.finding.property, f.finding.depth))
        .collect();
    let want: Vec<_> = e.findings.iter().map(|f| (f.property, f.depth)).collect();
    assert_eq!(got, want);
    for f in &d.findings {
        let states = trace_states(m, &f.finding.trace).unwrap();
        assert_eq!(states.len() as u32, f.finding.depth + 1);
        let mut fired = Vec::new();
        mmcid_engine::Model::check(m, states.last().unwrap(), &mut fired);
        assert!(fired.contains(&f.finding.property.unwrap()));
    }
}

fn args(a: &[&str]) -> impl Iterator<Item = String> {
    a.iter().map(|s| s.to_string()).collect::<Vec<_>>().into_iter()
}

#[test]
fn threads_of_one_process() {
    for symmetry in [false, true] {
        for workers in ["1", "3"] {
            let opts = DistOptions {
                symmetry,
                ..DistOptions::default()
            };
            let d = check_from_args(args(&["-w", workers]), Arc::new(model()), opts).unwrap();
            assert_eq!(d.workers, workers.parse::<usize>().unwrap());
            agrees(&model(), &d, symmetry);
        }
    }
}

#[test]
fn max_depth_and_no_codec() {
    let opts = DistOptions {
        max_depth: Some(4),
        ..DistOptions::default()
    };
    let d = check_from_args(args(&["-w", "2"]), Arc::new(model()), opts).unwrap();
    let e = mmcid_engine::check(
        &model(),
        &Options {
            max_depth: Some(4),
            ..Options::default()
        },
        &mut NoObserver,
    )
    .unwrap();
    assert!(!d.complete);
    assert_eq!((d.unique_states, d.max_depth), (e.unique_states, e.max_depth));
    let plain = Cube {
        codec: false,
        ..model()
    };
    let err = check_from_args(args(&["-w", "1"]), Arc::new(plain), DistOptions::default()).unwrap_err();
    assert!(err.contains("codec"), "{err}");
}

const CHILD: &str = "MMCID_DIST_TEST_HOSTFILE";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two processes (this test binary, started again as process 1), two workers each, on
/// 127.0.0.1: the same count as the single-process engine.
#[test]
fn two_processes_on_localhost() {
    let m = model();
    if let Ok(hosts) = std::env::var(CHILD) {
        // Process 1.
        let d = check_from_args(
            args(&["-w", "2", "-n", "2", "-p", "1", "-h", &hosts]),
            Arc::new(m.clone()),
            DistOptions::default(),
        )
        .unwrap();
        agrees(&m, &d, false);
        return;
    }
    let dir = std::env::temp_dir().join(format!("mmcid-dist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts.txt");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "two_processes_on_localhost",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, &hosts)
        .spawn()
        .unwrap();
    // A watchdog: a connection problem must fail the test, not hang it.
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(120));
        eprintln!("two_processes_on_localhost: no answer after 120 s (child {pid})");
        std::process::exit(1);
    });
    let d = check_from_args(
        args(&["-w", "2", "-n", "2", "-p", "0", "-h", hosts.to_str().unwrap()]),
        Arc::new(m.clone()),
        DistOptions::default(),
    )
    .unwrap();
    assert!(child.wait().unwrap().success(), "process 1 failed");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(d.workers, 4);
    assert!(
        d.states_per_worker.iter().all(|&s| s > 0),
        "{:?}",
        d.states_per_worker
    );
    agrees(&m, &d, false);
}
