//! The compact byte encoding of a state: what the engine hashes into a fingerprint and keeps on
//! its frontier.
//!
//! A [`State`] lives in memory with fixed capacities (no heap, cheap to copy and to step); stored
//! that way, a frontier of millions of states would mostly hold unused task and mm slots. The
//! encoding writes only what is used, and each field in as few bytes as its values need: one byte
//! for a small integer, a bool, an enum tag or an `Option` tag; one byte for a CID word whose
//! number is small (the usual case), with an escape to the full 32-bit word otherwise; a length
//! before each list; the per-CPU slots of an mm only up to its `np`.
//!
//! What a state already stores packed is written as it is stored: every task's
//! [`crate::tasks::StoredTask`] bytes, and the 7.0 family's mms ([`crate::rewrite::store`]) and
//! CPUs ([`crate::rewrite::RwCpu`]). Their packing is lossless, so the encoding stays injective.
//!
//! Why by hand rather than through serde (every state type also derives serde, and postcard was
//! tried first): the encoding runs once per explored transition, and a serde format went through
//! the full visitor machinery per field: measured on the default bound it cost 2.3× as much as
//! hashing the state's fields directly, and decoding more. Writing bytes into a `Vec` is a few
//! instructions per field.
//!
//! The format is private to one run (the engine never writes it to disk): no versioning. It is
//! injective (two states encode equally exactly when they are equal), so fingerprints may hash
//! it, and [`decode`] inverts [`encode`]; `tests::encodings_round_trip_and_are_injective` checks
//! both over whole state spaces of every family.

use mmcid_cid::legacy::LegacyCid;
use mmcid_cid::legacy::v6_3::{Mm63, Task63};
use mmcid_cid::legacy::v6_18::{
    GetCont, Migrate, MigrateCont, MigrateOutcome, Mm618, Slot618, SlowStage, Task618,
};
use mmcid_cid::{
    Cid, CidBitmap, DropFaults, MAX_CPUS, MmCid, Mode, SchedinSpin, TaskCid, UserList, WarnSite,
};

use crate::config::Budgets;
use crate::family::Family;
use crate::fixed::Fixed;
use crate::legacy::NoCidOp;
use crate::legacy::lazy618::{Cpu618, WorkAt};
use crate::rewrite::RwCpu;
use crate::rewrite::cid_op::{AfterCpusToTasks, CidOp};
use crate::state::*;
use crate::tasks::{StoredTask, Tasks};

/// Appends the encoding of `s` to `out`.
pub fn encode<F: Family>(s: &State<F>, out: &mut Vec<u8>) {
    out.reserve(max_encoded_len::<F>());
    let mut w = Writer {
        buf: out.spare_capacity_mut(),
        n: 0,
    };
    s.pack(&mut w);
    let n = w.n;
    // SAFETY: `w` wrote (initialised) the first `n` bytes of the spare capacity, and only those
    // (`Writer` writes each byte in order and counts it).
    unsafe { out.set_len(out.len() + n) };
}

/// An upper bound on the length of any state's encoding: no field's encoding is more than twice
/// its size in memory plus one byte (a length or tag), and a state's fields are fewer than 64.
/// An encoding that outgrew it would stop at a bounds check, never write past the buffer.
pub const fn max_encoded_len<F: Family>() -> usize {
    2 * std::mem::size_of::<State<F>>() + 64
}

/// Where [`Pack::pack`] writes: the spare capacity of the output `Vec`, reserved once per state
/// by [`encode`]. Why not `Vec::push`: the encoding runs once per explored transition, and a push
/// per byte checked the capacity and kept the length in memory (the `Vec` might reallocate), which
/// cost more than the encoding itself (measured: 221 M of 2,107 M instructions at the default
/// bound went to encoding, most of it in `Vec`'s code).
pub struct Writer<'a> {
    buf: &'a mut [std::mem::MaybeUninit<u8>],
    n: usize,
}

