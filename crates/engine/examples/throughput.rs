//! Rough throughput check: `cargo run --release --example throughput -- [n] [liveness]`.
//! A 4-counter model with `(n+1)^4` states.

use mmcid_engine::{Agent, Model, NoObserver, Options, PropertyInfo, check};

struct Grid {
    n: u8,
}

impl Model for Grid {
    type State = [u8; 4];
    type Action = u8;
    fn init_states(&self) -> Vec<[u8; 4]> {
        vec![[0; 4]]
    }
    fn actions(&self, s: &[u8; 4], out: &mut Vec<u8>) {
        out.extend((0..4u8).filter(|&i| s[i as usize] < self.n));
    }
    fn next_state(&self, s: &[u8; 4], a: &u8) -> [u8; 4] {
        let mut t = *s;
        t[*a as usize] += 1;
        t
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        Vec::new()
    }
    fn check(&self, _s: &[u8; 4], _out: &mut Vec<usize>) {}
    fn agents(&self) -> usize {
        4
    }
    fn agent(&self, _s: &[u8; 4], a: &u8) -> Agent {
        *a as Agent
    }
    fn is_retry(&self, _s: &[u8; 4], _a: &u8) -> bool {
        false
    }
    fn spinning(&self, _s: &[u8; 4], _out: &mut Vec<Agent>) {}
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let liveness = args.next().is_some();
    let opts = Options {
        liveness,
        ..Options::default()
    };
    let r = check(&Grid { n }, &opts, &mut NoObserver).expect("check");
    println!(
        "states {} transitions {} depth {} seconds {:.2} states/s {:.0} bytes/state {:.1} \
         graph {} MB collision {:.1e}",
        r.unique_states,
        r.transitions,
        r.max_depth,
        r.seconds,
        r.states_per_second(),
        r.bytes_per_state,
        r.memory.graph_bytes >> 20,
        r.collision_probability
    );
}
