//! Progress reporting during a check.

/// A snapshot of a running check.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Progress {
    /// Distinct states stored so far.
    pub states: u64,
    /// Edges explored so far (including those to already-seen states).
    pub transitions: u64,
    /// Depth of the BFS level being expanded.
    pub depth: u32,
    /// States queued on the frontier.
    pub frontier: u64,
    /// Seconds since the check started.
    pub elapsed_secs: f64,
    /// Bytes held by the engine's stores (Seen, Parents, Frontier, liveness graph).
    pub memory_bytes: u64,
}

/// Receives progress while a check runs. [`Observer::progress`] is called at every BFS level
/// boundary and at most every ~100 000 new states in between.
pub trait Observer {
    /// A progress snapshot.
    fn progress(&mut self, p: &Progress);
    /// The search is over (called once, before the analysis that builds traces returns).
    fn done(&mut self) {}
}

/// An [`Observer`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn progress(&mut self, _p: &Progress) {}
}
