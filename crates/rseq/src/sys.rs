//! The only module of this crate that contains `unsafe` code.
//!
//! Everything here is a thin, documented wrapper around one of:
//!
//! * the rseq ABI (`struct rseq`, `struct rseq_cs`, the `rseq(2)` system
//!   call, the `RSEQ_SIG` signature that must precede every abort handler);
//! * glibc's exported rseq symbols (`__rseq_offset`, `__rseq_size`,
//!   `__rseq_flags`), looked up with `dlsym(RTLD_DEFAULT, ..)` at run time so
//!   that the crate still links where they do not exist;
//! * the thread pointer (`fs:0` on x86_64, `tpidr_el0` on aarch64);
//! * a few libc calls (`getauxval`, `sched_getcpu`, `sched_setaffinity`,
//!   `clock_gettime`) that `libc` declares `unsafe` although they are not.
//!
//! # Safety argument
//!
//! The central type is [`RseqArea`], a `Copy`, `!Send`, `!Sync` handle to
//! the *calling thread's registered* rseq area. It can only be created by
//! [`glibc_area_for_current_thread`] (the area glibc placed in the thread
//! control block, valid for the life of the thread) and
//! [`own_area_register`] (an area in this crate's own thread-local storage,
//! a `const`-initialised `thread_local!` without a destructor). Because the
//! handle cannot leave its thread and the memory stays valid while the area
//! is registered (below), dereferencing it is sound.
//!
//! Where our own area lives, and for how long:
//!
//! * when this crate is linked into the executable, or into a shared object
//!   loaded at start-up, the area is in the thread's *static* TLS block,
//!   which lives as long as the thread;
//! * when it is in a shared object loaded with `dlopen`, the area is in
//!   *dynamic* TLS, which the C library allocates on first access and frees
//!   at thread exit (glibc: after the thread-local destructors have run),
//!   and may also free when the object is closed. So the caller registers
//!   the area only once the thread-local destructor that unregisters it is
//!   installed (`OwnGuard` in the crate root), which also keeps glibc from
//!   unmapping the object before that destructor has run
//!   (`__cxa_thread_atexit_impl` holds a reference on the object), and
//!   `crate::prepare_unload` unregisters it before a `dlclose`.
//!
//! The kernel writes `cpu_id_start`, `cpu_id`, `node_id` and `mm_cid`
//! whenever the thread returns to user space after preemption, migration or
//! a signal. We only ever *read* those fields, with volatile loads (the
//! Rust equivalent of librseq's `RSEQ_READ_ONCE`). The only field we write
//! is `rseq_cs`, which belongs to user space. Newer kernels kill processes
//! that modify the kernel-owned fields, so this rule is load-bearing.
//!
//! The critical sections are written in `asm!` so that the kernel's
//! restart contract holds instruction by instruction: the descriptor
//! (`struct rseq_cs`) lives in the `__rseq_cs` section, a pointer to it in
//! `__rseq_cs_ptr_array` (the librseq convention debuggers and tools such
//! as gdb and CRIU look for), and the abort handler is preceded by the
//! 4-byte signature, encoded on x86 as `ud1 0x53053053(%rip),%edi` so
//! disassemblers stay in sync. Every exit from a section other than its
//! abort handler and its post-commit address (the early exit of a failed
//! check) is recorded as a `(start_ip, exit_ip)` pair in
//! `__rseq_exit_point_array`, as librseq's `RSEQ_ASM_DEFINE_EXIT_POINT`
//! does (`include/rseq/arch/generic/common.h`), so that a debugger
//! stepping over a section knows every place it can leave to.

use std::cell::UnsafeCell;
use std::ffi::CStr;
use std::ptr::NonNull;
#[cfg(target_arch = "x86_64")]
use std::sync::atomic::AtomicU64;

#[cfg(target_arch = "x86_64")]
use crate::padded::Padded;

