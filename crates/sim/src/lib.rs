//! # mmcid-sim: every MM CID design under real workloads at machine scale
//!
//! A seeded, deterministic discrete-event kernel ([`machine`]): `np` CPUs (up to 4096) with run
//! queues and clocks, tasks alternating run bursts and sleeps, time slices and preemption, a
//! wake-up balancer and idle pulls (migrations), processes with one mm each, `pthread_create`,
//! `posix_spawn` (vfork + execve, succeeding or failing), `exit`, `sched_setaffinity`, 7.0's
//! deferred work, 6.18's compaction scan on its period; lock sections, spins and fix-up walks take
//! simulated time while the other CPUs keep switching.
//!
//! ## One algorithm, two drivers
//! The CID code is `mmcid-cid`'s, the very functions the model checker (`mmcid-kmodel`) runs,
//! instantiated with the [`mmcid_cid::Wide`] storage instead of the compact one: [`cid`] only
//! decides which function runs at each kernel event, as the kernel model does. The designs are the
//! model's table ([`mmcid_kmodel::DESIGNS`]): the 7.0 code with each design's switches, and the
//! 6.18 and 6.3 code.
//!
//! ## What is measured ([`metrics`])
//! ID compactness (the CID range in use by an mm's running tasks against their number, sampled
//! over time; episodes with IDs above the optimum), the cache-line traffic of each context switch
//! (bitmap atomics, slot writes, lock acquisitions and waits, counted by the CID functions
//! themselves), mode switches, fix-up walks (length, mutex hold time), spins in `get_cid`
//! (laps, time with the rq lock held), 6.18's compaction (scans, age of the reclaimed CIDs), and
//! the simulator's own speed.
//!
//! ## Invariants
//! Checked as the run goes ([`config::Checking`]): I1 and I2 at every return to user space, D1 and
//! W after every CID call, I4–I8 per mm after its operations and periodically. A violation stops the
//! run with the last events in CPU columns ([`trace`]).

#![warn(missing_docs)]

pub mod cid;
pub mod config;
pub mod machine;
pub mod metrics;
pub mod ops;
pub mod queue;
pub mod report;
pub mod rng;
pub mod table;
pub mod trace;
pub mod workload;

pub use config::{Checking, Costs, SimConfig};
pub use machine::{Machine, Violation};
pub use report::{Outcome, run, run_all, run_all_until, run_until};
pub use workload::Workload;
