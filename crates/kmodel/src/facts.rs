//! Typed facts the model reports about a step or a state, for tools (`--json`) and for the text
//! renderers alike: what a step changed ([`Effect`]) and who owns each set bit of a CID bitmap
//! ([`BitOwners`]). Nothing here is prose; the words a person reads are made from these values.

use mmcid_cid::legacy::{LegacyCid, LegacyFaults, OwnershipError};
use mmcid_cid::{Cid, CpuId, DropFaults, Mode, TaskId, WarnSite};
use schemars::JsonSchema;
use serde::Serialize;

use crate::snapshot::{GetPoint, MigratePoint};
use crate::state::MmId;
use crate::trace::{TaskState, cn, tn};

/// A counter of an mm's CID state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Counter {
    /// 7.0 family: `mm_cid.users`.
    Users,
    /// 7.0 family: `mm_cid.max_cids`.
    MaxCids,
    /// 7.0 family: `mm_cid.pcpu_thrs`.
    PcpuThrs,
    /// 6.18: `mm->max_nr_cid`.
    MaxNrCid,
    /// 6.18: `mm->mm_users`.
    MmUsers,
    /// 6.18: `mm->nr_cpus_allowed`.
    NrCpusAllowed,
}

impl Counter {
    /// The kernel field's name.
    pub fn field(self) -> &'static str {
        match self {
            Counter::Users => "users",
            Counter::MaxCids => "max_cids",
            Counter::PcpuThrs => "pcpu_thrs",
            Counter::MaxNrCid => "max_nr_cid",
            Counter::MmUsers => "mm_users",
            Counter::NrCpusAllowed => "nr_cpus_allowed",
        }
    }
}

/// Which CID bitmap of an mm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BitmapField {
    /// 7.0 family: `mm_cid.bitmap` (the text writes `bits`).
    Bitmap,
    /// 6.3 and 6.18: `mm->cidmask`.
    Cidmask,
}

/// A CID field of a 6.18 per-CPU slot (`struct mm_cid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlotField {
    /// `pcpu_cid->cid`.
    Cid,
    /// `pcpu_cid->recent_cid`.
    RecentCid,
}

/// A CID field of a 6.3 or 6.18 task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegacyTaskField {
    /// `t->mm_cid`.
    MmCid,
    /// 6.18: `t->last_mm_cid`.
    LastMmCid,
}

