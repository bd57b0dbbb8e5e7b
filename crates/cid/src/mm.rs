//! Per-mm, per-CPU and per-task CID state (spec 1.2–1.4), and `update_max_cids` /
//! `complete_transit` (spec 2).

use crate::pool::Cleared;
use crate::storage::{Bitmap, Compact, CpuSet, Num, Slots, Stats, Storage};
use crate::switches::Switches;
use crate::{Cid, Mode, TaskId, mode};

/// Largest number of possible CPUs the model supports (slots are a fixed array).
pub const MAX_CPUS: usize = 8;
/// Largest number of simultaneous CID users of one mm the model supports.
pub const MAX_USERS: usize = 16;

/// A set of CPUs (bit `c` = CPU `c`).
pub type CpuMask = u8;

/// `mm.user_list`: the active users, newest first (insertion at the head, spec 1.2).
///
/// # Locks
/// Changed under `mutex` and `lock`; iterated under `mutex`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct UserList {
    len: u8,
    ids: [TaskId; MAX_USERS],
}

impl UserList {
    /// Number of tasks on the list.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// True if the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The tasks, newest first.
    pub fn as_slice(&self) -> &[TaskId] {
        &self.ids[..self.len as usize]
    }
    /// The list holding `ids`, newest first (how a packed copy is read back: one copy instead
    /// of a `push_front` per entry).
    ///
    /// # Panics
    /// If there are more than [`MAX_USERS`] ids.
    #[inline]
    pub fn from_newest_first(ids: &[TaskId]) -> UserList {
        assert!(
            ids.len() <= MAX_USERS,
            "more than {MAX_USERS} CID users in one mm"
        );
        let mut l = UserList {
            len: ids.len() as u8,
            ids: [0; MAX_USERS],
        };
        l.ids[..ids.len()].copy_from_slice(ids);
        l
    }
    /// `hlist_add_head`.
    pub fn push_front(&mut self, t: TaskId) {
        assert!(
            self.len() < MAX_USERS,
            "more than {MAX_USERS} CID users in one mm"
        );
        let n = self.len();
        self.ids.copy_within(0..n, 1);
        self.ids[0] = t;
        self.len += 1;
    }
    /// `hlist_del_init`; returns whether `t` was on the list.
    pub fn remove(&mut self, t: TaskId) -> bool {
        let Some(i) = self.as_slice().iter().position(|&x| x == t) else {
            return false;
        };
        let n = self.len();
        self.ids.copy_within(i + 1..n, i);
        self.len -= 1;
        self.ids[self.len()] = 0;
        true
    }
    /// Renames every task id through `map` (symmetry reduction); order is kept.
    pub fn rename(&mut self, map: impl Fn(TaskId) -> TaskId) {
        for i in 0..self.len() {
            self.ids[i] = map(self.ids[i]);
        }
    }
}

impl std::fmt::Debug for UserList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A `WARN_ON_ONCE` site of the CID code. The kernel prints a warning and carries on; the model
/// records the first one so that an invariant can report it.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum WarnSite {
    /// `fork_cid`: the task to register already has a CID.
    ForkCidNotUnset,
    /// `exit_cid`: removing a user switched the mm to per-CPU.
    ExitSwitchedToPerCpu,
    /// `exit_cid`: a mode switch while `current` uses another mm.
    ExitForeignMm,
    /// deferred work: re-evaluation switched the mm to per-CPU.
    WorkSwitchedToPerCpu,
    /// `fork_cid` with F2's fix: an mm without users whose mode is neither per-task nor
    /// TRANSIT towards per-task.
    ReviveNotTransit,
}

/// Diagnostics the kernel would not notice: drops that clear a bit nobody owned or a bit outside
/// the bitmap (designs.md I.0.3), and WARNs. Sticky, so that an invariant can report them.
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    Debug,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct DropFaults {
    /// First index `>= np` passed to `drop()`: the kernel clears a bit of adjacent memory.
    pub out_of_range: Option<u32>,
    /// First index dropped while its bit was already clear (a CID dropped twice, or by a non-owner).
    pub already_clear: Option<u32>,
    /// First WARN that fired.
    pub warn: Option<WarnSite>,
}