impl Writer<'_> {
    /// Appends a byte.
    #[inline(always)]
    pub fn push(&mut self, b: u8) {
        self.buf[self.n].write(b);
        self.n += 1;
    }
    /// Appends bytes.
    #[inline(always)]
    pub fn extend_from_slice(&mut self, x: &[u8]) {
        for (d, &b) in self.buf[self.n..self.n + x.len()].iter_mut().zip(x) {
            d.write(b);
        }
        self.n += x.len();
    }
}

/// The state `bytes` encode (the bytes of one [`encode`] call).
///
/// # Panics
/// If `bytes` is not an encoding of a `State<F>` (the engine only hands back what it stored).
pub fn decode<F: Family>(bytes: &[u8]) -> State<F> {
    let mut r = Reader { b: bytes, i: 0 };
    let s = State::unpack(&mut r);
    assert_eq!(r.i, bytes.len(), "trailing bytes after an encoded state");
    s
}

/// Reads an encoding front to back.
pub struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    /// The next byte.
    #[inline(always)]
    pub fn byte(&mut self) -> u8 {
        let v = self.b[self.i];
        self.i += 1;
        v
    }
    fn word(&mut self) -> u32 {
        let v = u32::from_le_bytes(self.b[self.i..self.i + 4].try_into().expect("four bytes"));
        self.i += 4;
        v
    }
}

