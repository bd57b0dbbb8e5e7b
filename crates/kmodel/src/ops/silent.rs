//! Reduction: silent steps are taken at once, inside the transition that reached them.
//!
//! Many kernel steps touch nothing another CPU can see: `copy_process` (the child is in no list
//! yet), `do_exit` and `bprm_execve` up to the CID call (they only move the task's own program
//! point to the CID lock section it will take next), `exec_binprm_fails`, `sched_post_fork` and
//! `sched_mm_cid_after_execve` (they only queue the task's own CID operation), a failed fork's
//! cleanup up to its CID call, the kworker entering the work function. Explored as steps of their
//! own they multiply the interleavings (every other CPU may act before each of them) without
//! adding any behaviour. With reduction on, a task that reaches such a point while it runs on the
//! transition's CPU takes the step at once, inside the same transition, until it reaches a point
//! that is not silent. Traces still print every kernel step (the transition is replayed step by
//! step, [`apply_recording`]); scenarios are kernel steps and replay with reduction off.
//!
//! # Which points are silent
//! A program point of task T is silent ([`silent`]) when the step T takes there
//! 1. is T's only enabled step and is enabled whenever T runs with its switch complete (no lock,
//!    no choice): taking it eagerly never removes an alternative;
//! 2. reads and writes only T's program point, T's own CID operation word, or a child that is in
//!    no list yet (no other step's guard or effect reads them), so it commutes with every step of
//!    every other CPU and neither enables nor disables any of them;
//! 3. leaves every fact other steps and the analyses read unchanged: `rq->curr`, run queues,
//!    preemptibility, lock owners, IRQs, spins;
//! 4. never turns a violated property into a satisfied one (it may only make I2 apply, by
//!    returning the task to user space).
//!
//! The exec window adds two facts other steps read ([`State::exec_of_group`], [`State::in_exec`],
//! both derived from the exec'ing task's program point, and [`State::clone_fs_in_flight`], from
//! the forkers'). None of the silent points changes them: `bprm_execve`, the outcome of a failed
//! or checking exec and `sched_mm_cid_after_execve` keep the task inside execve (it leaves when
//! its CID operation returns, a step that is never silent); `copy_process` keeps the clone in
//! flight. A failed fork's cleanup ends the clone's flight, so it is silent only when no exec can
//! start any more (no exec budget left).
//!
//! Per family: the 7.0 family's hooks at these points only queue the task's own CID operation,
//! so all are silent; 6.3 and 6.18 do their CID work inside `do_exit`, `before_execve` and
//! `after_execve` themselves (shared bitmap and slots), and 6.18's `copy_mm` and failed-fork
//! cleanup change `mm_users`, which other CPUs' allocations read: not silent there
//! ([`crate::family::Family::SILENT_HOOKS`]).
//!
//! # Soundness
//! Let S be a silent step of T at point p, and u a state of the full graph with T at p (running or
//! preempted). By 2 and 3, S commutes with every step of another agent and with T's preemption
//! and migration, so from u every path of the full graph can be rearranged into one that takes S
//! first and visits, for each state v of the original, either v or S(v) — T waited at p, which
//! changes no other agent's options (1, 2) and no property except towards violation (4).
//! - Invariants: a property violated in v is violated in S(v) (4), and the reduced graph, which
//!   takes every silent step at once, reaches S*(v) (v with its pending silent steps done). Every
//!   reduced path is a path of the full graph, so nothing is reported that the kernel cannot do.
//! - Stalls: whether a spinning CPU can ever be released is the same at v and S(v): S is not a
//!   step of the spinner's CPU unless T runs there, in which case the CPU is not spinning in
//!   schedin; and by 2 the continuations of v and S(v) correspond one to one.
//! - Live locks, and the cycle proviso: a silent step moves T's program point strictly forward
//!   within an operation, so no cycle consists of silent steps only, and a silent step is never
//!   postponed (it is taken in the transition that reaches it), so no cycle of the reduced graph
//!   can ignore it. The fused step is taken by the same agent (T's CPU, the agent of the
//!   transition), so a weakly fair cycle of the full graph maps to one of the reduced graph with
//!   the same agents and the same enabledness of every other agent (2), and back.
//! - Shortest traces: a reduced trace is a real trace, but a violation first visible at v (with T
//!   waiting at p) is reported at S*(v), so a trace can be longer than the shortest by the silent
//!   steps taken eagerly. `--reduction off` reports exact shortest traces.

