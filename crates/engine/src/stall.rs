//! On-the-fly stall detection: decide, for each newly discovered state in which an agent spins,
//! whether any continuation releases it — without keeping the whole graph.
//!
//! A state `s` is a stall for agent `a` when `a` spins in `s` and in every state reachable from
//! `s` (the same definition as [`crate::liveness`]). The main breadth-first search meets states
//! in order of depth, so the first stall it confirms for an agent is a shortest one. To confirm,
//! a sub-search explores the states reachable from `s` breadth first and stops as soon as every
//! agent spinning in `s` has been seen not spinning (released); a transient spin is usually
//! released within a few steps, so the sub-searches are short except at real stalls, whose
//! continuations are small because the system is stuck. A sub-search that exceeds its state
//! limit leaves the question undecided (counted in the report), never answered by a guess.
//!
//! This finds stalls only; live locks (cycles on which an agent spins although it could escape)
//! need the whole graph ([`crate::Options::liveness`]).

use std::collections::{HashSet, VecDeque};

use crate::fingerprint::Fingerprinter;
use crate::model::{Agent, Model};
use crate::report::Cancel;

/// What a sub-search decided for each agent spinning at its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Agents that spin in every reachable state.
    pub stalled: Vec<Agent>,
    /// True if the state limit cut the sub-search before every agent was released.
    pub undecided: bool,
}

/// Explores from `root`, where `agents` spin, until each of them is seen not spinning. States
/// are identified as the main search identifies them (`fp`), except that a symmetry that
/// renames agents is not applied ([`Fingerprinter::preserving_agents`]). A set `cancel` flag
/// ends the sub-search as undecided.
pub fn decide<M: Model>(
    model: &M,
    root: &M::State,
    agents: &[Agent],
    fp: &Fingerprinter<'_, M>,
    limit: u64,
    cancel: Option<&Cancel>,
) -> Decision {
    let mut scratch = Vec::new();
    // States are told apart with their agents' names: under a symmetry that renames agents, the
    // twin of a seen state may be the one in which the agent asked about is released.
    let fp = fp.preserving_agents();
    let mut fp = |s: &M::State| fp.of(s, &mut scratch);
    let mut pending: Vec<Agent> = agents.to_vec();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut queue = VecDeque::new();
    seen.insert(fp(root));
    queue.push_back(root.clone());
    let mut actions = Vec::new();
    let mut spinning = Vec::new();
    let mut expanded = 0u64;
    while let Some(s) = queue.pop_front() {
        expanded += 1;
        if expanded.is_multiple_of(1024) && cancel.is_some_and(Cancel::is_cancelled) {
            return Decision {
                stalled: vec![],
                undecided: true,
            };
        }
        spinning.clear();
        model.spinning(&s, &mut spinning);
        pending.retain(|a| spinning.contains(a));
        if pending.is_empty() {
            return Decision {
                stalled: vec![],
                undecided: false,
            };
        }
        actions.clear();
        model.actions(&s, &mut actions);
        for a in &actions {
            let n = model.next_state(&s, a);
            if seen.insert(fp(&n)) {
                if seen.len() as u64 > limit {
                    return Decision {
                        stalled: vec![],
                        undecided: true,
                    };
                }
                queue.push_back(n);
            }
        }
    }
    Decision {
        stalled: pending,
        undecided: false,
    }
}
