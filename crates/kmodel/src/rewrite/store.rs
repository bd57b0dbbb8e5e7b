//! How a 7.0 state stores an mm: [`MmStore`], 26 bytes instead of 96.
//!
//! The checker's [`MmCid`] (the cid crate's compact instantiation, shared in layout with the
//! simulator's code) keeps 32-bit CID words in its per-CPU slots and faults, a 64-bit bitmap and
//! a byte per user id. In a state, which is copied for every successor, the mm is packed instead:
//! every CID word in one byte ([`cid_byte`]: numbers come from an `np`-bit bitmap, np ≤ 8), user
//! ids in four bits (fewer than 16 tasks), counters in four bits where their bound is the CPU
//! count. The algorithm runs on the unpacked [`MmCid`] ([`crate::state::State::with_mm_task`],
//! [`crate::state::State::mm_mut`]); packing is lossless, so states compare as before.

use mmcid_cid::{Cid, CidBitmap, CpuId, DropFaults, MAX_USERS, MmCid, Mode, TaskId, UserList, WarnSite};

use crate::family::Rewrite;
use crate::state::Mm;

/// A CID word in 8 bits: UNSET, ONCPU and TRANSIT in bits 7–5, the number in bits 4–0.
///
/// # Panics
/// If the number is 32 or more (the checker's CIDs are below its 8 CPUs).
#[inline(always)]
pub fn cid_byte(c: Cid) -> u8 {
    let r = c.raw();
    assert!(
        r & 0x1fff_ffe0 == 0,
        "CID word {r:#x} does not fit the checker's packed state (number >= 32)"
    );
    ((r >> 24) & 0xe0 | r & 0x1f) as u8
}

/// The CID word [`cid_byte`] packed.
#[inline(always)]
pub fn cid_of_byte(b: u8) -> Cid {
    let b = b as u32;
    Cid::from_raw((b & 0xe0) << 24 | b & 0x1f)
}

/// An mm of the 7.0 family as a state stores it (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MmStore {
    /// The per-CPU slots, one [`cid_byte`] each.
    slots: [u8; 8],
    /// `user_list` (newest first), task ids in four bits each, unused entries 0.
    users: [u8; MAX_USERS / 2],
    bitmap: u8,
    cpus_allowed: u8,
    users_count: u8,
    /// np (bits 0–3), mode's ONCPU and TRANSIT (4, 5), update_deferred (6), work_pending (7).
    a: u8,
    /// max_cids (0–3), nr_cpus_allowed (4–7).
    b: u8,
    /// pcpu_thrs (0–3), irq_work's CPU + 1 (4–7, 0 = none).
    c: u8,
    /// user_list's length (0–4), the first WARN (5–7, 0 = none).
    d: u8,
    /// faults: out_of_range and already_clear as [`cid_byte`]s, and whether each is set (bits 0, 1 of `f`).
    out_of_range: u8,
    already_clear: u8,
    f: u8,
}

const _: () = assert!(mmcid_cid::MAX_CPUS <= 8 && crate::state::MAX_TASKS < 16);

fn warn_bits(w: Option<WarnSite>) -> u8 {
    match w {
        None => 0,
        Some(WarnSite::ForkCidNotUnset) => 1,
        Some(WarnSite::ExitSwitchedToPerCpu) => 2,
        Some(WarnSite::ExitForeignMm) => 3,
        Some(WarnSite::WorkSwitchedToPerCpu) => 4,
        Some(WarnSite::ReviveNotTransit) => 5,
    }
}

fn warn_of(b: u8) -> Option<WarnSite> {
    match b {
        0 => None,
        1 => Some(WarnSite::ForkCidNotUnset),
        2 => Some(WarnSite::ExitSwitchedToPerCpu),
        3 => Some(WarnSite::ExitForeignMm),
        4 => Some(WarnSite::WorkSwitchedToPerCpu),
        _ => Some(WarnSite::ReviveNotTransit),
    }
}

