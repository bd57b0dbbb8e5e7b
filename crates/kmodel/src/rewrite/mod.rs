//! The 7.0 family ([`Rewrite`]): the 7.0 design and its predecessors back to 6.19-rc7, as the
//! `mmcid-cid` functions wired to the kernel's call sites, with the design's
//! [`mmcid_cid::Switches`] read at each decision point.
//!
//! - [`cid_op`]: `sched_mm_cid_fork`, `sched_mm_cid_exit` and the deferred work as multi-step CID
//!   operations (a task inside one holds `mm.mutex` after its first step);
//! - [`walk`]: the fix-up walks, one visit per step;
//! - [`check`]: the properties over the 7.0 state; [`describe`]: its steps named after kernel
//!   functions, their effects, bit owners and the facts of a violation, as typed values.
//!
//! Where the kernel calls into the CID code (the [`Family`] hooks below): `switch_mm_cid` →
//! `schedout` + `schedin` (a failed `get_cid` leaves the CPU spinning in the switch with its rq
//! lock held); `copy_mm` (designs ≤ 6.19.1) or `sched_post_fork` (6.19.1+fork and later) →
//! `sched_mm_cid_fork(child)`; `do_exit` and `sched_mm_cid_before_execve` →
//! `sched_mm_cid_exit(current)`; `sched_mm_cid_after_execve` → `sched_mm_cid_fork(current)`;
//! `bad_fork_cleanup_mm` → `sched_mm_cid_exit(child)` (S2); `sched_setaffinity` →
//! `mm_update_cpus_allowed`, which may queue the irq_work; the irq_work schedules the work on the
//! kworker.

pub mod check;
pub mod cid_op;
pub mod describe;
pub mod store;
pub mod walk;

use mmcid_cid::{self as cid, CpuId, CpuMask, MmCid, Registration, Schedin, SchedinSpin, TaskCid, TaskId};

use crate::family::{Family, Rewrite};
use crate::ops::silent::SilentHooks;
use crate::ops::{Params, Step};
use crate::state::*;
use cid_op::{CidOp, lock_owner};

/// A CPU of the 7.0 family: whether its schedin is inside `get_cid` ([`RwCpu::spin`]), packed in
/// two bytes (a state holds eight): byte 0 the variant (0 none, 1 `FromTask`, 2 `FromCpu`,
/// 3 `TransitLoad`) with the mode's ONCPU and TRANSIT in bits 2 and 3, byte 1 the CID word
/// ([`store::cid_byte`]).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(from = "RwCpuFields", into = "RwCpuFields")]
pub struct RwCpu {
    packed: [u8; 2],
}

/// [`RwCpu`]'s serialised form (its field as it was before the packing).
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct RwCpuFields {
    spin: Option<SchedinSpin>,
}

impl From<RwCpuFields> for RwCpu {
    fn from(f: RwCpuFields) -> RwCpu {
        let mut c = RwCpu::default();
        c.set_spin(f.spin);
        c
    }
}

impl From<RwCpu> for RwCpuFields {
    fn from(c: RwCpu) -> RwCpuFields {
        RwCpuFields { spin: c.spin() }
    }
}

impl std::fmt::Debug for RwCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RwCpu").field("spin", &self.spin()).finish()
    }
}

impl RwCpu {
    /// Spinning in `get_cid` inside the schedin of its current task, rq lock held, IRQs off (or,
    /// 6.19-rc7, between the two mode loads).
    #[inline(always)]
    pub fn spin(&self) -> Option<SchedinSpin> {
        let [a, b] = self.packed;
        let m = mmcid_cid::Mode::from_parts(a & 4 != 0, a & 8 != 0);
        match a & 3 {
            0 => None,
            1 => Some(SchedinSpin::FromTask { m }),
            2 => Some(SchedinSpin::FromCpu { m }),
            _ => Some(SchedinSpin::TransitLoad {
                tc: store::cid_of_byte(b),
            }),
        }
    }
    /// Sets [`RwCpu::spin`].
    #[inline(always)]
    pub fn set_spin(&mut self, spin: Option<SchedinSpin>) {
        let mode = |m: mmcid_cid::Mode| (m.percpu() as u8) << 2 | (m.in_transit() as u8) << 3;
        self.packed = match spin {
            None => [0, 0],
            Some(SchedinSpin::FromTask { m }) => [1 | mode(m), 0],
            Some(SchedinSpin::FromCpu { m }) => [2 | mode(m), 0],
            Some(SchedinSpin::TransitLoad { tc }) => [3, store::cid_byte(tc)],
        };
    }
    /// Takes [`RwCpu::spin`], leaving none.
    #[inline(always)]
    pub fn take_spin(&mut self) -> Option<SchedinSpin> {
        let s = self.spin();
        self.packed = [0, 0];
        s
    }
    /// The packed bytes (the engine's encoding writes them as they are).
    pub fn bytes(&self) -> [u8; 2] {
        self.packed
    }
    /// The CPU whose [`RwCpu::bytes`] are `b`.
    pub fn from_bytes(b: [u8; 2]) -> RwCpu {
        RwCpu { packed: b }
    }
}

