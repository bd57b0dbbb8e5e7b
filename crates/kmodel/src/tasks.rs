//! How a [`State`](crate::state::State) stores its tasks: each [`Task`] packed into a few bytes.
//!
//! Code reads and writes tasks as [`Task`] values (plain fields, easy to match on); the state keeps
//! them as [`StoredTask`]s: the kernel part in 40 bits, the family's part in its
//! [`Family::TaskStore`] (the 7.0 family: 4 bytes). A state is copied for every successor and
//! the engine keeps states by the million, so 14 tasks of 28 bytes were most of a 7.0 state; packed
//! they are 9 bytes each. Reading a task unpacks it (a few shifts); [`Tasks::sched_cpu`] reads the
//! two fields the scheduler scans need without unpacking the rest.
//!
//! Why by hand rather than with a bit-field crate: the fields are enums with payloads (`Op`)
//! whose packing is one `match` each; a derive would still need every enum spelled out.

use mmcid_cid::{CpuId, MAX_CPUS, TaskId};

use crate::family::Family;
use crate::fixed::Fixed;
use crate::state::{ExecAt, ExecKind, ExitAt, ForkAt, MAX_GROUPS, MAX_MMS, MAX_TASKS, MmId, Op, Sched, Task};

// The bit widths below hold these capacities.
const _: () = assert!(MAX_TASKS < 16 && MAX_MMS <= 3 && MAX_GROUPS <= 8 && MAX_CPUS <= 8);

/// A task packed: the kernel part in 5 bytes, the family's part in its own store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct StoredTask<F: Family> {
    /// Bits 0 kworker, 1 killed, 2–3 mm (+1, 0 = none), 4–6 group, 7–9 sched, 10–12 cpu,
    /// 13–20 affinity, 21–24 vfork parent (+1, 0 = none), 25–28 thread position, 29–31 the op's
    /// tag, 32–39 its payload.
    kernel: [u8; 5],
    family: F::TaskStore,
}

/// All-zero bits: the filler of unused slots (a `New` task of group 0 in user space; only the
/// first `len` tasks of a [`Tasks`] count).
impl<F: Family> Default for StoredTask<F> {
    fn default() -> Self {
        StoredTask {
            kernel: [0; 5],
            family: F::TaskStore::default(),
        }
    }
}

const fn sched_of(v: u64) -> Sched {
    match v {
        0 => Sched::New,
        1 => Sched::Running,
        2 => Sched::Runnable,
        3 => Sched::Sleeping,
        _ => Sched::Dead,
    }
}

fn fork_at(v: u64) -> ForkAt {
    match v {
        0 => ForkAt::Copy,
        1 => ForkAt::Publish,
        2 => ForkAt::PostFork,
        3 => ForkAt::Wake,
        4 => ForkAt::Failed,
        _ => ForkAt::Cleanup,
    }
}

fn exit_at(v: u64) -> ExitAt {
    match v {
        0 => ExitAt::Cid,
        1 => ExitAt::MmRelease,
        _ => ExitAt::Final,
    }
}

fn exec_at(v: u64) -> ExecAt {
    match v {
        0 => ExecAt::Before,
        1 => ExecAt::Outcome,
        2 => ExecAt::DeThread,
        3 => ExecAt::After,
        _ => ExecAt::Return,
    }
}

fn exec_kind(v: u64) -> ExecKind {
    match v {
        0 => ExecKind::Load,
        1 => ExecKind::Fail,
        _ => ExecKind::Check,
    }
}

/// The op as (tag, payload).
#[inline(always)]
fn op_bits(op: Op) -> (u64, u64) {
    match op {
        Op::User => (0, 0),
        Op::Fork { child, vfork, at } => {
            debug_assert!((child as usize) < MAX_TASKS);
            (1, child as u64 | (vfork as u64) << 4 | (at as u64) << 5)
        }
        Op::Exit { at } => (2, at as u64),
        Op::Exec { at, kind, in_exec } => (3, at as u64 | (kind as u64) << 3 | (in_exec as u64) << 5),
        Op::VforkWait { child } => (4, child as u64),
        Op::Work { mm } => (5, mm as u64),
        Op::KworkerIdle => (6, 0),
    }
}

#[inline(always)]
fn op_of(tag: u64, p: u64) -> Op {
    match tag {
        0 => Op::User,
        1 => Op::Fork {
            child: (p & 15) as TaskId,
            vfork: p & 16 != 0,
            at: fork_at(p >> 5 & 7),
        },
        2 => Op::Exit { at: exit_at(p & 3) },
        3 => Op::Exec {
            at: exec_at(p & 7),
            kind: exec_kind(p >> 3 & 3),
            in_exec: p & 32 != 0,
        },
        4 => Op::VforkWait { child: p as TaskId },
        5 => Op::Work { mm: p as u8 },
        _ => Op::KworkerIdle,
    }
}