/// One thing a step changed. CID values are the kernel's raw words ([`Cid`]: bit 31 UNSET, bit
/// 30 ONCPU, bit 29 TRANSIT; [`LegacyCid`]: all ones UNSET, bit 31 LAZY); bitmaps are the
/// lists of their set bits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    /// `copy_process` created a task, not yet visible in any list.
    TaskCreated {
        /// The new task.
        task: TaskId,
    },
    /// Publication changed a thread list or the process list.
    Published,
    /// A task's scheduler state changed (to anything but running, which the column shows).
    Sched {
        /// The task.
        task: TaskId,
        /// Its new state.
        state: TaskState,
        /// The CPU it is on.
        cpu: CpuId,
    },
    /// A task moved to another CPU in the same scheduler state (a migration).
    Moved {
        /// The task.
        task: TaskId,
        /// Its new CPU.
        cpu: CpuId,
    },
    /// A task switched to another mm (execve).
    MmSwitched {
        /// The task.
        task: TaskId,
        /// Its new mm.
        mm: MmId,
    },
    /// A new mm (execve's `mm_alloc`).
    MmCreated {
        /// The new mm.
        mm: MmId,
    },
    /// A task became (or stopped being) an active CID user (`t->mm_cid.active`).
    Active {
        /// The task.
        task: TaskId,
        /// The new value.
        active: bool,
    },
    /// 7.0 family: a task's `mm_cid.cid` changed.
    TaskCid {
        /// The task.
        task: TaskId,
        /// Before (raw word).
        from: Cid,
        /// After (raw word).
        to: Cid,
    },
    /// 7.0 family: `get_cid` found no free CID and the CPU spins, its rq lock held.
    Spins {
        /// The CPU.
        cpu: CpuId,
    },
    /// 7.0 family: the CPU stopped spinning in `get_cid`.
    StopsSpinning {
        /// The CPU.
        cpu: CpuId,
    },
    /// 7.0 family (F5 split): `mm_cid_from_task` chose a CID; `READ_ONCE(transit)` is next.
    TransitLoad {
        /// The CPU.
        cpu: CpuId,
        /// The CID chosen (raw word).
        cid: Cid,
    },
    /// 7.0 family: the mm's mode word changed.
    Mode {
        /// The mm.
        mm: MmId,
        /// Before (raw word).
        from: Mode,
        /// After (raw word).
        to: Mode,
    },
    /// A counter of the mm's CID state changed.
    Count {
        /// The mm.
        mm: MmId,
        /// Which counter.
        field: Counter,
        /// Before.
        from: u32,
        /// After.
        to: u32,
    },
    /// A CID bitmap changed.
    Bitmap {
        /// The mm.
        mm: MmId,
        /// Which bitmap.
        field: BitmapField,
        /// Set bits before.
        from: Vec<u32>,
        /// Set bits after.
        to: Vec<u32>,
    },
    /// 7.0 family: a CPU's `mm_cid.pcpu` slot changed.
    PcpuSlot {
        /// The mm.
        mm: MmId,
        /// The CPU of the slot.
        cpu: CpuId,
        /// Before (raw word).
        from: Cid,
        /// After (raw word).
        to: Cid,
    },
    /// 7.0 family: the mm recorded a new fault (a bad drop, a WARN).
    DropFault {
        /// The mm.
        mm: MmId,
        /// All faults recorded so far.
        faults: DropFaults,
        /// The bitmap's size in bits (the bound an out-of-range drop broke).
        bitmap_bits: u32,
    },
    /// 7.0 family: `mm.irq_work` was queued.
    IrqWorkQueued {
        /// The mm.
        mm: MmId,
    },
    /// 6.3 and 6.18: a CID field of a task changed.
    LegacyTaskCid {
        /// The task.
        task: TaskId,
        /// Which field.
        field: LegacyTaskField,
        /// Before (raw word).
        from: LegacyCid,
        /// After (raw word).
        to: LegacyCid,
    },
    /// 6.18: `t->migrate_from_cpu` was set.
    MigrateFromCpu {
        /// The task.
        task: TaskId,
        /// The CPU it was migrated from.
        cpu: CpuId,
    },
    /// 6.18: a field of a CPU's slot changed.
    LegacySlot {
        /// The mm.
        mm: MmId,
        /// The CPU of the slot.
        cpu: CpuId,
        /// Which field.
        field: SlotField,
        /// Before (raw word).
        from: LegacyCid,
        /// After (raw word).
        to: LegacyCid,
    },
    /// 6.18: `use_cid_lock` changed.
    UseCidLock {
        /// The mm.
        mm: MmId,
        /// The new value.
        on: bool,
    },
    /// 6.18: `cid_lock` was taken (by `holder`) or released (`null`).
    CidLock {
        /// The mm.
        mm: MmId,
        /// The CPU holding it now.
        holder: Option<CpuId>,
    },
    /// 6.3 and 6.18: the mm recorded a new fault.
    LegacyFault {
        /// The mm.
        mm: MmId,
        /// All faults recorded so far.
        faults: LegacyFaults,
    },
    /// 6.18: a CPU entered or moved on inside `mm_cid_get` (rq lock held).
    GetCid {
        /// The CPU.
        cpu: CpuId,
        /// It busy-waits there (rather than stopping at a mere cut).
        spins: bool,
        /// Where `mm_cid_get` resumes.
        at: GetPoint,
    },
    /// 6.18: a CPU's `mm_cid_get` finished.
    GetDone {
        /// The CPU.
        cpu: CpuId,
    },
    /// 6.18: a CPU is inside `sched_mm_cid_migrate_to` for a migrated task (rq lock held).
    Migrating {
        /// The destination CPU.
        cpu: CpuId,
        /// The migrated task.
        task: TaskId,
        /// Where the migration stands.
        at: MigratePoint,
    },
    /// 6.18: a CPU's migration completed.
    MigrationDone {
        /// The CPU.
        cpu: CpuId,
    },
}

