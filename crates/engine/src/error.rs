//! Errors the engine returns instead of panicking.

use crate::model::Agent;
use std::fmt;

/// Why a check could not run or could not finish its report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// `symmetry` and `liveness` were both requested. Stall and live-lock analysis needs the
    /// unreduced graph (a cycle in the quotient graph need not be a cycle of the system, and
    /// "agent *a* is spinning" is not invariant under permuting agents); run liveness with
    /// symmetry off.
    SymmetryWithLiveness,
    /// An option is out of range (e.g. `fingerprint_bits` not in `1..=64`).
    InvalidOption(String),
    /// More distinct states than the `u32` state indices allow.
    TooManyStates {
        /// The largest number of states supported.
        limit: u64,
    },
    /// Liveness analysis packs agents into 15 bits.
    TooManyAgents {
        /// `Model::agents()`.
        agents: usize,
        /// The largest supported.
        limit: usize,
    },
    /// The model returned an agent outside `0..agents()`.
    InvalidAgent {
        /// The agent returned.
        agent: Agent,
        /// `Model::agents()`.
        agents: usize,
    },
    /// `Model::check` pushed a property index outside `0..properties().len()`.
    InvalidProperty {
        /// The index pushed.
        index: usize,
        /// `properties().len()`.
        properties: usize,
    },
    /// Rebuilding a trace by replay failed: the model is not deterministic (an initial state, an
    /// action list or a successor differs from what the search saw), or, with symmetry,
    /// `representative` is not compatible with the transition relation.
    Replay {
        /// Index of the initial state the trace starts from.
        init: usize,
        /// Number of steps replayed successfully before the failure.
        step: usize,
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::SymmetryWithLiveness => write!(
                f,
                "liveness (stall / live-lock) analysis needs the unreduced state graph: \
                 turn symmetry reduction off to check liveness"
            ),
            EngineError::InvalidOption(s) => write!(f, "invalid option: {s}"),
            EngineError::TooManyStates { limit } => {
                write!(f, "more than {limit} distinct states: state indices are 32-bit")
            }
            EngineError::TooManyAgents { agents, limit } => {
                write!(
                    f,
                    "model has {agents} agents; liveness analysis supports at most {limit}"
                )
            }
            EngineError::InvalidAgent { agent, agents } => {
                write!(
                    f,
                    "model returned agent {agent} but declares only {agents} agents"
                )
            }
            EngineError::InvalidProperty { index, properties } => write!(
                f,
                "model reported property index {index} but declares only {properties} properties"
            ),
            EngineError::Replay { init, step, reason } => write!(
                f,
                "trace replay failed (from initial state {init}, after {step} steps): {reason}; \
                 the model is not deterministic or its symmetry is not sound"
            ),
        }
    }
}

impl std::error::Error for EngineError {}
