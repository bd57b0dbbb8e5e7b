//! # mmcid-kmodel: the kernel around the MM CID code
//!
//! A deterministic state machine of the parts of Linux that the CID code runs inside: CPUs with
//! their run queues and `rq->curr`, tasks (thread group, mm, scheduler state, CPU, affinity, and
//! the *program point* of the kernel operation each is in), mms with their CID state and deferred
//! work, the thread lists (as each task's list position) and the process list in publication order, and
//! operation budgets. Its
//! transitions ([`ops::Step`]) are the kernel's atomic steps, each a critical section taken under
//! exactly the locks the spec names (`shared/spec/kernel-mmcid.md` section 10), so that the
//! interleavings the checker explores are the kernel's. The CID algorithm itself is
//! `mmcid-cid`; this crate only decides *when* each of its functions runs and with what.
//!
//! ## Shape
//! - [`state`]: the [`state::State`] (Copy, no heap: millions are stored; tasks packed, see
//!   [`tasks`]). Derived facts are
//!   computed: `rq->curr` and run queues from the tasks' scheduler states, lock owners from the
//!   program points ([`rewrite::cid_op::mutex_owner`], [`rewrite::cid_op::lock_owner`],
//!   [`state::State::rq_locked`]).
//! - [`ops`]: [`ops::enabled`] (guards) and [`ops::apply`] (effects), shared by the checker,
//!   replay and the random walks, one module per kernel operation. The module doc lists where the
//!   kernel operations are cut.
//! - [`legacy`]: the hooks of the pre-rewrite designs (6.3, 6.4–6.18) at the same decision points.
//! - [`invariants`]: spec section 6 as named checks, and when each must hold.
//! - [`symmetry`]: task renaming; [`model`]: the engine's `Model` over all of this.
//! - [`trace`]: kernel names for steps, traces and typed state snapshots; [`facts`]: what a step
//!   changed and what is wrong in a state, as typed values (the CLI lays them out as CPU-column
//!   traces and reports); [`scenario`]: the text format and
//!   replay; [`checker`] and [`matrix`]: running the engine and saying what it found in kernel terms;
//!   [`hunt`]: looking for bugs over many configurations (exhaustive where it fits, swarm beyond).
//! - [`init`]: the initial state, built by the model's own steps from a [`Config`].
//!
//! ## Designs
//! A [`Design`] is a value ([`DESIGNS`]): the 7.0 family by its switches (designs.md S1–S9; the
//! fixes of `docs/findings/` and upstream's 7.1.3 guard are switches too), the
//! older designs by their [`Family`]. One process checks every design.
//!
//! ## What the model does not show
//! Sequential consistency: memory-ordering bugs (the 6.19-rc7 two-word mode under a weak memory
//! model, the 2024 barrier fix of 6.4–6.18) stay invisible; lock sections are atomic to lock-free
//! readers. Time is nondeterminism (any preemption, migration or compaction may happen at any
//! allowed point). Bounds are budgets of operations: a stall is a stall within them.
pub mod checker;
pub mod config;
pub mod encode;
pub mod facts;
pub mod family;
pub mod fixed;
pub mod hunt;
pub mod init;
pub mod invariants;
pub mod legacy;
pub mod matrix;
pub mod mms;
pub mod model;
pub mod ops;
pub mod replay;
pub mod rewrite;
pub mod scenario;
pub mod snapshot;
pub mod state;
pub mod symmetry;
pub mod tasks;
pub mod trace;
pub use config::{Budgets, Config, DESIGNS, Design, FamilyKind};
pub use family::{Family, Lazy618, ModelVisitor, PerSwitch63, Rewrite, with_model};
pub use model::KernelModel;