impl<F: Family> StoredTask<F> {
    #[inline(always)]
    fn word(&self) -> u64 {
        let k = self.kernel;
        u32::from_le_bytes([k[0], k[1], k[2], k[3]]) as u64 | (k[4] as u64) << 32
    }

    /// Packs `t`.
    #[inline(always)]
    pub fn store(t: &Task<F>) -> Self {
        debug_assert!(t.mm.is_none_or(|m| (m as usize) < MAX_MMS));
        debug_assert!((t.group as usize) < MAX_GROUPS && t.cpu < 8);
        debug_assert!(t.vfork_parent.is_none_or(|p| (p as usize) < MAX_TASKS));
        debug_assert!((t.thread_pos as usize) <= MAX_TASKS);
        let (tag, payload) = op_bits(t.op);
        let w: u64 = t.kworker as u64
            | (t.killed as u64) << 1
            | t.mm.map_or(0, |m| m as u64 + 1) << 2
            | (t.group as u64) << 4
            | (t.sched as u64) << 7
            | (t.cpu as u64) << 10
            | (t.affinity as u64) << 13
            | t.vfork_parent.map_or(0, |p| p as u64 + 1) << 21
            | (t.thread_pos as u64) << 25
            | tag << 29
            | payload << 32;
        let b = w.to_le_bytes();
        StoredTask {
            kernel: [b[0], b[1], b[2], b[3], b[4]],
            family: F::store_task(&t.cid, t.cid_op.as_ref()),
        }
    }

    /// Unpacks the task.
    #[inline(always)]
    pub fn load(&self) -> Task<F> {
        let w = self.word();
        let (cid, cid_op) = F::load_task(&self.family);
        Task {
            kworker: w & 1 != 0,
            killed: w & 2 != 0,
            mm: match w >> 2 & 3 {
                0 => None,
                m => Some(m as u8 - 1),
            },
            group: (w >> 4 & 7) as u8,
            sched: sched_of(w >> 7 & 7),
            cpu: (w >> 10 & 7) as CpuId,
            affinity: (w >> 13) as u8,
            vfork_parent: match w >> 21 & 15 {
                0 => None,
                p => Some(p as TaskId - 1),
            },
            thread_pos: (w >> 25 & 15) as u8,
            op: op_of(w >> 29 & 7, w >> 32 & 0xff),
            cid_op,
            cid,
        }
    }

    /// The packed kernel part.
    pub fn kernel(&self) -> &[u8; 5] {
        &self.kernel
    }
    /// The family's part.
    pub fn family(&self) -> &F::TaskStore {
        &self.family
    }
    /// A stored task from its parts (as [`StoredTask::kernel`] and [`StoredTask::family`] gave
    /// them).
    pub fn from_parts(kernel: [u8; 5], family: F::TaskStore) -> Self {
        StoredTask { kernel, family }
    }

    /// The kernel part's bits as one number (layout: the `kernel` field's doc).
    #[inline(always)]
    pub(crate) fn kernel_word(&self) -> u64 {
        self.word()
    }

    /// The mm, without unpacking the rest.
    #[inline(always)]
    pub fn mm(&self) -> Option<MmId> {
        match self.kernel[0] >> 2 & 3 {
            0 => None,
            m => Some(m - 1),
        }
    }

    /// The task with every reference to another task renamed through `map` (`map[old] = new`),
    /// in place on the bits: the vfork parent, a fork's or vfork wait's child, and whatever the
    /// family's CID operation names ([`Family::rename_task_store`]).
    #[inline(always)]
    pub fn renamed(&self, map: &[TaskId; MAX_TASKS]) -> Self {
        let mut w = self.word();
        let vp = w >> 21 & 15;
        if vp != 0 {
            w = w & !(15 << 21) | (map[vp as usize - 1] as u64 + 1) << 21;
        }
        // Fork (tag 1) and VforkWait (tag 4) keep the child in the payload's low four bits.
        if matches!(w >> 29 & 7, 1 | 4) {
            w = w & !(15 << 32) | (map[(w >> 32 & 15) as usize] as u64) << 32;
        }
        let b = w.to_le_bytes();
        StoredTask {
            kernel: [b[0], b[1], b[2], b[3], b[4]],
            family: F::rename_task_store(&self.family, map),
        }
    }

