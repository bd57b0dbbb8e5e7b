//! 6.14–6.18 ([`Lazy618`]): CPUs keep CIDs lazily, migration steals them, remote clears and the
//! periodic compaction scan take them back (`mmcid_cid::legacy::v6_18`).
//!
//! The multi-step parts, each a piece the kernel can be interrupted between:
//! - `mm_cid_get` inside a switch-in or `after_execve` may stop at a cut or busy-wait: the CPU
//!   stays inside it ([`Cpu618::get`], rq lock held) and each further piece is a `SchedinRetry`;
//! - a migration to a CPU runs `sched_mm_cid_migrate_to` in `activate_task` with the destination
//!   rq lock held ([`Cpu618::migrating`]): fetch, steal, unset, place, as `Next` steps of the
//!   migrated task taken by that CPU;
//! - the compaction scan `mm_cid_work` (task_work on a return to user space, budget
//!   `compactions`) is the task's CID operation ([`WorkAt`]).

use mmcid_cid::legacy::v6_18::{self, GetCont, LegacyAlloc, Migrate, Mm618, RemoteClear, Task618};
use mmcid_cid::legacy::{self as lg, LegacyCid};
use mmcid_cid::{CpuId, CpuMask, TaskId};
use serde::{Deserialize, Serialize};

use crate::facts::{BitOwners, BitmapField, Counter, Effect, Fact, LegacyTaskField, Owner, SlotField};
use crate::family::{Family, Lazy618};
use crate::invariants::{Fired, Property as P};
use crate::legacy::running;
use crate::ops::silent::SilentHooks;
use crate::ops::{Params, Step};
use crate::snapshot::{
    CidOperation, CpuSnapshot, Migration, MmCidGet, MmCidSnapshot, Slot618Snapshot, TaskSnapshot,
};
use crate::state::*;
use crate::trace::{KernelFn, cn, tn};

/// The abstract clock passed to every 6.18 stamp.
const NOW: u8 = 0;

/// A 6.18 CPU: what it is in the middle of, holding its rq lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cpu618 {
    /// Inside `mm_cid_get` for its current task (a switch-in or `after_execve`), rq lock held,
    /// IRQs off, at this continuation (a busy-wait or a mere cut, see `GetCont::waits`).
    pub get: Option<GetCont>,
    /// In `activate_task` of a migrated task (its dst rq lock held) between the steps of
    /// `sched_mm_cid_migrate_to`: the task and the migration's next step. The CPU does nothing else
    /// until it completes.
    pub migrating: Option<(TaskId, Migrate)>,
}

/// Program points of the 6.18 compaction scan (designs.md E.2.6, E.2.7), which remote-clears at
/// most one CPU's CID per run (the second loop, "clear high", is not modelled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkAt {
    /// The first loop ("clear old") considers `cpu` next: clear it (its slot was unused for
    /// 100 ms) or skip it.
    Scan {
        /// The CPU considered.
        cpu: CpuId,
    },
    /// `sched_mm_cid_remote_clear`: the slot of `cpu` was marked `cid|LAZY`; next: check
    /// `rq(cpu).curr`, cmpxchg to UNSET.
    Marked {
        /// The CPU.
        cpu: CpuId,
        /// The CID marked.
        cid: LegacyCid,
    },
    /// The slot is UNSET, the bit still set and owned by this scan (IRQs off); next:
    /// `__mm_cid_put`.
    Unset {
        /// The CPU.
        cpu: CpuId,
        /// The CID in flight.
        cid: LegacyCid,
    },
}

impl From<WorkAt> for CidOperation {
    fn from(w: WorkAt) -> CidOperation {
        match w {
            WorkAt::Scan { cpu } => CidOperation::CompactionScan { cpu },
            WorkAt::Marked { cpu, cid } => CidOperation::CompactionMarked { cpu, cid },
            WorkAt::Unset { cpu, cid } => CidOperation::CompactionUnset { cpu, cid },
        }
    }
}

/// Is `rq(cpu).curr` an active CID user of mm `m` (`curr->mm_cid_active && curr->mm == mm`)?
pub fn curr_is_active_user(s: &State<Lazy618>, m: MmId, cpu: CpuId) -> bool {
    s.curr(cpu).is_some_and(|t| {
        let t = s.task(t);
        t.mm == Some(m) && t.cid.active
    })
}

/// Mm `m`'s and task `t`'s 6.18 states together.
/// `mmput`: 6.18 tracks `mm_users` (its allocator bounds CIDs by it).
fn mmput(s: &mut State<Lazy618>, m: MmId) {
    s.mm_mut(m).cid.mm_users -= 1;
}

