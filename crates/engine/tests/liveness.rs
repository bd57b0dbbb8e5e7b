//! Stalls and live locks on small labelled digraphs.

mod common;

use common::Digraph;
use mmcid_engine::{Finding, FindingKind, NoObserver, Options, Report, check, trace_states};

fn live(g: &Digraph) -> Report<common::Edge> {
    check(
        g,
        &Options {
            liveness: true,
            ..Options::default()
        },
        &mut NoObserver,
    )
    .unwrap()
}

fn of_kind(r: &Report<common::Edge>, kind: FindingKind) -> Vec<&Finding<common::Edge>> {
    r.findings.iter().filter(|f| f.kind == kind).collect()
}

fn nodes(g: &Digraph, f: &Finding<common::Edge>) -> Vec<u32> {
    trace_states(g, &f.trace).unwrap()
}

/// 0 -(1)-> 1 -(1)-> 2; agent 0 spins in 1 and 2 with retries; nobody ever releases it.
fn stuck() -> Digraph {
    Digraph::new(2, &[0])
        .edge(0, 1, 1)
        .retry(1, 1, 0)
        .edge(1, 2, 1)
        .retry(2, 2, 0)
        .spin(0, &[1, 2])
}

#[test]
fn spinning_forever_is_a_stall() {
    let g = stuck();
    let r = live(&g);
    assert!(r.liveness_checked);
    assert!(r.memory.graph_bytes > 0);
    let stalls = of_kind(&r, FindingKind::Stall);
    assert_eq!(stalls.len(), 1);
    let s = stalls[0];
    assert_eq!((s.agent, s.property, s.depth), (Some(0), None, 1));
    assert_eq!(nodes(&g, s), vec![0, 1], "the shortest stalled state is reported");
    // The stall is not reported again as a live lock.
    assert!(of_kind(&r, FindingKind::Livelock).is_empty());
    // Without liveness nothing is said.
    let r = check(&g, &Options::default(), &mut NoObserver).unwrap();
    assert!(!r.liveness_checked && r.findings.is_empty());
}

#[test]
fn another_agent_can_release_the_spinner_so_no_stall() {
    // Near-twin of `stuck`: agent 1 can step from 2 to 3, where agent 0 no longer spins.
    // (Spinning on 1 and 2 while agent 1 idles is not a fair live lock: agent 1 is continuously
    // enabled there and never steps.)
    let g = stuck().edge(2, 3, 1);
    let r = live(&g);
    assert!(r.liveness_checked);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
}

#[test]
fn terminal_spinning_state_is_a_stall() {
    let g = Digraph::new(2, &[0]).edge(0, 1, 1).edge(0, 2, 1).spin(1, &[2]);
    let r = live(&g);
    let stalls = of_kind(&r, FindingKind::Stall);
    assert_eq!(stalls.len(), 1);
    assert_eq!(stalls[0].agent, Some(1));
    assert_eq!(nodes(&g, stalls[0]), vec![0, 2]);
}

/// Agent 0 spins in 1 and 2 (retries only); agent 1 moves 1 -> 2 -> 1 forever; agent 1 could
/// also leave to 3, where agent 0 stops spinning, so this is not a stall.
fn fair_cycle() -> Digraph {
    Digraph::new(3, &[0])
        .edge(0, 1, 1)
        .retry(1, 1, 0)
        .edge(1, 2, 1)
        .retry(2, 2, 0)
        .edge(2, 1, 1)
        .edge(1, 3, 1)
        .spin(0, &[1, 2])
}

#[test]
fn fair_cycle_with_a_spinner_is_a_live_lock() {
    let g = fair_cycle();
    let r = live(&g);
    assert!(of_kind(&r, FindingKind::Stall).is_empty());
    let ll = of_kind(&r, FindingKind::Livelock);
    assert_eq!(ll.len(), 1, "{:?}", r.findings);
    let f = ll[0];
    assert_eq!((f.agent, f.depth, f.trace.cycle_start), (Some(0), 1, Some(1)));
    let path = nodes(&g, f);
    assert_eq!(path[..2], [0, 1], "shortest prefix to the cycle's entry");
    let cycle_start = f.trace.cycle_start.unwrap();
    assert_eq!(
        path.last(),
        Some(&path[cycle_start]),
        "the cycle returns to its entry"
    );
    // The cycle lets agent 1 make progress (a non-retry step).
    let cycle = &f.trace.actions[cycle_start..];
    assert!(cycle.iter().any(|e| e.agent == 1 && !e.retry), "{cycle:?}");
    assert_eq!(path, vec![0, 1, 2, 1]);
}