/// `RSEQ_SIG` on x86 and (for aarch64, a different value) the signature
/// the kernel checks in front of every abort handler. glibc registers with
/// the same value, so critical sections work with glibc's registration too.
#[cfg(target_arch = "x86_64")]
pub(crate) const RSEQ_SIG: u32 = 0x5305_3053;
/// aarch64 `RSEQ_SIG` (a `brk #0x45c8` encoding) as used by glibc and librseq.
#[cfg(target_arch = "aarch64")]
pub(crate) const RSEQ_SIG: u32 = 0xd428_bc00;
/// Placeholder for architectures without rseq support in this crate.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) const RSEQ_SIG: u32 = 0;

/// `RSEQ_FLAG_UNREGISTER`.
const RSEQ_FLAG_UNREGISTER: i32 = 1;
/// `AT_RSEQ_FEATURE_SIZE` (Linux 6.3+): how many bytes of `struct rseq` the
/// kernel fills in. 0 (absent) on older kernels.
const AT_RSEQ_FEATURE_SIZE: libc::c_ulong = 27;
/// `AT_RSEQ_ALIGN` (Linux 6.3+): required alignment of the area.
const AT_RSEQ_ALIGN: libc::c_ulong = 28;

/// The rseq ABI structure (`include/uapi/linux/rseq.h`), 32-byte aligned.
///
/// Field offsets: `cpu_id_start` 0, `cpu_id` 4, `rseq_cs` 8, `flags` 16,
/// `node_id` 20, `mm_cid` 24; the original ABI size is 32 (20 bytes of
/// fields plus padding), which `node_id` and `mm_cid` were later carved out
/// of.
#[repr(C, align(32))]
pub(crate) struct Rseq {
    cpu_id_start: u32,
    cpu_id: u32,
    rseq_cs: u64,
    flags: u32,
    node_id: u32,
    mm_cid: u32,
}

const _: () = {
    assert!(std::mem::size_of::<Rseq>() == 32);
    assert!(std::mem::offset_of!(Rseq, cpu_id) == 4);
    assert!(std::mem::offset_of!(Rseq, rseq_cs) == 8);
    assert!(std::mem::offset_of!(Rseq, node_id) == 20);
    assert!(std::mem::offset_of!(Rseq, mm_cid) == 24);
};

/// Offset of `mm_cid` in `struct rseq`; `mm_cid` is usable when the
/// active feature size is at least `MM_CID_END`.
pub(crate) const MM_CID_END: u32 = 28;
/// The original rseq area size (and the registration length we use).
pub(crate) const ORIG_RSEQ_SIZE: u32 = 32;
/// The original feature size (fields up to and including `flags`).
pub(crate) const ORIG_RSEQ_FEATURE_SIZE: u32 = 20;

// The pieces every critical section below shares, as assembler text. Each section uses the same
// local labels: `7` the descriptor, `3` start_ip, `4` post_commit_ip, `5` abort_ip (preceded by
// the signature).

/// `struct rseq_cs { version, flags, start_ip, post_commit_offset, abort_ip }` for the section
/// between labels `3` and `4` aborting to `5`, in `__rseq_cs`, and its address in
/// `__rseq_cs_ptr_array` (librseq's layout, which debuggers and `rseq` tooling look for).
#[cfg(target_arch = "x86_64")]
macro_rules! rseq_cs_descriptor {
    () => {
        concat!(
            ".pushsection __rseq_cs, \"awR\", @progbits\n",
            ".balign 32\n",
            "7:\n",
            ".long 0, 0\n",
            ".quad 3f, (4f - 3f), 5f\n",
            ".popsection\n",
            ".pushsection __rseq_cs_ptr_array, \"awR\", @progbits\n",
            ".balign 8\n",
            ".quad 7b\n",
            ".popsection"
        )
    };
}

/// An early exit of the section starting at label `3` to `$target`, listed in
/// `__rseq_exit_point_array` (librseq's convention).
#[cfg(target_arch = "x86_64")]
macro_rules! rseq_exit_point {
    ($target:literal) => {
        concat!(
            ".pushsection __rseq_exit_point_array, \"awR\", @progbits\n",
            ".balign 8\n",
            ".quad 3f, ",
            $target,
            "\n",
            ".popsection"
        )
    };
}

