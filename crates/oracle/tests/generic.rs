//! The adapter on a model other than the kernel's, and the Explorer's address checks.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mmcid_engine::{Agent, Model, NoObserver, Options, PropertyInfo, PropertyKind};
use mmcid_oracle::{Presentation, StaterightAdapter, serve_explorer, stateright_bfs};

/// Two agents add 1 or 2 to a counter until it reaches 6 (states 0..=7). Every property fires
/// in the initial state (both `Always` ones are violated there, the `Sometimes` one witnessed):
/// stateright would leave that state unexpanded and stop at 1 state if the adapter did not force
/// it to expand everything ([`mmcid_oracle::EXPAND_ALL`]).
struct Count;

impl Model for Count {
    type State = u8;
    type Action = Agent;
    fn init_states(&self) -> Vec<u8> {
        vec![0]
    }
    fn actions(&self, s: &u8, out: &mut Vec<Agent>) {
        if *s < 6 {
            out.extend([0, 1])
        }
    }
    fn next_state(&self, s: &u8, a: &Agent) -> u8 {
        s + 1 + *a as u8
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        vec![
            PropertyInfo {
                name: "not 0 or 5",
                description: "",
                kind: PropertyKind::Always,
            },
            PropertyInfo {
                name: "0 or 7",
                description: "",
                kind: PropertyKind::Sometimes,
            },
            PropertyInfo {
                name: "not 0",
                description: "",
                kind: PropertyKind::Always,
            },
        ]
    }
    fn check(&self, s: &u8, out: &mut Vec<usize>) {
        if *s == 0 || *s == 5 {
            out.push(0)
        }
        if *s == 0 || *s == 7 {
            out.push(1)
        }
        if *s == 0 {
            out.push(2)
        }
    }
    fn agents(&self) -> usize {
        2
    }
    fn agent(&self, _: &u8, a: &Agent) -> Agent {
        *a
    }
    fn is_retry(&self, _: &u8, _: &Agent) -> bool {
        false
    }
    fn spinning(&self, _: &u8, _: &mut Vec<Agent>) {}
}

impl Presentation for Count {}

#[test]
fn counts_and_discoveries_on_a_toy_model() {
    let report = mmcid_engine::check(&Count, &Options::default(), &mut NoObserver).unwrap();
    let run = stateright_bfs(Count, 1);
    assert_eq!(report.unique_states, 8);
    assert_eq!(run.unique_states, 8);
    assert_eq!(run.states, report.transitions + 1);
    let names: Vec<_> = run.discoveries.iter().map(|&(n, _)| n).collect();
    assert_eq!(names, ["not 0 or 5", "0 or 7", "not 0"]);
    assert!(run.discoveries.contains(&("not 0", 0)));
}

#[test]
fn the_adapter_delegates() {
    use stateright::Model as _;
    let a = StaterightAdapter::new(Count);
    assert_eq!(a.init_states(), vec![0]);
    assert_eq!(a.next_state(&3, 1), Some(5));
    assert_eq!(a.properties().len(), 4, "three properties and EXPAND_ALL");
}

#[test]
fn explorer_refuses_non_loopback_and_port_0() {
    for addr in ["0.0.0.0:3000", "[::]:3000", "127.0.0.1:0", "no such host:1"] {
        let Err(e) = serve_explorer(Count, addr);
        eprintln!("{addr}: {e}");
    }
    let Err(e) = serve_explorer(Count, "0.0.0.0:3000");
    assert!(e.contains("loopback"), "{e}");
}

#[test]
fn explorer_serves_states_on_loopback() {
    // Find a free port, then serve on it from a thread that never returns (it ends with the
    // test process).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let served = addr.clone();
    std::thread::spawn(move || serve_explorer(Count, &served));
    let mut body = String::new();
    for _ in 0..100 {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(
                s,
                "GET /.states/0 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            s.read_to_string(&mut body).unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    // State 0 has two steps, to 1 and to 2.
    assert!(
        body.contains("\"state\":\"1\"") && body.contains("\"state\":\"2\""),
        "{body}"
    );
}