/// The CID state of one mm (`struct mm_mm_cid`, spec 1.2) with its per-CPU slots (spec 1.3).
///
/// Generic over its [`Storage`]; `MmCid` without a parameter is the checker's [`Compact`] one.
///
/// Locks, per field, as the kernel has them: `mode`, `max_cids` are written under `lock` (mode
/// also completed under `mutex` alone) and read lock-free; `users`, `user_list` under `mutex` and
/// `lock`; `nr_cpus_allowed`, `cpus_allowed`, `pcpu_thrs`, `update_deferred` under `lock`; the bitmap
/// by atomic bit operations only; a slot by its CPU under its rq lock, or remotely with that rq lock
/// held (fork/exit touch the local slot under `lock` with IRQs off).
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct MmCidOf<S: Storage> {
    /// `num_possible_cpus()`: bitmap size and the hard CID bound (I2).
    pub np: S::Count,
    /// Ownership mode (I6, I7). With the two-word representation (S7 off) this is
    /// `percpu ? ONCPU : 0 | transit`, stored as the two words would be.
    pub mode: Mode,
    /// Exclusive allocation / convergence bound.
    pub max_cids: S::Count,
    /// Active CID users (I8: equals `user_list.len()` and the number of tasks with `active`).
    pub users: S::Count,
    /// Weight of `cpus_allowed` (only grows).
    pub nr_cpus_allowed: S::Count,
    /// Union of all affinities seen (only grows).
    pub cpus_allowed: S::Mask,
    /// 0 = not per-CPU; else the user count below which the mm switches back to per-task.
    pub pcpu_thrs: S::Count,
    /// A deferred switch back to per-task is queued.
    pub update_deferred: bool,
    /// The active users, newest first.
    pub user_list: S::Users,
    /// The CID bitmap (I4).
    pub bitmap: S::Bitmap,
    /// Per-CPU slots (`mm_cid_pcpu.cid`); zero-filled at allocation (spec 1.3).
    pub pcpu: S::Slots<Cid>,
    /// Drops the kernel would not notice.
    pub faults: DropFaults,
    /// Traffic counters ([`crate::storage::NoStats`] in the checker: zero-sized).
    #[serde(skip)]
    pub stats: S::Stats,
}

impl<S: Storage> std::hash::Hash for MmCidOf<S> {
    /// Field by field, as a derive would, but inlinable: the checker hashes every state it stores
    /// and the derived impl left the slot array's hash out of line (+3% instructions on `mmcid
    /// check`).
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.np.hash(h);
        self.mode.hash(h);
        self.max_cids.hash(h);
        self.users.hash(h);
        self.nr_cpus_allowed.hash(h);
        self.cpus_allowed.hash(h);
        self.pcpu_thrs.hash(h);
        self.update_deferred.hash(h);
        self.user_list.hash(h);
        self.bitmap.hash(h);
        let slots = self.pcpu.as_slice();
        h.write_usize(slots.len());
        for c in slots {
            c.hash(h);
        }
        self.faults.hash(h);
    }
}

/// The checker's compact [`MmCidOf`] (np ≤ 8, ≤ 16 users).
pub type MmCid = MmCidOf<Compact>;

/// A task's CID state (`struct sched_mm_cid`, spec 1.4). Membership in `user_list` is the node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
pub struct TaskCid {
    /// 1 while the task is a CID user of its mm.
    pub active: bool,
    /// The task's CID: its own (plain), borrowed from its CPU (ONCPU), temporary (TRANSIT) or UNSET.
    pub cid: Cid,
}

impl Default for TaskCid {
    /// `dup_task_struct`: cid = UNSET, active = 0.
    fn default() -> Self {
        TaskCid {
            active: false,
            cid: Cid::UNSET,
        }
    }
}

impl<S: Storage> MmCidOf<S> {
    /// `mm_init_cid(mm, p)` (spec 4.1): `np` possible CPUs, `p`'s affinity `cpus_mask`.
    pub fn new(np: S::Count, cpus_mask: S::Mask) -> MmCidOf<S> {
        assert!(
            (1..=S::MAX_NP).contains(&np.n()),
            "np must be in 1..={}",
            S::MAX_NP
        );
        MmCidOf {
            np,
            mode: Mode::PER_TASK,
            max_cids: S::Count::of(0),
            users: S::Count::of(0),
            nr_cpus_allowed: S::Count::of(cpus_mask.weight()),
            cpus_allowed: cpus_mask,
            pcpu_thrs: S::Count::of(0),
            update_deferred: false,
            user_list: S::Users::default(),
            bitmap: S::Bitmap::with_bits(np.n()),
            pcpu: S::Slots::<Cid>::filled(np.n(), Cid::default()),
            faults: DropFaults::default(),
            stats: S::Stats::default(),
        }
    }

    /// The slot of CPU `cpu`.
    #[inline(always)]
    pub fn slot(&self, cpu: S::Cpu) -> Cid {
        self.pcpu.as_slice()[cpu.ix()]
    }