/// Who holds a set bit of a CID bitmap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Owner {
    /// 7.0 family: a task holding the plain or TRANSIT CID of the bit.
    Task {
        /// The task.
        task: TaskId,
        /// The CID it holds (raw word).
        cid: Cid,
        /// It is visible to a fix-up walk (in its thread list and the task list).
        visible: bool,
    },
    /// 7.0 family: a CPU whose slot holds the bit's ONCPU CID.
    Cpu {
        /// The CPU.
        cpu: CpuId,
    },
    /// 6.3 and 6.18: a task whose `mm_cid` names the bit (6.18: a copy of its CPU's slot).
    LegacyTask {
        /// The task.
        task: TaskId,
        /// Its `mm_cid` (raw word).
        cid: LegacyCid,
    },
    /// 6.18: a CPU's slot names the bit.
    LegacySlot {
        /// The CPU.
        cpu: CpuId,
        /// The slot's CID (raw word).
        cid: LegacyCid,
    },
    /// 6.18: the CID is in flight (taken by a remote clear or a migration, not yet put or placed).
    InFlight,
}

/// A set bit of an mm's CID bitmap and who owns it (no owner: the CID leaked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct BitOwners {
    /// The mm.
    pub mm: MmId,
    /// The bit.
    pub bit: u32,
    /// Its owners (empty: nobody, a leak; two or more: a CID handed out twice).
    pub owners: Vec<Owner>,
}

/// A task or a CPU, as the holder of a CID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Holder {
    /// A task.
    Task {
        /// The task.
        task: TaskId,
    },
    /// A CPU (its per-CPU slot).
    Cpu {
        /// The CPU.
        cpu: CpuId,
    },
}

/// What a CPU spinning in `get_cid` holds while it spins (7.0 family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpinSite {
    /// In schedin (`mm_cid_schedin`), holding its rq lock with IRQs off.
    Schedin,
    /// In `sched_mm_cid_fork`, holding `mm_cid.lock` with IRQs off.
    ForkLocked,
    /// In `sched_mm_cid_fork`, holding `mm_cid.mutex`.
    ForkMutex,
}