/// `RSEQ_SIG` (0x53053053) just before the abort handler, encoded as the instruction
/// `ud1 0x53053053(%rip), %edi` as the kernel's x86 selftests do: the kernel refuses to jump to an
/// abort_ip not preceded by the registered signature.
#[cfg(target_arch = "x86_64")]
macro_rules! rseq_signature {
    () => {
        concat!(".byte 0x0f, 0xb9, 0x3d\n", ".long 0x53053053")
    };
}

/// Handle to the calling thread's registered rseq area. See the module
/// docs for why the methods are safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RseqArea(NonNull<Rseq>);

impl RseqArea {
    /// `rseq->mm_cid` as last written by the kernel.
    #[inline(always)]
    pub(crate) fn mm_cid(self) -> u32 {
        // SAFETY: the area belongs to the calling thread and outlives it
        // (module docs); a volatile read of a kernel-updated field.
        unsafe { std::ptr::addr_of!((*self.0.as_ptr()).mm_cid).read_volatile() }
    }

    /// `rseq->cpu_id`: the CPU number, or a negative value (as `u32`) when
    /// registration failed or has not happened.
    #[inline(always)]
    pub(crate) fn cpu_id(self) -> u32 {
        // SAFETY: as for `mm_cid`.
        unsafe { std::ptr::addr_of!((*self.0.as_ptr()).cpu_id).read_volatile() }
    }

    /// Whether the kernel has filled this area in (`cpu_id` >= 0).
    pub(crate) fn is_registered(self) -> bool {
        (self.cpu_id() as i32) >= 0
    }

    /// Address of the area, for reports.
    pub(crate) fn addr(self) -> usize {
        self.0.as_ptr() as usize
    }

    /// `rseq->rseq_cs`: the descriptor of the section last armed, until
    /// the kernel or [`clear_rseq_cs`](Self::clear_rseq_cs) clears it.
    pub(crate) fn rseq_cs(self) -> u64 {
        // SAFETY: as for `mm_cid`.
        unsafe { std::ptr::addr_of!((*self.0.as_ptr()).rseq_cs).read_volatile() }
    }

    /// `rseq->rseq_cs = 0` (librseq's `rseq_clear_rseq_cs()`): the kernel
    /// then holds no pointer to a descriptor of ours for this thread. See
    /// `crate::prepare_unload`.
    pub(crate) fn clear_rseq_cs(self) {
        // SAFETY: the area belongs to the calling thread and is valid
        // (module docs); `rseq_cs` is the one field user space writes, with
        // single-copy atomicity (an aligned 8-byte store).
        unsafe { std::ptr::addr_of_mut!((*self.0.as_ptr()).rseq_cs).write_volatile(0) }
    }

