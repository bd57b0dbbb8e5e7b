//! Rebuilding traces by replay.
//!
//! The search stores no states and no actions per state, only parent pointers (state index of
//! the parent, index of the action in the parent's enabled-action list). A trace is rebuilt by
//! *replaying* the path: start from the initial state, regenerate the enabled actions of the
//! current concrete state, take the stored action, and check that the successor's fingerprint
//! maps to the expected state index.
//!
//! With symmetry the frontier holds the *first concrete state* discovered in each class, and the
//! stored action index refers to that state's action list; replaying stored indices from the
//! concrete initial state therefore reproduces exactly the concrete states the search expanded.
//! If the stored index does not lead to the expected class (which a deterministic model with a
//! sound `representative` never causes), the replayer falls back to TLC's method: take whichever
//! enabled action's successor has a representative with the expected fingerprint. If nothing
//! matches, it returns [`EngineError::Replay`]: replay doubles as a determinism check.

use crate::EngineError;
use crate::fingerprint::fingerprint;
use crate::model::Model;
use crate::parents::Step;
use crate::seen::Seen;

/// Replays stored paths against a model and the visited set of the search that found them.
pub(crate) struct Replayer<'a, M: Model> {
    pub model: &'a M,
    pub seen: &'a Seen,
    pub symmetry: bool,
    pub mask: u64,
}

impl<M: Model> Replayer<'_, M> {
    /// The fingerprint the search used for `s`.
    pub fn fp(&self, s: &M::State) -> u64 {
        if self.symmetry {
            fingerprint(&self.model.representative(s)) & self.mask
        } else {
            fingerprint(s) & self.mask
        }
    }

    /// Replays `steps` from `init_states()[init]` (whose state index is `root`), returning the
    /// actions taken and the concrete final state.
    pub fn replay(
        &self,
        root: u32,
        init: usize,
        steps: &[Step],
    ) -> Result<(Vec<M::Action>, M::State), EngineError> {
        let err = |step: usize, reason: String| EngineError::Replay { init, step, reason };
        let mut state = self
            .model
            .init_states()
            .into_iter()
            .nth(init)
            .ok_or_else(|| err(0, format!("initial state {init} no longer exists")))?;
        if self.seen.get(self.fp(&state)) != Some(root) {
            return Err(err(0, format!("initial state {init} changed: {state:?}")));
        }
        let mut actions = Vec::new();
        let mut out = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            actions.clear();
            self.model.actions(&state, &mut actions);
            let leads_to_child = |a: &M::Action| {
                let next = self.model.next_state(&state, a);
                (self.seen.get(self.fp(&next)) == Some(step.child)).then_some(next)
            };
            let mut found = actions
                .get(step.action as usize)
                .and_then(|a| leads_to_child(a).map(|n| (a.clone(), n)));
            if found.is_none() && self.symmetry {
                found = actions
                    .iter()
                    .find_map(|a| leads_to_child(a).map(|n| (a.clone(), n)));
            }
            let Some((action, next)) = found else {
                return Err(err(
                    i,
                    format!(
                        "no enabled action of {state:?} (action #{} of {} stored) leads to state #{}",
                        step.action,
                        actions.len(),
                        step.child
                    ),
                ));
            };
            out.push(action);
            state = next;
        }
        Ok((out, state))
    }
}

/// The states a trace visits, `init` first: `actions.len() + 1` states. Checks that every action
/// is enabled where it is taken; returns [`EngineError::Replay`] otherwise. Useful to print a
/// trace found by [`crate::check`].
pub fn trace_states<M: Model>(
    model: &M,
    trace: &crate::Trace<M::Action>,
) -> Result<Vec<M::State>, EngineError> {
    let init = trace.init;
    let err = |step: usize, reason: String| EngineError::Replay { init, step, reason };
    let mut state = model
        .init_states()
        .into_iter()
        .nth(init)
        .ok_or_else(|| err(0, format!("initial state {init} does not exist")))?;
    let mut states = Vec::with_capacity(trace.actions.len() + 1);
    let mut enabled = Vec::new();
    for (i, a) in trace.actions.iter().enumerate() {
        enabled.clear();
        model.actions(&state, &mut enabled);
        if !enabled.contains(a) {
            return Err(err(i, format!("{a:?} is not enabled in {state:?}")));
        }
        let next = model.next_state(&state, a);
        states.push(std::mem::replace(&mut state, next));
    }
    states.push(state);
    Ok(states)
}
