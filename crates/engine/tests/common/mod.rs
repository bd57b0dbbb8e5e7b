//! Tiny synthetic models with obvious answers (in the spirit of stateright's test_util).
#![allow(dead_code)]

use mmcid_engine::{Agent, Model, PropertyInfo, PropertyKind};
use std::sync::atomic::{AtomicU64, Ordering};

/// An edge of a [`Digraph`]; also its action.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Edge {
    pub to: u32,
    pub agent: Agent,
    pub retry: bool,
}

/// A directed graph given as adjacency lists whose edges are labelled with agents; nodes are
/// states; properties fire at listed nodes.
#[derive(Clone, Debug, Default)]
pub struct Digraph {
    pub init: Vec<u32>,
    pub edges: Vec<Vec<Edge>>,
    pub spinning: Vec<Vec<Agent>>,
    pub agents: usize,
    pub props: Vec<(PropertyInfo, Vec<u32>)>,
}

impl Digraph {
    pub fn new(agents: usize, init: &[u32]) -> Self {
        Digraph {
            init: init.to_vec(),
            agents,
            ..Default::default()
        }
    }
    fn node(&mut self, n: u32) {
        let n = n as usize + 1;
        if self.edges.len() < n {
            self.edges.resize(n, Vec::new());
            self.spinning.resize(n, Vec::new());
        }
    }
    /// A step of `agent` from `from` to `to`.
    pub fn edge(mut self, from: u32, to: u32, agent: Agent) -> Self {
        self.node(from.max(to));
        self.edges[from as usize].push(Edge {
            to,
            agent,
            retry: false,
        });
        self
    }
    /// A spin retry of `agent` from `from` to `to`.
    pub fn retry(mut self, from: u32, to: u32, agent: Agent) -> Self {
        self.node(from.max(to));
        self.edges[from as usize].push(Edge {
            to,
            agent,
            retry: true,
        });
        self
    }
    /// `agent` spins in each of `nodes`.
    pub fn spin(mut self, agent: Agent, nodes: &[u32]) -> Self {
        for &n in nodes {
            self.node(n);
            self.spinning[n as usize].push(agent);
        }
        self
    }
    pub fn always(mut self, name: &'static str, violated_at: &[u32]) -> Self {
        let info = PropertyInfo {
            name,
            description: "test",
            kind: PropertyKind::Always,
        };
        self.props.push((info, violated_at.to_vec()));
        self
    }
    pub fn sometimes(mut self, name: &'static str, witnessed_at: &[u32]) -> Self {
        let info = PropertyInfo {
            name,
            description: "test",
            kind: PropertyKind::Sometimes,
        };
        self.props.push((info, witnessed_at.to_vec()));
        self
    }
}

impl Model for Digraph {
    type State = u32;
    type Action = Edge;
    fn init_states(&self) -> Vec<u32> {
        self.init.clone()
    }
    fn actions(&self, s: &u32, out: &mut Vec<Edge>) {
        out.extend(self.edges.get(*s as usize).into_iter().flatten().cloned());
    }
    fn next_state(&self, _s: &u32, a: &Edge) -> u32 {
        a.to
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        self.props.iter().map(|(i, _)| i.clone()).collect()
    }
    fn check(&self, s: &u32, out: &mut Vec<usize>) {
        for (i, (_, nodes)) in self.props.iter().enumerate() {
            if nodes.contains(s) {
                out.push(i);
            }
        }
    }
    fn agents(&self) -> usize {
        self.agents
    }
    fn agent(&self, _s: &u32, a: &Edge) -> Agent {
        a.agent
    }
    fn is_retry(&self, _s: &u32, a: &Edge) -> bool {
        a.retry
    }
    fn spinning(&self, s: &u32, out: &mut Vec<Agent>) {
        out.extend(self.spinning.get(*s as usize).into_iter().flatten());
    }
}