    /// Adds `v` to `*slot` in an rseq critical section that commits only if
    /// the thread's `mm_cid` still equals `cid` inside the section and the
    /// thread was neither preempted, migrated nor signalled between the
    /// section's start and the commit instruction. Returns `false` when the
    /// section aborted (the caller retries with a fresh `mm_cid`).
    ///
    /// Non-atomic with respect to other CPUs: correct only because no other
    /// thread of this process can be running with the same `mm_cid` (I1),
    /// so every writer of `slot` through this function is serialised by the
    /// scheduler, and any interruption restarts the section.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn add_if_cid(self, cid: u32, slot: &std::sync::atomic::AtomicU64, v: u64) -> bool {
        // SAFETY: `self` is the calling thread's registered area (module
        // docs); we write only `rseq_cs` (offset 8) and read `mm_cid`
        // (offset 24). `slot` is a valid, live `AtomicU64`; the plain `add`
        // is its only non-atomic access and is serialised by rseq (above).
        // The descriptor, pointer array and signature follow the ABI.
        unsafe {
            std::arch::asm!(
                rseq_cs_descriptor!(),
                // The early exit of the ID check.
                rseq_exit_point!("{abort}"),
                // rseq->rseq_cs = &descriptor: arms the critical section.
                "lea {tmp}, [rip + 7b]",
                "mov qword ptr [{rs} + 8], {tmp}",
                "3:", // start_ip
                // The slot was chosen by `cid`; abort unless it is still ours.
                "cmp dword ptr [{rs} + 24], {cid:e}",
                "jne {abort}",
                // Commit: a single read-modify-write instruction, the last
                // instruction of the section.
                "add qword ptr [{slot}], {v}",
                "4:", // post_commit_ip
                // The abort handler lives out of line (librseq's
                // `__rseq_failure` convention), preceded by RSEQ_SIG encoded
                // as `ud1 0x53053053(%rip), %edi`.
                ".pushsection __rseq_failure, \"ax\", @progbits",
                rseq_signature!(),
                "5:", // abort_ip: preempted, migrated or signalled
                "jmp {abort}",
                ".popsection",
                rs = in(reg) self.0.as_ptr(),
                cid = in(reg) cid,
                slot = in(reg) slot.as_ptr(),
                v = in(reg) v,
                tmp = out(reg) _,
                abort = label { return false; },
                options(nostack),
            );
        }
        true
    }

    /// The hot path of [`PerCidCounter::add`](crate::PerCidCounter::add):
    /// one rseq critical section that reads `mm_cid` (once, inside the
    /// section), bounds-checks it against `len`, and commits
    /// `slots[mm_cid] += v` with a single `add` instruction, where slot `i`
    /// is `slots[i].0`.
    ///
    /// Because `mm_cid` is read after the section is armed, no "is it still
    /// the same ID" comparison is needed: the kernel only changes `mm_cid`
    /// when the thread is scheduled out, migrated or (with the 6.19+ rseq
    /// rework) otherwise rescheduled, and every such event between the
    /// start and the commit aborts the section. This saves the second read
    /// of `mm_cid` and the compare of [`add_if_cid`](Self::add_if_cid), and
    /// keeps the slot selection (base, length, stride) out of the caller.
    ///
    /// As for `add_if_cid`, the plain `add` is non-atomic with respect to
    /// other CPUs and is exclusive only because of I1 and the restart
    /// contract; every other writer of the slots is either this section or
    /// an atomic RMW.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn add_at_mm_cid(self, slots: &[Padded<AtomicU64>], v: u64) -> CsAdd {
        // SAFETY: `self` is the calling thread's registered area (module
        // docs); we write only `rseq_cs` (offset 8) and read `mm_cid`
        // (offset 24). The slot written is `base + cid * SLOT_STRIDE`, i.e.
        // `slots[cid].0` (stride and offset checked at compile time below),
        // with `cid < slots.len()` checked inside the section. The
        // descriptor, pointer array and signature follow the ABI, exactly
        // as in `add_if_cid`.
        unsafe {
            std::arch::asm!(
                rseq_cs_descriptor!(),
                // The early exit of the bounds check.
                rseq_exit_point!("{oor}"),
                // Arm: rseq->rseq_cs = &descriptor.
                "lea {tmp}, [rip + 7b]",
                "mov qword ptr [{rs} + 8], {tmp}",
                "3:", // start_ip
                // mm_cid, zero-extended, read inside the section.
                "mov {tmp:e}, dword ptr [{rs} + 24]",
                "cmp {tmp}, {len}",
                "jae {oor}",
                "shl {tmp}, 7", // * SLOT_STRIDE
                // Commit: the last instruction of the section.
                "add qword ptr [{base} + {tmp}], {v}",
                "4:", // post_commit_ip
                ".pushsection __rseq_failure, \"ax\", @progbits",
                rseq_signature!(),
                "5:", // abort_ip
                "jmp {abort}",
                ".popsection",
                rs = in(reg) self.0.as_ptr(),
                base = in(reg) slots.as_ptr(),
                len = in(reg) slots.len(),
                v = in(reg) v,
                tmp = out(reg) _,
                abort = label { return CsAdd::Aborted; },
                oor = label { return CsAdd::OutOfRange; },
                options(nostack),
            );
        }
        CsAdd::Done
    }

    /// The hot path of [`PerCidCounter::add`](crate::PerCidCounter::add):
    /// [`add_at_mm_cid`](Self::add_at_mm_cid) with the slot array given as
    /// one word, `packed = (base << 16) | len` (see [`pack_slots`]), so that
    /// the caller loads one word of the counter instead of two.
    ///
    /// Why: the asm block may write memory, so the compiler reloads the
    /// counter's fields after every add, and on this project's test machine
    /// (AMD EPYC, 2 vCPUs) the loop is bound by memory operations: loading
    /// the base and the length separately made `add` about 6% slower than
    /// librseq's `rseq_load_add_store__ptr` loop, which has neither a bounds
    /// check nor a counter to load (see the README). The unpacking is three
    /// register instructions.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn add_packed(self, packed: u64, v: u64) -> CsAdd {
        // SAFETY: as for `add_at_mm_cid`. `packed` comes from `pack_slots`
        // of the counter's live, never reallocated slot array, so
        // `base = packed >> 16` and `len = packed & 0xffff` describe it (or
        // `len` is 0 and nothing is written); the slot written is
        // `base + cid * SLOT_STRIDE` with `cid < len`, checked inside the
        // section.
        unsafe {
            std::arch::asm!(
                rseq_cs_descriptor!(),
                rseq_exit_point!("{oor}"),
                // Unpack (before the section: registers only).
                "movzx {len:e}, {packed:x}",
                "mov {base}, {packed}",
                "shr {base}, 16",
                // Arm: rseq->rseq_cs = &descriptor.
                "lea {tmp}, [rip + 7b]",
                "mov qword ptr [{rs} + 8], {tmp}",
                "3:", // start_ip
                // mm_cid, zero-extended, read inside the section.
                "mov {tmp:e}, dword ptr [{rs} + 24]",
                "cmp {tmp:e}, {len:e}",
                "jae {oor}",
                "shl {tmp}, 7", // * SLOT_STRIDE
                // Commit: the last instruction of the section.
                "add qword ptr [{base} + {tmp}], {v}",
                "4:", // post_commit_ip
                ".pushsection __rseq_failure, \"ax\", @progbits",
                rseq_signature!(),
                "5:", // abort_ip
                "jmp {abort}",
                ".popsection",
                rs = in(reg) self.0.as_ptr(),
                packed = in(reg) packed,
                v = in(reg) v,
                len = out(reg) _,
                base = out(reg) _,
                tmp = out(reg) _,
                abort = label { return CsAdd::Aborted; },
                oor = label { return CsAdd::OutOfRange; },
                options(nostack),
            );
        }
        CsAdd::Done
    }

    /// [`add_at_mm_cid`](Self::add_at_mm_cid) with the same section body,
    /// but reporting the `mm_cid` the commit used (for
    /// [`PerCidCounter::add_traced`](crate::PerCidCounter::add_traced)):
    /// `(CsAdd, cid)`, where `cid` is meaningful for `Done` and
    /// `OutOfRange`.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub(crate) fn add_at_mm_cid_traced(self, slots: &[Padded<AtomicU64>], v: u64) -> (CsAdd, u32) {
        let (status, cid): (u32, u64);
        // SAFETY: as for `add_at_mm_cid`; the only differences are the
        // status register set outside the section and the ID output.
        unsafe {
            std::arch::asm!(
                rseq_cs_descriptor!(),
                rseq_exit_point!("8f"),
                "xor {st:e}, {st:e}",
                "lea {cid}, [rip + 7b]",
                "mov qword ptr [{rs} + 8], {cid}",
                "3:",
                "mov {cid:e}, dword ptr [{rs} + 24]",
                "cmp {cid}, {len}",
                "jae 8f",
                "mov {tmp}, {cid}",
                "shl {tmp}, 7",
                "add qword ptr [{base} + {tmp}], {v}",
                "4:",
                "jmp 6f",
                "8:",
                "mov {st:e}, 2",
                "jmp 6f",
                rseq_signature!(),
                "5:",
                "mov {st:e}, 1",
                "6:",
                rs = in(reg) self.0.as_ptr(),
                base = in(reg) slots.as_ptr(),
                len = in(reg) slots.len(),
                v = in(reg) v,
                tmp = out(reg) _,
                cid = out(reg) cid,
                st = out(reg) status,
                options(nostack),
            );
        }
        let r = match status {
            0 => CsAdd::Done,
            1 => CsAdd::Aborted,
            _ => CsAdd::OutOfRange,
        };
        (r, cid as u32)
    }

    /// Samples `(mm_cid, cpu_id)` together with a time interval
    /// `[t_start, t_end]` (TSC ticks) during which the thread was
    /// *continuously running* with that `mm_cid` on that CPU: the reads and
    /// both `rdtsc`s happen inside one rseq critical section, so any
    /// preemption, migration or signal in between aborts the sample
    /// (`None`). `spin` (at least 1) busy-loop iterations separate the two
    /// timestamps.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn running_interval(self, spin: u32) -> Option<RunningInterval> {
        let (cid, cpu, t1, t2, aborted): (u32, u32, u64, u64, u32);
        let spin = spin.max(1);
        // SAFETY: as for `add_if_cid`; this section only reads the area and
        // writes `rseq_cs`, and has no commit store (leaving it normally is
        // the "commit").
        unsafe {
            std::arch::asm!(
                rseq_cs_descriptor!(),
                "xor {ab:e}, {ab:e}",
                "lea {tmp}, [rip + 7b]",
                "mov qword ptr [{rs} + 8], {tmp}",
                "3:",
                "mov {cid:e}, dword ptr [{rs} + 24]",
                "mov {cpu:e}, dword ptr [{rs} + 4]",
                "rdtsc",
                "shl rdx, 32",
                "or rax, rdx",
                "mov {t1}, rax",
                "mov ecx, {spin:e}",
                "2:",
                "dec ecx",
                "jnz 2b",
                "rdtsc",
                "shl rdx, 32",
                "or rax, rdx",
                "cmp {cid:e}, dword ptr [{rs} + 24]",
                "jne 5f",
                "cmp {cpu:e}, dword ptr [{rs} + 4]",
                "jne 5f",
                "4:",
                "jmp 6f",
                rseq_signature!(),
                "5:",
                "mov {ab:e}, 1",
                "6:",
                rs = in(reg) self.0.as_ptr(),
                spin = in(reg) spin,
                tmp = out(reg) _,
                cid = out(reg) cid,
                cpu = out(reg) cpu,
                t1 = out(reg) t1,
                ab = out(reg) aborted,
                out("rax") t2,
                out("rdx") _,
                out("rcx") _,
                options(nostack),
            );
        }
        (aborted == 0).then_some(RunningInterval {
            cid,
            cpu,
            t_start: t1,
            t_end: t2,
        })
    }

    /// Without an rseq critical-section implementation for this
    /// architecture, a running interval cannot be proven.
    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) fn running_interval(self, _spin: u32) -> Option<RunningInterval> {
        None
    }
}

