//! 6.3 ([`PerSwitch63`]): a CID per switched-in task, taken from a per-mm bitmap under
//! `cid_lock` at every switch-in and given back at every switch-out (`mmcid_cid::legacy::v6_3`).
//! No CID operation takes more than one step, so nothing spins and no CPU is ever left inside a
//! switch.

use mmcid_cid::legacy::v6_3::{self, Mm63, SwitchMms, Task63};
use mmcid_cid::legacy::{self as lg};
use mmcid_cid::{CpuId, CpuMask, TaskId};

use crate::facts::{BitOwners, BitmapField, Effect, Fact, LegacyTaskField, Owner};
use crate::family::{Family, PerSwitch63};
use crate::invariants::{Fired, Property as P};
use crate::legacy::{NoCidOp, running};
use crate::ops::silent::SilentHooks;
use crate::ops::{Params, Step};
use crate::state::*;
use crate::trace::{KernelFn, tn};

impl Family for PerSwitch63 {
    const KIND: crate::config::FamilyKind = crate::config::FamilyKind::PerSwitch63;
    /// `copy_mm` only marks the unpublished child active; the exit and execve hooks do the CID
    /// work themselves (the shared bitmap).
    const SILENT_HOOKS: SilentHooks = SilentHooks {
        fork_copy: true,
        post_fork: true,
        fork_failed: true,
        ..SilentHooks::NONE
    };
    type TaskCid = Task63;
    type CidOp = NoCidOp;
    type TaskStore = (Task63, Option<NoCidOp>);
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
    fn store_task(cid: &Task63, op: Option<&NoCidOp>) -> Self::TaskStore {
        (*cid, op.copied())
    }
    #[inline(always)]
    fn load_task(s: &Self::TaskStore) -> (Task63, Option<NoCidOp>) {
        *s
    }
    type MmCid = Mm63;
    type CpuCid = ();

    fn new_mm(np: u8, _mask: CpuMask) -> Mm63 {
        Mm63::new(np)
    }
    fn active(t: &Task63) -> bool {
        t.active
    }
    fn rq_locked(_cpu: &()) -> bool {
        false
    }
    fn in_switch(_cpu: &()) -> bool {
        false
    }
    fn irqs_off(op: &NoCidOp) -> bool {
        match *op {}
    }
    fn affinity_allowed(_p: &Params, _s: &State<Self>, _task: TaskId) -> bool {
        true
    }
    fn cpu_steps(_p: &Params, _s: &State<Self>, _cpu: CpuId, _out: &mut Vec<Step>) {}
    fn cid_op_steps(_p: &Params, _s: &State<Self>, _task: TaskId, _out: &mut Vec<Step>) {
        unreachable!("6.3 has no multi-step CID operation")
    }
    fn user_steps(_p: &Params, _s: &State<Self>, _task: TaskId, _out: &mut Vec<Step>) {}
    fn busy_cpu_steps(_s: &State<Self>, _cpu: CpuId, _out: &mut Vec<Step>) {
        unreachable!("a 6.3 CPU is never busy across steps")
    }
    fn apply_own(_p: &Params, _s: &mut State<Self>, step: Step) {
        unreachable!("not a 6.3 step: {step:?}")
    }

    /// `switch_mm_cid(prev, next)`: one step, with the same-mm handover.
    fn switch(_p: &Params, s: &mut State<Self>, _cpu: CpuId, prev: Option<TaskId>, next: Option<TaskId>) {
        let pm = prev.and_then(|t| s.task(t).mm);
        let nm = next.and_then(|t| s.task(t).mm);
        let mut pt = prev.map_or_else(Task63::default, |t| s.task(t).cid);
        let mut nt = next.map_or_else(Task63::default, |t| s.task(t).cid);
        match (pm, nm) {
            (Some(a), Some(b)) if a == b => {
                v6_3::switch(SwitchMms::Same(&mut s.mm_mut(a).cid), &mut pt, &mut nt);
            }
            _ => {
                let mut ma = pm.map(|m| s.mm(m));
                let mut mb = nm.map(|m| s.mm(m));
                v6_3::switch(
                    SwitchMms::Distinct {
                        prev: ma.as_mut(),
                        next: mb.as_mut(),
                    },
                    &mut pt,
                    &mut nt,
                );
                if let (Some(m), Some(x)) = (pm, ma) {
                    s.mm_mut(m).cid = x;
                }
                if let (Some(m), Some(x)) = (nm, mb) {
                    s.mm_mut(m).cid = x;
                }
            }
        }
        if let Some(t) = prev {
            s.task_mut(t).cid = pt;
        }
        if let Some(t) = next {
            s.task_mut(t).cid = nt;
        }
    }
    fn migrated(_p: &Params, _s: &mut State<Self>, _task: TaskId, _from: CpuId, _to: CpuId) {}
    /// `copy_mm` → `sched_mm_cid_fork(child)`: `active = 1`.
    fn fork_copy(_p: &Params, s: &mut State<Self>, _task: TaskId, child: TaskId) {
        v6_3::fork(&mut s.task_mut(child).cid);
    }
    fn post_fork(_p: &Params, _s: &mut State<Self>, _task: TaskId, _child: TaskId) {}
    /// No CID cleanup on a failed fork (E.2.2).
    fn fork_failed(_p: &Params, _s: &mut State<Self>, _task: TaskId, _child: TaskId) -> bool {
        false
    }
    /// `sched_mm_cid_exit_signals(t)`.
    fn exit_start(_p: &Params, s: &mut State<Self>, task: TaskId) {
        if let Some(m) = s.task(task).mm {
            s.with_mm_task(m, task, v6_3::exit_signals);
        }
    }
    fn exit_mm(_p: &Params, _s: &mut State<Self>, _task: TaskId) {}
    /// `sched_mm_cid_before_execve(t)`: the `exit_signals` code on the old mm.
    fn before_execve(p: &Params, s: &mut State<Self>, task: TaskId) {
        Self::exit_start(p, s, task)
    }
    /// `exec_mmap` runs `mm_init_cid` on the new mm again.
    fn exec_mmap(_p: &Params, s: &mut State<Self>, _task: TaskId, _old: Option<MmId>, new: MmId) {
        v6_3::mm_init_cid(&mut s.mm_mut(new).cid);
    }
    fn after_execve(_p: &Params, s: &mut State<Self>, task: TaskId) {
        if let Some(m) = s.task(task).mm {
            s.with_mm_task(m, task, v6_3::after_execve);
        }
    }
    fn affinity(_p: &Params, _s: &mut State<Self>, _task: TaskId) {}
    fn work_start(_p: &Params, _s: &mut State<Self>, _task: TaskId, _mm: MmId) {
        unreachable!("6.3 has no deferred CID work")
    }

