//! mmcid-engine: a generic explicit-state model checker.
//!
//! The engine explores every reachable state of a finite, deterministic transition system (any
//! type implementing [`Model`]), checks safety and reachability properties in each state, and
//! optionally looks for agents that spin forever ([stalls](liveness#stall) and
//! [live locks](liveness#live-lock)). It knows nothing of the domain it explores: agents,
//! properties, "spinning" and symmetry are all answered by the model. Entry point: [`check`].
//!
//! ```
//! use mmcid_engine::{check, Agent, Model, NoObserver, Options, PropertyInfo, PropertyKind};
//!
//! /// A counter that two agents increment up to 3; "never reach 5" is violated.
//! struct Count;
//! impl Model for Count {
//!     type State = u8;
//!     type Action = Agent;
//!     fn init_states(&self) -> Vec<u8> { vec![0] }
//!     fn actions(&self, s: &u8, out: &mut Vec<Agent>) { if *s < 6 { out.extend([0, 1]) } }
//!     fn next_state(&self, s: &u8, a: &Agent) -> u8 { s + 1 + *a as u8 }
//!     fn properties(&self) -> Vec<PropertyInfo> {
//!         vec![PropertyInfo { name: "P", description: "never 5", kind: PropertyKind::Always }]
//!     }
//!     fn check(&self, s: &u8, out: &mut Vec<usize>) { if *s == 5 { out.push(0) } }
//!     fn agents(&self) -> usize { 2 }
//!     fn agent(&self, _: &u8, a: &Agent) -> Agent { *a }
//!     fn is_retry(&self, _: &u8, _: &Agent) -> bool { false }
//!     fn spinning(&self, _: &u8, _: &mut Vec<Agent>) {}
//! }
//!
//! let report = check(&Count, &Options::default(), &mut NoObserver).unwrap();
//! assert!(report.complete);
//! let violation = &report.findings[0];
//! assert_eq!(violation.depth, 3); // 0 -> 2 -> 4 -> 5 (or another path of length 3)
//! assert_eq!(violation.trace.actions.len(), 3);
//! ```
//!
//! # Design
//!
//! ## Three stores, as in TLC
//!
//! TLC's explicit-state checker keeps three structures, and so does this engine, one module each:
//!
//! - **Seen** ([`seen`]): the set of visited states, stored as 64-bit *fingerprints* (hashes),
//!   mapped to a dense `u32` state index. A state costs 8 bytes of fingerprint plus ~11–21 bytes
//!   of open-addressing table, whatever the size of the state itself.
//! - **Frontier** ([`frontier`]): the states discovered but not yet expanded (expanding needs
//!   the state). It only holds one or two BFS levels, in chunks. With the model's compact
//!   encoding ([`Model::codec`]) a chunk is a byte arena of encodings (~1 byte of overhead per
//!   state, no allocation per state); without it, a `Vec` of whole states.
//! - **Parents** ([`parents`]): for every state index, the index of the state it was first
//!   reached from and the position of the action taken in that state's enabled-action list.
//!   Parents are non-decreasing in breadth-first order, so they are stored as one-byte deltas
//!   (with checkpoints) and actions as one byte: about 2 bytes per state.
//!
//! Seen + Parents cost about 20–30 bytes per stored state ([`Report::bytes_per_state`]); the
//! frontier and the liveness graph are reported separately ([`Memory`]), and the process's peak
//! resident memory beside them (see "Memory as a user meets it").
//!
//! ## The compact encoding
//!
//! A model may implement [`Model::encode`] / [`Model::decode`] (and say so with
//! [`Model::codec`]): an injective, deterministic byte encoding with `decode(encode(s)) == s`.
//! Then the fingerprint is XXH3-64 (fixed seed) of the encoding — of
//! [`Model::encode_canonical`] under symmetry, which a model can compute without building the
//! representative — and the frontier stores encodings, decoding a state only when it expands
//! it. A 1.7 KB in-memory state that encodes to 40 bytes then costs 41 bytes on the frontier,
//! and hashing 40 contiguous bytes replaces walking the state's `Hash`. The same bytes are what
//! `mmcid-dist` ships between workers and hosts. Without a codec everything works as before
//! (`Hash` fingerprints, whole states); both paths give the same report, state for state
//! (`tests/workers.rs`).
//!
//! ## Parallel levels
//!
//! [`Options::workers`] threads (default: every core) explore with *exactly* the sequential
//! result: the same counts, the same state numbering, hence the same shortest traces and the
//! same findings, and a search cut by a bound stops at the same state. Each level is expanded
//! in batches of a few thousand parents per worker, in four phases ([`bfs`]):
//!
//! 1. *expand* (parallel, by frontier chunk): successors are encoded and fingerprinted; those
//!    already in Seen are dropped (Seen is read-only in this phase; probes are prefetched);
//! 2. *number*: the candidates' duplicates within the batch are found in parallel (phase 1
//!    buckets candidates by fingerprint slice; each worker owns slices) and the first
//!    occurrence of each wins — in (parent, action) order, which is the order the sequential
//!    search discovers states in. The first occurrences are new, so the k-th is state
//!    `len + k`: the main thread appends their fingerprints in one sequential scan;
//! 3. *check* (parallel): workers place the new states in Seen's table (a compare-and-swap
//!    per slot), check the properties, run the on-the-fly stall search, and pack the new
//!    states into the next level's frontier chunk;
//! 4. *commit* (sequential, new states only): parent links, findings, and every stop
//!    condition, state by state in index order; then the chunk is appended to the frontier.
//!
//! Three barriers per batch of 16 Ki parents per worker: on a loaded machine each barrier can
//! cost a scheduler time slice, so batches are large (their candidates are the price, a few
//! tens of MiB, bounded in bytes for whole states).
//!
//! The stall search ([`Options::stall_search`]) runs in phase 3; an agent found stalled earlier
//! in the same batch is not decided again, as the sequential search would not ask. Full
//! liveness works with workers too, but its graph is filled sequentially in phase 4 (one edge
//! per transition), so it gains less. With one worker, phase 1 inserts into Seen as it goes
//! and keeps only new states (no batch-wide duplicate search).
//!
//! ## Memory as a user meets it
//!
//! The stores account for their own bytes ([`Memory`]), but what a user's machine must have is
//! the process's peak resident set size, which also counts allocator slack, the frontier's
//! chunks, the candidates of a batch and the model itself. The engine resets Linux's `VmHWM`
//! when a check starts and reports it ([`Report::peak_rss_bytes`],
//! [`Report::peak_rss_per_state`]). To keep it close to the accounting, the stores grow in
//! fixed chunks instead of doubling `Vec`s ([`chunked`]): no 2× slack, no old-plus-new buffer
//! during a reallocation; only Seen's table doubles (it must rehash), and the memory limit
//! knows when it will.
//!
//! ## Clean stops
//!
//! [`Options::cancel`] (a shared flag) and [`Options::memory_limit`] stop the search between
//! batches — and the stall sub-searches between states — with [`Cut::Interrupted`] or
//! [`Cut::MemoryLimit`] and the partial report: the findings so far with their traces, the
//! counts, the states left. The memory limit is checked before every batch against the larger
//! of the resident size and the stores' accounting, plus the batch's worst case (including a
//! doubling of Seen's table), so the search stops before an allocation could fail.
//!
//! ## Beyond one machine: `mmcid-dist`
//!
//! The `mmcid-dist` crate runs the same exploration on timely-dataflow: states are
//! partitioned by fingerprint across workers, processes and hosts, encodings travel between
//! them, and levels are synchronised by timely's progress tracking. It counts exactly the
//! states and transitions this engine counts. Its crate doc says how to run it on N hosts and
//! why timely (routing, flow control and above all "is this round finished everywhere" are
//! what a home-made protocol gets wrong).
//!
//! ## Parent pointers and replay
//!
//! A witness trace is rebuilt after the search by walking parent pointers back to an initial
//! state and *replaying* the path forwards: regenerate the enabled actions of the current
//! concrete state, take the stored one, and check that the successor's fingerprint maps to the
//! expected state index ([`trace`]). This is how TLC rebuilds traces from its trace file. Replay
//! costs a few model calls per step, once per finding; in exchange nothing path-shaped is kept
//! during the search. It also re-checks determinism: a model whose `actions` or `next_state`
//! changed between search and replay yields [`EngineError::Replay`], never a panic or a wrong
//! trace.
//!
//! ## Level-by-level BFS: shortest traces
//!
//! The frontier is processed one depth at a time ([`frontier`]): every state of depth `d` is
//! expanded before any state of depth `d + 1` (with workers too: see "Parallel levels"). The first time a state is reached is therefore a
//! shortest way to reach it, its parent pointer lies on a shortest path, and every reported trace
//! (the first state firing each property, the first stalled state, the prefix of a lasso) is as
//! short as possible. State indices are handed out in discovery order, so they are also sorted by
//! depth: "smallest index" means "closest to an initial state".
//!
//! ## Fingerprints and the collision estimate
//!
//! Two different states with the same fingerprint are merged: the second is taken for the
//! first and never expanded. The hasher ([`fingerprint`]) has a fixed seed, so runs are
//! reproducible. Assuming fingerprints behave like random 64-bit numbers, the probability that
//! *any* two of the `n` stored states collide is at most `n(n−1)/2 / 2^64 ≈ n²/2^65`
//! ([`Report::collision_probability`]): about 3·10⁻⁶ for ten million states. A collision can
//! only hide states (make the search miss something), never invent a finding: every reported
//! trace is replayed on the concrete model. [`Options::fingerprint_bits`] narrows fingerprints
//! to show this in tests. The estimate holds for both fingerprint functions (XXH3 over the
//! encoding, or the `Hash`-based [`fingerprint::FpHasher`]).
//!
//! ## Symmetry
//!
//! With [`Options::symmetry`], Seen stores the fingerprint of
//! [`Model::representative`]`(state)` (with a codec: of [`Model::encode_canonical`]), so one
//! state per symmetry class is expanded (the first *concrete* state reached in the class;
//! properties are checked on that concrete state). The
//! model promises that the class is closed under the transition relation. Because the frontier
//! holds concrete states and Parents stores action positions in the concrete parent's action
//! list, replay reproduces exactly the concrete states the search expanded; should the stored
//! action not lead to the expected class, replay falls back to TLC's method of trying every
//! enabled action and keeping the one whose successor's representative has the expected
//! fingerprint. Symmetry is refused together with liveness ([`EngineError::SymmetryWithLiveness`])
//! unless the model declares [`Model::symmetry_preserves_agents`]: in general a cycle of classes
//! need not be a cycle of states, and "agent 2 spins" is not invariant under renaming agents. When
//! the symmetry never renames agents, a fair class cycle repeated up to the order of the
//! permutation is a fair state cycle, so stalls and live locks found on the quotient are real (a
//! live lock's cycle then ends in a state equal to its entry up to the symmetry).
//!
//! ## Liveness: stalls and live locks
//!
//! With [`Options::liveness`] the search also keeps the explored graph in CSR form (targets,
//! agent and retry bit per edge; a spinning bit set per agent). After a complete search:
//! a **stall** of agent `a` is a state where `a` spins and no reachable state has `a` not
//! spinning (backward reachability over reversed edges); a **live lock** of `a` is a cycle on
//! which `a` spins throughout although it could escape, and which is *weakly fair* to every
//! agent, spin retries not counting as progress (Tarjan's SCCs of the subgraph where `a` spins,
//! with an exact per-SCC fairness test). Live locks are reported as lassos
//! ([`Trace::cycle_start`]). The [`liveness`] module doc gives the algorithms, the fairness
//! notion and their limits.
//!
//! ## Beyond exhaustion: swarm
//!
//! [`swarm()`] runs many cheap random walks with different seeds and search orders (SPIN's swarm
//! idea), reporting invariant violations and stalls decided by the same bounded sub-search
//! ([`stall::decide`]) as the BFS; [`shrink()`] delta-debugs a violating action sequence to a
//! 1-minimal one. See the [`swarm` module](mod@swarm).
//!
//! ## Why not stateright
//!
//! Stateright is a fine library and this engine's tests follow the spirit of its `test_util`,
//! but (as of its 0.30 line) it falls short here in three ways. Its `eventually` properties are
//! only judged at terminal states and an edge back to a known state is not treated as a cycle,
//! so a live lock (an infinite fair loop) is invisible to it. Its symmetry reduction is only
//! used by its depth-first search, which has no shortest traces; and that DFS copies the full
//! path (a vector of fingerprints) into every queued job, so memory grows with depth × queue
//! length. Its BFS does keep parent fingerprints, but in a concurrent hash map without symmetry,
//! and shares work between threads in a way that does not expand strictly level by level. This
//! engine keeps TLC's constant-size parent pointers, level-by-level BFS *with* symmetry, and an
//! explicit fair-cycle analysis.

pub mod bfs;
pub mod chunked;
pub mod error;
pub mod fingerprint;
pub mod frontier;
pub mod liveness;
pub mod model;
pub mod observer;
pub mod parents;
pub mod report;
pub mod seen;
pub mod stall;
pub mod swarm;
pub mod trace;

pub use bfs::check;
pub use error::EngineError;
pub use model::{Agent, Model, PropertyInfo, PropertyKind};
pub use observer::{NoObserver, Observer, Progress};
pub use report::{Cancel, Cut, Finding, FindingKind, Memory, Options, Report, Trace, all_cores};
pub use swarm::{Flow, Hit, SwarmOptions, SwarmReport, Target, shrink, swarm};
pub use trace::trace_states;