/// Distance in bytes between consecutive slots of a per-CID counter (the
/// `shl 7` in [`RseqArea::add_at_mm_cid`]).
pub(crate) const SLOT_STRIDE: usize = 128;

// `add_at_mm_cid` addresses `slots[i].0` as `slots.as_ptr() + i * SLOT_STRIDE`.
#[cfg(target_arch = "x86_64")]
const _: () = {
    assert!(std::mem::size_of::<Padded<AtomicU64>>() == SLOT_STRIDE);
    assert!(std::mem::offset_of!(Padded<AtomicU64>, 0) == 0);
};

/// `(base << 16) | len` for a slot array at `base` with `len` slots: the
/// argument of [`RseqArea::add_packed`]. 0 (no slot: every add takes the
/// out-of-range path, which uses the unpacked form) when the address needs
/// more than 48 bits (user space is below 2^47 unless a program maps memory
/// above it on purpose with 5-level paging) or `len` more than 16 (x86_64
/// kernels have at most 8192 CPUs).
pub(crate) fn pack_slots<T>(slots: &[T]) -> u64 {
    let (base, len) = (slots.as_ptr() as u64, slots.len() as u64);
    if base >> 48 == 0 && len >> 16 == 0 {
        base << 16 | len
    } else {
        0
    }
}

