//! # The pre-rewrite MM CID designs: 6.3 and 6.4–6.18 ("lazy per-CPU")
//!
//! Two complete designs that came before the 7.0 rewrite, as plain data and functions in the style
//! of the rest of this crate: nothing here loops waiting, sleeps or takes a lock. The caller (the
//! kernel model) holds the locks named under `# Locks`, owns every waiting loop, and is handed each
//! spin as a value ([`v6_18::LegacyAllocOf::Spin`]) to resume with a retry function. Reference:
//! `shared/spec/designs.md` section E (E.0–E.2.8), which corrects `shared/spec/kernel-mmcid.md`
//! section 9 and wins where they differ.
//!
//! ## The designs and their kernel commits
//! - [`v6_3`]: "sched: Introduce per-memory-map concurrency ID" (af7f588d8f73, 6.3) plus the
//!   Jan 2023 fix bbd0b031509b (`after_execve` returns early without an mm instead of WARNing).
//!   A per-mm bitmap under a per-mm `cid_lock`; a task holds a CID exactly while it is switched in.
//!   The allocator does not spin: with no free bit below `nr_cpu_ids` it hands out −1.
//! - [`v6_18`]: "sched: Fix performance regression introduced by mm_cid" (6.4) made CIDs per-CPU and
//!   lazily released; 7e019dcc470f (6.13) added `recent_cid`, the per-mm union affinity mask with
//!   `nr_cpus_allowed` and a growing `max_nr_cid`; 02d954c0fdf9 (6.14, "sched: Compact RSEQ
//!   concurrency IDs with reduced threads and affinity") made `max_nr_cid` shrink and bounded the
//!   `recent_cid` fast path by it; the Mar 2024 barrier fix added `smp_mb__after_switch_mm` (6.9).
//!   The design was removed by "sched/mmcid: Revert the complex CID management" (Nov 2025). This
//!   module implements the 6.14–6.18 form; the 6.4–6.12 and 6.13 differences are noted where they
//!   apply.
//!
//! ## The CID word
//! Both designs store a CID as a C `int`, −1 meaning none. [`LegacyCid`] keeps the raw 32-bit word:
//! `UNSET` is all ones, and 6.4+ marks a CID being put lazily with bit 31 (`LAZY`). The
//! user-visible value ([`LegacyCid::user_value`]) is the word as an `i32`, so a task that runs
//! without a CID shows user space `mm_cid == -1`.
//!
//! ## Time
//! 6.4–6.18 stamps each per-CPU slot with the rq clock of its last use, and its compaction scan
//! frees slots unused for 100 ms. The model replaces time by nondeterminism (designs.md E.2.7): the
//! scan may run at any return to user space of a non-exiting user task of the mm, and its first
//! loop may pick any CPU whose `curr` is not an active user of the mm
//! ([`v6_18::compaction_candidates`]). Slots keep an abstract `time: u8` that the functions stamp
//! with the `now` the caller passes; nothing here reads it. A model that wants a small state space
//! passes `now = 0`.
//!
//! ## Atomic cuts (where the model may interleave other CPUs)
//! The model is sequentially consistent: each function call is one atomic step.
//! - 6.3: every operation runs under the per-mm `cid_lock` or with IRQs off on the local CPU and
//!   touches only the bitmap and the local tasks, so each is one step ([`v6_3::switch`],
//!   [`v6_3::exit_signals`], [`v6_3::after_execve`], ...).
//! - 6.18, local side (rq lock held, IRQs off): `switch_out` (`mm_cid_put_lazy`) is one step; `get`
//!   (`mm_cid_get`) is one step up to the first spin or cut, at which it returns
//!   [`v6_18::LegacyAllocOf::Spin`] with a [`v6_18::GetCont`]. The cuts inside `get` are: waiting for
//!   `cid_lock`; each lap of `try_get`'s fallback loop (`first_zero >= nr_cpus_allowed`); between
//!   the fallback's `first_zero` and its `test_and_set` (so `try_get` can lose a race and fail,
//!   which is what drives `use_cid_lock`); each lap of `get_slow`'s `repeat try_get` loop.
//!   Not cut: the `max_nr_cid` shrink/expand cmpxchg loops, the `recent_cid` test-and-set and the
//!   local slot cmpxchg of a LAZY value. They race only with other CPUs' `try_get` (on
//!   `max_nr_cid` and the bitmap) and with the second cmpxchg of a remote clear or steal (on the
//!   slot); a cmpxchg that loses re-reads and continues, so each merged sequence equals the kernel
//!   run in which it is not overtaken.
//! - 6.18, remote side (no lock on the target CPU): a remote clear is two steps
//!   ([`v6_18::remote_clear_mark`]: read + cmpxchg to LAZY; [`v6_18::remote_clear_finish`]: check
//!   `rq(cpu).curr`, then cmpxchg LAZY → UNSET and clear the bit). A migration is three steps
//!   ([`v6_18::migrate_to`]: decide and fetch, with the first check of the source's `curr`;
//!   [`v6_18::migrate_steal`]: cmpxchg to LAZY; [`v6_18::migrate_complete`]: recheck `curr`,
//!   cmpxchg LAZY → UNSET, place). The caller passes what it reads from `rq(cpu).curr` ("is it an
//!   active user of this mm?") at the step that reads it. The store-buffering pairs the kernel's
//!   barriers protect (rq.curr store vs slot load in the switch; slot cmpxchg vs rq.curr load
//!   remotely) are therefore correct by construction; the Mar 2024 missing-barrier bug is not
//!   reproducible in this model.
//! - Finer, optional: the last step of each can itself be cut where the kernel has a window in
//!   which the bit is set but no slot names it: [`v6_18::remote_clear_unset`] +
//!   [`v6_18::remote_clear_drop`], [`v6_18::migrate_unset`] + [`v6_18::migrate_place`]. The caller
//!   then holds the in-flight CID and passes it to [`v6_18::check_ownership`]. **Without these
//!   windows `try_get`'s fallback loop cannot spin**: if the mm's tasks only run on CPUs of the
//!   union mask, at most `nr_cpus_allowed − 1` other slots hold a bit, each below
//!   `nr_cpus_allowed`, and the allocating CPU's slot is empty, so a bit below `nr_cpus_allowed`
//!   is free (designs.md E.0.8). A model that wants the spin of spec 9.4 must use the finer cuts.
//!   (The local put paths, `put_lazy`, `get`'s LAZY clear and exit, have the same window between
//!   their cmpxchg and `clear_bit`; they stay one step, under the local rq lock.)
//! - Exit and `before_execve` (`active = 0; smp_mb; put`) are one step. A remote clear finishing
//!   between the store and the put would make the put's cmpxchg loop re-read UNSET; exactly one of
//!   the two clears the bit either way.
//!
//! ## Ownership (for the invariants)
//! - 6.3: a bit is owned by the one task of the mm whose `mm_cid` names it, and a task has a
//!   non-negative `mm_cid` exactly while it is switched in (or is the running `after_execve`
//!   task). See [`v6_3::check_ownership`].
//! - 6.18: a bit is owned by the one per-CPU slot naming it, valid or LAZY (LAZY = in the middle of
//!   being put; whoever completes the cmpxchg LAZY → UNSET owns the bit from then on and clears or
//!   places it, in the same step unless the caller uses the finer cuts above, in which case the
//!   caller's in-flight CID owns it). Tasks hold copies: a running active task's `mm_cid` is its
//!   CPU's slot value, possibly marked LAZY since ([`v6_18::holds_slot_copy`]). See
//!   [`v6_18::check_ownership`].
//! - I1 (uniqueness among running tasks) is [`check_unique`]; I2 (the bound) is checked per design
//!   ([`v6_3::check_bound`], [`v6_18::check_bound`]).