/// One fact about what is wrong in a violating state, built from the state: which task, CPU or
/// bit breaks a property and what it should have been. A violation lists the facts that hold in
/// its last state (the violated property's own first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// I1: two running tasks use the same CID at once.
    SameCid {
        /// One task.
        a: TaskId,
        /// Its CPU.
        cpu_a: CpuId,
        /// Its CID (raw word).
        cid_a: Cid,
        /// The other task.
        b: TaskId,
        /// Its CPU.
        cpu_b: CpuId,
        /// Its CID (raw word).
        cid_b: Cid,
    },
    /// I2: a task runs in user space with an UNSET CID (rseq shows no CID below the bound).
    UserSpaceUnset {
        /// The task.
        task: TaskId,
        /// Its CPU.
        cpu: CpuId,
        /// Its CID (raw word).
        cid: Cid,
        /// `num_possible_cpus()`.
        bound: u32,
    },
    /// I2: a task runs in user space with a CID at or above the bound.
    UserSpaceOutOfBound {
        /// The task.
        task: TaskId,
        /// Its CPU.
        cpu: CpuId,
        /// The value rseq shows.
        value: u32,
        /// `num_possible_cpus()`.
        bound: u32,
    },
    /// I5: a CPU's slot holds ONCPU and TRANSIT together.
    SlotOncpuTransit {
        /// The CPU.
        cpu: CpuId,
        /// The slot's value (raw word).
        cid: Cid,
    },
    /// I5: a task's CID has ONCPU and TRANSIT together.
    TaskOncpuTransit {
        /// The task.
        task: TaskId,
        /// Its CID (raw word).
        cid: Cid,
    },
    /// I4: a task that is no longer a CID user still holds a CID.
    InactiveHoldsCid {
        /// The task.
        task: TaskId,
        /// Its CID (raw word).
        cid: Cid,
    },
    /// I4: a bit is set and nobody owns its CID (leaked).
    BitLeaked {
        /// The bit.
        bit: u32,
    },
    /// I4: two owners hold the CID of one bit.
    BitOwnedTwice {
        /// The bit.
        bit: u32,
        /// Its owners.
        owners: Vec<Holder>,
    },
    /// I4: a bit is clear but someone holds its CID.
    BitClearButHeld {
        /// The bit.
        bit: u32,
        /// Who holds it.
        owners: Vec<Holder>,
    },
    /// I6: in per-task mode a CPU still owns an ONCPU CID.
    CpuCidInPerTaskMode {
        /// The CPU.
        cpu: CpuId,
        /// Its slot (raw word).
        cid: Cid,
    },
    /// I6: in per-CPU mode an active task owns a plain CID.
    PlainCidInPerCpuMode {
        /// The task.
        task: TaskId,
        /// Its CID (raw word).
        cid: Cid,
    },
    /// I7: the mode has TRANSIT but no fix-up walk runs.
    TransitWithoutWalk {
        /// The mode (raw word).
        mode: Mode,
    },
    /// I7: a fix-up walk runs but the mode lacks TRANSIT.
    WalkWithoutTransit {
        /// The mode (raw word).
        mode: Mode,
    },
    /// I8: `users`, the length of `user_list` and the number of active tasks disagree.
    UserCountMismatch {
        /// The mm.
        mm: MmId,
        /// `users`.
        users: u32,
        /// Entries of `user_list`.
        user_list: u32,
        /// Active CID users among its tasks.
        active: u32,
    },
    /// I8v: a task on `user_list` is invisible to a fix-up walk.
    InvisibleListedUser {
        /// The task.
        task: TaskId,
        /// The mm.
        mm: MmId,
    },
    /// A task owns a plain CID in per-CPU mode outside a walk.
    PlainCidOutsideWalk {
        /// The task.
        task: TaskId,
        /// Its CID (raw word).
        cid: Cid,
        /// It is visible to the fix-up walk.
        visible: bool,
    },
    /// A task is counted as a CID user before it is visible.
    ActiveBeforeVisible {
        /// The task.
        task: TaskId,
    },
    /// An active task runs in user space without a CID.
    UserSpaceWithoutCid {
        /// The task.
        task: TaskId,
    },
    /// The mode has TRANSIT while there are users and no walk runs.
    TransitModeIdle {
        /// The mode (raw word).
        mode: Mode,
    },
    /// Per-task mode with users, and a CPU still owns a CID.
    CpuCidLeftInPerTaskMode,
    /// `drop()` cleared a bit outside the bitmap.
    DropOutOfRange {
        /// The bit.
        bit: u32,
        /// The bitmap's size in bits.
        bitmap_bits: u32,
    },
    /// `drop()` cleared a bit nobody owned.
    DropAlreadyClear {
        /// The bit.
        bit: u32,
    },
    /// A `WARN_ON_ONCE` fired.
    Warn {
        /// Where.
        site: WarnSite,
    },
    /// A CPU spins in `get_cid` (the stall or live lock itself).
    Spins {
        /// The CPU.
        cpu: CpuId,
        /// Where it spins and what it holds.
        site: SpinSite,
        /// Every CID bit is set.
        bitmap_full: bool,
        /// Tasks waiting on its run queue, which nobody can lock.
        blocked: Vec<TaskId>,
    },
    /// 6.18: a CPU busy-waits in `mm_cid_get` holding its rq lock with IRQs off.
    GetBusyWait {
        /// The CPU.
        cpu: CpuId,
        /// Where `mm_cid_get` resumes.
        at: GetPoint,
    },
    /// 6.3 and 6.18: the running tasks of an mm do not hold distinct CIDs.
    RunningNotUnique {
        /// The mm.
        mm: MmId,
        /// What is wrong.
        error: OwnershipError,
    },
    /// 6.3 and 6.18: a task in user space has a CID out of bounds.
    UserSpaceBound {
        /// The task.
        task: TaskId,
        /// What is wrong.
        error: OwnershipError,
    },
    /// 6.3 and 6.18: the bitmap and its owners disagree.
    Ownership {
        /// The mm.
        mm: MmId,
        /// What is wrong.
        error: OwnershipError,
    },
    /// 6.18: a running task's `mm_cid` is not its CPU's slot.
    SlotMismatch {
        /// The task.
        task: TaskId,
        /// Its `mm_cid` (raw word).
        cid: LegacyCid,
        /// Its CPU.
        cpu: CpuId,
        /// The slot's `cid` (raw word).
        slot: LegacyCid,
    },
    /// 6.3 and 6.18: faults recorded in an mm.
    LegacyFaults {
        /// The mm.
        mm: MmId,
        /// The faults.
        faults: LegacyFaults,
    },
}

