//! Options in, report out.

use crate::model::Agent;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag that stops a running check cleanly ([`Options::cancel`]): set it from another thread
/// (a Ctrl-C handler, a time-out) and the search returns its partial report with
/// [`Cut::Interrupted`] within a few milliseconds. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the search to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// True once [`Cancel::cancel`] was called on this flag or a clone.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Two flags are equal when they are the same flag.
impl PartialEq for Cancel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Cancel {}

/// The default of [`Options::workers`]: the `MMCID_WORKERS` environment variable if it holds a
/// positive number, else every core the process may use.
pub fn all_cores() -> usize {
    std::env::var("MMCID_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .filter(|&w| w > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How to run a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Store fingerprints of [`crate::Model::representative`] instead of the state itself, so
    /// one state per symmetry class is explored. Incompatible with `liveness`.
    pub symmetry: bool,
    /// Keep the explored graph and look for stalls and live locks (see [`crate::liveness`]).
    /// Only analysed when the exploration is complete.
    pub liveness: bool,
    /// Stop once this many distinct states are stored (the report is then incomplete).
    pub max_states: Option<u64>,
    /// Do not expand states at this depth or deeper (the report is then incomplete if any
    /// state at that depth was reached).
    pub max_depth: Option<u32>,
    /// Stop as soon as an `Always` property is violated (default false: run to completion and
    /// report the shortest witness of every property that fires).
    pub stop_at_first_violation: bool,
    /// On-the-fly stall detection without the graph ([`crate::stall`]): for each new state in which
    /// an agent spins, explore up to this many states from it to decide whether anything releases
    /// it. `None`: off. Finds stalls (shortest first) but not live locks; cheap in memory.
    pub stall_search: Option<u64>,
    /// Width of the fingerprints, `1..=64` (default 64). Narrower values exist to test collision
    /// handling and the collision estimate; they make the search unsound.
    pub fingerprint_bits: u32,
    /// Threads that expand states (default: every core, or `MMCID_WORKERS`: [`all_cores`]). Any value gives the
    /// same report (counts, state numbering, findings and traces); only time changes. See the
    /// crate doc's "Parallel levels".
    pub workers: usize,
    /// Stops the search cleanly when set ([`Cut::Interrupted`]).
    pub cancel: Option<Cancel>,
    /// Stops the search cleanly ([`Cut::MemoryLimit`]) before the process's resident memory
    /// (or the engine's own accounting, whichever is larger) would pass this many bytes. It is
    /// checked before every batch of a few thousand states, against the batch's worst case
    /// (including a doubling of the visited set), so the search stops *before* an allocation
    /// could fail.
    pub memory_limit: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            symmetry: false,
            liveness: false,
            max_states: None,
            max_depth: None,
            stop_at_first_violation: false,
            stall_search: None,
            fingerprint_bits: 64,
            workers: all_cores(),
            cancel: None,
            memory_limit: None,
        }
    }
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    /// An `Always` property is violated in the trace's last state.
    Invariant,
    /// A `Sometimes` property is witnessed in the trace's last state.
    Sometimes,
    /// The agent spins in the trace's last state and no continuation ever lets it stop.
    Stall,
    /// The trace is a lasso: the agent spins forever on the cycle, and the cycle is weakly fair
    /// to every agent.
    Livelock,
}

/// A path from an initial state, possibly ending in a cycle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trace<A> {
    /// Index into [`crate::Model::init_states`].
    pub init: usize,
    /// The actions, in order, from that initial state.
    pub actions: Vec<A>,
    /// For a lasso: `actions[cycle_start..]` is a cycle that leads back to the state reached
    /// after `actions[..cycle_start]`.
    pub cycle_start: Option<usize>,
}

/// One result of a check, with its witness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding<A> {
    /// Index into [`crate::Model::properties`]; `None` for stalls and live locks.
    pub property: Option<usize>,
    /// What was found.
    pub kind: FindingKind,
    /// The stalled / live-locked agent (stall and live lock only).
    pub agent: Option<Agent>,
    /// Length of the shortest path to the state in question (for a lasso: of the prefix).
    pub depth: u32,
    /// The witness.
    pub trace: Trace<A>,
}

/// Why a search stopped before exhausting the state space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cut {
    /// `max_states` was reached.
    MaxStates,
    /// `max_depth` was reached with states left to expand.
    MaxDepth,
    /// `stop_at_first_violation` and an `Always` property fired.
    FirstViolation,
    /// [`Options::cancel`] was set.
    Interrupted,
    /// Going on would have passed [`Options::memory_limit`].
    MemoryLimit,
}

/// Memory held by the engine's stores, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// The visited set (fingerprints and hash table).
    pub seen_bytes: u64,
    /// Parent pointers.
    pub parents_bytes: u64,
    /// Largest size of the BFS frontier (its chunks; for models without a codec, heap owned by
    /// the states themselves is not counted).
    pub frontier_peak_bytes: u64,
    /// The explored graph kept for liveness (0 without liveness).
    pub graph_bytes: u64,
}

/// The outcome of [`crate::check`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report<A> {
    /// Distinct states stored (symmetry classes with `symmetry`).
    pub unique_states: u64,
    /// Edges explored, including those to already-seen states.
    pub transitions: u64,
    /// Depth of the deepest state reached.
    pub max_depth: u32,
    /// Wall-clock seconds for the whole check (search, analysis, traces).
    pub seconds: f64,
    /// True if every reachable state was expanded (no bound cut the search).
    pub complete: bool,
    /// Why the search stopped early, if it did.
    pub cut: Option<Cut>,
    /// States discovered but not expanded when the search stopped.
    pub states_left_on_frontier: u64,
    /// Whether symmetry reduction was on.
    pub symmetry: bool,
    /// Whether stall / live-lock analysis ran (requested and the search was complete).
    pub liveness_checked: bool,
    /// Number of spinning states whose stall question the on-the-fly search left undecided
    /// (its per-state limit was reached); 0 when [`Options::stall_search`] is off.
    pub stalls_undecided: u64,
    /// Width of the fingerprints used.
    pub fingerprint_bits: u32,
    /// Estimated probability that two distinct states shared a fingerprint, so that one was
    /// wrongly skipped ([`crate::fingerprint::collision_probability`]).
    pub collision_probability: f64,
    /// (Seen + Parents bytes) / `unique_states`: what the stores that grow with every state
    /// cost per state. Not what the process uses: see [`Report::peak_rss_bytes`].
    pub bytes_per_state: f64,
    /// The process's peak resident set size during the check (Linux `VmHWM`, reset when the
    /// check starts), in bytes: what a user's machine must have. `None` where it cannot be read.
    /// It covers the whole process, so other work running at the same time counts too.
    pub peak_rss_bytes: Option<u64>,
    /// `peak_rss_bytes / unique_states`: memory as a user meets it, per state.
    pub peak_rss_per_state: Option<f64>,
    /// Threads that expanded states ([`Options::workers`]).
    pub workers: usize,
    /// Memory of each store.
    pub memory: Memory,
    /// Indices of `Sometimes` properties that no reached state witnessed.
    pub unreached_sometimes: Vec<usize>,
    /// Everything found, each with a shortest witness: properties in index order, then stalls,
    /// then live locks, by agent.
    pub findings: Vec<Finding<A>>,
}

impl<A> Report<A> {
    /// Distinct states per second.
    pub fn states_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.unique_states as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// True if no `Always` property was violated and no stall or live lock was found.
    pub fn is_clean(&self) -> bool {
        self.findings.iter().all(|f| f.kind == FindingKind::Sometimes)
    }
}
