//! The 7.0 family's steps and states as typed descriptions: kernel function names, effects, bit
//! owners, the facts of a violation, the snapshot's view of a CID operation. The CLI renders them.

use mmcid_cid::{Cid, CpuId, Mode, SchedinSpin, TaskId};

use crate::facts::{BitOwners, BitmapField, Counter, Effect, Fact, Holder, Owner, SpinSite};
use crate::family::Rewrite;
use crate::ops::{Params, Step};
use crate::rewrite::cid_op::{AfterCpusToTasks, CidOp, walking};
use crate::rewrite::walk::{Visit, next_visit};
use crate::snapshot::{AfterFixup, CidOperation};
use crate::state::*;
use crate::trace::{KernelFn, cn, tn};

/// The kernel function of a 7.0-family step (`None`: the kernel names it).
pub fn name(p: &Params, s: &State<Rewrite>, step: Step) -> Option<(String, KernelFn, Option<String>)> {
    Some(match step {
        Step::SchedinRetry { cpu } if s.cpus[cpu as usize].spin().is_some_and(|x| !x.spins()) => {
            (cn(cpu), KernelFn::FromTaskTransitLoad, None)
        }
        Step::SchedinRetry { cpu } => (cn(cpu), KernelFn::GetCidRetry, None),
        Step::IrqWork { cpu } => (cn(cpu), KernelFn::MmCidIrqWork, None),
        Step::Retry { task } => (tn(task), KernelFn::GetCidRetry, None),
        Step::Next { task } => {
            let t = s.task(task);
            let (f, a) = match t.cid_op? {
                CidOp::Fork { t } => (KernelFn::SchedMmCidFork, Some(tn(t))),
                CidOp::ForkLocked { t } => (KernelFn::SchedMmCidForkLocked, Some(tn(t))),
                CidOp::ExecAssign { spun: false } => (KernelFn::MmCidSchedin, Some(tn(task))),
                CidOp::ExecAssign { spun: true } => (KernelFn::SchedMmCidForkReturn, None),
                CidOp::ForkGetCid { t } => (KernelFn::GetCid, Some(tn(t))),
                CidOp::Exit { t: who } => {
                    let f = if matches!(t.op, Op::Exec { .. }) {
                        KernelFn::SchedMmCidBeforeExecve
                    } else {
                        KernelFn::SchedMmCidExit
                    };
                    (f, Some(tn(who)))
                }
                CidOp::LastUserSync => (KernelFn::IrqWorkSync, None),
                CidOp::Work => (KernelFn::MmCidWorkFn, None),
                op @ (CidOp::TasksToCpus { .. }
                | CidOp::TasksToCpusBudgeted { .. }
                | CidOp::CpusToTasks { .. }) => match next_visit(p, s, task) {
                    Visit::Task(v) if matches!(op, CidOp::TasksToCpusBudgeted { .. }) => {
                        (KernelFn::FixupOne, Some(tn(v)))
                    }
                    Visit::Task(v) => (KernelFn::FixupTasksToCpus, Some(tn(v))),
                    Visit::Cpu(c) => (KernelFn::FixupCpusToTasks, Some(cn(c))),
                    Visit::Complete => (KernelFn::CompleteTransit, None),
                },
                CidOp::ForkSpinLocked { .. } | CidOp::ForkSpinMutex { .. } => (KernelFn::GetCidRetry, None),
            };
            (tn(task), f, a)
        }
        _ => return None,
    })
}