/// Two counters `x, y` in `0..=n`, each incremented by its own agent: `(n+1)^2` states,
/// `2n(n+1)` transitions, the state `(x, y)` at depth `x + y`. Property `k` (Always) is violated
/// where `x + y == bad_sums[k]`.
#[derive(Clone, Debug)]
pub struct Counter {
    pub n: u16,
    pub bad_sums: Vec<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Inc {
    X,
    Y,
}

impl Model for Counter {
    type State = (u16, u16);
    type Action = Inc;
    fn init_states(&self) -> Vec<(u16, u16)> {
        vec![(0, 0)]
    }
    fn actions(&self, s: &(u16, u16), out: &mut Vec<Inc>) {
        if s.0 < self.n {
            out.push(Inc::X);
        }
        if s.1 < self.n {
            out.push(Inc::Y);
        }
    }
    fn next_state(&self, s: &(u16, u16), a: &Inc) -> (u16, u16) {
        match a {
            Inc::X => (s.0 + 1, s.1),
            Inc::Y => (s.0, s.1 + 1),
        }
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        self.bad_sums
            .iter()
            .map(|_| PropertyInfo {
                name: "sum",
                description: "x+y",
                kind: PropertyKind::Always,
            })
            .collect()
    }
    fn check(&self, s: &(u16, u16), out: &mut Vec<usize>) {
        for (i, &b) in self.bad_sums.iter().enumerate() {
            if s.0 + s.1 == b {
                out.push(i);
            }
        }
    }
    fn agents(&self) -> usize {
        2
    }
    fn agent(&self, _s: &(u16, u16), a: &Inc) -> Agent {
        *a as Agent
    }
    fn is_retry(&self, _s: &(u16, u16), _a: &Inc) -> bool {
        false
    }
    fn spinning(&self, _s: &(u16, u16), _out: &mut Vec<Agent>) {}
}

/// `tokens` interchangeable tokens on positions `0..positions`; any token may advance by one.
/// Unreduced: `positions^tokens` states; reduced (sorted positions): the number of multisets,
/// `C(tokens + positions - 1, tokens)`. Property 0 (Always) is violated when the positions sum
/// to `bad_sum`; property 1 (Sometimes) when all tokens are on the last position.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub tokens: usize,
    pub positions: u8,
    pub bad_sum: u32,
    pub init: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Advance(pub usize);

impl Model for Tokens {
    type State = Vec<u8>;
    type Action = Advance;
    fn init_states(&self) -> Vec<Vec<u8>> {
        vec![self.init.clone()]
    }
    fn actions(&self, s: &Vec<u8>, out: &mut Vec<Advance>) {
        for (i, &p) in s.iter().enumerate() {
            if p + 1 < self.positions {
                out.push(Advance(i));
            }
        }
    }
    fn next_state(&self, s: &Vec<u8>, a: &Advance) -> Vec<u8> {
        let mut n = s.clone();
        n[a.0] += 1;
        n
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        vec![
            PropertyInfo {
                name: "sum",
                description: "sum",
                kind: PropertyKind::Always,
            },
            PropertyInfo {
                name: "end",
                description: "all at end",
                kind: PropertyKind::Sometimes,
            },
        ]
    }
    fn check(&self, s: &Vec<u8>, out: &mut Vec<usize>) {
        if s.iter().map(|&p| p as u32).sum::<u32>() == self.bad_sum {
            out.push(0);
        }
        if s.iter().all(|&p| p + 1 == self.positions) {
            out.push(1);
        }
    }
    fn representative(&self, s: &Vec<u8>) -> Vec<u8> {
        let mut r = s.clone();
        r.sort_unstable();
        r
    }
    fn agents(&self) -> usize {
        self.tokens
    }
    fn agent(&self, _s: &Vec<u8>, a: &Advance) -> Agent {
        a.0 as Agent
    }
    fn is_retry(&self, _s: &Vec<u8>, _a: &Advance) -> bool {
        false
    }
    fn spinning(&self, _s: &Vec<u8>, _out: &mut Vec<Agent>) {}
}

/// A chain `0 -> 1 -> ... -> len` whose `next_state` changes behaviour after `honest_calls`
/// calls (a hidden counter): the search sees the chain, the replay sees something else.
#[derive(Debug)]
pub struct Fickle {
    pub len: u32,
    pub honest_calls: u64,
    pub calls: AtomicU64,
}

impl Model for Fickle {
    type State = u32;
    type Action = ();
    fn init_states(&self) -> Vec<u32> {
        vec![0]
    }
    fn actions(&self, s: &u32, out: &mut Vec<()>) {
        if *s < self.len {
            out.push(());
        }
    }
    fn next_state(&self, s: &u32, _a: &()) -> u32 {
        if self.calls.fetch_add(1, Ordering::Relaxed) < self.honest_calls {
            s + 1
        } else {
            s + 100
        }
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        vec![PropertyInfo {
            name: "end",
            description: "end",
            kind: PropertyKind::Always,
        }]
    }
    fn check(&self, s: &u32, out: &mut Vec<usize>) {
        if *s == self.len {
            out.push(0);
        }
    }
    fn agents(&self) -> usize {
        1
    }
    fn agent(&self, _s: &u32, _a: &()) -> Agent {
        0
    }
    fn is_retry(&self, _s: &u32, _a: &()) -> bool {
        false
    }
    fn spinning(&self, _s: &u32, _out: &mut Vec<Agent>) {}
}

/// States that the test models can encode to bytes ([`Coded`]).
pub trait Bytes: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

impl Bytes for u32 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        u32::from_le_bytes(b.try_into().expect("4 bytes"))
    }
}