/// A fault's index is the raw CID word a drop was given: it packs like one.
fn fault_byte(i: Option<u32>) -> (u8, bool) {
    i.map_or((0, false), |i| (cid_byte(Cid::from_raw(i)), true))
}

impl MmStore {
    /// Does a slot that its CPU does not own (no ONCPU) still carry a CID number? Where the
    /// numbers are dead ([`crate::family::Family::forget_dead`] for the 7.0 family), this is what
    /// the representative forgets.
    #[inline(always)]
    pub fn has_hint_numbers(&self) -> bool {
        let np = (self.a & 15) as usize;
        self.slots[..np].iter().any(|&b| b & 0x40 == 0 && b & 0x1f != 0)
    }
    /// Sets the number of every slot its CPU does not own to 0, keeping the UNSET and TRANSIT
    /// flags ([`MmStore::has_hint_numbers`]).
    #[inline(always)]
    pub fn forget_hint_numbers(&mut self) {
        let np = (self.a & 15) as usize;
        for b in &mut self.slots[..np] {
            if *b & 0x40 == 0 {
                *b &= 0xe0;
            }
        }
    }
    /// Packs `mm`.
    #[inline]
    pub fn store(mm: &Mm<Rewrite>) -> MmStore {
        let c = &mm.cid;
        let nib = |x: u8| {
            assert!(x < 16, "{x} does not fit four bits of a packed mm");
            x
        };
        let mut slots = [0; 8];
        for (s, x) in slots.iter_mut().zip(c.pcpu.iter()) {
            *s = cid_byte(*x);
        }
        let mut users = [0; MAX_USERS / 2];
        for (i, &t) in c.user_list.as_slice().iter().enumerate() {
            users[i / 2] |= nib(t) << (4 * (i % 2));
        }
        let bitmap = c.bitmap.bits();
        assert!(bitmap < 256, "CID bitmap {bitmap:#x} beyond 8 bits");
        let (oor, oor_set) = fault_byte(c.faults.out_of_range);
        let (clr, clr_set) = fault_byte(c.faults.already_clear);
        MmStore {
            slots,
            users,
            bitmap: bitmap as u8,
            cpus_allowed: c.cpus_allowed,
            users_count: c.users,
            a: nib(c.np)
                | (c.mode.percpu() as u8) << 4
                | (c.mode.in_transit() as u8) << 5
                | (c.update_deferred as u8) << 6
                | (mm.work_pending as u8) << 7,
            b: nib(c.max_cids) | nib(c.nr_cpus_allowed) << 4,
            c: nib(c.pcpu_thrs) | mm.irq_work.map_or(0, |x| nib(x + 1)) << 4,
            d: c.user_list.len() as u8 | warn_bits(c.faults.warn) << 5,
            out_of_range: oor,
            already_clear: clr,
            f: oor_set as u8 | (clr_set as u8) << 1,
        }
    }

    /// Unpacks what [`MmStore::store`] packed.
    #[inline]
    pub fn load(&self) -> Mm<Rewrite> {
        let mut pcpu = [Cid::default(); 8];
        for (x, &s) in pcpu.iter_mut().zip(self.slots.iter()) {
            *x = cid_of_byte(s);
        }
        let n = (self.d & 31) as usize;
        let mut ids = [0 as TaskId; MAX_USERS];
        for (i, x) in ids.iter_mut().enumerate().take(n) {
            *x = self.users[i / 2] >> (4 * (i % 2)) & 15;
        }
        let user_list = UserList::from_newest_first(&ids[..n]);
        let fault = |b: u8, set: bool| set.then(|| cid_of_byte(b).raw());
        let cid = MmCid {
            np: self.a & 15,
            mode: Mode::from_parts(self.a & 16 != 0, self.a & 32 != 0),
            max_cids: self.b & 15,
            users: self.users_count,
            nr_cpus_allowed: self.b >> 4,
            cpus_allowed: self.cpus_allowed,
            pcpu_thrs: self.c & 15,
            update_deferred: self.a & 64 != 0,
            user_list,
            bitmap: CidBitmap::from_bits(self.bitmap as u64),
            pcpu,
            faults: DropFaults {
                out_of_range: fault(self.out_of_range, self.f & 1 != 0),
                already_clear: fault(self.already_clear, self.f & 2 != 0),
                warn: warn_of(self.d >> 5),
            },
            stats: Default::default(),
        };
        Mm {
            cid,
            irq_work: match self.c >> 4 {
                0 => None,
                x => Some(x - 1),
            },
            work_pending: self.a & 128 != 0,
        }
    }