/// Does `cpu` busy-wait in `mm_cid_get` (a fallback lap with no free bit below
/// `nr_cpus_allowed`, or `cid_lock` held by another CPU)? A mere cut is not a wait.
pub fn waits(s: &State<Lazy618>, cpu: CpuId) -> bool {
    let Some(k) = s.cpus[cpu as usize].get else {
        return false;
    };
    s.curr(cpu)
        .and_then(|t| s.task(t).mm)
        .is_some_and(|m| k.waits(&s.mm(m)))
}

/// May the first loop remote-clear `cpu` for mm `m` now (its `curr` is not an active user, its
/// slot holds a valid CID; time is abstracted)?
pub fn clear_candidate(s: &State<Lazy618>, m: MmId, cpu: CpuId) -> bool {
    v6_18::clear_old_candidate(&s.mm(m), cpu, curr_is_active_user(s, m, cpu))
}

/// The first CPU at or after `from` that is a candidate now (skipping the others is always a
/// possible choice of the abstracted clock).
fn next_candidate(s: &State<Lazy618>, m: MmId, from: CpuId) -> Option<CpuId> {
    (from..s.np()).find(|&c| clear_candidate(s, m, c))
}

/// Can `task` (in user space) run `mm_cid_work` with something to do?
fn can_compact(s: &State<Lazy618>, task: TaskId) -> bool {
    let t = s.task(task);
    s.left.compactions > 0 && t.cid.active && t.mm.is_some_and(|m| next_candidate(s, m, 0).is_some())
}

/// CIDs of mm `m` taken out of a slot whose bit is not cleared or placed yet: a remote clear
/// between its cmpxchg to UNSET and its `clear_bit`, a migration between its unset and its
/// placement.
pub fn in_flight(s: &State<Lazy618>, m: MmId) -> Vec<LegacyCid> {
    let mut out = Vec::new();
    for t in s.tasks.iter() {
        if let (Some(tm), Some(WorkAt::Unset { cid, .. })) = (t.mm, t.cid_op)
            && tm == m
        {
            out.push(cid);
        }
    }
    for c in s.cpus.iter() {
        if let Some((t, Migrate::InFlight(mc))) = c.migrating
            && s.task(t).mm == Some(m)
        {
            out.push(mc.cid);
        }
    }
    out
}

/// The next piece of `cpu`'s `mm_cid_get`.
fn get_retry(s: &mut State<Lazy618>, cpu: CpuId) {
    let k = s.cpus[cpu as usize].get.take().expect("not in mm_cid_get");
    let t = s.curr(cpu).expect("mm_cid_get without curr");
    let m = s.task(t).mm.expect("mm_cid_get for a task without mm");
    if let LegacyAlloc::Spin(k) = s.with_mm_task(m, t, |mm, task| v6_18::get_retry(mm, cpu, task, k, NOW)) {
        s.cpus[cpu as usize].get = Some(k);
    }
}

/// The next step of the migration `cpu` (the destination) is in.
fn migrate_next(s: &mut State<Lazy618>, cpu: CpuId) {
    let (task, st) = s.cpus[cpu as usize].migrating.take().expect("no migration");
    let m = s.task(task).mm.expect("migrating a task without mm");
    let r = match st {
        Migrate::Fetched(mc) => v6_18::migrate_steal(&mut s.mm_mut(m).cid, mc),
        Migrate::Stolen(mc) => {
            let busy = curr_is_active_user(s, m, mc.src);
            s.with_mm_task(m, task, |mm, t| v6_18::migrate_unset(mm, t, mc, busy))
        }
        Migrate::InFlight(mc) => v6_18::migrate_place(&mut s.mm_mut(m).cid, cpu, mc, NOW),
        Migrate::Done(_) => unreachable!("a finished migration is not stored"),
    };
    if !matches!(r, Migrate::Done(_)) {
        s.cpus[cpu as usize].migrating = Some((task, r));
    }
}

/// `task_work mm_cid_work` starts (the tick queued it; it runs on this return to user space).
fn compaction_start(s: &mut State<Lazy618>, task: TaskId) {
    s.left.compactions -= 1;
    let m = s.task(task).mm.expect("user task");
    s.task_mut(task).cid_op = next_candidate(s, m, 0).map(|cpu| WorkAt::Scan { cpu });
}