impl Bytes for (u16, u16) {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&self.1.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        (u16::from_le_bytes([b[0], b[1]]), u16::from_le_bytes([b[2], b[3]]))
    }
}

impl Bytes for Vec<u8> {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn get(b: &[u8]) -> Self {
        b.to_vec()
    }
}

/// Any test model with the compact encoding switched on: the same transition system, explored
/// through [`Model::encode`] / [`Model::decode`] (the engine's packed frontier and byte
/// fingerprints) instead of `Hash` and whole states.
#[derive(Debug)]
pub struct Coded<M>(pub M);

impl<M: Model> Model for Coded<M>
where
    M::State: Bytes,
{
    type State = M::State;
    type Action = M::Action;
    fn init_states(&self) -> Vec<M::State> {
        self.0.init_states()
    }
    fn actions(&self, s: &M::State, out: &mut Vec<M::Action>) {
        self.0.actions(s, out)
    }
    fn next_state(&self, s: &M::State, a: &M::Action) -> M::State {
        self.0.next_state(s, a)
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        self.0.properties()
    }
    fn check(&self, s: &M::State, out: &mut Vec<usize>) {
        self.0.check(s, out)
    }
    fn representative(&self, s: &M::State) -> M::State {
        self.0.representative(s)
    }
    fn agents(&self) -> usize {
        self.0.agents()
    }
    fn agent(&self, s: &M::State, a: &M::Action) -> Agent {
        self.0.agent(s, a)
    }
    fn is_retry(&self, s: &M::State, a: &M::Action) -> bool {
        self.0.is_retry(s, a)
    }
    fn spinning(&self, s: &M::State, out: &mut Vec<Agent>) {
        self.0.spinning(s, out)
    }
    fn symmetry_preserves_agents(&self) -> bool {
        self.0.symmetry_preserves_agents()
    }
    fn codec(&self) -> bool {
        true
    }
    fn encode(&self, s: &M::State, out: &mut Vec<u8>) {
        s.put(out)
    }
    fn decode(&self, bytes: &[u8]) -> M::State {
        M::State::get(bytes)
    }
}

/// A wide, shallow system whose levels span many frontier chunks and batches: the root steps
/// to `(1, x)` for every `x < width`; `(l, x)` steps to three pseudo-random `(l + 1, y)` until
/// `l == depth`. Agent `a` takes action `a`. Agent 0 spins where `x % 97 == 0` (so the
/// terminal ones are stalls); property 0 (Always) is violated at `(l, x)` with
/// `x % 1000 == 777` and `l >= 2`; property 1 (Sometimes) at `(depth, 5)`.
#[derive(Clone, Debug)]
pub struct Wide {
    pub width: u32,
    pub depth: u32,
}

impl Wide {
    fn pack(l: u32, x: u32) -> u32 {
        l << 24 | x
    }
}

impl Model for Wide {
    type State = u32;
    type Action = u32;
    fn init_states(&self) -> Vec<u32> {
        vec![0]
    }
    fn actions(&self, s: &u32, out: &mut Vec<u32>) {
        let l = s >> 24;
        if *s == 0 {
            out.extend(0..self.width);
        } else if l < self.depth {
            out.extend(0..3);
        }
    }
    fn next_state(&self, s: &u32, a: &u32) -> u32 {
        let (l, x) = (s >> 24, s & 0xFF_FFFF);
        if *s == 0 {
            return Wide::pack(1, *a);
        }
        let w = self.width as u64;
        let y = match a {
            0 => (x as u64 * 7 + 1) % w,
            1 => (x as u64 * 13 + 5) % w,
            _ => x as u64 / 2,
        };
        Wide::pack(l + 1, y as u32)
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        vec![
            PropertyInfo {
                name: "not777",
                description: "x % 1000 != 777 from level 2",
                kind: PropertyKind::Always,
            },
            PropertyInfo {
                name: "five",
                description: "(depth, 5) reached",
                kind: PropertyKind::Sometimes,
            },
        ]
    }
    fn check(&self, s: &u32, out: &mut Vec<usize>) {
        let (l, x) = (s >> 24, s & 0xFF_FFFF);
        if l >= 2 && x % 1000 == 777 {
            out.push(0);
        }
        if l == self.depth && x == 5 {
            out.push(1);
        }
    }
    fn agents(&self) -> usize {
        3
    }
    fn agent(&self, s: &u32, a: &u32) -> Agent {
        if *s == 0 { 0 } else { *a as Agent }
    }
    fn is_retry(&self, _s: &u32, _a: &u32) -> bool {
        false
    }
    fn spinning(&self, s: &u32, out: &mut Vec<Agent>) {
        if *s != 0 && (s & 0xFF_FFFF).is_multiple_of(97) {
            out.push(0);
        }
    }
}