    /// `irq_work`'s CPU (the deferred switch back to per-task is queued there), read off the
    /// packed bits: the enabled steps ask it of every mm for every CPU.
    #[inline(always)]
    pub fn irq_work(&self) -> Option<CpuId> {
        (self.c >> 4).checked_sub(1)
    }

    /// Renames the task ids on `user_list` through `r`, in place on the packed nibbles (what
    /// [`UserList::rename`] does to the unpacked list; symmetry reduction renames every mm of
    /// every permuted successor, so unpacking and repacking the mm is avoided).
    #[inline(always)]
    pub fn rename_users(&mut self, r: &dyn Fn(TaskId) -> TaskId) {
        let n = (self.d & 31) as usize;
        for i in 0..n {
            let sh = 4 * (i % 2);
            let b = &mut self.users[i / 2];
            let t = r(*b >> sh & 15);
            debug_assert!(t < 16);
            *b = *b & !(15 << sh) | t << sh;
        }
    }

    /// The raw bytes (the engine's encoding writes them as they are).
    pub fn bytes(&self) -> [u8; 26] {
        let mut b = [0; 26];
        b[..8].copy_from_slice(&self.slots);
        b[8..16].copy_from_slice(&self.users);
        b[16..].copy_from_slice(&[
            self.bitmap,
            self.cpus_allowed,
            self.users_count,
            self.a,
            self.b,
            self.c,
            self.d,
            self.out_of_range,
            self.already_clear,
            self.f,
        ]);
        b
    }

    /// The store whose [`MmStore::bytes`] are `b`.
    pub fn from_bytes(b: [u8; 26]) -> MmStore {
        let mut m = MmStore::default();
        m.slots.copy_from_slice(&b[..8]);
        m.users.copy_from_slice(&b[8..16]);
        [
            m.bitmap,
            m.cpus_allowed,
            m.users_count,
            m.a,
            m.b,
            m.c,
            m.d,
            m.out_of_range,
            m.already_clear,
            m.f,
        ] = b[16..].try_into().expect("26 bytes");
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mm_round_trips_through_its_store() {
        let mut mm = Mm::<Rewrite>::new(8, 0b1011_0110);
        for t in [3, 13, 0, 7] {
            mm.cid.user_list.push_front(t);
        }
        mm.cid.users = 4;
        mm.cid.mode = Mode::TO_TASK;
        mm.cid.set_slot(5, Cid::new(7).add_cpu());
        mm.cid.set_slot(1, Cid::UNSET.add_transit());
        mm.cid.try_get(8);
        mm.cid.drop_cid(Cid::UNSET);
        mm.cid.drop_cid(Cid::new(3));
        mm.cid.faults.warn = Some(WarnSite::ReviveNotTransit);
        mm.irq_work = Some(7);
        mm.work_pending = true;
        let s = MmStore::store(&mm);
        assert_eq!(s.load(), mm);
        let mut renamed = s;
        let r = |t: TaskId| (t + 5) % 16;
        renamed.rename_users(&r);
        mm.cid.user_list.rename(r);
        assert_eq!(renamed.load(), mm);
        assert_eq!(MmStore::from_bytes(s.bytes()), s);
        assert_eq!(std::mem::size_of::<MmStore>(), 26);
    }
}