/// The scan's next step (`Next`): clear the CPU it considers, or finish a clear.
fn compaction_next(s: &mut State<Lazy618>, task: TaskId) {
    let m = s.task(task).mm.expect("user task");
    let at = s.task(task).cid_op.expect("not in mm_cid_work");
    let next = match at {
        WorkAt::Scan { cpu } => {
            v6_18::remote_clear_mark(&mut s.mm_mut(m).cid, cpu).map(|cid| WorkAt::Marked { cpu, cid })
        }
        WorkAt::Marked { cpu, cid } => {
            let busy = curr_is_active_user(s, m, cpu);
            match v6_18::remote_clear_unset(&mut s.mm_mut(m).cid, cpu, cid, busy) {
                RemoteClear::Unset(cid) => Some(WorkAt::Unset { cpu, cid }),
                _ => None,
            }
        }
        WorkAt::Unset { cid, .. } => {
            v6_18::remote_clear_drop(&mut s.mm_mut(m).cid, cid);
            None
        }
    };
    s.task_mut(task).cid_op = next;
}

/// The scan skips the CPU it considers (`Fail`): its slot was used within 100 ms.
fn compaction_skip(s: &mut State<Lazy618>, task: TaskId) {
    let m = s.task(task).mm.expect("user task");
    let Some(WorkAt::Scan { cpu }) = s.task(task).cid_op else {
        unreachable!("not scanning")
    };
    s.task_mut(task).cid_op = next_candidate(s, m, cpu + 1).map(|cpu| WorkAt::Scan { cpu });
}

/// `sched_mm_cid_exit_signals(t)` (or `sched_mm_cid_before_execve(t)`: the same code), one step.
fn exit_signals(s: &mut State<Lazy618>, task: TaskId) {
    let Some(m) = s.task(task).mm else {
        return;
    };
    let cpu = s.task(task).cpu;
    s.with_mm_task(m, task, |mm, t| v6_18::exit_signals(mm, cpu, t));
}

impl Family for Lazy618 {
    const KIND: crate::config::FamilyKind = crate::config::FamilyKind::Lazy618;
    /// `copy_mm` and a failed fork's cleanup change `mm_users`, which every allocation reads; the
    /// exit and execve hooks do the CID work themselves: only `sched_post_fork` is silent.
    const SILENT_HOOKS: SilentHooks = SilentHooks {
        post_fork: true,
        ..SilentHooks::NONE
    };
    type TaskCid = Task618;
    type CidOp = WorkAt;
    type TaskStore = (Task618, Option<WorkAt>);
    type MmStore = Mm<Self>;
    #[inline(always)]
    fn store_mm(mm: &Mm<Self>) -> Mm<Self> {
        *mm
    }
    #[inline(always)]
    fn load_mm(s: &Mm<Self>) -> Mm<Self> {
        *s
    }
    #[inline(always)]
    fn store_task(cid: &Task618, op: Option<&WorkAt>) -> Self::TaskStore {
        (*cid, op.copied())
    }
    #[inline(always)]
    fn load_task(s: &Self::TaskStore) -> (Task618, Option<WorkAt>) {
        *s
    }
    type MmCid = Mm618;
    type CpuCid = Cpu618;

    fn new_mm(np: u8, mask: CpuMask) -> Mm618 {
        Mm618::new(np, mask)
    }
    fn active(t: &Task618) -> bool {
        t.active
    }
    fn rq_locked(cpu: &Cpu618) -> bool {
        cpu.get.is_some() || cpu.migrating.is_some()
    }
    fn in_switch(cpu: &Cpu618) -> bool {
        cpu.get.is_some()
    }
    fn irqs_off(op: &WorkAt) -> bool {
        matches!(op, WorkAt::Unset { .. })
    }
    fn affinity_allowed(_p: &Params, _s: &State<Self>, _task: TaskId) -> bool {
        true
    }
    fn cpu_steps(_p: &Params, _s: &State<Self>, _cpu: CpuId, _out: &mut Vec<Step>) {}
    fn cid_op_steps(_p: &Params, s: &State<Self>, task: TaskId, out: &mut Vec<Step>) {
        let t = s.task(task);
        match t.cid_op {
            Some(WorkAt::Scan { cpu }) => {
                if clear_candidate(s, t.mm.expect("user task"), cpu) {
                    out.push(Step::Next { task });
                }
                out.push(Step::Fail { task });
            }
            _ => out.push(Step::Next { task }),
        }
    }
    fn user_steps(_p: &Params, s: &State<Self>, task: TaskId, out: &mut Vec<Step>) {
        if can_compact(s, task) {
            // task_work mm_cid_work on this return to user space.
            out.push(Step::Next { task });
        }
    }
    fn busy_cpu_steps(s: &State<Self>, cpu: CpuId, out: &mut Vec<Step>) {
        let c = &s.cpus[cpu as usize];
        if c.get.is_some() {
            out.push(Step::SchedinRetry { cpu });
        } else if let Some((task, _)) = c.migrating {
            out.push(Step::Next { task });
        }
    }
    fn apply_own(_p: &Params, s: &mut State<Self>, step: Step) {
        match step {
            Step::SchedinRetry { cpu } => get_retry(s, cpu),
            Step::Next { task } => {
                let cpu = s.task(task).cpu;
                if s.cpus[cpu as usize].migrating.is_some_and(|(m, _)| m == task) {
                    migrate_next(s, cpu)
                } else if s.task(task).cid_op.is_some() {
                    compaction_next(s, task)
                } else {
                    compaction_start(s, task)
                }
            }
            Step::Fail { task } => compaction_skip(s, task),
            _ => unreachable!("not a 6.18 step: {step:?}"),
        }
    }

