//! Replaying a scenario: its steps described, the properties that fired on the way, and whether
//! a CPU left spinning at the end can ever be released (`mmcid replay`).

use mmcid_engine::Model;
use serde::Serialize;

use crate::checker::continuation_stalls;
use crate::config::Config;
use crate::family::{Family, ModelVisitor, with_model};
use crate::invariants::Property;
use crate::model::KernelModel;
use crate::scenario::{self, Scenario};
use crate::trace::{self, TraceStep};

/// The result of a replay.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ReplayOutcome {
    /// JSON format version (the same as `check`'s, [`crate::checker::FORMAT_VERSION`]).
    pub format_version: u32,
    /// Design.
    pub design: String,
    /// The configuration.
    pub config: Config,
    /// The steps as described.
    pub steps: Vec<TraceStep>,
    /// Invariants that fired: each with the first step after which it did.
    pub violations: Vec<FiredAt>,
    /// CPUs spinning in get_cid at the end.
    pub spinning: Vec<u16>,
    /// Of those, the ones no continuation releases (a stall); None if undecided.
    pub stalled: Option<Vec<u16>>,
    /// How the replay ended.
    pub outcome: ReplayEnd,
    /// Who runs where, which CIDs the tasks hold and each mm's CID state at the end.
    pub snapshot: trace::Snapshot,
    /// Who owns each set bit at the end.
    pub bits: Vec<crate::facts::BitOwners>,
}

/// How a replay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayEnd {
    /// No CPU spins in `get_cid`.
    Completed,
    /// A CPU spins in `get_cid` and no continuation within the budgets releases it.
    Stall,
    /// A CPU spins in `get_cid`; some continuation releases it, or that was not decided
    /// (`stalled` is `null` then).
    Spinning,
}

/// An invariant that fired during a replay.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct FiredAt {
    /// Property id.
    pub property: &'static str,
    /// Its promise.
    pub description: &'static str,
    /// The first step after which it fired (0: the initial state).
    pub step: usize,
}

/// Parses and replays a scenario text under `design` (or the file's design, or 7.0); states
/// explored to decide whether a final spin is a stall: at most `max_states`.
pub fn replay(text: &str, design: Option<&str>, max_states: u64) -> Result<ReplayOutcome, String> {
    let sc = Scenario::parse(text).map_err(|e| e.to_string())?;
    let cfg = sc.config(design);
    struct Run<'a> {
        sc: &'a Scenario,
        max_states: u64,
    }
    impl ModelVisitor for Run<'_> {
        type Out = Result<ReplayOutcome, String>;
        fn visit<F: Family>(self, m: KernelModel<F>) -> Self::Out {
            replay_model(&m, self.sc, self.max_states)
        }
    }
    with_model(&cfg, Run { sc: &sc, max_states })?
}

/// [`replay`] on a built model.
pub fn replay_model<F: Family>(
    model: &KernelModel<F>,
    sc: &Scenario,
    max_states: u64,
) -> Result<ReplayOutcome, String> {
    let cfg = model.config.clone();
    let (steps, last) = scenario::run(&model.params, model.initial_state(), sc).map_err(|e| e.to_string())?;
    let described = trace::describe(&model.params, model.initial_state(), &steps);
    let mut violations: Vec<FiredAt> = Vec::new();
    let mut s = *model.initial_state();
    let mut fired = Vec::new();
    for i in 0..=steps.len() {
        if i > 0 {
            s = model.next_state(&s, &steps[i - 1]);
        }
        fired.clear();
        model.check(&s, &mut fired);
        for p in fired.iter().filter_map(|&p| Property::from_index(p)) {
            if p.is_invariant() && !violations.iter().any(|v| v.property == p.id()) {
                violations.push(FiredAt {
                    property: p.id(),
                    description: p.promise(),
                    step: i,
                });
            }
        }
    }
    let mut spinning = Vec::new();
    model.spinning(&last, &mut spinning);
    let (stalled, outcome) = if spinning.is_empty() {
        (Some(vec![]), ReplayEnd::Completed)
    } else {
        match continuation_stalls(&cfg, &last, max_states) {
            Ok(st) if !st.is_empty() => (Some(st), ReplayEnd::Stall),
            Ok(st) => (Some(st), ReplayEnd::Spinning),
            Err(_) => (None, ReplayEnd::Spinning),
        }
    };
    Ok(ReplayOutcome {
        format_version: crate::checker::FORMAT_VERSION,
        design: cfg.design.clone(),
        config: cfg,
        steps: described,
        violations,
        spinning,
        stalled,
        outcome,
        snapshot: trace::snapshot(&last),
        bits: (0..last.mms.len())
            .flat_map(|m| trace::bit_owners(&last, m as u8))
            .collect(),
    })
}