    fn is_retry(_s: &State<Self>, _step: &Step) -> bool {
        false
    }
    fn spinning(_s: &State<Self>, _out: &mut Vec<u16>) {}
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
                    fired.set(P::I2, v < 0 || v >= np || v6_3::check_bound(x, &t.cid).is_err());
                }
            }
            fired.set(
                P::I4,
                v6_3::check_ownership(x, s.tasks_of(m).map(|(_, t)| t.cid.mm_cid)).is_err(),
            );
            fired.set(
                P::D1,
                x.faults.out_of_range.is_some() || x.faults.already_clear.is_some(),
            );
        }
        fired.push_to(out);
    }
    fn rename(_s: &mut State<Self>, _r: &dyn Fn(TaskId) -> TaskId) {}
    /// Where a dead task ran ([`crate::symmetry::has_dead_task_cpu`]).
    fn forget_dead(_p: &Params, s: &mut State<Self>) {
        crate::symmetry::forget_dead_task_cpu(s);
    }
    fn has_dead(_p: &Params, s: &State<Self>) -> bool {
        crate::symmetry::has_dead_task_cpu(s)
    }
    fn rename_op(op: NoCidOp, _r: &dyn Fn(TaskId) -> TaskId) -> NoCidOp {
        op
    }
    fn task_key(cid: &Task63, _op: Option<&NoCidOp>) -> u64 {
        cid.mm_cid.raw() as u64 | (cid.active as u64) << 32
    }

    fn name(_p: &Params, s: &State<Self>, step: Step) -> Option<(String, KernelFn, Option<String>)> {
        match step {
            Step::Next { task } => {
                let f = match s.task(task).op {
                    Op::Exit { at: ExitAt::Cid } => KernelFn::SchedMmCidExitSignals,
                    Op::Exec {
                        at: ExecAt::Before, ..
                    } => KernelFn::SchedMmCidBeforeExecve,
                    _ => return None,
                };
                Some((tn(task), f, None))
            }
            _ => None,
        }
    }
    fn effects(before: &State<Self>, after: &State<Self>, out: &mut Vec<Effect>) {
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
            if x.faults != y.faults {
                out.push(Effect::LegacyFault { mm, faults: y.faults });
            }
        }
    }
    fn task_effects(i: TaskId, ta: &Task<Self>, tb: &Task<Self>, out: &mut Vec<Effect>) {
        if ta.cid.mm_cid != tb.cid.mm_cid {
            out.push(Effect::LegacyTaskCid {
                task: i,
                field: LegacyTaskField::MmCid,
                from: ta.cid.mm_cid,
                to: tb.cid.mm_cid,
            });
        }
        if ta.cid.active != tb.cid.active {
            out.push(Effect::Active {
                task: i,
                active: tb.cid.active,
            });
        }
    }
    const REPORTS_MOVES: bool = true;
    fn task_cid_raw(t: &Task63) -> u32 {
        t.mm_cid.raw()
    }
    fn snapshot_task(_t: &Task<Self>, _out: &mut crate::snapshot::TaskSnapshot) {}
    fn snapshot_cpu(_s: &State<Self>, _cpu: CpuId, _out: &mut crate::snapshot::CpuSnapshot) {}
    fn mm_snapshot(x: &Mm63) -> crate::snapshot::MmCidSnapshot {
        crate::snapshot::MmCidSnapshot::PerSwitch63 {
            cidmask: x.cidmask.iter().collect(),
            bitmap_bits: x.np.into(),
            faults: x.faults,
        }
    }
    fn bit_owners(s: &State<Self>, m: MmId) -> Vec<BitOwners> {
        let mut out = Vec::new();
        for b in s.mm(m).cidmask.iter() {
            let mut owners = Vec::new();
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
    fn explain(_property: &str, _agent: Option<u16>, s: &State<Self>) -> Vec<Fact> {
        let mut why = Vec::new();
        for (mi, mm) in s.mms.iter().enumerate() {
            let m = mi as MmId;
            let x = &mm.cid;
            if let Err(error) = lg::check_unique(running(s, m).map(|(_, t)| t.cid.mm_cid)) {
                why.push(Fact::RunningNotUnique { mm: m, error });
            }
            for (task, t) in running(s, m).filter(|(i, _)| s.in_user(*i)) {
                if let Err(error) = v6_3::check_bound(x, &t.cid) {
                    why.push(Fact::UserSpaceBound { task, error });
                }
            }
            if let Err(error) = v6_3::check_ownership(x, s.tasks_of(m).map(|(_, t)| t.cid.mm_cid)) {
                why.push(Fact::Ownership { mm: m, error });
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