    /// `switch_out(prev)` then `switch_in(next)`, whose `mm_cid_get` may stop.
    fn switch(_p: &Params, s: &mut State<Self>, cpu: CpuId, prev: Option<TaskId>, next: Option<TaskId>) {
        if let Some(p) = prev
            && let Some(m) = s.task(p).mm
        {
            s.with_mm_task(m, p, |mm, t| v6_18::switch_out(mm, cpu, t, NOW));
        }
        if let Some(n) = next
            && let Some(m) = s.task(n).mm
            && let Some(LegacyAlloc::Spin(k)) =
                s.with_mm_task(m, n, |mm, t| v6_18::switch_in(mm, cpu, t, NOW))
        {
            s.cpus[cpu as usize].get = Some(k);
        }
    }
    /// `activate_task` with MIGRATED → the first step of `sched_mm_cid_migrate_to` (the rest are
    /// the destination CPU's next steps).
    fn migrated(_p: &Params, s: &mut State<Self>, task: TaskId, from: CpuId, to: CpuId) {
        let Some(m) = s.task(task).mm else {
            return;
        };
        let busy = curr_is_active_user(s, m, from);
        let r = s.with_mm_task(m, task, |mm, t| {
            v6_18::set_task_cpu(t, from, to);
            v6_18::migrate_to(mm, to, t, busy)
        });
        match r {
            Migrate::Done(_) => {}
            r => s.cpus[to as usize].migrating = Some((task, r)),
        }
    }
    /// `copy_mm` → `sched_mm_cid_fork(child)`: `active = 1`; `mm_users++` for CLONE_VM.
    fn fork_copy(_p: &Params, s: &mut State<Self>, _task: TaskId, child: TaskId) {
        let m = s.task(child).mm.expect("child without mm");
        s.with_mm_task(m, child, |mm, t| {
            v6_18::fork(t);
            mm.mm_users += 1;
        });
    }
    fn post_fork(_p: &Params, _s: &mut State<Self>, _task: TaskId, _child: TaskId) {}
    /// No CID cleanup on a failed fork (E.2.2); `mmput` of the child's reference.
    fn fork_failed(_p: &Params, s: &mut State<Self>, _task: TaskId, child: TaskId) -> bool {
        if let Some(m) = s.task(child).mm {
            mmput(s, m);
        }
        false
    }
    fn exit_start(_p: &Params, s: &mut State<Self>, task: TaskId) {
        exit_signals(s, task)
    }
    fn exit_mm(_p: &Params, s: &mut State<Self>, task: TaskId) {
        if let Some(m) = s.task(task).mm {
            mmput(s, m);
        }
    }
    fn before_execve(_p: &Params, s: &mut State<Self>, task: TaskId) {
        exit_signals(s, task)
    }
    /// `exec_mmap`: `mmput(old)`.
    fn exec_mmap(_p: &Params, s: &mut State<Self>, _task: TaskId, old: Option<MmId>, _new: MmId) {
        if let Some(o) = old {
            mmput(s, o);
        }
    }
    /// One step; its `mm_cid_get` may stop at a cut or spin like a switch-in.
    fn after_execve(_p: &Params, s: &mut State<Self>, task: TaskId) {
        let Some(m) = s.task(task).mm else {
            return;
        };
        let cpu = s.task(task).cpu;
        if let LegacyAlloc::Spin(k) = s.with_mm_task(m, task, |mm, t| v6_18::after_execve(mm, cpu, t, NOW)) {
            s.cpus[cpu as usize].get = Some(k);
        }
    }
    /// `__do_set_cpus_allowed` → `mm_update_cpus_allowed`.
    fn affinity(_p: &Params, s: &mut State<Self>, task: TaskId) {
        let t = s.task(task);
        if let Some(m) = t.mm {
            v6_18::update_cpus_allowed(&mut s.mm_mut(m).cid, t.affinity);
        }
    }
    fn work_start(_p: &Params, _s: &mut State<Self>, _task: TaskId, _mm: MmId) {
        unreachable!("6.18 has no deferred mode-switch work")
    }