    /// The task with every CPU it names renamed through `map` (`map[old] = new`), in place on
    /// the bits: its CPU, its affinity over the `np` CPUs (left alone when it has them all), and
    /// whatever the family's part names ([`Family::rename_task_store_cpus`]). CPU symmetry.
    #[inline(always)]
    pub(crate) fn cpus_renamed(&self, map: &[CpuId; MAX_CPUS], np: usize) -> Self {
        let mut w = self.word();
        w = w & !(7 << 10) | (map[(w >> 10 & 7) as usize] as u64) << 10;
        let aff = (w >> 13 & 0xff) as u8;
        let all = ((1u16 << np) - 1) as u8;
        if aff & all != all {
            let renamed = crate::symmetry::renamed_mask(aff, map, np);
            w = w & !(0xff << 13) | (renamed as u64) << 13;
        }
        let b = w.to_le_bytes();
        StoredTask {
            kernel: [b[0], b[1], b[2], b[3], b[4]],
            family: F::rename_task_store_cpus(&self.family, map),
        }
    }

    /// The scheduler state and CPU, without unpacking the rest.
    #[inline(always)]
    pub fn sched_cpu(&self) -> (Sched, CpuId) {
        let w = u16::from_le_bytes([self.kernel[0], self.kernel[1]]) as u64;
        (sched_of(w >> 7 & 7), (w >> 10 & 7) as CpuId)
    }
}

/// The tasks of a state, packed ([`StoredTask`]), read and written as [`Task`] values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tasks<F: Family> {
    items: Fixed<StoredTask<F>, MAX_TASKS>,
}

impl<F: Family> Tasks<F> {
    /// Tasks holding `xs`.
    pub fn from_slice(xs: &[Task<F>]) -> Self {
        let mut t = Tasks::default();
        for x in xs {
            t.push(*x);
        }
        t
    }
    /// Number of tasks.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// No task at all.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Task `i` (panics if there is none).
    #[inline(always)]
    pub fn at(&self, i: usize) -> Task<F> {
        self.items[i].load()
    }
    /// Task `i`, if there is one.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<Task<F>> {
        self.items.get(i).map(StoredTask::load)
    }
    /// Replaces task `i`.
    #[inline(always)]
    pub fn set(&mut self, i: usize, t: Task<F>) {
        self.items[i] = StoredTask::store(&t);
    }
    /// Appends a task (panics past [`MAX_TASKS`]; the configuration bounds prevent that).
    pub fn push(&mut self, t: Task<F>) {
        self.items.push(StoredTask::store(&t));
    }
    /// Appends a stored task.
    pub fn push_stored(&mut self, t: StoredTask<F>) {
        self.items.push(t);
    }
    /// The tasks in order, unpacked.
    #[inline(always)]
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Task<F>> + ExactSizeIterator + '_ {
        self.items.iter().map(StoredTask::load)
    }
    /// Task `i`'s scheduler state and CPU (see [`StoredTask::sched_cpu`]).
    #[inline(always)]
    pub fn sched_cpu(&self, i: usize) -> (Sched, CpuId) {
        self.items[i].sched_cpu()
    }
    /// The packed tasks.
    pub fn stored(&self) -> &[StoredTask<F>] {
        &self.items
    }
    /// Replaces stored task `i`.
    #[inline(always)]
    pub fn set_stored(&mut self, i: usize, t: StoredTask<F>) {
        self.items[i] = t;
    }
}

impl<F: Family> std::fmt::Debug for Tasks<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Serialised as the sequence of unpacked tasks (as before the packing).
impl<F: Family> serde::Serialize for Tasks<F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de, F: Family> serde::Deserialize<'de> for Tasks<F> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<Task<F>> = serde::Deserialize::deserialize(d)?;
        if v.len() > MAX_TASKS {
            return Err(serde::de::Error::invalid_length(
                v.len(),
                &"at most MAX_TASKS tasks",
            ));
        }
        Ok(Tasks::from_slice(&v))
    }
}

/// Task `t` of a state, unpacked for writing: the changes are packed back when it is dropped.
pub struct TaskMut<'a, F: Family> {
    slot: &'a mut StoredTask<F>,
    task: Task<F>,
}

impl<'a, F: Family> TaskMut<'a, F> {
    /// Unpacks task `i` of `tasks` for writing.
    #[inline(always)]
    pub fn new(tasks: &'a mut Tasks<F>, i: usize) -> Self {
        let slot = &mut tasks.items[i];
        let task = slot.load();
        TaskMut { slot, task }
    }
}

impl<F: Family> std::ops::Deref for TaskMut<'_, F> {
    type Target = Task<F>;
    #[inline(always)]
    fn deref(&self) -> &Task<F> {
        &self.task
    }
}

impl<F: Family> std::ops::DerefMut for TaskMut<'_, F> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Task<F> {
        &mut self.task
    }
}

impl<F: Family> Drop for TaskMut<'_, F> {
    #[inline(always)]
    fn drop(&mut self) {
        *self.slot = StoredTask::store(&self.task);
    }
}