#[test]
fn unfair_cycle_is_not_a_live_lock() {
    // Twin of `fair_cycle`: agent 2 is continuously enabled on the cycle (from 1 and from 2)
    // but never steps inside it, so the cycle is not weakly fair.
    let g = fair_cycle().edge(1, 4, 2).edge(2, 4, 2);
    let r = live(&g);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
}

#[test]
fn agent_disabled_somewhere_on_the_cycle_keeps_it_fair() {
    // Agent 2 is enabled in 1 only; in 2 it is not, so the cycle is weakly fair to it and the
    // lasso must pass through 2.
    let g = fair_cycle().edge(1, 4, 2);
    let r = live(&g);
    let ll = of_kind(&r, FindingKind::Livelock);
    assert_eq!(ll.len(), 1);
    let path = nodes(&g, ll[0]);
    assert!(path[ll[0].trace.cycle_start.unwrap()..].contains(&2));
}

#[test]
fn self_loop_with_progress_is_a_live_lock() {
    // Agent 1 keeps doing real (non-retry) work in place while agent 0 spins; agent 1 could
    // also release agent 0 by going to 2.
    let g = Digraph::new(2, &[0])
        .edge(0, 1, 1)
        .edge(1, 1, 1)
        .retry(1, 1, 0)
        .edge(1, 2, 1)
        .spin(0, &[1]);
    let r = live(&g);
    let ll = of_kind(&r, FindingKind::Livelock);
    assert_eq!(ll.len(), 1, "{:?}", r.findings);
    assert_eq!(nodes(&g, ll[0]), vec![0, 1, 1]);
    assert_eq!(ll[0].trace.actions[1].agent, 1);
}

#[test]
fn spinning_only_on_part_of_an_scc() {
    // The big SCC {1, 2, 3} has agent 0 not spinning in 3, but the fair sub-cycle 1 <-> 2
    // (agent 1 moving) keeps agent 0 spinning: a live lock the per-agent decomposition finds.
    let g = Digraph::new(2, &[0])
        .edge(0, 1, 1)
        .retry(1, 1, 0)
        .retry(2, 2, 0)
        .edge(1, 2, 1)
        .edge(2, 1, 1)
        .edge(2, 3, 1)
        .edge(3, 1, 0)
        .spin(0, &[1, 2]);
    let r = live(&g);
    let ll = of_kind(&r, FindingKind::Livelock);
    assert_eq!(ll.len(), 1, "{:?}", r.findings);
    assert_eq!(nodes(&g, ll[0]), vec![0, 1, 2, 1]);
}

#[test]
fn liveness_is_skipped_when_the_search_is_cut() {
    let g = stuck();
    let r = check(
        &g,
        &Options {
            liveness: true,
            max_depth: Some(1),
            ..Options::default()
        },
        &mut NoObserver,
    )
    .unwrap();
    assert!(!r.complete);
    assert!(!r.liveness_checked);
    assert!(r.findings.is_empty());
}

#[test]
fn lasso_serializes_with_cycle_start() {
    let r = live(&fair_cycle());
    let v = serde_json::to_value(&r).unwrap();
    let f = &v["findings"][0];
    assert_eq!(f["kind"], "livelock");
    assert_eq!(f["agent"], 0);
    assert_eq!(f["trace"]["cycle_start"], 1);
}

/// Small deterministic RNG (xorshift64*), so the cross-check below is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }
}

/// Brute-force answers on a small graph, independent of the engine's algorithms.
struct Naive<'a> {
    g: &'a Digraph,
    n: usize,
}