/// Does task `i` hold a dead CID number: an active task that is not running with its switch done
/// (runnable, sleeping, new, or being switched in: its CPU's schedin spins or waits for its
/// second mode load) and whose CID carries ONCPU, borrowed from the CPU it last ran on in
/// per-CPU mode? Its next schedin replaces the whole word without reading the number
/// (`mm_cid_from_cpu` tests `cid_on_cpu(cpu_cid & tcid)` and takes the CPU's, or allocates;
/// `mm_cid_from_task` tests `cid_on_task(tcid | cpu_cid)` and takes the CPU's or allocates);
/// nothing reads it meanwhile (I4 counts only plain and TRANSIT task values, the walks visit
/// tasks through their flags, and the CPU→task walk reads only the current task's, after its
/// schedin, behind the rq lock the spinning schedin holds).
fn borrowed_number(s: &State<Rewrite>, i: TaskId) -> bool {
    let t = s.task(i);
    t.cid.active
        && t.cid.cid.on_cpu()
        && t.cid.cid.flags() != t.cid.cid
        && t.sched != Sched::Dead
        && !s.on_cpu_settled(i)
}

impl Family for Rewrite {
    const KIND: crate::config::FamilyKind = crate::config::FamilyKind::Rewrite;
    const DEFERRED_WORK: bool = true;
    /// Every hook only queues the calling task's own CID operation, except `work_start`: a work
    /// being run (not just queued) makes a last-user exit's `cancel_work_sync` wait.
    const SILENT_HOOKS: SilentHooks = SilentHooks {
        fork_copy: true,
        post_fork: true,
        fork_failed: true,
        exit_start: true,
        before_execve: true,
        after_execve: true,
        work_start: false,
    };
    type TaskCid = TaskCid;
    type CidOp = CidOp;
    type TaskStore = [u8; 4];
    type MmStore = store::MmStore;
    #[inline(always)]
    fn store_mm(mm: &Mm<Self>) -> store::MmStore {
        store::MmStore::store(mm)
    }
    #[inline(always)]
    fn load_mm(s: &store::MmStore) -> Mm<Self> {
        s.load()
    }
    #[inline(always)]
    fn store_task(cid: &TaskCid, op: Option<&CidOp>) -> [u8; 4] {
        cid_op::store_task(cid, op)
    }
    #[inline(always)]
    fn load_task(s: &[u8; 4]) -> (TaskCid, Option<CidOp>) {
        cid_op::load_task(s)
    }
    type MmCid = MmCid;
    type CpuCid = RwCpu;

    fn new_mm(np: u8, mask: CpuMask) -> MmCid {
        MmCid::new(np, mask)
    }
    fn active(t: &TaskCid) -> bool {
        t.active
    }
    fn rq_locked(cpu: &RwCpu) -> bool {
        cpu.spin().is_some()
    }
    fn in_switch(cpu: &RwCpu) -> bool {
        cpu.spin().is_some()
    }
    fn irqs_off(op: &CidOp) -> bool {
        matches!(op, CidOp::ForkSpinLocked { .. })
    }
    fn affinity_allowed(_p: &Params, s: &State<Self>, task: TaskId) -> bool {
        // sched_setaffinity takes mm.lock, held across steps by a fork spinning under it.
        s.task(task).mm.is_some_and(|m| lock_owner(s, m).is_none())
    }

    fn cpu_steps(_p: &Params, s: &State<Self>, cpu: CpuId, out: &mut Vec<Step>) {
        for mm in s.mms.stored() {
            if mm.irq_work() == Some(cpu) && !s.irqs_off(cpu) {
                out.push(Step::IrqWork { cpu });
            }
        }
    }
    fn cid_op_steps(p: &Params, s: &State<Self>, task: TaskId, out: &mut Vec<Step>) {
        cid_op::steps(p, s, task, out)
    }
    fn user_steps(_p: &Params, _s: &State<Self>, _task: TaskId, _out: &mut Vec<Step>) {}
    fn busy_cpu_steps(_s: &State<Self>, cpu: CpuId, out: &mut Vec<Step>) {
        out.push(Step::SchedinRetry { cpu });
    }