    fn is_retry(s: &State<Self>, step: &Step) -> bool {
        // Only a busy-wait lap of mm_cid_get is a retry; its cuts make progress.
        match *step {
            Step::SchedinRetry { cpu } => waits(s, cpu),
            _ => false,
        }
    }
    fn spinning(s: &State<Self>, out: &mut Vec<u16>) {
        for c in 0..s.np() {
            if waits(s, c) {
                out.push(c as u16);
            }
        }
    }
    fn check(_p: &Params, s: &State<Self>, out: &mut Vec<usize>) {
        let np = s.np() as i32;
        let mut fired = Fired::default();
        for (mi, mm) in s.mms.iter().enumerate() {
            let m = mi as MmId;
            let x = &mm.cid;
            fired.set(
                P::I1,
                lg::check_unique(running(s, m).map(|(_, t)| t.cid.mm_cid)).is_err(),
            );
            for (i, t) in running(s, m) {
                if s.in_user(i) {
                    let v = t.cid.mm_cid.user_value();
                    fired.set(P::I2, v < 0 || v >= np || v6_18::check_bound(x, &t.cid).is_err());
                }
            }
            fired.set(
                P::I4,
                v6_18::check_ownership(x, in_flight(s, m)).is_err()
                    || running(s, m).any(|(_, t)| !v6_18::holds_slot_copy(x, t.cpu, &t.cid)),
            );
            fired.set(
                P::D1,
                x.faults.out_of_range.is_some() || x.faults.already_clear.is_some(),
            );
        }
        // R4: a CPU busy-waits in mm_cid_get.
        fired.set(P::R4, (0..s.np()).any(|c| waits(s, c)));
        fired.push_to(out);
    }
    /// 6.18's CID code treats every CPU alike but for the compaction scan, which visits CPUs in
    /// ascending order ([`crate::KernelModel::cpu_symmetric`] leaves configurations with
    /// `compactions` out): `mm_cid_get` looks only at its own CPU's slot and the bitmap,
    /// migration at its source and destination, a remote clear at the CPU it clears.
    const CPU_SYMMETRIC: bool = true;
    fn rename_cpus(s: &mut State<Self>, map: &[CpuId; mmcid_cid::MAX_CPUS]) {
        let np = s.np() as usize;
        let r = |c: CpuId| map[c as usize];
        for c in s.cpus.iter_mut() {
            if let Some((t, st)) = c.migrating {
                let mv = |m: v6_18::MigrateCont| v6_18::MigrateCont { src: r(m.src), ..m };
                let st = match st {
                    Migrate::Fetched(m) => Migrate::Fetched(mv(m)),
                    Migrate::Stolen(m) => Migrate::Stolen(mv(m)),
                    Migrate::InFlight(m) => Migrate::InFlight(mv(m)),
                    d @ Migrate::Done(_) => d,
                };
                c.migrating = Some((t, st));
            }
        }
        for m in 0..s.mms.len() as MmId {
            let mut mm = s.mm_mut(m);
            let x = &mut mm.cid;
            let old = x.pcpu;
            for c in 0..np {
                x.pcpu[map[c] as usize] = old[c];
            }
            // Clipped to the np CPUs when set (`update_cpus_allowed`): nothing above np to keep.
            x.cpus_allowed = crate::symmetry::renamed_mask(x.cpus_allowed, map, np);
            x.cid_lock = x.cid_lock.map(r);
        }
    }
    #[inline(always)]
    fn rename_task_cpus(cid: &mut Task618, op: &mut Option<WorkAt>, map: &[CpuId; mmcid_cid::MAX_CPUS]) {
        let r = |c: CpuId| map[c as usize];
        cid.migrate_from_cpu = cid.migrate_from_cpu.map(r);
        *op = op.map(|op| match op {
            WorkAt::Scan { cpu } => WorkAt::Scan { cpu: r(cpu) },
            WorkAt::Marked { cpu, cid } => WorkAt::Marked { cpu: r(cpu), cid },
            WorkAt::Unset { cpu, cid } => WorkAt::Unset { cpu: r(cpu), cid },
        });
    }
    fn cpu_key(s: &State<Self>, cpu: CpuId) -> u64 {
        // A sort key, not an identity: it need not be injective (a tie only costs reduction), so
        // the parts are packed where they fit and mixed where they do not.
        let c = &s.cpus[cpu as usize];
        let get = c.get.map_or(0, |k| match k {
            GetCont::Lock { then } => 1 | (then as u64) << 3,
            GetCont::Lap { stage } => 2 | (stage as u64) << 3,
            GetCont::Scan { stage } => 3 | (stage as u64) << 3,
            GetCont::Set { stage, c } => 4 | (stage as u64) << 3 | (c as u64) << 5,
        });
        // A migration in progress without its task and source CPU (both named elsewhere).
        let mig = c.migrating.map_or(0, |(_, st)| {
            let (k, m) = match st {
                Migrate::Fetched(m) => (1, m),
                Migrate::Stolen(m) => (2, m),
                Migrate::InFlight(m) => (3, m),
                Migrate::Done(_) => return 4,
            };
            k | (m.dst_set as u64) << 2 | (m.cid.raw() as u64 & 0xff) << 3
        });
        let mut key = get | mig << 12;
        // The stored mms are the mms (no packing in 6.18): read in place, not copied.
        for mm in s.mms.stored() {
            let slot = mm.cid.slot(cpu);
            let part = slot.cid.raw() as u64 & 0x8000_00ff
                | (slot.recent_cid.raw() as u64 & 0xff) << 8
                | ((mm.cid.cid_lock == Some(cpu)) as u64) << 16;
            key = key.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) ^ part;
        }
        key
    }
    fn rename(s: &mut State<Self>, r: &dyn Fn(TaskId) -> TaskId) {
        for c in s.cpus.iter_mut() {
            if let Some((t, st)) = c.migrating {
                c.migrating = Some((r(t), st));
            }
        }
    }
    /// Two dead values: where a dead task ran ([`crate::symmetry::has_dead_task_cpu`]), and
    /// `t->migrate_from_cpu` except for whether it is -1. The only step that reads
    /// `migrate_from_cpu`, a migration's `sched_mm_cid_migrate_to` (`migrated` below), runs
    /// right after `set_task_cpu` has overwritten it with the CPU the task leaves (a migration
    /// always changes the CPU, [`crate::ops::switch::migrations`]), in the same step; the
    /// migration's later steps carry the source CPU themselves. No property, spin test or agent
    /// reads it. So a task that has migrated before is kept as "CPU0" in the representative:
    /// states that differ only in which CPU a task last left behave alike (3.4x fewer states in
    /// `c3t2f1`). Traces and state reports still show the real values (the search expands
    /// concrete states). `tests/dead_values.rs` checks the bisimulation state by state.
    fn forget_dead(_p: &Params, s: &mut State<Self>) {
        crate::symmetry::forget_dead_task_cpu(s);
        // On the stored form (the family's part is stored as it is): no unpacking per task.
        for i in 0..s.tasks.len() {
            let t = s.tasks.stored()[i];
            let (mut cid, op) = *t.family();
            if cid.migrate_from_cpu.is_some_and(|c| c != 0) {
                cid.migrate_from_cpu = Some(0);
                s.tasks
                    .set_stored(i, crate::tasks::StoredTask::from_parts(*t.kernel(), (cid, op)));
            }
        }
    }
    fn has_dead(_p: &Params, s: &State<Self>) -> bool {
        crate::symmetry::has_dead_task_cpu(s)
            || s.tasks
                .stored()
                .iter()
                .any(|t| t.family().0.migrate_from_cpu.is_some_and(|c| c != 0))
    }
    fn rename_op(op: WorkAt, _r: &dyn Fn(TaskId) -> TaskId) -> WorkAt {
        op
    }
    fn task_key(cid: &Task618, op: Option<&WorkAt>) -> u64 {
        // Two CID words folded to 16 bits each (their number below 2^15 with the LAZY bit, or
        // all ones for UNSET: every value the model stores), flags, the scan's program point.
        let c = |x: LegacyCid| {
            let r = x.raw();
            if r == u32::MAX {
                0xFFFF
            } else {
                ((r >> 16) & 0x8000) as u64 | (r & 0x7FFF) as u64
            }
        };
        let op: u64 = match op {
            None => 0,
            Some(&WorkAt::Scan { cpu }) => 1 | (cpu as u64) << 2,
            Some(&WorkAt::Marked { cpu, cid }) => 2 | (cpu as u64) << 2 | c(cid) << 6,
            Some(&WorkAt::Unset { cpu, cid }) => 3 | (cpu as u64) << 2 | c(cid) << 6,
        };
        c(cid.mm_cid)
            | c(cid.last_mm_cid) << 16
            | (cid.active as u64) << 32
            | cid.migrate_from_cpu.map_or(0, |x| x as u64 + 1) << 33
            | op << 38
    }

    fn name(_p: &Params, s: &State<Self>, step: Step) -> Option<(String, KernelFn, Option<String>)> {
        Some(match step {
            Step::SchedinRetry { cpu } => (cn(cpu), KernelFn::MmCidGet, None),
            Step::Next { task } => {
                let t = s.task(task);
                if let Some((_, st)) = s.cpus[t.cpu as usize].migrating.filter(|(m, _)| *m == task) {
                    let f = match st {
                        Migrate::Fetched(_) => KernelFn::MmCidSteal,
                        Migrate::Stolen(_) => KernelFn::MmCidStealUnset,
                        _ => KernelFn::MmCidMigratePlace,
                    };
                    return Some((cn(t.cpu), f, Some(tn(task))));
                }
                let (f, a) = match (t.op, t.cid_op) {
                    (_, Some(WorkAt::Scan { cpu })) => (KernelFn::SchedMmCidRemoteClear, Some(cn(cpu))),
                    (_, Some(WorkAt::Marked { cpu, .. })) => (KernelFn::RemoteClearUnset, Some(cn(cpu))),
                    (_, Some(WorkAt::Unset { cpu, .. })) => (KernelFn::MmCidPut, Some(cn(cpu))),
                    (Op::User, None) => (KernelFn::TaskWork, Some("mm_cid_work".to_string())),
                    (Op::Exit { at: ExitAt::Cid }, None) => (KernelFn::SchedMmCidExitSignals, None),
                    (
                        Op::Exec {
                            at: ExecAt::Before, ..
                        },
                        None,
                    ) => (KernelFn::SchedMmCidBeforeExecve, None),
                    _ => return None,
                };
                (tn(task), f, a)
            }
            Step::Fail { task } => match s.task(task).cid_op {
                Some(WorkAt::Scan { cpu }) => (tn(task), KernelFn::ClearOldSkip, Some(cn(cpu))),
                _ => return None,
            },
            _ => return None,
        })
    }
    fn effects(before: &State<Self>, after: &State<Self>, out: &mut Vec<Effect>) {
        for (i, (a, b)) in before.cpus.iter().zip(&after.cpus).enumerate() {
            let cpu = i as CpuId;
            match (a.get, b.get) {
                (_, Some(k)) if a.get != b.get => out.push(Effect::GetCid {
                    cpu,
                    spins: waits(after, cpu),
                    at: k.into(),
                }),
                (Some(_), None) => out.push(Effect::GetDone { cpu }),
                _ => {}
            }
            if a.migrating != b.migrating {
                match b.migrating {
                    Some((task, at)) => out.push(Effect::Migrating {
                        cpu,
                        task,
                        at: at.into(),
                    }),
                    None => out.push(Effect::MigrationDone { cpu }),
                }
            }
        }
        for (m, mb) in after.mms.iter().enumerate() {
            let mm = m as MmId;
            let Some(ma) = before.mms.get(m) else {
                out.push(Effect::MmCreated { mm });
                continue;
            };
            let (x, y) = (&ma.cid, &mb.cid);
            if x.cidmask != y.cidmask {
                out.push(Effect::Bitmap {
                    mm,
                    field: BitmapField::Cidmask,
                    from: x.cidmask.iter().collect(),
                    to: y.cidmask.iter().collect(),
                });
            }
            for c in 0..after.cpus.len() {
                let (sa, sb) = (x.pcpu[c], y.pcpu[c]);
                for (field, from, to) in [
                    (SlotField::Cid, sa.cid, sb.cid),
                    (SlotField::RecentCid, sa.recent_cid, sb.recent_cid),
                ] {
                    if from != to {
                        out.push(Effect::LegacySlot {
                            mm,
                            cpu: c as CpuId,
                            field,
                            from,
                            to,
                        });
                    }
                }
            }
            for (field, from, to) in [
                (Counter::MaxNrCid, x.max_nr_cid, y.max_nr_cid),
                (Counter::MmUsers, x.mm_users, y.mm_users),
                (Counter::NrCpusAllowed, x.nr_cpus_allowed, y.nr_cpus_allowed),
            ] {
                if from != to {
                    out.push(Effect::Count {
                        mm,
                        field,
                        from: from.into(),
                        to: to.into(),
                    });
                }
            }
            if x.use_cid_lock != y.use_cid_lock {
                out.push(Effect::UseCidLock {
                    mm,
                    on: y.use_cid_lock,
                });
            }
            if x.cid_lock != y.cid_lock {
                out.push(Effect::CidLock {
                    mm,
                    holder: y.cid_lock,
                });
            }
            if x.faults != y.faults {
                out.push(Effect::LegacyFault { mm, faults: y.faults });
            }
        }
    }
    fn task_effects(i: TaskId, ta: &Task<Self>, tb: &Task<Self>, out: &mut Vec<Effect>) {
        let (x, y) = (ta.cid, tb.cid);
        for (field, from, to) in [
            (LegacyTaskField::MmCid, x.mm_cid, y.mm_cid),
            (LegacyTaskField::LastMmCid, x.last_mm_cid, y.last_mm_cid),
        ] {
            if from != to {
                out.push(Effect::LegacyTaskCid {
                    task: i,
                    field,
                    from,
                    to,
                });
            }
        }
        if x.migrate_from_cpu != y.migrate_from_cpu
            && let Some(cpu) = y.migrate_from_cpu
        {
            out.push(Effect::MigrateFromCpu { task: i, cpu });
        }
        if x.active != y.active {
            out.push(Effect::Active {
                task: i,
                active: y.active,
            });
        }
    }
    const REPORTS_MOVES: bool = true;
    fn task_cid_raw(t: &Task618) -> u32 {
        t.mm_cid.raw()
    }
    fn snapshot_task(t: &Task<Self>, out: &mut TaskSnapshot) {
        out.cid_op = t.cid_op.map(Into::into);
        out.last_mm_cid = Some(t.cid.last_mm_cid);
        out.migrate_from_cpu = t.cid.migrate_from_cpu;
    }
    fn snapshot_cpu(s: &State<Self>, cpu: CpuId, out: &mut CpuSnapshot) {
        let c = &s.cpus[cpu as usize];
        out.mm_cid_get = c.get.map(|k| MmCidGet {
            at: k.into(),
            busy_wait: waits(s, cpu),
        });
        out.migrating = c.migrating.map(|(task, at)| Migration { task, at: at.into() });
    }
    fn mm_snapshot(x: &Mm618) -> MmCidSnapshot {
        MmCidSnapshot::Lazy618 {
            cidmask: x.cidmask.iter().collect(),
            bitmap_bits: x.np.into(),
            max_nr_cid: x.max_nr_cid.into(),
            mm_users: x.mm_users.into(),
            nr_cpus_allowed: x.nr_cpus_allowed.into(),
            cpus_allowed: (0..8).filter(|c| x.cpus_allowed & 1 << c != 0).collect(),
            use_cid_lock: x.use_cid_lock,
            cid_lock: x.cid_lock,
            slots: (0..x.np)
                .map(|cpu| Slot618Snapshot {
                    cid: x.slot(cpu).cid,
                    recent_cid: x.slot(cpu).recent_cid,
                })
                .collect(),
            faults: x.faults,
        }
    }
    fn bit_owners(s: &State<Self>, m: MmId) -> Vec<BitOwners> {
        let mut out = Vec::new();
        let x = s.mm(m);
        let flight = in_flight(s, m);
        for b in x.cidmask.iter() {
            let mut owners = Vec::new();
            for cpu in 0..s.np() {
                let cid = x.slot(cpu).cid;
                if !cid.is_unset() && cid.index() == b {
                    owners.push(Owner::LegacySlot { cpu, cid });
                }
            }
            if flight.iter().any(|c| c.index() == b) {
                owners.push(Owner::InFlight);
            }
            for (task, t) in s.tasks_of(m) {
                let cid = t.cid.mm_cid;
                if !cid.is_unset() && cid.index() == b {
                    owners.push(Owner::LegacyTask { task, cid });
                }
            }
            out.push(BitOwners {
                mm: m,
                bit: b,
                owners,
            });
        }
        out
    }
    fn explain(_property: &str, agent: Option<u16>, s: &State<Self>) -> Vec<Fact> {
        let mut why = Vec::new();
        if let Some(cpu) = agent
            && let Some(at) = s.cpus[cpu as usize].get
        {
            why.push(Fact::GetBusyWait {
                cpu: cpu as CpuId,
                at: at.into(),
            });
        }
        for (mi, mm) in s.mms.iter().enumerate() {
            let m = mi as MmId;
            let x = &mm.cid;
            if let Err(error) = lg::check_unique(running(s, m).map(|(_, t)| t.cid.mm_cid)) {
                why.push(Fact::RunningNotUnique { mm: m, error });
            }
            for (task, t) in running(s, m).filter(|(i, _)| s.in_user(*i)) {
                if let Err(error) = v6_18::check_bound(x, &t.cid) {
                    why.push(Fact::UserSpaceBound { task, error });
                }
            }
            if let Err(error) = v6_18::check_ownership(x, in_flight(s, m)) {
                why.push(Fact::Ownership { mm: m, error });
            }
            for (task, t) in running(s, m) {
                if !v6_18::holds_slot_copy(x, t.cpu, &t.cid) {
                    why.push(Fact::SlotMismatch {
                        task,
                        cid: t.cid.mm_cid,
                        cpu: t.cpu,
                        slot: x.slot(t.cpu).cid,
                    });
                }
            }
            if x.faults != Default::default() {
                why.push(Fact::LegacyFaults {
                    mm: m,
                    faults: x.faults,
                });
            }
        }
        why
    }
}