/// A set of bits as the kernel mails write a bitmap: `{0,1,3}`.
pub fn bits_words(bits: &[u32]) -> String {
    let b: Vec<String> = bits.iter().map(u32::to_string).collect();
    format!("{{{}}}", b.join(","))
}

impl Effect {
    /// One effect as a short line. `multi_mm`: the state has several mms, so mm fields name theirs.
    pub fn words(&self, multi_mm: bool) -> String {
        let e = self;
        let pre = |m: MmId| {
            if multi_mm {
                format!("mm{m} ")
            } else {
                String::new()
            }
        };
        match e {
            Effect::TaskCreated { task } => format!("T{task} created (unpublished)"),
            Effect::Published => "published".to_string(),
            Effect::Sched { task, state, cpu } => {
                let what = match state {
                    TaskState::Runnable => "runnable",
                    TaskState::Sleeping => "sleeps",
                    TaskState::Dead => "dead",
                    _ => "new",
                };
                format!("T{task} {what} on CPU{cpu}")
            }
            Effect::Moved { task, cpu } => format!("T{task} now on CPU{cpu}"),
            Effect::MmSwitched { task, mm } => format!("T{task} mm -> mm{mm}"),
            Effect::MmCreated { mm } => format!("new mm{mm}"),
            Effect::Active { task, active } => {
                format!("T{task} {}", if *active { "active" } else { "inactive" })
            }
            Effect::TaskCid { task, from, to } => format!("T{task}.cid {from} -> {to}"),
            Effect::Spins { .. } => "get_cid: no free CID, spins (rq lock held)".to_string(),
            Effect::StopsSpinning { cpu } => format!("CPU{cpu} stops spinning"),
            Effect::TransitLoad { cid, .. } => format!("from_task chose {cid}; next: READ_ONCE(transit)"),
            Effect::Mode { mm, from, to } => format!("{}mode {from} -> {to}", pre(*mm)),
            Effect::Count { mm, field, from, to } => {
                format!("{}{} {from} -> {to}", pre(*mm), field.field())
            }
            Effect::Bitmap { mm, field, from, to } => {
                let name = match field {
                    BitmapField::Bitmap => "bits",
                    BitmapField::Cidmask => "cidmask",
                };
                format!("{}{name} {} -> {}", pre(*mm), bits_words(from), bits_words(to))
            }
            Effect::PcpuSlot { mm, cpu, from, to } => format!("{}slot{cpu} {from} -> {to}", pre(*mm)),
            Effect::DropFault {
                mm,
                faults,
                bitmap_bits,
            } => format!(
                "{}FAULT {}",
                pre(*mm),
                crate::rewrite::describe::faults_words(faults, *bitmap_bits as u8)
            ),
            Effect::IrqWorkQueued { mm } => format!("{}irq_work queued", pre(*mm)),
            Effect::LegacyTaskCid {
                task,
                field,
                from,
                to,
            } => {
                let name = match field {
                    LegacyTaskField::MmCid => "mm_cid",
                    LegacyTaskField::LastMmCid => "last_mm_cid",
                };
                format!("T{task}.{name} {from} -> {to}")
            }
            Effect::MigrateFromCpu { task, cpu } => format!("T{task}.migrate_from_cpu = CPU{cpu}"),
            Effect::LegacySlot {
                mm,
                cpu,
                field,
                from,
                to,
            } => {
                let name = match field {
                    SlotField::Cid => "cid",
                    SlotField::RecentCid => "recent_cid",
                };
                format!("{}slot{cpu}.{name} {from} -> {to}", pre(*mm))
            }
            Effect::UseCidLock { mm, on } => format!("{}use_cid_lock {}", pre(*mm), *on as u8),
            Effect::CidLock { mm, holder } => match holder {
                Some(c) => format!("{}cid_lock taken by CPU{c}", pre(*mm)),
                None => format!("{}cid_lock released", pre(*mm)),
            },
            Effect::LegacyFault { mm, faults } => format!("{}FAULT {faults}", pre(*mm)),
            Effect::GetCid { cpu, spins, at } => {
                let what = if *spins {
                    "spins (rq lock held)"
                } else {
                    "continues"
                };
                format!("CPU{cpu} mm_cid_get {what}: {at}")
            }
            Effect::GetDone { cpu } => format!("CPU{cpu} mm_cid_get done"),
            Effect::Migrating { cpu, task, at } => {
                format!("CPU{cpu} migrating T{task}: {at} (rq lock held)")
            }
            Effect::MigrationDone { cpu } => format!("CPU{cpu} migration done"),
        }
    }
}