    fn apply_own(p: &Params, s: &mut State<Self>, step: Step) {
        match step {
            Step::SchedinRetry { cpu } => {
                let spin = s.cpus[cpu as usize].take_spin().expect("not spinning");
                let t = s.curr(cpu).expect("spinning without curr");
                let m = s.task(t).mm.expect("spinning for a task without mm");
                let r = s.with_mm_task(m, t, |mm, task| cid::schedin_retry(mm, task, cpu, spin, &p.sw));
                if let Schedin::Spin(sp) = r {
                    s.cpus[cpu as usize].set_spin(Some(sp));
                }
            }
            Step::IrqWork { cpu } => irq_work(s, cpu),
            Step::Retry { task } => cid_op::retry(p, s, task),
            Step::Next { task } => cid_op::step(p, s, task),
            _ => unreachable!("not a 7.0-family step: {step:?}"),
        }
    }

    fn switch(p: &Params, s: &mut State<Self>, cpu: CpuId, prev: Option<TaskId>, next: Option<TaskId>) {
        let mm_of = |s: &State<Self>, t: TaskId| s.tasks.stored()[t as usize].mm();
        let prev = prev.and_then(|t| Some((t, mm_of(s, t)?)));
        let next = next.and_then(|t| Some((t, mm_of(s, t)?)));
        let schedin = match (prev, next) {
            // Both threads of one mm (the common case): its CID state is unpacked once for
            // schedout and schedin (`prev != next`: a switch picks a task off the run queue).
            (Some((pt, pm)), Some((nt, nm))) if pm == nm => Some(s.with_mm_two(pm, pt, nt, |mm, pt, nt| {
                cid::schedout(mm, pt, cpu, &p.sw);
                cid::schedin(mm, nt, cpu, &p.sw)
            })),
            _ => {
                if let Some((pt, pm)) = prev {
                    s.with_mm_task(pm, pt, |mm, t| cid::schedout(mm, t, cpu, &p.sw));
                }
                next.map(|(nt, nm)| s.with_mm_task(nm, nt, |mm, t| cid::schedin(mm, t, cpu, &p.sw)))
            }
        };
        if let Some(Schedin::Spin(sp)) = schedin {
            s.cpus[cpu as usize].set_spin(Some(sp));
        }
    }
    fn migrated(_p: &Params, _s: &mut State<Self>, _task: TaskId, _from: CpuId, _to: CpuId) {}
    fn fork_copy(p: &Params, s: &mut State<Self>, task: TaskId, child: TaskId) {
        // ≤ 6.19.1 (S1): registration in copy_mm, before the child is visible.
        if p.sw.registration == Registration::CopyMm {
            s.task_mut(task).cid_op = Some(CidOp::Fork { t: child });
        }
    }
    fn post_fork(p: &Params, s: &mut State<Self>, task: TaskId, child: TaskId) {
        if p.sw.registration == Registration::PostFork {
            s.task_mut(task).cid_op = Some(CidOp::Fork { t: child });
        }
    }
    fn fork_failed(p: &Params, s: &mut State<Self>, task: TaskId, child: TaskId) -> bool {
        if p.sw.failed_fork_exit_cid {
            s.task_mut(task).cid_op = Some(CidOp::Exit { t: child });
        }
        p.sw.failed_fork_exit_cid
    }
    fn exit_start(_p: &Params, s: &mut State<Self>, task: TaskId) {
        if s.task(task).mm.is_some() {
            s.task_mut(task).cid_op = Some(CidOp::Exit { t: task });
        }
    }
    fn exit_mm(_p: &Params, _s: &mut State<Self>, _task: TaskId) {}
    fn before_execve(_p: &Params, s: &mut State<Self>, task: TaskId) {
        s.task_mut(task).cid_op = Some(CidOp::Exit { t: task });
    }
    fn exec_mmap(_p: &Params, _s: &mut State<Self>, _task: TaskId, _old: Option<MmId>, _new: MmId) {}
    fn after_execve(_p: &Params, s: &mut State<Self>, task: TaskId) {
        s.task_mut(task).cid_op = Some(CidOp::Fork { t: task });
    }
    fn affinity(p: &Params, s: &mut State<Self>, task: TaskId) {
        let t = s.task(task);
        if let Some(m) = t.mm {
            let mut mm = s.mm_mut(m);
            if cid::update_cpus_allowed(&mut mm.cid, t.affinity, &p.sw) && mm.irq_work.is_none() {
                mm.irq_work = Some(t.cpu);
            }
        }
    }
    fn work_start(_p: &Params, s: &mut State<Self>, task: TaskId, _mm: MmId) {
        s.task_mut(task).cid_op = Some(CidOp::Work);
    }

