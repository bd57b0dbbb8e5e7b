//! Stall and live-lock detection on the explored graph.
//!
//! # The graph
//!
//! With [`crate::Options::liveness`] the search keeps every explored edge in compressed sparse
//! row (CSR) form: states are numbered in BFS order, `offsets[s]..offsets[s + 1]` are the edges of
//! state `s` *in the order of its enabled-action list* (so an edge's position is also its action
//! index, which trace replay needs), and each edge stores its target (`u32`) and a 16-bit label:
//! the agent taking the step (15 bits) and whether the step is a spin retry (1 bit). Per agent, a
//! bit set records the states in which that agent is spinning ([`crate::Model::spinning`]). The
//! cost is 8 bytes per state plus 6 per edge, plus one bit per state and agent; the analysis
//! temporarily adds a reversed copy of the edges (4 bytes each) and Tarjan's arrays.
//!
//! The analysis only runs on a *complete* exploration: an unexpanded state has unknown edges,
//! and both questions below are about "all continuations".
//!
//! # Stall
//!
//! Agent `a` is *stalled* in state `s` if it is spinning in `s` and no state reachable from `s`
//! (including `s`) has `a` not spinning: whatever anyone does, `a` spins forever. Computed per
//! agent by backward reachability over the reversed edges from the set of states where `a` is
//! not spinning; the spinning states never reached are stalled. A terminal state (no enabled
//! action) in which `a` spins is therefore a stall too. The smallest-index (hence shortest)
//! stalled state per agent is reported, with a shortest trace.
//!
//! # Live lock
//!
//! Agent `a` is *live-locked* if there is an infinite run, fair to everyone, along which `a`
//! spins in every state, although escape is possible (so it is not a stall). Fairness is **weak
//! fairness per agent, where spin retries are not progress**: a run is unfair to agent `b` if,
//! from some point on, `b` always has an enabled non-retry action but never takes a non-retry
//! step. A run of a livelock thus has everyone who can move keep moving, and still `a` spins.
//!
//! Per agent `a`: restrict the graph to the states where `a` spins and is not stalled, and
//! compute its strongly connected components with an iterative Tarjan (no recursion: graphs
//! have millions of states). A non-trivial SCC (more than one state, or a self-loop) has a
//! cycle through all of its states and edges, and every cycle inside it uses only some of them;
//! so the SCC admits a weakly fair infinite run iff, for every agent `b`, either `b` takes a
//! non-retry edge inside the SCC, or some state of the SCC has no enabled non-retry action of
//! `b` (the run then visits it infinitely often, so `b` is not *continuously* enabled). This is
//! exact for weak fairness: a smaller sub-cycle can only lose edges and states, never gain
//! fairness, so one decomposition per agent suffices (no Emerson–Lei refinement is needed as it
//! would be for strong fairness).
//!
//! The SCC with the smallest-index state per agent is reported as a lasso: a shortest prefix to
//! that entry state, then a cycle inside the SCC that starts and ends there and, for every agent
//! `b`, either takes one non-retry edge of `b` or passes through a state where `b` is disabled
//! (built by BFS inside the SCC: entry → waypoint → … → entry). The lasso is itself a weakly
//! fair run on which `a` spins throughout.
//!
//! # What it can and cannot show
//!
//! - It is exact for the explored finite graph, *under the model's own notions* of agent,
//!   spinning and retry: a wrong `spinning` or `is_retry` gives wrong answers.
//! - It says nothing about strong fairness (an agent enabled infinitely often but not
//!   continuously may still be starved on a reported lasso), nor about schedulers that are less
//!   than weakly fair (with no fairness at all every spin loop beside a busy agent would be a
//!   live lock).
//! - It needs the unreduced graph: symmetry reduction is refused with liveness.
//! - Bounded runs (`max_states`, `max_depth`) skip it: a cut graph has fake dead ends.
//! - Every finding is a concrete, replayable trace; the absence of findings is only as good as
//!   the exploration (complete, and subject to the fingerprint-collision estimate).

use crate::model::Agent;
use crate::seen::push_lean;
use std::collections::{HashMap, VecDeque};

/// Largest number of agents the 15-bit edge label can hold.
pub const MAX_AGENTS: usize = 1 << 15;
const RETRY: u16 = 1 << 15;

/// The explored graph in CSR form (see the module doc).
#[derive(Debug)]
pub struct Graph {
    offsets: Vec<u64>,
    targets: Vec<u32>,
    labels: Vec<u16>,
    spinning: Vec<Vec<u64>>,
}