impl BitOwners {
    /// Who owns a set bit, as the state report of a design of `family` lists it: `bit 2: T3
    /// (plain)` (7.0 family), `mm0 bit 1: T2 (copy 1)` (6.18), `mm0 bit 1: T2 (1)` (6.3).
    pub fn words(&self, family: crate::config::FamilyKind) -> String {
        let b = self;
        use crate::config::FamilyKind;
        let mut owners: Vec<String> = b
            .owners
            .iter()
            .map(|o| match o {
                Owner::Task { task, cid, visible } => {
                    let kind = if cid.in_transit() { "TRANSIT" } else { "plain" };
                    let vis = if *visible { "" } else { ", not visible" };
                    format!("T{task} ({kind}{vis})")
                }
                Owner::Cpu { cpu } => format!("CPU{cpu} (ONCPU)"),
                Owner::LegacyTask { task, cid } if family == FamilyKind::Lazy618 => {
                    format!("T{task} (copy {cid})")
                }
                Owner::LegacyTask { task, cid } => format!("T{task} ({cid})"),
                Owner::LegacySlot { cpu, cid } => format!("CPU{cpu} slot ({cid})"),
                Owner::InFlight => "in flight (remote clear or migration)".to_string(),
            })
            .collect();
        if owners.is_empty() {
            owners.push("nobody (leaked)".into());
        }
        match family {
            FamilyKind::Rewrite => format!("bit {}: {}", b.bit, owners.join(", ")),
            _ => format!("mm{} bit {}: {}", b.mm, b.bit, owners.join(", ")),
        }
    }
}

/// What went wrong, in one sentence of the kernel's terms: the facts, or the property's broken
/// promise when no fact shows it.
pub fn sentence(property: &str, facts: &[Fact]) -> String {
    if facts.is_empty() {
        return crate::invariants::broken_promise(property);
    }
    let words: Vec<String> = facts.iter().map(Fact::to_string).collect();
    words.join("; ")
}

