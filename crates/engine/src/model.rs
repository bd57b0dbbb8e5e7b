//! The contract between the engine and whatever it explores.
//!
//! The engine knows nothing of CIDs or kernels: it explores any finite, deterministic transition
//! system that implements [`Model`]. Everything domain-specific (which properties exist, when they
//! must hold, which agent takes a step, who is spinning, how states are canonicalised under
//! symmetry) is answered by the model.

use std::fmt::Debug;
use std::hash::Hash;

/// Identifies who takes a step (a CPU, a task, a kworker...). Used for weak fairness and for
/// spin (stall / live-lock) detection. Dense small numbers, `0..Model::agents()`.
pub type Agent = u16;

/// What kind of promise a property is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyKind {
    /// Must hold in every reachable state where the model says it applies. Reported when a state
    /// *violates* it ([`Model::check`] pushes its index).
    Always,
    /// Should be reached at least once ("sometimes"), so that a run that never reaches it is known
    /// to be too small. Reported when a state *witnesses* it.
    Sometimes,
}

/// Static description of one property of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyInfo {
    /// Short id, e.g. `"I1"`.
    pub name: &'static str,
    /// One sentence in the domain's terms.
    pub description: &'static str,
    /// Always (safety invariant) or Sometimes (reachability).
    pub kind: PropertyKind,
}

/// A finite, deterministic transition system.
///
/// Rules the engine relies on:
/// - [`Model::actions`] and [`Model::init_states`] enumerate in a fixed, deterministic order (no
///   hash-map iteration), because traces are stored as action *indices* and rebuilt by replay.
/// - [`Model::next_state`] is a pure function of `(state, action)`.
/// - [`Model::representative`] maps every state of a symmetry class to the same state, and the
///   class must be closed under the transition relation (permuting interchangeable ids commutes
///   with taking a step). The default is the identity (no reduction).
pub trait Model: Sync {
    /// A state. Without [`Model::codec`] the frontier holds full states, so keep it small; with
    /// it the frontier holds encodings and the in-memory layout matters only for speed.
    type State: Clone + Eq + Hash + Debug + Send + Sync;
    /// A step label.
    type Action: Clone + Eq + Debug + Send + Sync;

    /// The initial states, in a fixed order.
    fn init_states(&self) -> Vec<Self::State>;

    /// Appends the actions enabled in `state` to `out` (which the caller cleared), in a fixed order.
    fn actions(&self, state: &Self::State, out: &mut Vec<Self::Action>);

    /// The state reached by taking `action` (one returned by [`Model::actions`]) in `state`.
    fn next_state(&self, state: &Self::State, action: &Self::Action) -> Self::State;

    /// The properties, indexed by position. [`Model::check`] refers to them by index.
    fn properties(&self) -> Vec<PropertyInfo>;

    /// Appends the indices of the properties that *fire* in `state`: an `Always` property that is
    /// violated here, a `Sometimes` property that is witnessed here.
    fn check(&self, state: &Self::State, out: &mut Vec<usize>);

    /// The canonical representative of `state`'s symmetry class (identity by default).
    fn representative(&self, state: &Self::State) -> Self::State {
        state.clone()
    }

    /// Number of agents; agents are `0..agents()`.
    fn agents(&self) -> usize;

    /// The agent that takes `action` in `state`.
    fn agent(&self, state: &Self::State, action: &Self::Action) -> Agent;

    /// True if `action` is a spin retry (e.g. another lap of a `cpu_relax()` loop). Retries do not
    /// count as progress: weak fairness is about the agent's *other* steps.
    fn is_retry(&self, state: &Self::State, action: &Self::Action) -> bool;

    /// Appends the agents that are spinning in `state` (their only way forward is a retry that may
    /// keep failing).
    fn spinning(&self, state: &Self::State, out: &mut Vec<Agent>);

    /// True if [`Model::representative`] never renames agents and maps spinning agents to spinning
    /// agents (for example: symmetry permutes tasks while the agents are CPUs). Then a stall or a
    /// weakly fair cycle of symmetry classes is one of states (a class cycle, repeated at most
    /// the order of the permutation, closes into a state cycle with the same agents), and the
    /// engine allows symmetry together with liveness. Default: false.
    fn symmetry_preserves_agents(&self) -> bool {
        false
    }

    /// A human name for an agent, used in reports (e.g. `"CPU1"`).
    fn agent_name(&self, agent: Agent) -> String {
        format!("agent{agent}")
    }

    /// True if the model implements the compact byte encoding ([`Model::encode`],
    /// [`Model::decode`]). The engine then fingerprints encodings, stores the frontier as
    /// encoded bytes in arenas (no allocation per state) and decodes a state when it expands
    /// it; `mmcid-dist` ships encodings between workers and hosts. Default: false (states are
    /// fingerprinted through [`Hash`] and the frontier holds them whole).
    ///
    /// The contract, which the engine relies on and tests should check (see
    /// `crates/engine/tests/codec.rs` for a ready-made check):
    /// - **injective**: `encode(a) == encode(b)` only if `a == b`;
    /// - **round trip**: `decode(&encode(s)) == s`;
    /// - **deterministic**: the bytes depend on the state alone (no addresses, no hash-map
    ///   order), so fingerprints are reproducible run after run and host after host.
    fn codec(&self) -> bool {
        false
    }

    /// Appends the compact encoding of `state` to `out` (which may already hold other bytes: do
    /// not clear it). Only called when [`Model::codec`] is true. The default panics, since a
    /// model that says `codec() == true` must implement it.
    fn encode(&self, state: &Self::State, out: &mut Vec<u8>) {
        let _ = (state, out);
        unimplemented!("Model::codec() is true but Model::encode is not implemented")
    }

    /// The state whose encoding is `bytes` (exactly what one [`Model::encode`] call appended).
    /// Only called when [`Model::codec`] is true, on bytes the model encoded itself.
    fn decode(&self, bytes: &[u8]) -> Self::State {
        let _ = bytes;
        unimplemented!("Model::codec() is true but Model::decode is not implemented")
    }

    /// Appends the encoding of `state`'s symmetry class representative: what the engine
    /// fingerprints under symmetry. The default is `encode(&representative(state))`; a model can
    /// do better by canonicalising while it encodes (for example by encoding tasks in sorted
    /// order without building the permuted state). Must equal `encode(&representative(state))`
    /// up to injectivity: two states get the same bytes iff they have the same representative.
    fn encode_canonical(&self, state: &Self::State, out: &mut Vec<u8>) {
        self.encode(&self.representative(state), out)
    }

    /// Appends `state`'s encoding to `out` and, unless `state` is already its class's
    /// representative, the canonical encoding to `canonical`; returns whether it did (`false`:
    /// the encoding in `out` is the canonical one). What the engine calls for every successor
    /// under symmetry, so that a state already in canonical form is encoded once. The default
    /// always writes both.
    /// Appends the canonical encoding of `state` (as [`Model::encode_canonical`]) to `out` and
    /// returns whether it may differ from `state`'s own encoding. `false` promises that it is
    /// `state`'s own encoding. What the engine calls under symmetry when it numbers successors as
    /// it finds them (one worker): a state's own encoding is then written only when the state
    /// is new, and most successors are not. The default returns `true`.
    fn encode_representative(&self, state: &Self::State, out: &mut Vec<u8>) -> bool {
        self.encode_canonical(state, out);
        true
    }

    fn encode_pair(&self, state: &Self::State, out: &mut Vec<u8>, canonical: &mut Vec<u8>) -> bool {
        self.encode(state, out);
        self.encode_canonical(state, canonical);
        true
    }
}