impl Naive<'_> {
    fn reach(&self, s: u32) -> Vec<bool> {
        let mut seen = vec![false; self.n];
        let mut stack = vec![s];
        seen[s as usize] = true;
        while let Some(x) = stack.pop() {
            for e in &self.g.edges[x as usize] {
                if !seen[e.to as usize] {
                    seen[e.to as usize] = true;
                    stack.push(e.to);
                }
            }
        }
        seen
    }
    fn dist(&self) -> Vec<Option<u32>> {
        let mut d = vec![None; self.n];
        d[0] = Some(0);
        let mut q = std::collections::VecDeque::from([0u32]);
        while let Some(x) = q.pop_front() {
            for e in &self.g.edges[x as usize] {
                if d[e.to as usize].is_none() {
                    d[e.to as usize] = Some(d[x as usize].unwrap() + 1);
                    q.push_back(e.to);
                }
            }
        }
        d
    }
    fn spins(&self, a: u16, s: u32) -> bool {
        self.g.spinning[s as usize].contains(&a)
    }
    fn stalled(&self, a: u16, s: u32) -> bool {
        self.spins(a, s)
            && self
                .reach(s)
                .iter()
                .enumerate()
                .all(|(t, &r)| !r || self.spins(a, t as u32))
    }
    fn enabled(&self, b: u16, s: u32) -> bool {
        self.g.edges[s as usize].iter().any(|e| e.agent == b && !e.retry)
    }
    /// Is `set` (a bit mask of states) strongly connected through internal edges, non-trivial,
    /// and weakly fair to every agent?
    fn fair_scc(&self, set: u32) -> bool {
        let inside = |s: u32| set & (1 << s) != 0;
        let states: Vec<u32> = (0..self.n as u32).filter(|&s| inside(s)).collect();
        let internal = |s: u32| self.g.edges[s as usize].iter().filter(move |e| inside(e.to));
        if states.len() == 1 && internal(states[0]).next().is_none() {
            return false;
        }
        for &s in &states {
            // Everything in the set is reachable from s inside the set.
            let mut seen = set & !(1 << s);
            let mut stack = vec![s];
            while let Some(x) = stack.pop() {
                for e in internal(x) {
                    if seen & (1 << e.to) != 0 {
                        seen &= !(1 << e.to);
                        stack.push(e.to);
                    }
                }
            }
            if seen != 0 {
                return false;
            }
        }
        (0..self.g.agents as u16).all(|b| {
            states
                .iter()
                .any(|&s| internal(s).any(|e| e.agent == b && !e.retry))
                || states.iter().any(|&s| !self.enabled(b, s))
        })
    }
}