/// The fact in the kernel's terms.
impl std::fmt::Display for Fact {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let f = self;
        let text = {
            let holders = |o: &[Holder]| {
                let n: Vec<String> = o
                    .iter()
                    .map(|h| match h {
                        Holder::Task { task } => tn(*task),
                        Holder::Cpu { cpu } => cn(*cpu),
                    })
                    .collect();
                n.join(" and ")
            };
            match f {
                Fact::SameCid {
                    a,
                    cpu_a,
                    cid_a,
                    b,
                    cpu_b,
                    cid_b,
                } => format!(
                    "T{a} on CPU{cpu_a} (cid {cid_a}) and T{b} on CPU{cpu_b} (cid {cid_b}) run with the same CID {} at once",
                    cid_a.index()
                ),
                Fact::UserSpaceUnset {
                    task,
                    cpu,
                    cid,
                    bound,
                } => format!(
                    "T{task} runs in user space on CPU{cpu} with cid {cid} (raw {:#010x}): rseq hands it no CID below num_possible_cpus = {bound}",
                    cid.raw()
                ),
                Fact::UserSpaceOutOfBound {
                    task,
                    cpu,
                    value,
                    bound,
                } => format!(
                    "T{task} runs in user space on CPU{cpu} with mm_cid {value}, not below num_possible_cpus = {bound}"
                ),
                Fact::SlotOncpuTransit { cpu, cid } => format!(
                    "CPU{cpu}'s mm_cid.pcpu slot holds {:#010x} ({cid}): ONCPU and TRANSIT together",
                    cid.raw()
                ),
                Fact::TaskOncpuTransit { task, cid } => format!(
                    "T{task}'s mm_cid.cid is {:#010x} ({cid}): ONCPU and TRANSIT together",
                    cid.raw()
                ),
                Fact::InactiveHoldsCid { task, cid } => {
                    format!("T{task} is no longer a CID user but still holds CID {cid}")
                }
                Fact::BitLeaked { bit } => format!("bit {bit} is set but nobody owns CID {bit} (leaked)"),
                Fact::BitOwnedTwice { bit, owners } => {
                    format!("bit {bit} is owned by {} at once", holders(owners))
                }
                Fact::BitClearButHeld { bit, owners } => {
                    format!("bit {bit} is clear but {} holds CID {bit}", holders(owners))
                }
                Fact::CpuCidInPerTaskMode { cpu, cid } => {
                    format!("mode is per-task, yet CPU{cpu} still owns {cid} (it should hold no CID)")
                }
                Fact::PlainCidInPerCpuMode { task, cid } => format!(
                    "mode is per-CPU, yet T{task} owns the plain CID {cid} (it should borrow its CPU's ONCPU CID)"
                ),
                Fact::TransitWithoutWalk { mode } => format!("mode is {mode} but no fix-up walk runs"),
                Fact::WalkWithoutTransit { mode } => {
                    format!("a fix-up walk runs but mode {mode} lacks TRANSIT")
                }
                Fact::UserCountMismatch {
                    mm,
                    users,
                    user_list,
                    active,
                } => format!(
                    "mm{mm}: users is {users}, user_list holds {user_list}, {active} tasks are active CID users (all three should agree)"
                ),
                Fact::InvisibleListedUser { task, mm } => format!(
                    "T{task} is on mm{mm}'s user_list but in neither its thread list nor the task list, so a fix-up walk cannot see it"
                ),
                Fact::PlainCidOutsideWalk { task, cid, visible } => {
                    let vis = if *visible {
                        ""
                    } else {
                        ", invisible to the fix-up walk"
                    };
                    format!("T{task} owns plain CID {cid} in per-CPU mode{vis}")
                }
                Fact::ActiveBeforeVisible { task } => {
                    format!("T{task} is counted as a CID user before it is visible")
                }
                Fact::UserSpaceWithoutCid { task } => format!("T{task} runs in user space without a CID"),
                Fact::TransitModeIdle { mode } => format!("mode {mode} with no fix-up walk running"),
                Fact::CpuCidLeftInPerTaskMode => "a CPU still owns a CID in per-task mode".to_string(),
                Fact::DropOutOfRange { bit, bitmap_bits } => {
                    format!("drop() cleared bit {bit}, outside the {bitmap_bits}-bit bitmap")
                }
                Fact::DropAlreadyClear { bit } => format!("drop() cleared bit {bit}, which nobody owned"),
                Fact::Warn { site } => {
                    format!("WARN_ON_ONCE: {}", crate::rewrite::describe::warn_words(*site))
                }
                Fact::Spins {
                    cpu,
                    site,
                    bitmap_full,
                    blocked,
                } => {
                    let holder = match site {
                        SpinSite::Schedin => "in schedin, holding its rq lock with IRQs off",
                        SpinSite::ForkLocked => "in sched_mm_cid_fork, holding mm.lock with IRQs off",
                        SpinSite::ForkMutex => "in sched_mm_cid_fork, holding mm.mutex",
                    };
                    let mut h = format!("CPU{cpu} spins in get_cid {holder}");
                    if *bitmap_full {
                        h.push_str("; every CID bit is set");
                    }
                    if !blocked.is_empty() {
                        let b: Vec<String> = blocked.iter().map(|&t| tn(t)).collect();
                        h.push_str(&format!(
                            "; {} wait(s) on its run queue, which nobody can lock",
                            b.join(", ")
                        ));
                    }
                    h
                }
                Fact::GetBusyWait { cpu, at } => {
                    format!("CPU{cpu} busy-waits in mm_cid_get ({at}) holding its rq lock with IRQs off")
                }
                Fact::RunningNotUnique { mm, error } => format!("mm{mm} running tasks: {error}"),
                Fact::UserSpaceBound { task, error } => format!("T{task} in user space: {error}"),
                Fact::Ownership { mm, error } => format!("mm{mm}: {error}"),
                Fact::SlotMismatch { task, cid, cpu, slot } => {
                    format!("T{task} runs with mm_cid {cid} but CPU{cpu}'s slot holds {slot}")
                }
                Fact::LegacyFaults { mm, faults } => format!("mm{mm}: {faults}"),
            }
        };
        out.write_str(&text)
    }
}