fn bit(words: &[u64], i: usize) -> bool {
    words.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn set_bit(words: &mut Vec<u64>, i: usize) {
    if words.len() <= i / 64 {
        words.resize(i / 64 + 1, 0);
    }
    words[i / 64] |= 1 << (i % 64);
}

impl Graph {
    /// An empty graph for a model with `agents` agents (at most [`MAX_AGENTS`]).
    pub fn new(agents: usize) -> Self {
        Graph {
            offsets: vec![0],
            targets: Vec::new(),
            labels: Vec::new(),
            spinning: vec![Vec::new(); agents],
        }
    }

    /// Adds an edge of the state being recorded (state number [`Graph::states`]); edges must be
    /// pushed in action order.
    #[inline]
    pub fn push_edge(&mut self, target: u32, agent: Agent, retry: bool) {
        push_lean(&mut self.targets, target);
        push_lean(&mut self.labels, agent | if retry { RETRY } else { 0 });
    }

    /// Closes the state being recorded, with the agents spinning in it.
    #[inline]
    pub fn end_state(&mut self, spinning: &[Agent]) {
        let s = self.states();
        for &a in spinning {
            set_bit(&mut self.spinning[a as usize], s);
        }
        push_lean(&mut self.offsets, self.targets.len() as u64);
    }

    /// Number of states recorded.
    pub fn states(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Number of edges recorded.
    pub fn edges(&self) -> usize {
        self.targets.len()
    }

    /// Edge ids of state `s`, in action order.
    #[inline]
    pub fn out(&self, s: u32) -> std::ops::Range<usize> {
        self.offsets[s as usize] as usize..self.offsets[s as usize + 1] as usize
    }

    /// Position of edge `e` in its source's action list, given the source.
    pub fn action_index(&self, source: u32, e: usize) -> u32 {
        (e - self.offsets[source as usize] as usize) as u32
    }

    /// Target of edge `e`.
    #[inline]
    pub fn target(&self, e: usize) -> u32 {
        self.targets[e]
    }

    /// Agent of edge `e`.
    #[inline]
    pub fn agent(&self, e: usize) -> Agent {
        self.labels[e] & !RETRY
    }

    /// Whether edge `e` is a spin retry.
    #[inline]
    pub fn is_retry(&self, e: usize) -> bool {
        self.labels[e] & RETRY != 0
    }

    /// Whether `agent` spins in state `s`.
    #[inline]
    pub fn spinning(&self, agent: Agent, s: u32) -> bool {
        bit(&self.spinning[agent as usize], s as usize)
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> u64 {
        (self.offsets.capacity() * 8
            + self.targets.capacity() * 4
            + self.labels.capacity() * 2
            + self.spinning.iter().map(|v| v.capacity() * 8).sum::<usize>()) as u64
    }
}

/// A stalled agent and the first (shortest-to-reach) state where it is stalled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// The agent.
    pub agent: Agent,
    /// State index.
    pub state: u32,
}

/// A live-locked agent and a fair lasso.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lasso {
    /// The agent spinning forever.
    pub agent: Agent,
    /// The first state of the cycle (the SCC's smallest index).
    pub entry: u32,
    /// The cycle, as `(source state, edge id)`, starting and ending at `entry`.
    pub cycle: Vec<(u32, usize)>,
}

/// The result of [`analyze`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// At most one per agent, by agent.
    pub stalls: Vec<Stall>,
    /// At most one per agent, by agent.
    pub livelocks: Vec<Lasso>,
}

/// Reversed edges: for each state, the sources of its incoming edges.
struct Reverse {
    offsets: Vec<u64>,
    sources: Vec<u32>,
}

