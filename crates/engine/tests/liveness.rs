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