/// How one [`RseqArea::add_at_mm_cid`] section ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CsAdd {
    /// Committed.
    Done,
    /// The kernel aborted the section (nothing was written); retry.
    Aborted,
    /// `mm_cid` had no slot (nothing was written).
    OutOfRange,
}

/// One proven running interval, see [`RseqArea::running_interval`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunningInterval {
    pub(crate) cid: u32,
    pub(crate) cpu: u32,
    pub(crate) t_start: u64,
    pub(crate) t_end: u64,
}

/// glibc's exported rseq registration facts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GlibcRseq {
    /// `__rseq_offset`: area address minus the thread pointer.
    pub(crate) offset: isize,
    /// `__rseq_size`: 0 when glibc did not register.
    pub(crate) size: u32,
    /// `__rseq_flags`.
    pub(crate) flags: u32,
}

/// Looks `__rseq_offset`, `__rseq_size` and `__rseq_flags` up at run time.
/// `None` if the C library does not export them (musl, glibc < 2.35).
pub(crate) fn glibc_rseq() -> Option<GlibcRseq> {
    fn sym(name: &CStr) -> *mut libc::c_void {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
        unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
    }
    let off = sym(c"__rseq_offset");
    let size = sym(c"__rseq_size");
    let flags = sym(c"__rseq_flags");
    if off.is_null() || size.is_null() || flags.is_null() {
        return None;
    }
    // SAFETY: glibc defines these as `const ptrdiff_t __rseq_offset`,
    // `const unsigned int __rseq_size` and `const unsigned int
    // __rseq_flags`, set once before any user code runs.
    unsafe {
        Some(GlibcRseq {
            offset: (off as *const isize).read(),
            size: (size as *const u32).read(),
            flags: (flags as *const u32).read(),
        })
    }
}

