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
use crate::fingerprint::Fingerprinter;
use crate::model::Model;
use crate::parents::Step;
use crate::seen::Seen;

/// Replays stored paths against a model and the visited set of the search that found them.
pub(crate) struct Replayer<'a, M: Model> {
    pub model: &'a M,
    pub seen: &'a Seen,
    pub fp: Fingerprinter<'a, M>,
}

impl<M: Model> Replayer<'_, M> {
    /// The fingerprint the search used for `s`.
    pub fn fp(&self, s: &M::State) -> u64 {
        self.fp.of(s, &mut Vec::new())
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
            if found.is_none() && self.fp.symmetry() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::fingerprint;
    use crate::model::{Agent, PropertyInfo};

    /// States are numbers; `representative` merges `2k` and `2k + 1`. From 0 one can go to 2
    /// or 3 (the same class).
    struct Pairs;
    impl Model for Pairs {
        type State = u32;
        type Action = u32;
        fn init_states(&self) -> Vec<u32> {
            vec![0]
        }
        fn actions(&self, s: &u32, out: &mut Vec<u32>) {
            if *s == 0 {
                out.extend([3, 2]);
            }
        }
        fn next_state(&self, _s: &u32, a: &u32) -> u32 {
            *a
        }
        fn properties(&self) -> Vec<PropertyInfo> {
            Vec::new()
        }
        fn check(&self, _s: &u32, _out: &mut Vec<usize>) {}
        fn representative(&self, s: &u32) -> u32 {
            s / 2 * 2
        }
        fn agents(&self) -> usize {
            1
        }
        fn agent(&self, _s: &u32, _a: &u32) -> Agent {
            0
        }
        fn is_retry(&self, _s: &u32, _a: &u32) -> bool {
            false
        }
        fn spinning(&self, _s: &u32, _out: &mut Vec<Agent>) {}
    }

    #[test]
    fn symmetric_replay_falls_back_to_matching_the_class() {
        for symmetry in [true, false] {
            let r = |s: u32| if symmetry { s / 2 * 2 } else { s };
            let mut seen = Seen::new();
            seen.insert(fingerprint(&r(0))).unwrap(); // state 0
            seen.insert(fingerprint(&r(2))).unwrap(); // state 1
            let rep = Replayer {
                model: &Pairs,
                seen: &seen,
                fp: Fingerprinter::new(&Pairs, symmetry, 64),
            };
            // A stale action index (7 does not exist): only the symmetric replay can recover,
            // by picking the first action whose successor is in the expected class.
            let stale = [Step { child: 1, action: 7 }];
            match (symmetry, rep.replay(0, 0, &stale)) {
                (true, Ok((actions, last))) => assert_eq!((actions, last), (vec![3], 3)),
                (false, Err(EngineError::Replay { step: 0, .. })) => {}
                (_, other) => panic!("symmetry={symmetry}: {other:?}"),
            }
            // A correct index is used as is.
            let good = [Step { child: 1, action: 1 }];
            assert_eq!(rep.replay(0, 0, &good).unwrap(), (vec![2], 2));
            // A child no action reaches is an error, never a panic.
            let bad = [Step { child: 0, action: 0 }];
            assert!(matches!(rep.replay(0, 0, &bad), Err(EngineError::Replay { .. })));
            // So is a wrong root or a missing initial state.
            assert!(rep.replay(1, 0, &[]).is_err());
            assert!(rep.replay(0, 4, &[]).is_err());
        }
    }
}