use mmcid_cid::CpuId;

use crate::family::Family;
use crate::ops::{Params, Step, apply_step};
use crate::state::*;

/// Is `task` at a silent point (see the module docs) and able to take the step now (running,
/// switch complete, its CPU's continuation free)?
pub fn silent<F: Family>(s: &State<F>, task: mmcid_cid::TaskId) -> bool {
    let t = s.task(task);
    if t.cid_op.is_some() || !s.on_cpu_settled(task) || F::cpu_blocks_tasks(&s.cpus[t.cpu as usize]) {
        return false;
    }
    match t.op {
        Op::Fork { at: ForkAt::Copy, .. } => F::SILENT_HOOKS.fork_copy,
        Op::Fork {
            at: ForkAt::PostFork, ..
        } => F::SILENT_HOOKS.post_fork,
        // A failed fork's child holds the group's fs until the cleanup (bad_fork_cleanup_fs), so
        // ending the cleanup changes what an exec starting now decides for fs->in_exec
        // (State::clone_fs_in_flight): silent only once no exec can start any more.
        Op::Fork {
            at: ForkAt::Failed, ..
        } => F::SILENT_HOOKS.fork_failed && !exec_may_start(s),
        Op::Exit { at: ExitAt::Cid } => F::SILENT_HOOKS.exit_start,
        Op::Exec {
            at: ExecAt::Before, ..
        } => F::SILENT_HOOKS.before_execve,
        Op::Exec {
            at: ExecAt::Outcome,
            kind,
            ..
        } => kind.stays_on_old_mm(),
        Op::Exec {
            at: ExecAt::After, ..
        } => F::SILENT_HOOKS.after_execve,
        Op::Work { .. } => F::SILENT_HOOKS.work_start,
        _ => false,
    }
}

/// Is any exec start budget left (an exec start reads `State::clone_fs_in_flight`)?
fn exec_may_start<F: Family>(s: &State<F>) -> bool {
    s.left.execs + s.left.exec_fails + s.left.exec_checks > 0
}

/// Which of a family's hooks at the kernel's call sites leave everything but the calling task
/// (and an unpublished child) alone, so that the kernel step around them is silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SilentHooks {
    /// [`Family::fork_copy`].
    pub fork_copy: bool,
    /// [`Family::post_fork`].
    pub post_fork: bool,
    /// [`Family::fork_failed`].
    pub fork_failed: bool,
    /// [`Family::exit_start`].
    pub exit_start: bool,
    /// [`Family::before_execve`].
    pub before_execve: bool,
    /// [`Family::after_execve`].
    pub after_execve: bool,
    /// [`Family::work_start`].
    pub work_start: bool,
}

impl SilentHooks {
    /// No hook is silent (reduction leaves the family's steps alone).
    pub const NONE: SilentHooks = SilentHooks {
        fork_copy: false,
        post_fork: false,
        fork_failed: false,
        exit_start: false,
        before_execve: false,
        after_execve: false,
        work_start: false,
    };
}

/// Takes the silent steps of the task running on `cpu`, one after the other, until it reaches a
/// point that is not silent. Each step taken is appended to `taken`, if given.
pub fn run_silent<F: Family>(p: &Params, s: &mut State<F>, cpu: CpuId, mut taken: Option<&mut Vec<Step>>) {
    while let Some(task) = s.curr(cpu) {
        if !silent(s, task) {
            return;
        }
        let step = Step::Next { task };
        apply_step(p, s, step);
        if let Some(t) = taken.as_deref_mut() {
            t.push(step);
        }
    }
}

/// Takes `step` (enabled in `s`) and, with reduction on, the silent steps it leads to on its
/// CPU; appends every kernel step taken (`step` first) to `taken`.
pub fn apply_recording<F: Family>(p: &Params, s: &mut State<F>, step: Step, taken: &mut Vec<Step>) {
    let cpu = crate::trace::cpu_of(s, step);
    apply_step(p, s, step);
    taken.push(step);
    if p.reduction {
        run_silent(p, s, cpu, Some(taken));
    }
}