/// The thread pointer of the calling thread.
#[inline(always)]
fn thread_pointer() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: usize;
        // SAFETY: on x86_64 Linux `fs:0` holds the TCB's self pointer,
        // i.e. the thread pointer (TLS variant II).
        unsafe {
            std::arch::asm!("mov {}, qword ptr fs:0", out(reg) tp,
                options(nostack, readonly, preserves_flags));
        }
        tp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let tp: usize;
        // SAFETY: reading the thread-pointer system register.
        unsafe {
            std::arch::asm!("mrs {}, tpidr_el0", out(reg) tp,
                options(nostack, nomem, preserves_flags));
        }
        tp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        0
    }
}

/// The calling thread's glibc-registered area, if glibc registered one
/// (`size != 0`) and the kernel accepted it for this thread.
pub(crate) fn glibc_area_for_current_thread(g: &GlibcRseq) -> Option<RseqArea> {
    if g.size == 0 || !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return None;
    }
    let p = thread_pointer().wrapping_add_signed(g.offset) as *mut Rseq;
    let area = RseqArea(NonNull::new(p)?);
    // glibc leaves cpu_id at RSEQ_CPU_ID_REGISTRATION_FAILED (-2) in a
    // thread whose registration failed.
    area.is_registered().then_some(area)
}

/// Storage for this crate's own registration. `const`-initialised and
/// without a destructor, so it lives in the static TLS block for the whole
/// life of the thread (see module docs).
#[repr(C, align(32))]
struct OwnArea(UnsafeCell<Rseq>);

thread_local! {
    static OWN_AREA: OwnArea = const {
        OwnArea(UnsafeCell::new(Rseq {
            cpu_id_start: 0,
            // RSEQ_CPU_ID_UNINITIALIZED
            cpu_id: u32::MAX,
            rseq_cs: 0,
            flags: 0,
            node_id: 0,
            mm_cid: 0,
        }))
    };
}

fn own_area_ptr() -> *mut Rseq {
    OWN_AREA.with(|a| a.0.get())
}

fn sys_rseq(area: *mut Rseq, flags: i32) -> Result<(), i32> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: rseq(2) with a 32-byte aligned, 32-byte long area that
        // stays valid while registered (module docs).
        let r = unsafe {
            libc::syscall(
                libc::SYS_rseq,
                area,
                ORIG_RSEQ_SIZE as libc::c_uint,
                flags,
                RSEQ_SIG,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (area, flags);
        Err(libc::ENOSYS)
    }
}