/// A type with a place in the encoding.
pub trait Pack: Sized {
    /// Appends its bytes.
    fn pack(&self, w: &mut Writer<'_>);
    /// Reads back what [`Pack::pack`] wrote.
    fn unpack(r: &mut Reader<'_>) -> Self;
}

impl Pack for u8 {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.push(*self);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> u8 {
        r.byte()
    }
}

impl Pack for bool {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.push(*self as u8);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> bool {
        r.byte() != 0
    }
}

/// A 32-bit word: one byte below 255, else 255 and the four bytes.
impl Pack for u32 {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        if *self < 255 {
            w.push(*self as u8);
        } else {
            w.push(255);
            w.extend_from_slice(&self.to_le_bytes());
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> u32 {
        match r.byte() {
            255 => r.word(),
            b => b as u32,
        }
    }
}

impl Pack for u64 {
    fn pack(&self, w: &mut Writer<'_>) {
        if *self < 255 {
            w.push(*self as u8);
        } else {
            w.push(255);
            w.extend_from_slice(&self.to_le_bytes());
        }
    }
    fn unpack(r: &mut Reader<'_>) -> u64 {
        match r.byte() {
            255 => {
                let v = u64::from_le_bytes(r.b[r.i..r.i + 8].try_into().expect("eight bytes"));
                r.i += 8;
                v
            }
            b => b as u64,
        }
    }
}

impl<T: Pack> Pack for Option<T> {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        match self {
            None => w.push(0),
            Some(x) => {
                w.push(1);
                x.pack(w);
            }
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Option<T> {
        match r.byte() {
            0 => None,
            _ => Some(T::unpack(r)),
        }
    }
}

impl<T: Pack + Copy + Default, const N: usize> Pack for Fixed<T, N> {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.push(self.len() as u8);
        for x in self.iter() {
            x.pack(w);
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Self {
        let n = r.byte();
        let mut f = Fixed::new();
        for _ in 0..n {
            f.push(T::unpack(r));
        }
        f
    }
}

impl<const N: usize> Pack for [u8; N] {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.extend_from_slice(self);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Self {
        let mut a = [0; N];
        a.copy_from_slice(&r.b[r.i..r.i + N]);
        r.i += N;
        a
    }
}

/// The legacy families' stored task part: their CID state and CID operation as they are.
macro_rules! pack_pair {
    ($($a:ty, $b:ty);*) => {$(
        impl Pack for ($a, $b) {
            #[inline(always)]
            fn pack(&self, w: &mut Writer<'_>) {
                self.0.pack(w);
                self.1.pack(w);
            }
            #[inline(always)]
            fn unpack(r: &mut Reader<'_>) -> Self {
                let a = <$a>::unpack(r);
                (a, <$b>::unpack(r))
            }
        }
    )*};
}
pack_pair!(Task618, Option<WorkAt>; Task63, Option<NoCidOp>);

/// A stored task as it is stored: its 5 kernel bytes, then the family's store.
impl<F: Family> Pack for StoredTask<F> {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.extend_from_slice(self.kernel());
        self.family().pack(w);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Self {
        let k = <[u8; 5]>::unpack(r);
        StoredTask::from_parts(k, F::TaskStore::unpack(r))
    }
}

impl Pack for crate::rewrite::store::MmStore {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.extend_from_slice(&self.bytes());
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Self {
        crate::rewrite::store::MmStore::from_bytes(<[u8; 26]>::unpack(r))
    }
}

impl<F: Family> Pack for crate::mms::Mms<F> {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.push(self.len() as u8);
        for m in self.stored() {
            m.pack(w);
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Self {
        let n = r.byte();
        let mut ms = crate::mms::Mms::default();
        for _ in 0..n {
            ms.push_stored(F::MmStore::unpack(r));
        }
        ms
    }
}

impl<F: Family> Pack for Tasks<F> {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.push(self.len() as u8);
        for t in self.stored() {
            t.pack(w);
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Self {
        let n = r.byte();
        let mut ts = Tasks::default();
        for _ in 0..n {
            ts.push_stored(StoredTask::unpack(r));
        }
        ts
    }
}

impl Pack for () {
    fn pack(&self, _w: &mut Writer<'_>) {}
    fn unpack(_r: &mut Reader<'_>) {}
}

/// Writes each field in order; reads them back in the same order.
macro_rules! pack_struct {
    ($t:ty { $($f:ident),* $(,)? }) => {
        impl Pack for $t {
            #[inline(always)]
            fn pack(&self, w: &mut Writer<'_>) {
                $( self.$f.pack(w); )*
            }
            #[inline(always)]
            fn unpack(r: &mut Reader<'_>) -> Self {
                Self { $( $f: Pack::unpack(r), )* }
            }
        }
    };
}

/// A field-less enum as one byte (its position in the list).
macro_rules! pack_unit_enum {
    ($t:ty { $($v:ident),* $(,)? }) => {
        impl Pack for $t {
            #[inline(always)]
            fn pack(&self, w: &mut Writer<'_>) {
                let all = [$(<$t>::$v),*];
                w.push(all.iter().position(|x| x == self).expect("a listed variant") as u8);
            }
            #[inline(always)]
            fn unpack(r: &mut Reader<'_>) -> Self {
                let all = [$(<$t>::$v),*];
                all[r.byte() as usize]
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// The kernel.

pack_unit_enum!(Sched {
    New,
    Running,
    Runnable,
    Sleeping,
    Dead
});
pack_unit_enum!(ForkAt {
    Copy,
    Publish,
    PostFork,
    Wake,
    Failed,
    Cleanup
});
pack_unit_enum!(ExitAt {
    Cid,
    MmRelease,
    Final
});
pack_unit_enum!(ExecAt {
    Before,
    Outcome,
    DeThread,
    After,
    Return
});
pack_unit_enum!(ExecKind { Load, Fail, Check });

impl Pack for Op {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        match *self {
            Op::User => w.push(0),
            Op::Fork { child, vfork, at } => {
                w.push(1 | (vfork as u8) << 4);
                w.push(child);
                at.pack(w);
            }
            Op::Exit { at } => {
                w.push(2);
                at.pack(w);
            }
            Op::Exec { at, kind, in_exec } => {
                w.push(3 | (in_exec as u8) << 4);
                at.pack(w);
                kind.pack(w);
            }
            Op::VforkWait { child } => {
                w.push(4);
                w.push(child);
            }
            Op::Work { mm } => {
                w.push(5);
                w.push(mm);
            }
            Op::KworkerIdle => w.push(6),
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Op {
        let tag = r.byte();
        let flag = tag & 0x10 != 0;
        match tag & 0xf {
            0 => Op::User,
            1 => Op::Fork {
                child: r.byte(),
                vfork: flag,
                at: ForkAt::unpack(r),
            },
            2 => Op::Exit {
                at: ExitAt::unpack(r),
            },
            3 => Op::Exec {
                at: ExecAt::unpack(r),
                kind: ExecKind::unpack(r),
                in_exec: flag,
            },
            4 => Op::VforkWait { child: r.byte() },
            5 => Op::Work { mm: r.byte() },
            6 => Op::KworkerIdle,
            t => panic!("bad Op tag {t}"),
        }
    }
}

impl<F: Family> Pack for Task<F> {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        // Flags in one byte: kworker, killed, mm present, vfork parent present, CID op present.
        w.push(
            self.kworker as u8
                | (self.killed as u8) << 1
                | (self.mm.is_some() as u8) << 2
                | (self.vfork_parent.is_some() as u8) << 3
                | (self.cid_op.is_some() as u8) << 4,
        );
        w.extend_from_slice(&[
            self.mm.unwrap_or(0),
            self.group,
            self.cpu,
            self.affinity,
            self.vfork_parent.unwrap_or(0),
            self.thread_pos,
        ]);
        self.sched.pack(w);
        self.op.pack(w);
        if let Some(op) = &self.cid_op {
            op.pack(w);
        }
        self.cid.pack(w);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Self {
        let flags = r.byte();
        let (mm, group, cpu, affinity, parent, thread_pos) =
            (r.byte(), r.byte(), r.byte(), r.byte(), r.byte(), r.byte());
        Task {
            kworker: flags & 1 != 0,
            killed: flags & 2 != 0,
            mm: (flags & 4 != 0).then_some(mm),
            group,
            cpu,
            affinity,
            vfork_parent: (flags & 8 != 0).then_some(parent),
            thread_pos,
            sched: Sched::unpack(r),
            op: Op::unpack(r),
            cid_op: (flags & 16 != 0).then(|| F::CidOp::unpack(r)),
            cid: F::TaskCid::unpack(r),
        }
    }
}

pack_struct!(Budgets {
    forks,
    vforks,
    fork_fails,
    exits,
    execs,
    exec_fails,
    exec_checks,
    affinity,
    compactions
});

impl<F: Family> Pack for Mm<F> {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        self.cid.pack(w);
        self.irq_work.pack(w);
        self.work_pending.pack(w);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Self {
        Mm {
            cid: F::MmCid::unpack(r),
            irq_work: Pack::unpack(r),
            work_pending: Pack::unpack(r),
        }
    }
}

impl<F: Family> Pack for State<F> {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        self.cpus.pack(w);
        self.tasks.pack(w);
        self.mms.pack(w);
        self.process_list.pack(w);
        self.left.pack(w);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Self {
        State {
            cpus: Pack::unpack(r),
            tasks: Pack::unpack(r),
            mms: Pack::unpack(r),
            process_list: Pack::unpack(r),
            left: Pack::unpack(r),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The 7.0 family.

/// A CID word in one byte when its number is below 31: the three flags (UNSET, ONCPU, TRANSIT)
/// in the top bits and the number below; otherwise the escape 31 and the raw word.
impl Pack for Cid {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        let raw = self.raw();
        let num = raw & 0x1FFF_FFFF;
        if num < 31 {
            w.push(((raw >> 24) as u8 & 0xE0) | num as u8);
        } else {
            w.push(31);
            w.extend_from_slice(&raw.to_le_bytes());
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Cid {
        let b = r.byte();
        if b & 0x1F == 31 {
            Cid::from_raw(r.word())
        } else {
            Cid::from_raw(((b & 0xE0) as u32) << 24 | (b & 0x1F) as u32)
        }
    }
}

/// The mode word has only the ONCPU and TRANSIT bits.
impl Pack for Mode {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        debug_assert_eq!(Mode::from_parts(self.percpu(), self.in_transit()), *self);
        w.push(self.percpu() as u8 | (self.in_transit() as u8) << 1);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Mode {
        let b = r.byte();
        Mode::from_parts(b & 1 != 0, b & 2 != 0)
    }
}

impl Pack for CidBitmap {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        self.bits().pack(w);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> CidBitmap {
        CidBitmap::from_bits(u64::unpack(r))
    }
}

impl Pack for UserList {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.push(self.len() as u8);
        w.extend_from_slice(self.as_slice());
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> UserList {
        let n = r.byte() as usize;
        let ids = &r.b[r.i..r.i + n];
        r.i += n;
        let mut l = UserList::default();
        for &t in ids.iter().rev() {
            l.push_front(t);
        }
        l
    }
}

pack_unit_enum!(WarnSite {
    ForkCidNotUnset,
    ExitSwitchedToPerCpu,
    ExitForeignMm,
    WorkSwitchedToPerCpu,
    ReviveNotTransit
});
pack_struct!(DropFaults {
    out_of_range,
    already_clear,
    warn
});
pack_struct!(TaskCid { active, cid });

impl Pack for MmCid {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.extend_from_slice(&[
            self.np,
            self.max_cids,
            self.users,
            self.nr_cpus_allowed,
            self.cpus_allowed,
            self.pcpu_thrs,
            self.update_deferred as u8,
        ]);
        self.mode.pack(w);
        self.user_list.pack(w);
        self.bitmap.pack(w);
        // Slots past np are never touched (they stay at the allocator's zero).
        for (c, slot) in self.pcpu.iter().enumerate() {
            if c < self.np as usize {
                slot.pack(w);
            } else {
                debug_assert_eq!(*slot, Cid::default(), "slot {c} past np written");
            }
        }
        self.faults.pack(w);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> MmCid {
        let np = r.byte();
        let (max_cids, users, nr_cpus_allowed, cpus_allowed, pcpu_thrs, update_deferred) =
            (r.byte(), r.byte(), r.byte(), r.byte(), r.byte(), r.byte() != 0);
        let mode = Mode::unpack(r);
        let user_list = UserList::unpack(r);
        let bitmap = CidBitmap::unpack(r);
        let mut pcpu = [Cid::default(); MAX_CPUS];
        for slot in pcpu.iter_mut().take(np as usize) {
            *slot = Cid::unpack(r);
        }
        MmCid {
            np,
            mode,
            max_cids,
            users,
            nr_cpus_allowed,
            cpus_allowed,
            pcpu_thrs,
            update_deferred,
            user_list,
            bitmap,
            pcpu,
            faults: DropFaults::unpack(r),
            stats: Default::default(),
        }
    }
}

impl Pack for SchedinSpin {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        match *self {
            SchedinSpin::FromTask { m } => {
                w.push(0);
                m.pack(w);
            }
            SchedinSpin::FromCpu { m } => {
                w.push(1);
                m.pack(w);
            }
            SchedinSpin::TransitLoad { tc } => {
                w.push(2);
                tc.pack(w);
            }
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> SchedinSpin {
        match r.byte() {
            0 => SchedinSpin::FromTask { m: Mode::unpack(r) },
            1 => SchedinSpin::FromCpu { m: Mode::unpack(r) },
            _ => SchedinSpin::TransitLoad { tc: Cid::unpack(r) },
        }
    }
}

impl Pack for RwCpu {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        w.extend_from_slice(&self.bytes());
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Self {
        RwCpu::from_bytes(<[u8; 2]>::unpack(r))
    }
}

impl Pack for CidOp {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        match *self {
            CidOp::Fork { t } => w.extend_from_slice(&[0, t]),
            CidOp::ForkSpinLocked { t, first_user } => w.extend_from_slice(&[1, t, first_user as u8]),
            CidOp::ForkGetCid { t } => w.extend_from_slice(&[2, t]),
            CidOp::ForkSpinMutex { t } => w.extend_from_slice(&[3, t]),
            CidOp::Exit { t } => w.extend_from_slice(&[4, t]),
            CidOp::LastUserSync => w.push(5),
            CidOp::Work => w.push(6),
            CidOp::TasksToCpus { next } => w.extend_from_slice(&[7, next]),
            CidOp::TasksToCpusBudgeted { pass, i, j, budget } => {
                w.extend_from_slice(&[8, pass, i, j, budget])
            }
            CidOp::CpusToTasks {
                cpu,
                then: AfterCpusToTasks::Unlock,
            } => w.extend_from_slice(&[9, cpu]),
            CidOp::CpusToTasks {
                cpu,
                then: AfterCpusToTasks::ForkGetCid(t),
            } => w.extend_from_slice(&[10, cpu, t]),
            CidOp::ForkLocked { t } => w.extend_from_slice(&[11, t]),
            CidOp::ExecAssign { spun } => w.extend_from_slice(&[12, spun as u8]),
            CidOp::CpusToTasks {
                cpu,
                then: AfterCpusToTasks::ForkLocked(t),
            } => w.extend_from_slice(&[13, cpu, t]),
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> CidOp {
        match r.byte() {
            0 => CidOp::Fork { t: r.byte() },
            1 => CidOp::ForkSpinLocked {
                t: r.byte(),
                first_user: r.byte() != 0,
            },
            2 => CidOp::ForkGetCid { t: r.byte() },
            3 => CidOp::ForkSpinMutex { t: r.byte() },
            4 => CidOp::Exit { t: r.byte() },
            5 => CidOp::LastUserSync,
            6 => CidOp::Work,
            7 => CidOp::TasksToCpus { next: r.byte() },
            8 => CidOp::TasksToCpusBudgeted {
                pass: r.byte(),
                i: r.byte(),
                j: r.byte(),
                budget: r.byte(),
            },
            9 => CidOp::CpusToTasks {
                cpu: r.byte(),
                then: AfterCpusToTasks::Unlock,
            },
            10 => CidOp::CpusToTasks {
                cpu: r.byte(),
                then: AfterCpusToTasks::ForkGetCid(r.byte()),
            },
            11 => CidOp::ForkLocked { t: r.byte() },
            12 => CidOp::ExecAssign { spun: r.byte() != 0 },
            13 => CidOp::CpusToTasks {
                cpu: r.byte(),
                then: AfterCpusToTasks::ForkLocked(r.byte()),
            },
            t => panic!("bad CidOp tag {t}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The pre-rewrite designs.

/// A 6.x CID word in one byte: 255 for −1 (UNSET), else the LAZY bit on top and a number below
/// 127; 127 escapes to the raw word.
impl Pack for LegacyCid {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        let raw = self.raw();
        let num = raw & !LegacyCid::LAZY_BIT;
        if raw == u32::MAX {
            w.push(255);
        } else if num < 127 {
            w.push(((raw >> 24) as u8 & 0x80) | num as u8);
        } else {
            w.push(127);
            w.extend_from_slice(&raw.to_le_bytes());
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> LegacyCid {
        match r.byte() {
            255 => LegacyCid::UNSET,
            127 => LegacyCid::from_raw(r.word()),
            b => LegacyCid::from_raw(((b & 0x80) as u32) << 24 | (b & 0x7F) as u32),
        }
    }
}

pack_struct!(mmcid_cid::legacy::LegacyFaults {
    out_of_range,
    already_clear,
    no_cid
});
pack_struct!(Task63 { mm_cid, active });
impl Pack for Mm63 {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        self.np.pack(w);
        self.cidmask.pack(w);
        self.faults.pack(w);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Mm63 {
        Mm63 {
            np: r.byte(),
            cidmask: Pack::unpack(r),
            faults: Pack::unpack(r),
            stats: Default::default(),
        }
    }
}
pack_struct!(Task618 {
    mm_cid,
    last_mm_cid,
    active,
    migrate_from_cpu
});
pack_struct!(Slot618 {
    cid,
    recent_cid,
    time
});

impl Pack for Mm618 {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        self.np.pack(w);
        for (c, slot) in self.pcpu.iter().enumerate() {
            if c < self.np as usize {
                slot.pack(w);
            } else {
                debug_assert_eq!(*slot, Slot618::default(), "slot {c} past np written");
            }
        }
        self.cidmask.pack(w);
        w.extend_from_slice(&[
            self.nr_cpus_allowed,
            self.cpus_allowed,
            self.max_nr_cid,
            self.mm_users,
            self.use_cid_lock as u8,
        ]);
        self.cid_lock.pack(w);
        self.faults.pack(w);
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Mm618 {
        let np = r.byte();
        let mut pcpu = [Slot618::default(); MAX_CPUS];
        for slot in pcpu.iter_mut().take(np as usize) {
            *slot = Slot618::unpack(r);
        }
        Mm618 {
            np,
            pcpu,
            cidmask: Pack::unpack(r),
            nr_cpus_allowed: r.byte(),
            cpus_allowed: r.byte(),
            max_nr_cid: r.byte(),
            mm_users: r.byte(),
            use_cid_lock: r.byte() != 0,
            cid_lock: Pack::unpack(r),
            faults: Pack::unpack(r),
            stats: Default::default(),
        }
    }
}

pack_unit_enum!(SlowStage {
    Unlocked,
    LockedFirst,
    Forced
});

impl Pack for GetCont {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        match *self {
            GetCont::Lock { then } => {
                w.push(0);
                then.pack(w);
            }
            GetCont::Lap { stage } => {
                w.push(1);
                stage.pack(w);
            }
            GetCont::Scan { stage } => {
                w.push(2);
                stage.pack(w);
            }
            GetCont::Set { stage, c } => {
                w.push(3);
                stage.pack(w);
                w.push(c);
            }
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> GetCont {
        match r.byte() {
            0 => GetCont::Lock {
                then: Pack::unpack(r),
            },
            1 => GetCont::Lap {
                stage: Pack::unpack(r),
            },
            2 => GetCont::Scan {
                stage: Pack::unpack(r),
            },
            _ => GetCont::Set {
                stage: Pack::unpack(r),
                c: r.byte(),
            },
        }
    }
}

pack_unit_enum!(MigrateOutcome {
    NoSource,
    DstKeeps,
    NothingToMove,
    SrcBusy,
    StealLost,
    SrcBusyAfterSteal,
    CompleteLost,
    Dropped,
    Moved
});
pack_struct!(MigrateCont { src, cid, dst_set });

impl Pack for Migrate {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        match self {
            Migrate::Done(o) => {
                w.push(0);
                o.pack(w);
            }
            Migrate::Fetched(c) => {
                w.push(1);
                c.pack(w);
            }
            Migrate::Stolen(c) => {
                w.push(2);
                c.pack(w);
            }
            Migrate::InFlight(c) => {
                w.push(3);
                c.pack(w);
            }
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> Migrate {
        match r.byte() {
            0 => Migrate::Done(Pack::unpack(r)),
            1 => Migrate::Fetched(Pack::unpack(r)),
            2 => Migrate::Stolen(Pack::unpack(r)),
            _ => Migrate::InFlight(Pack::unpack(r)),
        }
    }
}

impl Pack for (u8, Migrate) {
    fn pack(&self, w: &mut Writer<'_>) {
        self.0.pack(w);
        self.1.pack(w);
    }
    fn unpack(r: &mut Reader<'_>) -> Self {
        (r.byte(), Migrate::unpack(r))
    }
}

pack_struct!(Cpu618 { get, migrating });

impl Pack for WorkAt {
    #[inline(always)]
    fn pack(&self, w: &mut Writer<'_>) {
        match *self {
            WorkAt::Scan { cpu } => w.extend_from_slice(&[0, cpu]),
            WorkAt::Marked { cpu, cid } => {
                w.extend_from_slice(&[1, cpu]);
                cid.pack(w);
            }
            WorkAt::Unset { cpu, cid } => {
                w.extend_from_slice(&[2, cpu]);
                cid.pack(w);
            }
        }
    }
    #[inline(always)]
    fn unpack(r: &mut Reader<'_>) -> WorkAt {
        match r.byte() {
            0 => WorkAt::Scan { cpu: r.byte() },
            1 => WorkAt::Marked {
                cpu: r.byte(),
                cid: Pack::unpack(r),
            },
            _ => WorkAt::Unset {
                cpu: r.byte(),
                cid: Pack::unpack(r),
            },
        }
    }
}

impl Pack for NoCidOp {
    fn pack(&self, _w: &mut Writer<'_>) {
        match *self {}
    }
    fn unpack(_r: &mut Reader<'_>) -> NoCidOp {
        panic!("6.3 has no CID operation to decode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Budgets, Config};
    use crate::family::{Lazy618, PerSwitch63, Rewrite};
    use crate::model::KernelModel;
    use mmcid_engine::Model;

    /// The first 20,000 states of a small configuration (depth first) round-trip, and distinct
    /// states (by `==`) get distinct encodings.
    fn round_trip<F: Family>(design: &str, cpus: u8, allowed: Option<u8>, budgets: Budgets) -> usize {
        let mut cfg = Config::new(design, cpus, 2, budgets);
        cfg.allowed = allowed;
        let model = KernelModel::<F>::new(cfg).unwrap();
        let mut seen = std::collections::HashMap::new();
        let mut todo = vec![*model.initial_state()];
        let mut actions = Vec::new();
        let mut buf = Vec::new();
        while let Some(s) = todo.pop() {
            if seen.len() >= 20_000 {
                break;
            }
            buf.clear();
            encode(&s, &mut buf);
            assert_eq!(decode::<F>(&buf), s);
            if let Some(other) = seen.insert(buf.clone(), s) {
                assert_eq!(other, s, "two states share an encoding");
                continue;
            }
            actions.clear();
            model.actions(&s, &mut actions);
            todo.extend(actions.iter().map(|a| model.next_state(&s, a)));
        }
        seen.len()
    }

    #[test]
    fn encodings_round_trip_and_are_injective() {
        let b = Budgets {
            forks: 1,
            exits: 1,
            exec_fails: 1,
            exec_checks: 1,
            ..Budgets::default()
        };
        let vfork = Budgets {
            vforks: 1,
            execs: 1,
            exits: 1,
            ..Budgets::default()
        };
        let affinity = Budgets {
            forks: 1,
            affinity: 1,
            ..Budgets::default()
        };
        assert!(round_trip::<Rewrite>("7.0", 2, None, b) > 1000);
        assert!(round_trip::<Rewrite>("7.0", 2, None, vfork) > 1000);
        assert!(round_trip::<Rewrite>("7.0", 3, Some(1), affinity) > 100);
        assert!(round_trip::<Rewrite>("6.19.1", 2, None, b) > 1000);
        assert!(round_trip::<Rewrite>("6.19-rc7", 2, None, b) > 1000);
        let c = Budgets { compactions: 1, ..b };
        assert!(round_trip::<Lazy618>("6.18", 2, None, c) > 1000);
        assert!(round_trip::<PerSwitch63>("6.3", 2, None, vfork) > 100);
    }
}
