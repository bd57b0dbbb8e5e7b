//! The search's findings, once exploration is over: each property's first state, the on-the-fly
//! stalls and (for a complete search with a graph) the stalls and live locks of the liveness
//! analysis, each with a replayed shortest trace; then the [`Report`] with the run's figures.
//! Exploration ([`super::Search::search`]) only records *where* things were found (state
//! indices and depths); everything here happens once, after it.

use super::Search;
use crate::EngineError;
use crate::chunked::Rss;
use crate::fingerprint::collision_probability;
use crate::liveness::{self, Graph};
use crate::model::{Model, PropertyKind};
use crate::parents::Step;
use crate::report::{Finding, FindingKind, Memory, Report, Trace};
use crate::trace::Replayer;

impl<M: Model> Search<'_, M> {
    /// The findings, each with its trace replayed from the parent links: properties first (in
    /// property order), then on-the-fly stalls, then the liveness analysis's stalls and live
    /// locks.
    fn findings(&self) -> Result<Vec<Finding<M::Action>>, EngineError> {
        let replayer = Replayer {
            model: self.model,
            seen: &self.seen,
            fp: crate::fingerprint::Fingerprinter::new(
                self.model,
                self.opts.symmetry,
                self.opts.fingerprint_bits,
            ),
        };
        let parents = &self.parents;
        let traced = |idx: u32| -> Result<(usize, Vec<M::Action>, usize), EngineError> {
            let (root, init, steps) = parents.path_to(idx);
            let (actions, _) = replayer.replay(root, init, &steps)?;
            Ok((init, actions, steps.len()))
        };
        let finding = |property, kind, agent, depth, init, actions, cycle_start| Finding {
            property,
            kind,
            agent,
            depth,
            trace: Trace {
                init,
                actions,
                cycle_start,
            },
        };
        let mut findings = Vec::new();
        for (p, hit) in self.first.iter().enumerate() {
            let Some((idx, depth)) = *hit else { continue };
            let (init, actions, _) = traced(idx)?;
            let kind = match self.props[p].kind {
                PropertyKind::Always => FindingKind::Invariant,
                PropertyKind::Sometimes => FindingKind::Sometimes,
            };
            findings.push(finding(Some(p), kind, None, depth, init, actions, None));
        }
        for &(agent, idx, depth) in &self.stalls {
            let (init, actions, _) = traced(idx)?;
            findings.push(finding(
                None,
                FindingKind::Stall,
                Some(agent),
                depth,
                init,
                actions,
                None,
            ));
        }
        if let (None, Some(g)) = (self.cut, self.graph.as_ref()) {
            let analysis = liveness::analyze(g, self.agents);
            for stall in &analysis.stalls {
                let (init, actions, depth) = traced(stall.state)?;
                findings.push(finding(
                    None,
                    FindingKind::Stall,
                    Some(stall.agent),
                    depth as u32,
                    init,
                    actions,
                    None,
                ));
            }
            for lasso in &analysis.livelocks {
                let (root, init, mut steps) = parents.path_to(lasso.entry);
                let prefix = steps.len();
                steps.extend(lasso.cycle.iter().map(|&(src, e)| Step {
                    child: g.target(e),
                    action: g.action_index(src, e),
                }));
                let (actions, _) = replayer.replay(root, init, &steps)?;
                findings.push(finding(
                    None,
                    FindingKind::Livelock,
                    Some(lasso.agent),
                    prefix as u32,
                    init,
                    actions,
                    Some(prefix),
                ));
            }
        }
        Ok(findings)
    }

    /// The report: the findings and the run's figures (states, memory, time).
    pub(super) fn report(self, rss_reset: bool, workers: usize) -> Result<Report<M::Action>, EngineError> {
        let findings = self.findings()?;
        // Read after the findings: the liveness analysis and the trace replays allocate too, and
        // the figure is meant as the peak a user meets.
        let rss: Option<Rss> = crate::chunked::rss();
        let complete = self.cut.is_none();
        let unique_states = self.seen.len() as u64;
        let memory = Memory {
            seen_bytes: self.seen.bytes(),
            parents_bytes: self.parents.bytes(),
            frontier_peak_bytes: self.frontier.peak_bytes(),
            graph_bytes: self.graph.as_ref().map_or(0, Graph::bytes),
        };
        let unreached_sometimes = self
            .props
            .iter()
            .enumerate()
            .filter(|(p, info)| info.kind == PropertyKind::Sometimes && self.first[*p].is_none())
            .map(|(p, _)| p)
            .collect();
        let per_state = |bytes: u64| {
            if unique_states == 0 {
                0.0
            } else {
                bytes as f64 / unique_states as f64
            }
        };
        let peak_rss_bytes = rss.filter(|_| rss_reset).map(|r| r.peak);
        let opts = self.opts;
        Ok(Report {
            unique_states,
            transitions: self.transitions,
            max_depth: self.max_depth,
            seconds: self.start.elapsed().as_secs_f64(),
            complete,
            cut: self.cut,
            states_left_on_frontier: self.frontier.len() as u64 + self.left_in_batch,
            symmetry: opts.symmetry,
            liveness_checked: complete && self.graph.is_some(),
            stalls_undecided: self.stalls_undecided,
            fingerprint_bits: opts.fingerprint_bits,
            collision_probability: collision_probability(unique_states, opts.fingerprint_bits),
            bytes_per_state: per_state(memory.seen_bytes + memory.parents_bytes),
            peak_rss_bytes,
            peak_rss_per_state: peak_rss_bytes.map(per_state),
            workers,
            memory,
            unreached_sometimes,
            findings,
        })
    }
}