    /// `set_local_slot` / a remote slot write (the caller holds that CPU's rq lock, or is that CPU
    /// with `lock` held and IRQs off).
    #[inline(always)]
    pub fn set_slot(&mut self, cpu: S::Cpu, c: Cid) {
        self.stats.slot_write();
        self.pcpu.as_mut_slice()[cpu.ix()] = c;
    }

    /// `np` as `u32`.
    #[inline(always)]
    pub fn np_(&self) -> u32 {
        self.np.n()
    }

    /// Recomputes `max_cids` from `users` and `nr_cpus_allowed` (spec 2).
    #[inline]
    pub fn recompute_max_cids(&mut self) {
        self.max_cids = S::Count::of(mode::max_cids(
            self.nr_cpus_allowed.n(),
            self.users.n(),
            self.np.n(),
        ));
    }

    /// `calc_thrs` for the current `users` and `nr_cpus_allowed`.
    #[inline]
    pub fn calc_thrs(&self) -> S::Count {
        S::Count::of(mode::calc_thrs(
            self.nr_cpus_allowed.n(),
            self.users.n(),
            self.np.n(),
        ))
    }

    /// `try_get(mm, limit)`: the lowest free bit below `limit`, taken atomically (spec 3). The
    /// kernel's find-then-test_and_set can lose a race and return UNSET; the model takes the pair as
    /// one atomic step, which removes only such spurious failures (they lead to another lap of the
    /// same loop).
    #[inline]
    pub fn try_get(&mut self, limit: u32) -> Option<Cid> {
        let c = self.bitmap.first_zero(limit.min(self.np.n()))?;
        self.stats.bit_op();
        let was = self.bitmap.test_and_set(c);
        debug_assert!(!was);
        Some(Cid::new(c))
    }

    /// `drop(mm, c)`: `clear_bit(c)` with no range check (spec 3), `c` taken as the raw word as the
    /// kernel does. A clear of a free bit or of an index outside the bitmap is recorded in
    /// [`MmCidOf::faults`].
    pub fn drop_cid(&mut self, c: Cid) {
        // `clear_bit(cid, bitmap)` takes the stored word as the index: a TRANSIT or UNSET value
        // (6.19's unguarded `drop_on_cpu` of a mirrored slot) names a bit far outside the bitmap.
        let i = c.raw();
        self.stats.bit_op();
        match self.bitmap.clear(i, self.np.n()) {
            Cleared::Cleared => {}
            Cleared::WasClear => {
                self.faults.already_clear.get_or_insert(i);
            }
            Cleared::OutOfRange => {
                self.faults.out_of_range.get_or_insert(i);
            }
        }
    }
}

/// `mm_update_max_cids(mm)` (spec 2): recompute `max_cids` and the hysteresis threshold after a
/// change of `users` or `nr_cpus_allowed`; if the mode must change, flip it (one store, then a full
/// fence) and return true. The caller then runs the fix-up walk and [`complete_transit`].
///
/// # Locks
/// `mm.lock` held.
pub fn update_max_cids<S: Storage>(mm: &mut MmCidOf<S>, sw: &Switches) -> bool {
    // Uses the mode as it was before this call: TRANSIT alone is not per-CPU.
    let percpu = mm.mode.percpu();
    // Unconditional: a fork or exit also consumes a pending deferred switch.
    mm.update_deferred = false;
    mm.recompute_max_cids();
    if !percpu {
        if mm.users > mm.max_cids {
            mm.pcpu_thrs = mm.calc_thrs();
        }
    } else if mm.users < mm.pcpu_thrs {
        mm.pcpu_thrs = S::Count::of(0);
    }
    // Mode change required?
    if percpu == (mm.pcpu_thrs.n() != 0) {
        return false;
    }
    if sw.one_word_mode {
        // The flip changes direction and sets TRANSIT; assumes TRANSIT was clear.
        mm.mode = mm.mode.flipped();
    } else {
        // 6.19-rc7 (D.1): two words; TRANSIT only when switching to per-task, no fences.
        let to_percpu = mm.pcpu_thrs.n() != 0;
        let transit = mm.mode.in_transit() || !to_percpu;
        mm.mode = Mode::from_parts(to_percpu, transit);
    }
    true
}