pub mod v6_18;
pub mod v6_3;

use std::fmt;

use crate::storage::Bitmap;

/// A CID as the pre-rewrite kernels store it: a C `int`, −1 (all ones) = none, and in 6.4+ bit 31
/// (`MM_CID_LAZY_PUT`) marking a value being put lazily.
///
/// Predicates as in designs.md E.2.1: [`is_unset`](Self::is_unset) `c == -1`;
/// [`is_lazy`](Self::is_lazy) `!unset && (c & LAZY)`; [`is_valid`](Self::is_valid) `!(c & LAZY)`.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct LegacyCid(u32);

impl LegacyCid {
    /// `MM_CID_UNSET` (−1): no CID.
    pub const UNSET: LegacyCid = LegacyCid(u32::MAX);
    /// `MM_CID_LAZY_PUT`: the flag bit (1 << 31).
    pub const LAZY_BIT: u32 = 1 << 31;

    /// A valid CID with number `n` (`n < 2^31`).
    pub const fn new(n: u32) -> LegacyCid {
        LegacyCid(n & !Self::LAZY_BIT)
    }
    /// The raw 32-bit word.
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// Rebuilds a CID from its raw word.
    pub const fn from_raw(raw: u32) -> LegacyCid {
        LegacyCid(raw)
    }
    /// `mm_cid_is_unset()`: the value is −1.
    pub const fn is_unset(self) -> bool {
        self.0 == u32::MAX
    }
    /// `mm_cid_is_lazy_put()`: not UNSET and the LAZY bit is set.
    pub const fn is_lazy(self) -> bool {
        !self.is_unset() && self.0 & Self::LAZY_BIT != 0
    }
    /// `mm_cid_is_valid()`: the LAZY bit is clear (so UNSET is not valid).
    pub const fn is_valid(self) -> bool {
        self.0 & Self::LAZY_BIT == 0
    }
    /// `mm_cid_set_lazy_put()`.
    pub const fn with_lazy(self) -> LegacyCid {
        LegacyCid(self.0 | Self::LAZY_BIT)
    }
    /// `mm_cid_clear_lazy_put()`.
    pub const fn clear_lazy(self) -> LegacyCid {
        LegacyCid(self.0 & !Self::LAZY_BIT)
    }
    /// The bitmap index the value names (LAZY stripped). Meaningless for UNSET.
    pub const fn index(self) -> u32 {
        self.0 & !Self::LAZY_BIT
    }
    /// The number if the value is valid, else `None`.
    pub const fn valid_index(self) -> Option<u32> {
        if self.is_valid() { Some(self.0) } else { None }
    }
    /// What user space reads in `rseq::mm_cid`: the `int` itself. UNSET reads as −1.
    pub const fn user_value(self) -> i32 {
        self.0 as i32
    }
}