/// Registers this crate's own area for the calling thread. `Err(errno)` if
/// the kernel refuses (ENOSYS: no rseq; EBUSY/EINVAL: some other area is
/// registered; EPERM: seccomp).
pub(crate) fn own_area_register() -> Result<RseqArea, i32> {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return Err(libc::ENOSYS);
    }
    let p = own_area_ptr();
    sys_rseq(p, 0)?;
    // NonNull: a TLS address is never null.
    Ok(RseqArea(NonNull::new(p).expect("TLS address")))
}

/// Unregisters this crate's own area for the calling thread.
pub(crate) fn own_area_unregister() -> Result<(), i32> {
    sys_rseq(own_area_ptr(), RSEQ_FLAG_UNREGISTER)
}

/// Registers `child` to run in the child process after each `fork()`
/// (`pthread_atfork(NULL, NULL, child)`). Handlers registered from a shared
/// object are removed by glibc when it is unloaded.
pub(crate) fn at_fork_child(child: extern "C" fn()) {
    #[cfg(unix)]
    {
        // SAFETY: registering a handler has no preconditions; `child` is a
        // plain function that stays valid as long as this code is loaded.
        unsafe { libc::pthread_atfork(None, None, Some(child)) };
    }
    #[cfg(not(unix))]
    {
        let _ = child;
    }
}

/// `getauxval(AT_RSEQ_FEATURE_SIZE)` and `getauxval(AT_RSEQ_ALIGN)`; 0
/// when the kernel does not provide them.
pub(crate) fn kernel_rseq_auxv() -> (u32, u32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getauxval has no preconditions.
        unsafe {
            (
                libc::getauxval(AT_RSEQ_FEATURE_SIZE) as u32,
                libc::getauxval(AT_RSEQ_ALIGN) as u32,
            )
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        (0, 0)
    }
}

/// `sched_getcpu()`, or `None` on failure.
pub(crate) fn sched_getcpu() -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: no preconditions.
        let c = unsafe { libc::sched_getcpu() };
        (c >= 0).then_some(c as u32)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Pins the calling thread to `cpus`. `Err(errno)` on failure.
pub(crate) fn set_affinity(cpus: &[usize]) -> Result<(), i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in cpus {
            if c >= libc::CPU_SETSIZE as usize {
                return Err(libc::EINVAL);
            }
            // SAFETY: `c` is below CPU_SETSIZE.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
        // SAFETY: pid 0 = calling thread; size and pointer describe `set`.
        let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpus;
        Err(libc::ENOSYS)
    }
}

/// The CPUs the calling thread may run on.
pub(crate) fn get_affinity() -> Option<Vec<usize>> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: as in `set_affinity`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 = calling thread; size and pointer describe `set`.
        let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if r != 0 {
            return None;
        }
        Some(
            (0..libc::CPU_SETSIZE as usize)
                // SAFETY: index below CPU_SETSIZE.
                .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
                .collect(),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// `sysconf(_SC_NPROCESSORS_CONF)`.
pub(crate) fn nprocessors_conf() -> usize {
    // SAFETY: no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    if n > 0 { n as usize } else { 1 }
}

/// CPU time consumed by the calling thread, in nanoseconds.
pub(crate) fn thread_cpu_time_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sends `sig` to thread `tid` of this process (used by tests and the
/// observer to interrupt critical sections).
pub(crate) fn tgkill(tid: i32, sig: i32) -> bool {
    // SAFETY: plain system calls without memory arguments.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig) == 0 }
}

/// The kernel thread ID of the calling thread.
pub(crate) fn gettid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

/// Installs a no-op handler for `sig` (so that signals interrupt critical
/// sections without terminating the process), with `SA_RESTART`.
pub(crate) fn install_noop_handler(sig: i32) -> bool {
    extern "C" fn noop(_: libc::c_int) {}
    // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = noop as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::pack_slots;

    #[test]
    fn packed_slots_unpack_to_address_and_length() {
        let v = vec![0u8; 5];
        let p = pack_slots(&v);
        assert_eq!(p >> 16, v.as_ptr() as u64);
        assert_eq!(p & 0xffff, 5);
        // Too long to pack: no slot on the packed path.
        let long = vec![(); 1 << 16];
        assert_eq!(pack_slots(&long), 0);
    }
}