    fn is_retry(s: &State<Self>, step: &Step) -> bool {
        match *step {
            // 6.19-rc7's second mode load is a step of its own, not a lap of a spin.
            Step::SchedinRetry { cpu } => s.cpus[cpu as usize].spin().is_some_and(|x| x.spins()),
            Step::Retry { .. } => true,
            _ => false,
        }
    }
    fn spinning(s: &State<Self>, out: &mut Vec<u16>) {
        for (c, cpu) in s.cpus.iter().enumerate() {
            if cpu.spin().is_some_and(|x| x.spins()) {
                out.push(c as u16);
            }
        }
        for (t, task) in s.tasks.iter().enumerate() {
            if s.on_cpu_settled(t as u8) && task.cid_op.is_some_and(CidOp::is_spin) {
                out.push(task.cpu as u16);
            }
        }
    }
    fn check(p: &Params, s: &State<Self>, out: &mut Vec<usize>) {
        check::check(p, s, out)
    }
    /// Three dead values. The number of a CID a task borrowed from a CPU while the task is off its
    /// CPU (`borrowed_number`). Where a dead task ran, in the designs whose tasks→CPUs walk visits
    /// `mm.user_list` (7.0 on): [`crate::symmetry::has_dead_task_cpu`]. And the number in a per-CPU
    /// slot its CPU does not own (no ONCPU: the per-task mode's hint, a number left by
    /// `drop_on_cpu`, a TRANSIT mirror) wherever `drop_on_cpu` is guarded (6.19.1 on): every
    /// reader of a slot looks at its flags first and at the number only under ONCPU
    /// (`mm_cid_from_task`'s fast path tests `cid_on_task(tcid | cpu_cid)`, `mm_cid_from_cpu`
    /// and the CPU→task walk test `cid_on_cpu`, guarded `drop_on_cpu` returns without ONCPU, I4 and
    /// I6 count ONCPU slots only), and every write replaces the whole word. 6.19 and 6.19-rc7's
    /// unguarded `drop_on_cpu` clears whatever number the slot holds: live there.
    fn forget_dead(p: &Params, s: &mut State<Self>) {
        if p.sw.task_walk == mmcid_cid::TaskWalk::UserList {
            crate::symmetry::forget_dead_task_cpu(s);
        }
        if p.sw.drop_on_cpu_guarded {
            for m in s.mms.stored_mut() {
                m.forget_hint_numbers();
            }
        }
        for i in 0..s.tasks.len() as TaskId {
            if borrowed_number(s, i) {
                let c = s.task(i).cid.cid;
                s.task_mut(i).cid.cid = c.flags();
            }
        }
    }
    fn has_dead(p: &Params, s: &State<Self>) -> bool {
        (p.sw.task_walk == mmcid_cid::TaskWalk::UserList && crate::symmetry::has_dead_task_cpu(s))
            || (p.sw.drop_on_cpu_guarded && s.mms.stored().iter().any(|m| m.has_hint_numbers()))
            || (0..s.tasks.len() as TaskId).any(|i| borrowed_number(s, i))
    }
    fn rename(s: &mut State<Self>, r: &dyn Fn(TaskId) -> TaskId) {
        for m in s.mms.stored_mut() {
            m.rename_users(r);
        }
    }
    fn rename_op(op: CidOp, r: &dyn Fn(TaskId) -> TaskId) -> CidOp {
        op.rename(r)
    }
    fn task_key(cid: &TaskCid, op: Option<&CidOp>) -> u64 {
        // Op tag (4 bits) and its payload without task ids (up to 21 bits), the active flag, the
        // raw CID word (32 bits).
        let op: u64 = match op {
            None => 0,
            Some(&CidOp::Fork { .. }) => 1,
            Some(&CidOp::ForkSpinLocked { first_user, .. }) => 2 | (first_user as u64) << 4,
            Some(&CidOp::ForkGetCid { .. }) => 3,
            Some(&CidOp::ForkSpinMutex { .. }) => 4,
            Some(&CidOp::Exit { .. }) => 5,
            Some(&CidOp::LastUserSync) => 6,
            Some(&CidOp::Work) => 7,
            Some(&CidOp::TasksToCpus { next }) => 8 | (next as u64) << 4,
            Some(&CidOp::TasksToCpusBudgeted { pass, i, j, budget }) => {
                9 | (pass as u64 & 3) << 4
                    | (i as u64 & 31) << 6
                    | (j as u64 & 31) << 11
                    | (budget as u64 & 31) << 16
            }
            Some(&CidOp::CpusToTasks { cpu, then }) => {
                let then: u64 = match then {
                    cid_op::AfterCpusToTasks::Unlock => 0,
                    cid_op::AfterCpusToTasks::ForkGetCid(_) => 1,
                    cid_op::AfterCpusToTasks::ForkLocked(_) => 2,
                };
                10 | (cpu as u64 & 15) << 4 | then << 8
            }
            Some(&CidOp::ForkLocked { .. }) => 11,
            Some(&CidOp::ExecAssign { spun }) => 12 | (spun as u64) << 4,
        };
        op << 33 | (cid.active as u64) << 32 | cid.cid.raw() as u64
    }