#[test]
fn random_graphs_agree_with_brute_force() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut stalls, mut livelocks) = (0, 0);
    for round in 0..3000 {
        let n = 2 + rng.next(6) as u32;
        let agents = 1 + rng.next(3) as usize;
        let mut g = Digraph::new(agents, &[0]);
        for s in 0..n {
            for _ in 0..rng.next(4) {
                let (to, agent) = (rng.next(n as u64) as u32, rng.next(agents as u64) as u16);
                g = if rng.next(4) == 0 {
                    g.retry(s, to, agent)
                } else {
                    g.edge(s, to, agent)
                };
            }
            for a in 0..agents as u16 {
                if rng.next(3) != 0 {
                    g = g.spin(a, &[s]);
                }
            }
        }
        let g = g.edge(n - 1, n - 1, 0); // make sure every node exists
        let naive = Naive { g: &g, n: n as usize };
        let dist = naive.dist();
        let reachable: Vec<u32> = (0..n).filter(|&s| dist[s as usize].is_some()).collect();
        let r = live(&g);
        for a in 0..agents as u16 {
            let ctx = format!("round {round} agent {a}: {g:?}\n{:?}", r.findings);
            // Stalls.
            let want = reachable
                .iter()
                .filter(|&&s| naive.stalled(a, s))
                .map(|&s| dist[s as usize]);
            let want = want.min();
            let got: Vec<_> = r
                .findings
                .iter()
                .filter(|f| f.kind == FindingKind::Stall && f.agent == Some(a))
                .collect();
            assert_eq!(got.len(), want.is_some() as usize, "{ctx}");
            if let Some(f) = got.first() {
                stalls += 1;
                let end = *nodes(&g, f).last().unwrap();
                assert!(naive.stalled(a, end), "{ctx}");
                assert_eq!(Some(f.depth), want.flatten(), "{ctx}");
            }
            // Live locks: brute force over every subset of the live-lock candidates.
            let cand: u32 = reachable
                .iter()
                .filter(|&&s| naive.spins(a, s) && !naive.stalled(a, s))
                .fold(0, |m, &s| m | (1 << s));
            let mut best: Option<u32> = None;
            for set in 1..=cand {
                if set & !cand == 0 && naive.fair_scc(set) {
                    let d = d_min(set, &dist, n);
                    best = match (best, d) {
                        (Some(b), Some(d)) => Some(b.min(d)),
                        (b, d) => b.or(d),
                    };
                }
            }
            let got: Vec<_> = r
                .findings
                .iter()
                .filter(|f| f.kind == FindingKind::Livelock && f.agent == Some(a))
                .collect();
            assert_eq!(got.len(), best.is_some() as usize, "{ctx}");
            if let Some(f) = got.first() {
                livelocks += 1;
                assert_eq!(Some(f.depth), best, "{ctx}");
                let path = nodes(&g, f);
                let start = f.trace.cycle_start.unwrap();
                assert!(f.trace.actions.len() > start, "{ctx}");
                assert_eq!(path[start], *path.last().unwrap(), "{ctx}");
                let cycle_states = &path[start..];
                let cycle_actions = &f.trace.actions[start..];
                assert!(
                    cycle_states
                        .iter()
                        .all(|&s| naive.spins(a, s) && !naive.stalled(a, s)),
                    "{ctx}"
                );
                for b in 0..agents as u16 {
                    assert!(
                        cycle_actions.iter().any(|e| e.agent == b && !e.retry)
                            || cycle_states.iter().any(|&s| !naive.enabled(b, s)),
                        "lasso unfair to agent {b}: {ctx}"
                    );
                }
            }
        }
    }
    // The generator must exercise both kinds, or this test proves nothing.
    assert!(
        stalls > 100 && livelocks > 100,
        "stalls {stalls}, livelocks {livelocks}"
    );
}

fn d_min(set: u32, dist: &[Option<u32>], n: u32) -> Option<u32> {
    (0..n)
        .filter(|&s| set & (1 << s) != 0)
        .filter_map(|s| dist[s as usize])
        .min()
}

fn on_the_fly(g: &Digraph, limit: u64) -> Report<common::Edge> {
    check(
        g,
        &Options {
            stall_search: Some(limit),
            ..Options::default()
        },
        &mut NoObserver,
    )
    .unwrap()
}

#[test]
fn on_the_fly_stall_search_agrees_with_the_graph_analysis() {
    let g = stuck();
    let r = on_the_fly(&g, 1000);
    assert!(!r.liveness_checked && r.memory.graph_bytes == 0, "no graph kept");
    let stalls = of_kind(&r, FindingKind::Stall);
    assert_eq!(stalls.len(), 1);
    assert_eq!((stalls[0].agent, stalls[0].depth), (Some(0), 1));
    assert_eq!(nodes(&g, stalls[0]), vec![0, 1]);
    // the near-twin releases the spinner: no stall, nothing undecided
    let r = on_the_fly(&stuck().edge(2, 3, 1), 1000);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.stalls_undecided, 0);
    // a terminal spinning state
    let g = Digraph::new(2, &[0]).edge(0, 1, 1).edge(0, 2, 1).spin(1, &[2]);
    let r = on_the_fly(&g, 1000);
    assert_eq!(of_kind(&r, FindingKind::Stall)[0].agent, Some(1));
}

#[test]
fn on_the_fly_stall_search_says_undecided_when_its_limit_is_reached() {
    // From 1 (agent 0 spins) the release at 3 is two states away: a limit of 1 cannot decide.
    let g = stuck().edge(2, 3, 1);
    let r = on_the_fly(&g, 1);
    assert!(
        of_kind(&r, FindingKind::Stall).is_empty(),
        "undecided is not a stall"
    );
    assert!(r.stalls_undecided > 0);
}