/// What a step changed in the CPUs' and mms' CID state.
pub fn effects(before: &State<Rewrite>, after: &State<Rewrite>, out: &mut Vec<Effect>) {
    for (i, (a, b)) in before.cpus.iter().zip(&after.cpus).enumerate() {
        let cpu = i as mmcid_cid::CpuId;
        let spins = |c: &crate::rewrite::RwCpu| c.spin().is_some_and(|x| x.spins());
        if !spins(a) && spins(b) {
            out.push(Effect::Spins { cpu });
        } else if spins(a) && !spins(b) {
            out.push(Effect::StopsSpinning { cpu });
        }
        if let Some(SchedinSpin::TransitLoad { tc }) = b.spin() {
            out.push(Effect::TransitLoad { cpu, cid: tc });
        }
    }
    for (m, mb) in after.mms.iter().enumerate() {
        let mm = m as MmId;
        let Some(ma) = before.mms.get(m) else {
            out.push(Effect::MmCreated { mm });
            continue;
        };
        let (x, y) = (&ma.cid, &mb.cid);
        if x.mode != y.mode {
            out.push(Effect::Mode {
                mm,
                from: x.mode,
                to: y.mode,
            });
        }
        for (field, from, to) in [
            (Counter::Users, x.users, y.users),
            (Counter::MaxCids, x.max_cids, y.max_cids),
            (Counter::PcpuThrs, x.pcpu_thrs, y.pcpu_thrs),
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
        if x.bitmap != y.bitmap {
            out.push(Effect::Bitmap {
                mm,
                field: BitmapField::Bitmap,
                from: x.bitmap.iter().collect(),
                to: y.bitmap.iter().collect(),
            });
        }
        for c in 0..after.cpus.len() {
            if x.pcpu[c] != y.pcpu[c] {
                out.push(Effect::PcpuSlot {
                    mm,
                    cpu: c as mmcid_cid::CpuId,
                    from: x.pcpu[c],
                    to: y.pcpu[c],
                });
            }
        }
        if x.faults != y.faults {
            out.push(Effect::DropFault {
                mm,
                faults: y.faults,
                bitmap_bits: y.np.into(),
            });
        }
        if ma.irq_work != mb.irq_work && mb.irq_work.is_some() {
            out.push(Effect::IrqWorkQueued { mm });
        }
    }
}

/// What a step changed in task `i`'s CID state.
pub fn task_effects(i: TaskId, ta: &Task<Rewrite>, tb: &Task<Rewrite>, out: &mut Vec<Effect>) {
    if ta.cid.cid != tb.cid.cid {
        out.push(Effect::TaskCid {
            task: i,
            from: ta.cid.cid,
            to: tb.cid.cid,
        });
    }
    if ta.cid.active != tb.cid.active {
        out.push(Effect::Active {
            task: i,
            active: tb.cid.active,
        });
    }
}

impl From<CidOp> for CidOperation {
    fn from(op: CidOp) -> CidOperation {
        match op {
            CidOp::Fork { t } => CidOperation::Fork { task: t },
            CidOp::ForkLocked { t } => CidOperation::ForkLocked { task: t },
            CidOp::ExecAssign { spun } => CidOperation::ExecAssign { assigned: spun },
            CidOp::ForkSpinLocked { t, first_user } => CidOperation::ForkSpinLocked { task: t, first_user },
            CidOp::ForkGetCid { t } => CidOperation::ForkGetCid { task: t },
            CidOp::ForkSpinMutex { t } => CidOperation::ForkSpinMutex { task: t },
            CidOp::Exit { t } => CidOperation::Exit { task: t },
            CidOp::LastUserSync => CidOperation::LastUserSync,
            CidOp::Work => CidOperation::Work,
            CidOp::TasksToCpus { next } => CidOperation::FixupTasksToCpus { next: next.into() },
            CidOp::TasksToCpusBudgeted { pass, i, j, budget } => CidOperation::FixupTasksToCpusBudgeted {
                pass: pass.into(),
                i: i.into(),
                j: j.into(),
                budget: budget.into(),
            },
            CidOp::CpusToTasks { cpu, then } => CidOperation::FixupCpusToTasks {
                cpu: cpu.into(),
                then: match then {
                    AfterCpusToTasks::Unlock => AfterFixup::Unlock,
                    AfterCpusToTasks::ForkGetCid(task) => AfterFixup::ForkGetCid { task },
                    AfterCpusToTasks::ForkLocked(task) => AfterFixup::ForkLocked { task },
                },
            },
        }
    }
}

/// Recorded faults in kernel words.
pub fn faults_words(f: &mmcid_cid::DropFaults, np: u8) -> String {
    let mut w = Vec::new();
    if let Some(b) = f.out_of_range {
        w.push(format!("clear_bit({b:#x}) outside the {np}-bit bitmap"));
    }
    if let Some(b) = f.already_clear {
        w.push(format!("clear_bit({b}) of a bit nobody owned"));
    }
    if let Some(site) = f.warn {
        w.push(format!("WARN_ON_ONCE: {}", warn_words(site)));
    }
    w.join(", ")
}

/// A WARN site in kernel words.
pub fn warn_words(site: mmcid_cid::WarnSite) -> &'static str {
    use mmcid_cid::WarnSite as W;
    match site {
        W::ForkCidNotUnset => "sched_mm_cid_fork: the task already has a CID",
        W::ExitSwitchedToPerCpu => "sched_mm_cid_exit: removing a user switched to per-CPU",
        W::ExitForeignMm => "sched_mm_cid_exit: a mode switch while current uses another mm",
        W::WorkSwitchedToPerCpu => "mm_cid_work_fn: re-evaluation switched to per-CPU",
        W::ReviveNotTransit => {
            "sched_mm_cid_fork (fix-execve-revive): mode of an mm without users is not TRANSIT"
        }
    }
}