    #[inline(always)]
    fn task_key_stored(s: &[u8; 4]) -> u64 {
        cid_op::task_key_stored(s)
    }
    #[inline(always)]
    fn rename_task_store(s: &[u8; 4], map: &[TaskId; MAX_TASKS]) -> [u8; 4] {
        cid_op::rename_task_store(s, map)
    }

    fn name(
        p: &Params,
        s: &State<Self>,
        step: Step,
    ) -> Option<(String, crate::trace::KernelFn, Option<String>)> {
        describe::name(p, s, step)
    }
    fn effects(before: &State<Self>, after: &State<Self>, out: &mut Vec<crate::facts::Effect>) {
        describe::effects(before, after, out)
    }
    fn task_effects(i: TaskId, before: &Task<Self>, after: &Task<Self>, out: &mut Vec<crate::facts::Effect>) {
        describe::task_effects(i, before, after, out)
    }
    fn snapshot_task(t: &Task<Self>, out: &mut crate::snapshot::TaskSnapshot) {
        out.cid_op = t.cid_op.map(Into::into);
    }
    fn snapshot_cpu(s: &State<Self>, cpu: CpuId, out: &mut crate::snapshot::CpuSnapshot) {
        out.schedin = s.cpus[cpu as usize].spin().map(Into::into);
    }
    fn task_cid_raw(t: &TaskCid) -> u32 {
        t.cid.raw()
    }
    fn mm_snapshot(c: &MmCid) -> crate::snapshot::MmCidSnapshot {
        crate::snapshot::MmCidSnapshot::Rewrite {
            mode: c.mode,
            users: c.users.into(),
            max_cids: c.max_cids.into(),
            pcpu_thrs: c.pcpu_thrs.into(),
            bitmap: c.bitmap.iter().collect(),
            bitmap_bits: c.np.into(),
            slots: (0..c.np).map(|cpu| c.slot(cpu)).collect(),
            user_list: c.user_list.as_slice().to_vec(),
            faults: c.faults,
        }
    }
    fn bit_owners(s: &State<Self>, m: MmId) -> Vec<crate::facts::BitOwners> {
        describe::bit_owners(s, m)
    }
    fn explain(property: &str, agent: Option<u16>, s: &State<Self>) -> Vec<crate::facts::Fact> {
        describe::explain(property, agent, s)
    }
}

/// `mm_cid_irq_work` on `cpu`: `schedule_work(&mm->work)`; the kworker is woken there.
fn irq_work(s: &mut State<Rewrite>, cpu: CpuId) {
    for m in 0..s.mms.len() {
        let mut mm = s.mm_mut(m as MmId);
        if mm.irq_work == Some(cpu) {
            mm.irq_work = None;
            mm.work_pending = true;
        }
    }
    let kworker = s.tasks.iter().position(|t| t.kworker);
    if let Some(k) = kworker {
        let has_work = s.mms.iter().position(|mm| mm.work_pending);
        let mut k = s.task_mut(k as TaskId);
        if k.sched == Sched::Sleeping {
            k.sched = Sched::Runnable;
            k.cpu = cpu;
            k.op = Op::KworkerIdle;
        }
        if k.op == Op::KworkerIdle
            && let Some(m) = has_work
        {
            k.op = Op::Work { mm: m as MmId };
        }
    }
}