impl Default for LegacyCid {
    /// UNSET: what `dup_task_struct` and `mm_init_cid` store.
    fn default() -> LegacyCid {
        LegacyCid::UNSET
    }
}

impl fmt::Debug for LegacyCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for LegacyCid {
    /// `UNSET`, `3`, `3|LAZY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unset() {
            write!(f, "UNSET")
        } else if self.is_lazy() {
            write!(f, "{}|LAZY", self.index())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Parses the [`fmt::Display`] form back (`UNSET`, `N`, `N|LAZY`; `-1` is accepted for UNSET).
impl std::str::FromStr for LegacyCid {
    type Err = String;
    fn from_str(s: &str) -> Result<LegacyCid, String> {
        let s = s.trim();
        if s == "UNSET" || s == "-1" {
            return Ok(LegacyCid::UNSET);
        }
        let (n, lazy) = match s.strip_suffix("|LAZY") {
            Some(n) => (n, true),
            None => (s, false),
        };
        let n: u32 = n
            .parse()
            .ok()
            .filter(|&n| n < LegacyCid::LAZY_BIT)
            .ok_or_else(|| format!("not a legacy CID: {s:?} (expected UNSET, N or N|LAZY)"))?;
        let c = LegacyCid::new(n);
        Ok(if lazy { c.with_lazy() } else { c })
    }
}

/// Things the kernel would not notice, recorded (first occurrence, sticky) so that an invariant
/// can report them instead of the model masking them.
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
pub struct LegacyFaults {
    /// First index `>= nr_cpu_ids` passed to `clear_bit`: the kernel clears adjacent memory.
    pub out_of_range: Option<u32>,
    /// First index cleared while its bit was already clear (a double put, or a put by a non-owner).
    pub already_clear: Option<u32>,
    /// 6.3 only: an allocation found no free bit and handed out −1 (the task runs with
    /// `mm_cid == -1`, which user space sees).
    pub no_cid: bool,
}

impl fmt::Display for LegacyFaults {
    /// What went wrong, in the kernel's terms: `clear_bit(2147483648) outside the cidmask`, ...;
    /// `none` when nothing did.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(b) = self.out_of_range {
            parts.push(format!("clear_bit({b}) outside the cidmask"));
        }
        if let Some(b) = self.already_clear {
            parts.push(format!("clear_bit({b}) of a bit already clear"));
        }
        if self.no_cid {
            parts.push("a task was handed mm_cid -1 (no free bit)".to_string());
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

impl LegacyFaults {
    /// Records the result of a `clear_bit(i)`.
    pub(crate) fn record(&mut self, i: u32, r: crate::pool::Cleared) {
        match r {
            crate::pool::Cleared::Cleared => {}
            crate::pool::Cleared::WasClear => {
                self.already_clear.get_or_insert(i);
            }
            crate::pool::Cleared::OutOfRange => {
                self.out_of_range.get_or_insert(i);
            }
        }
    }
}

/// A violation of bit ownership, uniqueness (I1) or the bound (I2).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum OwnershipError {
    /// Two owners (tasks in 6.3, slots in 6.18; running tasks for I1) name the same CID.
    Duplicate(u32),
    /// A bit is set that no owner names: a leaked CID.
    Leaked(u32),
    /// An owner names a CID whose bit is clear: another allocation can hand it out again.
    Unbacked(u32),
    /// A user-visible CID at or above the design's bound.
    OutOfBound(u32),
    /// 6.3: an active task runs without a CID (user space reads −1).
    Negative,
}

impl fmt::Display for OwnershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnershipError::Duplicate(c) => write!(f, "CID {c} has two owners"),
            OwnershipError::Leaked(c) => write!(f, "bit {c} is set but nobody owns CID {c}"),
            OwnershipError::Unbacked(c) => write!(f, "CID {c} is owned but its bit is clear"),
            OwnershipError::OutOfBound(c) => write!(f, "CID {c} is out of bounds"),
            OwnershipError::Negative => write!(f, "an active running task has mm_cid -1"),
        }
    }
}

