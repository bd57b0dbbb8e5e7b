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
//! run with the last events in CPU columns ([`trace`], from a replay of the run).
//!
//! ## Speed
//! A run is one thread; independent runs (designs × seeds × workloads) share the cores through
//! rayon ([`run_all`]). The figure of merit is the cost of a simulated context switch on the 7.0
//! thread-pool bench (`mmcid sim --bench --design 7.0`: 64 CPUs, 256 workers, 20 µs bursts and
//! 60 µs sleeps, 1.33 events and 0.66 wake-ups per switch), counted in instructions by callgrind
//! (load-independent, unlike the shared machine's clock): 938 when the simulator first ran it, 884,
//! 762, 704 and now 595 (6.18 751, 6.3 741). The last round, each step checked to leave every
//! output bit for bit (`.ci/same-sim`):
//! - a violation's trace comes from a replay ([`Machine::run_until`]) instead of a record written
//!   per event (704 → 671);
//! - [`machine::Work`] is `Copy`, the kernel operation under way in a side table, so that the
//!   event loop's writes of a CPU's work carry no drop glue (→ 660);
//! - 7.0's switch measures its traffic per half, schedout on prev's mm and schedin on next's
//!   (→ 649);
//! - the balancer reads the idle bitmap and each candidate's load once (→ 645);
//! - the calendar queue (→ 604 with the above; its module doc has the steps);
//! - I1's running-CID sets in one vector, the CPU remembering the mm it recorded its CID for
//!   (→ 595).
//!
//! Where the 604 went before that last step (callgrind, each function with what it inlines, calls
//! not included): the switch with its idle pull and CID calls ≈ 220, the wake-up (balancer,
//! migration, queueing) ≈ 100, the return to user space ≈ 100, the burst end ≈ 80, the event loop
//! ≈ 50, sampling ≈ 8.
//! Across them the calendar queue takes ≈ 60 and the table lookups ≈ 60 (a lookup after any call
//! through `&mut self` reloads the table's base and mask); the I1/I2 checks and the histograms at
//! the return to user space ≈ 70 (measured by taking them out). Tried and dropped, each more
//! instructions or no fewer: caching the far heap's first bucket, handing `curr` to the return to
//! user space through a second function, inlining the event functions into their callers (register
//! pressure), a window of 4096 buckets, a count of queued tasks that lets a CPU going idle skip its
//! pull (on the thread pool some CPU nearly always has a waiter).
//!
//! The plain release build runs the bench at 15.3 M switches/s (median of 8 alternating runs at
//! load 1.2 on this shared 2-vCPU "AMD EPYC", ≈ 3.0 GHz by a loop of dependent adds; peak RSS 8
//! MB; the same code ran 12.8 M/s in a batch an hour earlier, the machine's speed moves by that
//! much): 200–235 cycles a switch at 2.6–3.0 instructions a cycle, where 20 M/s (issue 12's target)
//! leaves 150 cycles, 390–450 instructions at those rates. `scripts/pgo-build` builds the
//! simulator with profile-guided optimisation trained on the other workloads: 554 instructions,
//! 15.9 M switches/s in the same runs (best run 17.8 M).

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
