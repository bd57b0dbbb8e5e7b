//! A toy model with a codec, for the distributed checker's tests and example.
#![allow(dead_code)]

use mmcid_engine::{Agent, Model, PropertyInfo, PropertyKind};

/// `k` counters in `0..=n`; any counter below `n` may step up by one or, if it is even, by two.
/// `(n+1)^k` states. Property 0 (Always) is violated where the counters sum to `bad_sum`;
/// property 1 (Sometimes) where every counter is `n`. Symmetry: counters are interchangeable
/// (the representative sorts them).
#[derive(Clone, Debug)]
pub struct Cube {
    pub k: usize,
    pub n: u8,
    pub bad_sum: u32,
    /// Whether [`Model::codec`] says yes.
    pub codec: bool,
}

impl Model for Cube {
    type State = Vec<u8>;
    type Action = (u8, u8);
    fn init_states(&self) -> Vec<Vec<u8>> {
        vec![vec![0; self.k]]
    }
    fn actions(&self, s: &Vec<u8>, out: &mut Vec<(u8, u8)>) {
        for (i, &c) in s.iter().enumerate() {
            if c < self.n {
                out.push((i as u8, 1));
                if c % 2 == 0 && c + 2 <= self.n {
                    out.push((i as u8, 2));
                }
            }
        }
    }
    fn next_state(&self, s: &Vec<u8>, a: &(u8, u8)) -> Vec<u8> {
        let mut t = s.clone();
        t[a.0 as usize] += a.1;
        t
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        vec![
            PropertyInfo {
                name: "sum",
                description: "the counters never sum to bad_sum",
                kind: PropertyKind::Always,
            },
            PropertyInfo {
                name: "top",
                description: "every counter at n",
                kind: PropertyKind::Sometimes,
            },
        ]
    }
    fn check(&self, s: &Vec<u8>, out: &mut Vec<usize>) {
        if s.iter().map(|&c| c as u32).sum::<u32>() == self.bad_sum {
            out.push(0);
        }
        if s.iter().all(|&c| c == self.n) {
            out.push(1);
        }
    }
    fn representative(&self, s: &Vec<u8>) -> Vec<u8> {
        let mut r = s.clone();
        r.sort_unstable();
        r
    }
    fn agents(&self) -> usize {
        self.k
    }
    fn agent(&self, _s: &Vec<u8>, a: &(u8, u8)) -> Agent {
        a.0 as Agent
    }
    fn is_retry(&self, _s: &Vec<u8>, _a: &(u8, u8)) -> bool {
        false
    }
    fn spinning(&self, _s: &Vec<u8>, _out: &mut Vec<Agent>) {}
    fn codec(&self) -> bool {
        self.codec
    }
    fn encode(&self, s: &Vec<u8>, out: &mut Vec<u8>) {
        out.extend_from_slice(s);
    }
    fn decode(&self, b: &[u8]) -> Vec<u8> {
        b.to_vec()
    }
    fn encode_canonical(&self, s: &Vec<u8>, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(s);
        out[at..].sort_unstable();
    }
}