/// `mm_cid_complete_transit(mm, m)` (spec 2): full fence, then `mode := m`.
///
/// With the two-word mode (S7 off, 6.19-rc7) only the CPU→task walk completes, by clearing the
/// `transit` word; the task→CPU walk writes nothing (D.1).
///
/// # Locks
/// `mm.mutex` held (only).
pub fn complete_transit<S: Storage>(mm: &mut MmCidOf<S>, m: Mode, sw: &Switches) {
    if sw.one_word_mode {
        mm.mode = m;
    } else if !m.percpu() {
        mm.mode = Mode::from_parts(mm.mode.percpu(), false);
    }
}

impl TaskCid {
    /// A task holding `cid`.
    pub fn with_cid(active: bool, cid: Cid) -> TaskCid {
        TaskCid { active, cid }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switches::Switches;

    #[test]
    fn user_list_is_newest_first() {
        let mut l = UserList::default();
        l.push_front(1);
        l.push_front(2);
        l.push_front(3);
        assert_eq!(l.as_slice(), &[3, 2, 1]);
        assert!(l.remove(2));
        assert!(!l.remove(2));
        assert_eq!(l.as_slice(), &[3, 1]);
    }

    /// The hazard behind finding F2 (docs/findings/02-execve-revives-dead-mm.md) at the function
    /// level: a mode left at TRANSIT (towards per-task) by a revived mm flips to per-CPU *without*
    /// TRANSIT (`mode ^ (MM_CID_TRANSIT | MM_CID_ONCPU)`), so a tasks→CPUs walk would run while
    /// schedin hands CPUs their CIDs for good (the 6.19-rc7 hazard 4327fb13fa47 removed).
    #[test]
    fn a_flip_from_a_stuck_transit_loses_the_transit_bit() {
        let sw = Switches::V7_0;
        let mut mm = MmCid::new(2, 0b11);
        mm.mode = Mode::TO_TASK;
        mm.users = 3; // > max_cids 2
        assert!(update_max_cids(&mut mm, &sw));
        assert_eq!(mm.mode, Mode::PER_CPU);
        assert!(!mm.mode.in_transit());
    }

    #[test]
    fn update_max_cids_flips_both_ways_with_hysteresis() {
        let sw = Switches::V7_0;
        let mut mm = MmCid::new(4, 0xf);
        for users in 1..=4 {
            mm.users = users;
            assert!(!update_max_cids(&mut mm, &sw), "{users} users fit in max_cids");
        }
        mm.update_deferred = true;
        mm.users = 5; // 5 > max_cids 4: per-CPU, pcpu_thrs = max(min(4-1, 2), 1) = 2
        assert!(update_max_cids(&mut mm, &sw));
        assert_eq!((mm.mode, mm.max_cids, mm.pcpu_thrs), (Mode::TO_CPU, 4, 2));
        assert!(!mm.update_deferred, "a fork consumes a pending deferred switch");
        complete_transit(&mut mm, Mode::PER_CPU, &sw);
        mm.users = 2; // not below pcpu_thrs: stays per-CPU
        assert!(!update_max_cids(&mut mm, &sw));
        mm.users = 1;
        assert!(update_max_cids(&mut mm, &sw));
        assert_eq!((mm.mode, mm.pcpu_thrs), (Mode::TO_TASK, 0));
        complete_transit(&mut mm, Mode::PER_TASK, &sw);
        assert_eq!(mm.mode, Mode::PER_TASK);
    }

    #[test]
    fn the_two_word_mode_of_6_19_rc7_sets_transit_only_towards_per_task() {
        let d = Switches {
            one_word_mode: false,
            ..Switches::V7_0
        };
        let mut mm = MmCid::new(2, 0b11);
        mm.users = 3;
        assert!(update_max_cids(&mut mm, &d));
        assert_eq!(
            mm.mode,
            Mode::PER_CPU,
            "no TRANSIT towards per-CPU, and no completion store"
        );
        complete_transit(&mut mm, Mode::PER_CPU, &d);
        assert_eq!(mm.mode, Mode::PER_CPU);
        mm.users = 0;
        assert!(update_max_cids(&mut mm, &d));
        assert_eq!(mm.mode, Mode::TO_TASK);
        complete_transit(&mut mm, Mode::PER_TASK, &d);
        assert_eq!(mm.mode, Mode::PER_TASK);
    }

    #[test]
    fn drop_faults_are_recorded() {
        let mut mm = MmCid::new(2, 0b11);
        let c = mm.try_get(2).unwrap();
        mm.drop_cid(c);
        assert_eq!(mm.faults, DropFaults::default());
        mm.drop_cid(c);
        assert_eq!(mm.faults.already_clear, Some(0));
        mm.drop_cid(Cid::new(5));
        assert_eq!(mm.faults.out_of_range, Some(5));
    }
}