/// Who owns each set bit of mm `m` (for explaining I4 and stalls).
pub fn bit_owners(s: &State<Rewrite>, m: MmId) -> Vec<BitOwners> {
    let c = s.mm(m);
    let mut out = Vec::new();
    for b in c.bitmap.iter() {
        let mut owners = Vec::new();
        for (i, t) in s.tasks_of(m) {
            if t.cid.cid.index() == b && !t.cid.cid.is_unset() && !t.cid.cid.on_cpu() {
                owners.push(Owner::Task {
                    task: i,
                    cid: t.cid.cid,
                    visible: s.published(i),
                });
            }
        }
        for cpu in 0..s.np() {
            if c.slot(cpu) == Cid::new(b).add_cpu() {
                owners.push(Owner::Cpu { cpu });
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

/// What is wrong in `s`, as facts: first, for a stall or live lock, the spinning CPU
/// ([`Fact::Spins`]); then the violated property's own facts ([`property_facts`]); then whatever
/// else is off in the state.
pub fn explain(property: &str, agent: Option<u16>, s: &State<Rewrite>) -> Vec<Fact> {
    let mut why = Vec::new();
    if let ("stall" | "livelock", Some(cpu)) = (property, agent) {
        let cpu = cpu as CpuId;
        let site = if s.cpus[cpu as usize].spin().is_some() {
            SpinSite::Schedin
        } else {
            match s.curr(cpu).map(|t| s.task(t).cid_op) {
                Some(Some(CidOp::ForkSpinLocked { .. })) => SpinSite::ForkLocked,
                _ => SpinSite::ForkMutex,
            }
        };
        why.push(Fact::Spins {
            cpu,
            site,
            bitmap_full: s
                .mms
                .first()
                .map(|m| m.cid.bitmap.weight() == m.cid.np as u32)
                .unwrap_or(false),
            blocked: s.runqueue(cpu).collect(),
        });
    }
    why.extend(property_facts(property, s));
    for (m, mm) in s.mms.iter().enumerate() {
        let m = m as MmId;
        let c = &mm.cid;
        for (id, t) in s.tasks_of(m) {
            // (the violated property's own facts, above, already say what these say)
            if t.cid.cid.on_task() && c.mode.percpu() && !walking(s, m) && property != "I6" {
                why.push(Fact::PlainCidOutsideWalk {
                    task: id,
                    cid: t.cid.cid,
                    visible: s.published(id),
                });
            }
            if t.cid.active && !s.published(id) && property != "I8v" {
                why.push(Fact::ActiveBeforeVisible { task: id });
            }
            if t.cid.active
                && t.cid.cid.is_unset()
                && s.on_cpu_settled(id)
                && s.in_user(id)
                && property != "I2"
            {
                why.push(Fact::UserSpaceWithoutCid { task: id });
            }
        }
        if c.users > 0 && c.mode.in_transit() && !walking(s, m) && property != "I7" {
            why.push(Fact::TransitModeIdle { mode: c.mode });
        }
        if c.mode == Mode::PER_TASK
            && c.users > 0
            && c.pcpu.iter().take(s.cpus.len()).any(|x| x.on_cpu())
            && property != "I6"
        {
            why.push(Fact::CpuCidLeftInPerTaskMode);
        }
        if let Some(bit) = c.faults.out_of_range {
            why.push(Fact::DropOutOfRange {
                bit,
                bitmap_bits: c.np.into(),
            });
        }
        if let Some(bit) = c.faults.already_clear {
            why.push(Fact::DropAlreadyClear { bit });
        }
        if let Some(site) = c.faults.warn {
            why.push(Fact::Warn { site });
        }
    }
    let mut out: Vec<Fact> = Vec::with_capacity(why.len());
    for f in why {
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// The facts of `property` (a [`crate::invariants::Property`] id) in `s`: which task, CPU or bit
/// breaks it and what it should have been. Empty if nothing in `s` shows it (or the property
/// has no specific facts).
pub fn property_facts(property: &str, s: &State<Rewrite>) -> Vec<Fact> {
    use crate::invariants::Property as P;
    let Some(p) = P::from_id(property) else {
        return Vec::new();
    };
    let np = s.np() as u32;
    let mut out = Vec::new();
    for (mi, mm) in s.mms.iter().enumerate() {
        let m = mi as MmId;
        let c = &mm.cid;
        let on = |i: TaskId| s.task(i).cpu;
        match p {
            P::I1 => {
                let running: Vec<(TaskId, Cid)> = s
                    .tasks_of(m)
                    .filter(|&(i, t)| t.cid.active && s.on_cpu_settled(i) && !t.cid.cid.is_unset())
                    .map(|(i, t)| (i, t.cid.cid))
                    .collect();
                for (k, &(a, cid_a)) in running.iter().enumerate() {
                    if let Some(&(b, cid_b)) = running[k + 1..]
                        .iter()
                        .find(|(_, cb)| cb.index() == cid_a.index())
                    {
                        out.push(Fact::SameCid {
                            a,
                            cpu_a: on(a),
                            cid_a,
                            b,
                            cpu_b: on(b),
                            cid_b,
                        });
                    }
                }
            }
            P::I2 => {
                for (i, t) in s.tasks_of(m) {
                    if t.cid.active && s.on_cpu_settled(i) && s.in_user(i) {
                        let v = t.cid.cid;
                        if v.is_unset() {
                            out.push(Fact::UserSpaceUnset {
                                task: i,
                                cpu: on(i),
                                cid: v,
                                bound: np,
                            });
                        } else if v.user_value() >= np {
                            out.push(Fact::UserSpaceOutOfBound {
                                task: i,
                                cpu: on(i),
                                value: v.user_value(),
                                bound: np,
                            });
                        }
                    }
                }
            }
            P::I5 => {
                for cpu in 0..s.np() {
                    let x = c.slot(cpu);
                    if x.on_cpu() && x.in_transit() {
                        out.push(Fact::SlotOncpuTransit { cpu, cid: x });
                    }
                }
                for (i, t) in s.tasks_of(m) {
                    let x = t.cid.cid;
                    if x.on_cpu() && x.in_transit() {
                        out.push(Fact::TaskOncpuTransit { task: i, cid: x });
                    }
                }
            }
            P::I4 => out.extend(bit_problems(s, m)),
            P::I6 => {
                if c.mode == Mode::PER_TASK {
                    for cpu in 0..s.np() {
                        if c.slot(cpu).on_cpu() {
                            out.push(Fact::CpuCidInPerTaskMode {
                                cpu,
                                cid: c.slot(cpu),
                            });
                        }
                    }
                } else if c.mode == Mode::PER_CPU {
                    for (i, t) in s.tasks_of(m) {
                        if t.cid.active && t.cid.cid.on_task() {
                            out.push(Fact::PlainCidInPerCpuMode {
                                task: i,
                                cid: t.cid.cid,
                            });
                        }
                    }
                }
            }
            P::I7 => {
                let w = walking(s, m);
                if c.mode.in_transit() && !w {
                    out.push(Fact::TransitWithoutWalk { mode: c.mode });
                } else if !c.mode.in_transit() && w {
                    out.push(Fact::WalkWithoutTransit { mode: c.mode });
                }
            }
            P::I8 => {
                let active = s.tasks_of(m).filter(|(_, t)| t.cid.active).count();
                out.push(Fact::UserCountMismatch {
                    mm: m,
                    users: c.users.into(),
                    user_list: c.user_list.len() as u32,
                    active: active as u32,
                });
            }
            P::I8v => {
                for &t in c.user_list.as_slice() {
                    if !s.published(t) {
                        out.push(Fact::InvisibleListedUser { task: t, mm: m });
                    }
                }
            }
            _ => return Vec::new(),
        }
    }
    out
}

/// What is wrong with the bitmap's ownership (I4): a set bit with no owner or two, a clear bit
/// with an owner, an inactive task still holding a CID.
fn bit_problems(s: &State<Rewrite>, m: MmId) -> Vec<Fact> {
    let c = s.mm(m);
    let mut out = Vec::new();
    for (i, t) in s.tasks_of(m) {
        let v = t.cid.cid;
        if !v.is_unset() && !v.on_cpu() && !t.cid.active {
            out.push(Fact::InactiveHoldsCid { task: i, cid: v });
        }
    }
    for bit in 0..c.np as u32 {
        let mut owners = Vec::new();
        for (i, t) in s.tasks_of(m) {
            let v = t.cid.cid;
            if !v.is_unset() && !v.on_cpu() && v.index() == bit {
                owners.push(Holder::Task { task: i });
            }
        }
        for cpu in 0..s.np() {
            if c.slot(cpu) == Cid::new(bit).add_cpu() {
                owners.push(Holder::Cpu { cpu });
            }
        }
        match (c.bitmap.is_set(bit), owners.len()) {
            (true, 0) => out.push(Fact::BitLeaked { bit }),
            (true, 1) | (false, 0) => {}
            (true, _) => out.push(Fact::BitOwnedTwice { bit, owners }),
            (false, _) => out.push(Fact::BitClearButHeld { bit, owners }),
        }
    }
    out
}
