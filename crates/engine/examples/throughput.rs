//! Throughput and memory of the engine on toy models:
//!
//! ```text
//! cargo run --release -p mmcid-engine --example throughput -- [grid|cube] [N] [options]
//!   grid N      4 counters in 0..=N, (N+1)^4 states, 4-byte states (default: grid 40)
//!   cube N      8 counters in 0..=N, (N+1)^8 states, each with a 32-byte payload derived from
//!               the counters, so a state encodes to 40 bytes (like the kernel model's
//!               encoding); agent 0 spins briefly (for --liveness stalls)
//!   --workers W   threads (default: all cores)
//!   --plain       no codec: Hash fingerprints and whole states on the frontier
//!   --liveness off|stalls|full   (default off)
//! ```
//!
//! Prints states/s, the stores' bytes per state and the peak RSS per state.

use mmcid_engine::{Agent, Model, NoObserver, Options, PropertyInfo, check};

/// 4 counters in `0..=n`.
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

/// 8 counters in `0..=n` and a 32-byte payload that is the XOR of one table row per counter
/// value (a function of the counters, maintained step by step as a model's derived fields are).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CubeState {
    c: [u8; 8],
    payload: [u8; 32],
}

struct Cube {
    n: u8,
    codec: bool,
    /// `rows[agent][value]`.
    rows: Vec<Vec<[u8; 32]>>,
}

impl Cube {
    fn new(n: u8, codec: bool) -> Self {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let rows = (0..8)
            .map(|_| {
                (0..=n)
                    .map(|_| {
                        let mut row = [0u8; 32];
                        for b in row.iter_mut() {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            *b = x as u8;
                        }
                        row
                    })
                    .collect()
            })
            .collect();
        Cube { n, codec, rows }
    }
}

impl Model for Cube {
    type State = CubeState;
    type Action = u8;
    fn init_states(&self) -> Vec<CubeState> {
        let mut payload = [0u8; 32];
        for a in 0..8 {
            for (p, r) in payload.iter_mut().zip(&self.rows[a][0]) {
                *p ^= r;
            }
        }
        vec![CubeState { c: [0; 8], payload }]
    }
    fn actions(&self, s: &CubeState, out: &mut Vec<u8>) {
        out.extend((0..8u8).filter(|&i| s.c[i as usize] < self.n));
    }
    fn next_state(&self, s: &CubeState, a: &u8) -> CubeState {
        let a = *a as usize;
        let mut t = *s;
        let (old, new) = (&self.rows[a][s.c[a] as usize], &self.rows[a][s.c[a] as usize + 1]);
        for i in 0..32 {
            t.payload[i] ^= old[i] ^ new[i];
        }
        t.c[a] += 1;
        t
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        Vec::new()
    }
    fn check(&self, _s: &CubeState, _out: &mut Vec<usize>) {}
    fn agents(&self) -> usize {
        8
    }
    fn agent(&self, _s: &CubeState, a: &u8) -> Agent {
        *a as Agent
    }
    fn is_retry(&self, _s: &CubeState, _a: &u8) -> bool {
        false
    }
    /// Agent 0 spins while it is at 1 and agent 1 at 0 (agent 1's step releases it).
    fn spinning(&self, s: &CubeState, out: &mut Vec<Agent>) {
        if s.c[0] == 1 && s.c[1] == 0 {
            out.push(0);
        }
    }
    fn codec(&self) -> bool {
        self.codec
    }
    fn encode(&self, s: &CubeState, out: &mut Vec<u8>) {
        out.extend_from_slice(&s.c);
        out.extend_from_slice(&s.payload);
    }
    fn decode(&self, b: &[u8]) -> CubeState {
        CubeState {
            c: b[..8].try_into().expect("8 counters"),
            payload: b[8..40].try_into().expect("32-byte payload"),
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut positional, mut liveness, mut workers, mut plain) = (Vec::new(), "off".to_string(), None, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--workers" => workers = args.next().and_then(|w| w.parse().ok()),
            "--liveness" => liveness = args.next().unwrap_or_default(),
            "--plain" => plain = true,
            _ => positional.push(a),
        }
    }
    let model = if positional.first().is_some_and(|m| m == "cube") {
        "cube"
    } else {
        "grid"
    };
    let n: u8 = positional
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(if model == "cube" { 6 } else { 40 });
    let mut opts = Options {
        liveness: liveness == "full",
        stall_search: (liveness == "stalls").then_some(10_000),
        ..Options::default()
    };
    if let Some(w) = workers {
        opts.workers = w;
    }
    let r = match model {
        "cube" => summary(check(&Cube::new(n, !plain), &opts, &mut NoObserver).expect("check")),
        _ => summary(check(&Grid { n }, &opts, &mut NoObserver).expect("check")),
    };
    println!(
        "{model} {n} | {} | {} | liveness {liveness} | {r}",
        if plain || model == "grid" {
            "plain"
        } else {
            "encoded"
        },
        format_args!("workers {}", opts.workers),
    );
}

fn summary<A>(r: mmcid_engine::Report<A>) -> String {
    format!(
        "states {} transitions {} findings {} | {:.2} s, {:.0} states/s | stores {:.1} B/state, \
         frontier peak {:.1} MiB, graph {:.1} MiB | peak RSS {:.1} MiB = {:.1} B/state",
        r.unique_states,
        r.transitions,
        r.findings.len(),
        r.seconds,
        r.states_per_second(),
        r.bytes_per_state,
        r.memory.frontier_peak_bytes as f64 / (1 << 20) as f64,
        r.memory.graph_bytes as f64 / (1 << 20) as f64,
        r.peak_rss_bytes.unwrap_or(0) as f64 / (1 << 20) as f64,
        r.peak_rss_per_state.unwrap_or(f64::NAN),
    )
}