/// Checks that owners (tasks or slots, given by the CIDs they hold; UNSET entries ignored) name
/// distinct indices, that each named bit is set, and that no other bit of `bitmap` is set.
pub(crate) fn check_owners<B: Bitmap>(
    bitmap: &B,
    np: u32,
    owned: impl IntoIterator<Item = LegacyCid>,
) -> Result<(), OwnershipError> {
    let mut seen = B::with_bits(np);
    for c in owned {
        if c.is_unset() {
            continue;
        }
        let i = c.index();
        if i >= np || !bitmap.is_set(i) {
            return Err(OwnershipError::Unbacked(i));
        }
        if seen.test_and_set(i) {
            return Err(OwnershipError::Duplicate(i));
        }
    }
    match bitmap.ones().find(|&i| !seen.is_set(i)) {
        Some(i) => Err(OwnershipError::Leaked(i)),
        None => Ok(()),
    }
}

/// I1: the CIDs of the running active tasks of one mm are distinct. Pass each running active
/// task's `mm_cid`; UNSET values are skipped (6.3's −1 is reported by its bound check).
pub fn check_unique(running: impl IntoIterator<Item = LegacyCid>) -> Result<(), OwnershipError> {
    let mut seen: Vec<u32> = Vec::new();
    for c in running {
        if c.is_unset() {
            continue;
        }
        let i = c.index();
        if seen.contains(&i) {
            return Err(OwnershipError::Duplicate(i));
        }
        seen.push(i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_e21() {
        let c = LegacyCid::new(3);
        assert!(c.is_valid() && !c.is_lazy() && !c.is_unset());
        assert!(c.with_lazy().is_lazy() && !c.with_lazy().is_valid());
        assert_eq!(c.with_lazy().clear_lazy(), c);
        assert!(LegacyCid::UNSET.is_unset() && !LegacyCid::UNSET.is_lazy() && !LegacyCid::UNSET.is_valid());
        assert_eq!(LegacyCid::UNSET.user_value(), -1);
        assert_eq!(c.user_value(), 3);
        assert_eq!(c.valid_index(), Some(3));
        assert_eq!(c.with_lazy().valid_index(), None);
    }

    #[test]
    fn display_round_trips() {
        for c in [LegacyCid::UNSET, LegacyCid::new(0), LegacyCid::new(3).with_lazy()] {
            assert_eq!(c.to_string().parse::<LegacyCid>().unwrap(), c);
        }
        assert_eq!(LegacyCid::new(3).with_lazy().to_string(), "3|LAZY");
        assert_eq!(LegacyCid::UNSET.to_string(), "UNSET");
        assert_eq!("-1".parse::<LegacyCid>().unwrap(), LegacyCid::UNSET);
        assert!("3|ONCPU".parse::<LegacyCid>().is_err());
    }

    #[test]
    fn owners_and_uniqueness() {
        let b = crate::CidBitmap::from_bits(0b101);
        let (c0, c2) = (LegacyCid::new(0), LegacyCid::new(2));
        assert_eq!(
            check_owners(&b, 4, [c0, c2.with_lazy(), LegacyCid::UNSET]),
            Ok(())
        );
        assert_eq!(check_owners(&b, 4, [c0]), Err(OwnershipError::Leaked(2)));
        assert_eq!(
            check_owners(&b, 4, [c0, c2, c2]),
            Err(OwnershipError::Duplicate(2))
        );
        assert_eq!(
            check_owners(&b, 4, [LegacyCid::new(1)]),
            Err(OwnershipError::Unbacked(1))
        );
        assert_eq!(check_unique([c0, c2, LegacyCid::UNSET, LegacyCid::UNSET]), Ok(()));
        assert_eq!(check_unique([c0, c0]), Err(OwnershipError::Duplicate(0)));
    }
}