impl Reverse {
    fn new(g: &Graph) -> Self {
        let n = g.states();
        let mut offsets = vec![0u64; n + 1];
        for &t in &g.targets {
            offsets[t as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill: Vec<u64> = offsets[..n].to_vec();
        let mut sources = vec![0u32; g.edges()];
        for s in 0..n as u32 {
            for e in g.out(s) {
                let t = g.targets[e] as usize;
                sources[fill[t] as usize] = s;
                fill[t] += 1;
            }
        }
        Reverse { offsets, sources }
    }

    fn preds(&self, s: usize) -> &[u32] {
        &self.sources[self.offsets[s] as usize..self.offsets[s + 1] as usize]
    }
}

/// States from which some state where `agent` is not spinning is reachable.
fn can_escape(g: &Graph, rev: &Reverse, agent: Agent) -> Vec<bool> {
    let n = g.states();
    let mut reach = vec![false; n];
    let mut queue = Vec::new();
    for (s, r) in reach.iter_mut().enumerate() {
        if !g.spinning(agent, s as u32) {
            *r = true;
            queue.push(s as u32);
        }
    }
    while let Some(s) = queue.pop() {
        for &p in rev.preds(s as usize) {
            if !reach[p as usize] {
                reach[p as usize] = true;
                queue.push(p);
            }
        }
    }
    reach
}

const NONE: u32 = u32::MAX;

/// Non-trivial SCCs of the subgraph induced by `inside`.
struct Sccs {
    /// Component id per state, [`NONE`] if outside or in a trivial SCC.
    comp: Vec<u32>,
    /// States of each non-trivial SCC, concatenated.
    members: Vec<u32>,
    /// `members[starts[c]..starts[c + 1]]` is SCC `c`.
    starts: Vec<usize>,
}

impl Sccs {
    fn states(&self, c: usize) -> &[u32] {
        &self.members[self.starts[c]..self.starts[c + 1]]
    }
    fn count(&self) -> usize {
        self.starts.len() - 1
    }
}

/// Iterative Tarjan over the subgraph induced by `inside`.
fn tarjan(g: &Graph, inside: &dyn Fn(u32) -> bool) -> Sccs {
    let n = g.states();
    let mut index = vec![NONE; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut call: Vec<(u32, usize)> = Vec::new();
    let mut counter = 0u32;
    let mut out = Sccs {
        comp: vec![NONE; n],
        members: Vec::new(),
        starts: vec![0],
    };
    for root in 0..n as u32 {
        if index[root as usize] != NONE || !inside(root) {
            continue;
        }
        index[root as usize] = counter;
        low[root as usize] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        call.push((root, g.out(root).start));
        while let Some(&(v, e)) = call.last() {
            if e < g.out(v).end {
                call.last_mut().expect("nonempty").1 += 1;
                let w = g.target(e);
                if !inside(w) {
                    continue;
                }
                if index[w as usize] == NONE {
                    index[w as usize] = counter;
                    low[w as usize] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w as usize] = true;
                    call.push((w, g.out(w).start));
                } else if on_stack[w as usize] {
                    low[v as usize] = low[v as usize].min(index[w as usize]);
                }
                continue;
            }
            call.pop();
            if let Some(&(u, _)) = call.last() {
                low[u as usize] = low[u as usize].min(low[v as usize]);
            }
            if low[v as usize] == index[v as usize] {
                let pos = stack.iter().rposition(|&x| x == v).expect("v is on the stack");
                for &x in &stack[pos..] {
                    on_stack[x as usize] = false;
                }
                let trivial = stack.len() - pos == 1 && !g.out(v).any(|e| g.target(e) == v);
                if !trivial {
                    let c = out.count() as u32;
                    for &x in &stack[pos..] {
                        out.comp[x as usize] = c;
                    }
                    out.members.extend_from_slice(&stack[pos..]);
                    out.starts.push(out.members.len());
                }
                stack.truncate(pos);
            }
        }
    }
    out
}

/// Per agent `b` in SCC `c`: a non-retry edge of `b` inside the SCC, and a state of the SCC
/// where `b` has no enabled non-retry action.
struct FairnessWitness {
    internal_edge: Vec<Option<(u32, usize)>>,
    disabled_at: Vec<Option<u32>>,
}

impl FairnessWitness {
    fn new(g: &Graph, sccs: &Sccs, c: usize, agents: usize) -> Self {
        let mut w = FairnessWitness {
            internal_edge: vec![None; agents],
            disabled_at: vec![None; agents],
        };
        let mut enabled = vec![false; agents];
        for &s in sccs.states(c) {
            enabled.iter_mut().for_each(|x| *x = false);
            for e in g.out(s) {
                if g.is_retry(e) {
                    continue;
                }
                let b = g.agent(e) as usize;
                enabled[b] = true;
                if w.internal_edge[b].is_none() && sccs.comp[g.target(e) as usize] == c as u32 {
                    w.internal_edge[b] = Some((s, e));
                }
            }
            for (b, &en) in enabled.iter().enumerate() {
                if !en && w.disabled_at[b].is_none() {
                    w.disabled_at[b] = Some(s);
                }
            }
        }
        w
    }

    fn fair(&self) -> bool {
        self.internal_edge
            .iter()
            .zip(&self.disabled_at)
            .all(|(e, d)| e.is_some() || d.is_some())
    }
}

/// Shortest path inside SCC `c` from `from` to the first state satisfying `goal`, as
/// `(source, edge)` pairs (empty if `from` satisfies it).
fn path_within(g: &Graph, sccs: &Sccs, c: u32, from: u32, goal: impl Fn(u32) -> bool) -> Vec<(u32, usize)> {
    if goal(from) {
        return Vec::new();
    }
    let mut prev: HashMap<u32, (u32, usize)> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(s) = queue.pop_front() {
        for e in g.out(s) {
            let t = g.target(e);
            if sccs.comp[t as usize] != c || t == from || prev.contains_key(&t) {
                continue;
            }
            prev.insert(t, (s, e));
            if goal(t) {
                let mut path = Vec::new();
                let mut cur = t;
                while cur != from {
                    let (p, e) = prev[&cur];
                    path.push((p, e));
                    cur = p;
                }
                path.reverse();
                return path;
            }
            queue.push_back(t);
        }
    }
    unreachable!("an SCC is strongly connected")
}

/// The lasso cycle for SCC `c`: from its smallest state through one waypoint per agent and back.
fn build_cycle(g: &Graph, sccs: &Sccs, c: usize, agents: usize) -> (u32, Vec<(u32, usize)>) {
    let entry = *sccs.states(c).iter().min().expect("nonempty SCC");
    let w = FairnessWitness::new(g, sccs, c, agents);
    let cc = c as u32;
    let mut cycle = Vec::new();
    let mut cur = entry;
    for b in 0..agents {
        if let Some((s, e)) = w.internal_edge[b] {
            cycle.extend(path_within(g, sccs, cc, cur, |x| x == s));
            cycle.push((s, e));
            cur = g.target(e);
        } else if let Some(d) = w.disabled_at[b] {
            cycle.extend(path_within(g, sccs, cc, cur, |x| x == d));
            cur = d;
        }
    }
    if cycle.is_empty() {
        let e = g
            .out(entry)
            .find(|&e| sccs.comp[g.target(e) as usize] == cc)
            .expect("non-trivial");
        cycle.push((entry, e));
        cur = g.target(e);
    }
    cycle.extend(path_within(g, sccs, cc, cur, |x| x == entry));
    (entry, cycle)
}

/// Finds, per agent, the first stall and the first weakly fair live lock (see the module doc).
pub fn analyze(g: &Graph, agents: usize) -> Analysis {
    let rev = Reverse::new(g);
    let mut out = Analysis::default();
    for a in 0..agents as Agent {
        let escape = can_escape(g, &rev, a);
        if let Some(s) = (0..g.states() as u32).find(|&s| !escape[s as usize]) {
            out.stalls.push(Stall { agent: a, state: s });
        }
        let inside = |s: u32| g.spinning(a, s) && escape[s as usize];
        let sccs = tarjan(g, &inside);
        let best = (0..sccs.count())
            .filter(|&c| FairnessWitness::new(g, &sccs, c, agents).fair())
            .min_by_key(|&c| sccs.states(c).iter().min().copied());
        if let Some(c) = best {
            let (entry, cycle) = build_cycle(g, &sccs, c, agents);
            out.livelocks.push(Lasso {
                agent: a,
                entry,
                cycle,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Node<'a> = (&'a [(u32, Agent, bool)], &'a [Agent]);

    /// Builds a graph from `(edges: (target, agent, retry), spinning)` per state.
    fn graph(states: &[Node<'_>], agents: usize) -> Graph {
        let mut g = Graph::new(agents);
        for (edges, spin) in states {
            for &(t, a, r) in *edges {
                g.push_edge(t, a, r);
            }
            g.end_state(spin);
        }
        g
    }

    #[test]
    fn tarjan_finds_cycles_and_self_loops() {
        // 0 -> 1 -> 2 -> 1, 3 -> 3, 4 alone
        let g = graph(
            &[
                (&[(1, 0, false)], &[]),
                (&[(2, 0, false)], &[]),
                (&[(1, 0, false), (3, 0, false)], &[]),
                (&[(3, 0, false), (4, 0, false)], &[]),
                (&[], &[]),
            ],
            1,
        );
        let s = tarjan(&g, &|_| true);
        assert_eq!(s.count(), 2);
        let mut all: Vec<Vec<u32>> = (0..s.count())
            .map(|c| {
                let mut v = s.states(c).to_vec();
                v.sort();
                v
            })
            .collect();
        all.sort();
        assert_eq!(all, vec![vec![1, 2], vec![3]]);
        assert_eq!(s.comp[0], NONE);
        assert_eq!(s.comp[4], NONE);
    }

    #[test]
    fn deep_chain_does_not_overflow() {
        let n = 300_000u32;
        let mut g = Graph::new(1);
        for s in 0..n {
            g.push_edge((s + 1) % n, 0, false);
            g.end_state(&[]);
        }
        let s = tarjan(&g, &|_| true);
        assert_eq!(s.count(), 1);
        assert_eq!(s.states(0).len(), n as usize);
    }

    #[test]
    fn stall_in_terminal_state() {
        let g = graph(&[(&[(1, 1, false)], &[]), (&[], &[0])], 2);
        let a = analyze(&g, 2);
        assert_eq!(a.stalls, vec![Stall { agent: 0, state: 1 }]);
        assert!(a.livelocks.is_empty());
    }
}
