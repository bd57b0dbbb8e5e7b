//! The running kernel's `mm_cid` from Rust, and per-CID data.
//!
//! Linux (6.3+) gives every running thread of a process a *memory-map
//! concurrency ID* (`mm_cid`): a small integer, unique among the threads of
//! the process that are running at the same instant (I1), below the number
//! of possible CPUs (I2), and kept compact, close to
//! `min(threads, allowed CPUs)` (I3, best effort). The kernel publishes it
//! in the thread's rseq area (`struct rseq`, field `mm_cid`). That makes it
//! the right index for per-CPU-like data in user space: denser than CPU
//! numbers when a process is confined to a few CPUs, and, unlike thread IDs,
//! bounded by the hardware.
//!
//! # Finding the rseq area
//!
//! glibc 2.35+ registers an rseq area for every thread and exports three
//! data symbols: `__rseq_offset` (area address minus the thread pointer),
//! `__rseq_size` and `__rseq_flags`. They are looked up once per process at
//! run time with `dlsym(RTLD_DEFAULT, ..)`, so this crate links against any
//! C library.
//! The area of the calling thread is then `thread_pointer + __rseq_offset`,
//! where the thread pointer is `fs:0` on x86_64 and `tpidr_el0` on aarch64.
//!
//! # ABI size rules
//!
//! Whether `mm_cid` (bytes 24..28 of the area) is filled in by the kernel
//! depends on the *active feature size*:
//!
//! * the kernel's feature size is `getauxval(AT_RSEQ_FEATURE_SIZE)`
//!   (auxv entry 27, Linux 6.3+), or 20 (the original fields up to `flags`)
//!   when the entry is absent;
//! * glibc's `__rseq_size` has meant different things across versions:
//!   older glibc exported 32 (the allocation size) although the kernel only
//!   filled 20 bytes, and some versions (including this machine's 2.36 as
//!   patched by Debian) export 20 while allocating 32 bytes. As in librseq,
//!   when `__rseq_size` is 20 or 32 the active size is
//!   `min(32, kernel feature size)`; any other non-zero value is taken as is;
//! * when we register our own area we register 32 bytes, so the active size
//!   is again `min(32, kernel feature size)`;
//! * `mm_cid` is usable when the active size is at least 28.
//!
//! [`rseq_info`] reports all of these numbers.
//!
//! # The fallback chain
//!
//! For each thread, on first use:
//!
//! 1. [`Source::GlibcRseq`]: glibc registered (`__rseq_size != 0`) and the
//!    kernel accepted the area for this thread (`cpu_id >= 0`);
//! 2. [`Source::OwnRseq`]: otherwise (musl, `GLIBC_TUNABLES=glibc.pthread.rseq=0`,
//!    glibc < 2.35) this crate registers a 32-byte area in its own
//!    thread-local storage with `rseq(2)` and unregisters it from a
//!    thread-local destructor at thread exit (it does not register when
//!    that destructor cannot be installed any more, i.e. from other
//!    thread-local destructors);
//! 3. [`Source::ThreadIdFallback`]: when rseq is unavailable (kernel older
//!    than 4.18, seccomp, not Linux, or a kernel older than 6.3 that has rseq
//!    but no `mm_cid`), a compact thread-ID allocator hands out the lowest
//!    free ID and takes it back at thread exit. Such IDs are unique among
//!    *live* threads (stronger than I1) but not bounded by the CPU count
//!    (I2 does not hold), so per-CID structures fold them modulo their size
//!    and use atomic instructions. With more than
//!    [`CompactIdAllocator::CAPACITY`] such threads alive at once, IDs
//!    repeat (harmless: they are only used as hints).
//!
//! Setting `MMCID_RSEQ_FORCE_FALLBACK=1` in the environment before the
//! first call forces step 3 (used by the tests).
//!
//! # Per-CID data
//!
//! [`PerCid<T>`] holds one cache-line-padded `T` per possible CPU, indexed
//! by `mm_cid`. [`PerCidCounter`] is a counter whose [`add`](PerCidCounter::add)
//! is an rseq critical section on x86_64: it arms the section, reads
//! `mm_cid` inside it, bounds-checks it and commits `slots[mm_cid] += v`
//! with a single non-atomic `add` instruction. Preemption, migration or a
//! signal between the start and the commit makes the kernel jump to the
//! abort handler, and the add is retried with a fresh `mm_cid`. On other
//! architectures (aarch64 included: this crate's author could not build and
//! test aarch64 critical sections here) it uses an atomic `fetch_add` on
//! the slot, which is correct but slower.
//!
//! # Mixed registration: threads with and without `mm_cid`
//!
//! One process can hold both kinds of thread. With glibc's registration
//! off (`GLIBC_TUNABLES=glibc.pthread.rseq=0`, or musl), another rseq user
//! (librseq, a language runtime) may register its own area on some threads
//! first; the kernel then refuses ours there (`EBUSY`/`EINVAL`) and this
//! crate has no way to find that area. A per-thread seccomp filter has the
//! same effect. The kernel still gives such a thread an `mm_cid` (every
//! task of the mm holds one while it runs, registered or not), so its
//! fallback ID coincides with the `mm_cid` of some thread that commits
//! non-atomically, and an atomic add into that slot from the first thread
//! would race with the plain `add` of the second: increments were lost
//! (0.2-0.6 M of ~130 M in the test `mixed_registration_loses_no_count`,
//! five runs out of five, before this was fixed).
//!
//! So whether the counter's slots are committed to by critical sections is
//! decided once per process, before any section can run
//! ([`RseqInfo::critical_sections`]); when they are, a thread without a
//! usable `mm_cid`, and an `mm_cid` without a slot, add atomically to
//! separate *side cells* that no section ever writes. The slots are then
//! only written by sections, each exclusive by I1 and the restart
//! contract, and the total is exact. The hot path of a thread that has
//! `mm_cid` is unchanged (no extra load or branch): the decision is taken
//! on the fallback path. librseq instead aborts the process on
//! "incoherent success/failure within process"
//! (`rseq_register_current_thread` in librseq's `src/rseq.c`).
//!
//! # Signal handlers, `fork()` and unloading
//!
//! * **Signal handlers.** The first call on a thread (to any function of
//!   this crate that needs the thread's ID) initialises the thread: it may
//!   take the process-wide initialisation (`dlsym`, `getauxval`, reading the
//!   environment, a one-time lock), register a thread-local destructor
//!   (which allocates) and register a `pthread_atfork` handler. None of
//!   that is async-signal-safe, so *the first use on a thread must not be
//!   in a signal handler*. Call [`register_current_thread`] when the thread
//!   starts; afterwards [`current_cid`], [`current_cpu`] and
//!   [`PerCidCounter::add`] on a thread with `mm_cid` are async-signal-safe
//!   (a signal that interrupts a critical section aborts it; the handler
//!   runs its own and the interrupted one restarts). On a thread without
//!   `mm_cid` while critical sections are in use, the first add to each
//!   counter allocates its side cells: not async-signal-safe either.
//! * **`fork()`.** The child's only thread keeps its rseq registration
//!   (the kernel copies it) and its ID. The thread-ID allocator is
//!   lock-free, so no lock can be caught held by a thread that does not
//!   exist in the child, and a `pthread_atfork` child handler frees the IDs
//!   of those threads (see [`CompactIdAllocator`]).
//! * **Unloading.** After a critical section, the thread's `rseq_cs` keeps
//!   pointing at its descriptor in this crate's `__rseq_cs` section until
//!   the kernel next clears it. If the shared object that contains this
//!   crate is unloaded (`dlclose`) first, the kernel reads unmapped memory
//!   at the thread's next preemption and kills it with `SIGSEGV`. Call
//!   [`prepare_unload`] on every such thread first.
//!
//! # Safety argument
//!
//! All `unsafe` code is in the private `sys` module and is documented there. In short:
//!
//! * an rseq area handle exists only for the *calling* thread's registered
//!   area, cannot be sent to another thread, and points to memory that
//!   stays valid while the area is registered;
//! * the kernel-owned fields (`cpu_id_start`, `cpu_id`, `node_id`,
//!   `mm_cid`) are only read, never written; user space writes `rseq_cs`
//!   only;
//! * the non-atomic commit in [`PerCidCounter::add`] is exclusive because
//!   no two running threads of a process share an `mm_cid` (I1) and any
//!   interruption restarts the section; every other writer of those slots
//!   is such a section: threads without `mm_cid` and IDs out of range use
//!   the side cells (above).

#![warn(missing_docs)]

mod bench;
mod ids;
mod observe;
mod padded;
mod percid;
mod sys;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};

use serde::Serialize;

pub use bench::{BenchConfig, BenchReport, BenchRow, MethodRuns, cpu_model, loadavg, run_bench};
pub use ids::CompactIdAllocator;
pub use observe::{
    Compaction, ObserveConfig, ObserveError, ObserveFinding, ObserveReport, ObservedViolation,
    RunningInterval, ThreadSummary, Workload, cpu_list, observe,
};
pub use percid::{AddOutcome, PerCid, PerCidCounter};

use sys::RseqArea;

/// Environment variable that forces the thread-ID fallback when set to `1`.
pub const FORCE_FALLBACK_ENV: &str = "MMCID_RSEQ_FORCE_FALLBACK";

/// Where the calling thread's concurrency ID comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `mm_cid` from the rseq area glibc registered.
    GlibcRseq,
    /// `mm_cid` from an rseq area this crate registered.
    OwnRseq,
    /// The compact thread-ID allocator (no usable `mm_cid`).
    ThreadIdFallback,
}

impl Source {
    /// Whether IDs come from the kernel's `mm_cid`.
    pub fn is_mm_cid(self) -> bool {
        !matches!(self, Source::ThreadIdFallback)
    }

    /// A short name (`glibc-rseq`, `own-rseq`, `thread-id-fallback`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::GlibcRseq => "glibc-rseq",
            Source::OwnRseq => "own-rseq",
            Source::ThreadIdFallback => "thread-id-fallback",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Process-wide facts about rseq support, computed once.
#[derive(Clone, Debug, Serialize)]
pub struct RseqInfo {
    /// glibc's `__rseq_size`, `None` if the symbol is absent.
    pub glibc_rseq_size: Option<u32>,
    /// glibc's `__rseq_offset`, `None` if the symbol is absent.
    pub glibc_rseq_offset: Option<isize>,
    /// glibc's `__rseq_flags`, `None` if the symbol is absent.
    pub glibc_rseq_flags: Option<u32>,
    /// `getauxval(AT_RSEQ_FEATURE_SIZE)`; 0 when the kernel does not say.
    pub kernel_feature_size: u32,
    /// `getauxval(AT_RSEQ_ALIGN)`; 0 when the kernel does not say.
    pub kernel_align: u32,
    /// Whether glibc registered rseq areas (`__rseq_size != 0`).
    pub glibc_registered: bool,
    /// The active feature size of the area in use (see the crate docs).
    pub active_size: u32,
    /// Whether `active_size` covers `mm_cid`.
    pub mm_cid_in_abi: bool,
    /// Whether [`FORCE_FALLBACK_ENV`] forced the thread-ID fallback.
    pub forced_fallback: bool,
    /// Whether [`PerCidCounter::add`] commits with rseq critical sections in
    /// this process: x86_64, `mm_cid` in the ABI, no forced fallback.
    /// Decided before any section runs and never changed; while it holds,
    /// threads without `mm_cid` add to side cells, never to the slots (see
    /// the crate docs on mixed registration). A thread only commits with a
    /// section if this holds.
    pub critical_sections: bool,
}

impl RseqInfo {
    /// glibc's registration, if it registered.
    fn glibc(&self) -> Option<sys::GlibcRseq> {
        Some(sys::GlibcRseq {
            offset: self.glibc_rseq_offset?,
            size: self.glibc_rseq_size.filter(|&s| s != 0)?,
            flags: self.glibc_rseq_flags?,
        })
    }
}

/// The active feature size for a glibc registration of `glibc_size` bytes,
/// given the kernel's `AT_RSEQ_FEATURE_SIZE` (0 if absent). Exposed for
/// testing the rules described in the crate docs.
pub fn active_rseq_size(glibc_size: Option<u32>, kernel_feature_size: u32) -> u32 {
    let kernel = if kernel_feature_size == 0 {
        sys::ORIG_RSEQ_FEATURE_SIZE
    } else {
        kernel_feature_size
    };
    match glibc_size {
        Some(s) if s == sys::ORIG_RSEQ_FEATURE_SIZE || s == sys::ORIG_RSEQ_SIZE => {
            kernel.min(sys::ORIG_RSEQ_SIZE)
        }
        Some(0) | None => kernel.min(sys::ORIG_RSEQ_SIZE), // our own 32-byte area
        Some(s) => s,
    }
}

/// Process-wide rseq facts (glibc symbols, kernel auxv, active size).
pub fn rseq_info() -> &'static RseqInfo {
    static INFO: OnceLock<RseqInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let g = sys::glibc_rseq();
        let (kernel_feature_size, kernel_align) = sys::kernel_rseq_auxv();
        let glibc_registered = g.is_some_and(|g| g.size != 0);
        let glibc_size = g.map(|g| g.size);
        let active_size = active_rseq_size(glibc_size, kernel_feature_size);
        let mm_cid_in_abi = active_size >= sys::MM_CID_END;
        let forced_fallback = std::env::var(FORCE_FALLBACK_ENV).is_ok_and(|v| v == "1");
        RseqInfo {
            glibc_rseq_size: glibc_size,
            glibc_rseq_offset: g.map(|g| g.offset),
            glibc_rseq_flags: g.map(|g| g.flags),
            kernel_feature_size,
            kernel_align,
            glibc_registered,
            active_size,
            mm_cid_in_abi,
            forced_fallback,
            critical_sections: cfg!(target_arch = "x86_64") && mm_cid_in_abi && !forced_fallback,
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Uninit,
    Glibc,
    Own,
    NoRseq,
}

thread_local! {
    /// The thread's registered rseq area (any active size).
    static AREA: Cell<Option<RseqArea>> = const { Cell::new(None) };
    /// `Some` iff the area exists *and* `mm_cid` is usable: the hot path.
    static CID_AREA: Cell<Option<RseqArea>> = const { Cell::new(None) };
    static STATE: Cell<State> = const { Cell::new(State::Uninit) };
    /// The thread's fallback ID, `u32::MAX` until it takes one. Read by the
    /// `fork` child handler, so it must stay a plain `const` cell.
    static FALLBACK_ID: Cell<u32> = const { Cell::new(u32::MAX) };
    static OWN_GUARD: OwnGuard = const { OwnGuard };
    static FALLBACK_GUARD: FallbackGuard = const { FallbackGuard };
}

/// Unregisters this crate's own rseq area at thread exit.
struct OwnGuard;

impl Drop for OwnGuard {
    fn drop(&mut self) {
        forget_own_area();
    }
}

/// If the calling thread uses this crate's own area, unregisters it and
/// forgets it (the next use registers again).
fn forget_own_area() {
    if STATE.get() == State::Own {
        // Forget the area before unregistering: after unregistration the
        // kernel stops updating it and critical sections on it would no
        // longer be protected.
        CID_AREA.set(None);
        AREA.set(None);
        STATE.set(State::Uninit);
        let _ = sys::own_area_unregister();
    }
}

/// Returns the thread's fallback ID to the allocator at thread exit.
struct FallbackGuard;

impl Drop for FallbackGuard {
    fn drop(&mut self) {
        let id = FALLBACK_ID.replace(u32::MAX);
        if id != u32::MAX {
            thread_ids().release(id);
        }
    }
}

/// The process's thread-ID allocator.
static THREAD_IDS: CompactIdAllocator = CompactIdAllocator::new();

/// [`THREAD_IDS`], with its `fork` child handler registered on first use.
fn thread_ids() -> &'static CompactIdAllocator {
    static AT_FORK: Once = Once::new();
    AT_FORK.call_once(|| sys::at_fork_child(ids_after_fork));
    &THREAD_IDS
}

/// The `pthread_atfork` child handler: in the child only the forking thread
/// exists, so only its ID stays allocated. It touches nothing but the
/// bitmap and a `const` thread-local (no lock, no allocation, not even the
/// `Once` above, which another thread may have been running at the fork).
extern "C" fn ids_after_fork() {
    let keep = FALLBACK_ID.get();
    THREAD_IDS.reset_keeping((keep != u32::MAX).then_some(keep));
}

#[cold]
fn init_thread() -> State {
    let info = rseq_info();
    let state = if info.forced_fallback {
        State::NoRseq
    } else if let Some(area) = info.glibc().and_then(|g| sys::glibc_area_for_current_thread(&g)) {
        AREA.set(Some(area));
        State::Glibc
    } else if OWN_GUARD.try_with(|_| ()).is_ok()
        && let Ok(area) = sys::own_area_register()
    {
        // Registered only once the destructor that unregisters it is
        // installed: in a shared object loaded with `dlopen` the area is in
        // dynamic TLS, which the C library frees at thread exit, after the
        // thread-local destructors (see `sys`).
        AREA.set(Some(area));
        State::Own
    } else {
        State::NoRseq
    };
    if state != State::NoRseq && info.mm_cid_in_abi {
        CID_AREA.set(AREA.get());
    }
    STATE.set(state);
    state
}

#[inline]
fn state() -> State {
    match STATE.get() {
        State::Uninit => init_thread(),
        s => s,
    }
}

/// The calling thread's rseq area if `mm_cid` can be read from it.
#[inline(always)]
pub(crate) fn cid_area() -> Option<RseqArea> {
    match CID_AREA.get() {
        Some(a) => Some(a),
        None => cid_area_slow(),
    }
}

#[cold]
fn cid_area_slow() -> Option<RseqArea> {
    state();
    CID_AREA.get()
}

#[cold]
fn fallback_id() -> u32 {
    let id = FALLBACK_ID.get();
    if id != u32::MAX {
        return id;
    }
    // Install the destructor that returns the ID first; if TLS destruction
    // already ran (only code in other TLS destructors gets here) the ID is
    // never returned, so do not take one from the allocator.
    let id = match FALLBACK_GUARD.try_with(|_| ()) {
        Ok(()) => thread_ids().alloc(),
        Err(_) => None,
    };
    // Without an ID from the allocator (all CompactIdAllocator::CAPACITY
    // taken, or no destructor) the thread still needs one: IDs are hints,
    // so one above the allocator's range that may repeat is acceptable.
    let id = id.unwrap_or_else(|| {
        CompactIdAllocator::CAPACITY + sys::gettid() as u32 % CompactIdAllocator::CAPACITY
    });
    FALLBACK_ID.set(id);
    id
}

/// Initialises the calling thread now rather than on first use, and says
/// where its concurrency ID comes from (the same as [`source`]).
///
/// The first use on a thread is not async-signal-safe (see the crate docs):
/// call this at thread start in threads whose signal handlers use this
/// crate. For a thread without `mm_cid` it also takes the thread's fallback
/// ID. Like librseq's `rseq_register_current_thread()`, but optional.
pub fn register_current_thread() -> Source {
    let s = source();
    if !s.is_mm_cid() {
        fallback_id();
    }
    s
}

/// Makes it safe to unload this crate's code and critical-section
/// descriptors: the equivalent of librseq's `rseq_prepare_unload()`.
///
/// After a critical section the thread's `rseq_cs` field still points at
/// the section's descriptor (in this crate's `__rseq_cs` section) until the
/// kernel next clears it on a preemption or signal. A kernel that then
/// reads a descriptor in unmapped memory kills the thread with `SIGSEGV`
/// (`rseq_get_rseq_cs()` in `kernel/rseq.c` up to 6.18;
/// `rseq_update_user_cs()` in `include/linux/rseq_entry.h` from 6.19).
/// This function clears `rseq_cs` of the calling thread's area (glibc's or
/// ours), and unregisters and forgets this crate's own area if the thread
/// uses one (a later call into the crate registers again).
///
/// **When to call it:** only when this crate is part of a shared object
/// that is unloaded while the process runs (a plugin loaded with `dlopen`
/// and closed with `dlclose`; Rust `cdylib`s included). Then every thread
/// that ran a critical section of this crate ([`PerCidCounter::add`],
/// [`PerCidCounter::add_traced`], [`observe`]) must call it at least once
/// after its last critical section and before the object is unloaded.
/// Threads that have exited need nothing. As in librseq, the same applies
/// to memory holding descriptors or section code that is freed in any other
/// way. Calling it at other times is harmless: the next section arms
/// `rseq_cs` again.
pub fn prepare_unload() {
    if let Some(area) = AREA.get() {
        area.clear_rseq_cs();
    }
    forget_own_area();
}

/// The calling thread's concurrency ID: the kernel's `mm_cid` when available,
/// otherwise an ID from the compact thread-ID allocator (see [`source`]).
///
/// Like a CPU number, the value can be stale as soon as it is returned: the
/// thread may be preempted and resume with another ID. Use it as a hint for
/// indexing (as [`PerCid`] does), or inside an rseq critical section (as
/// [`PerCidCounter`] does).
#[inline]
pub fn current_cid() -> u32 {
    match cid_area() {
        Some(a) => a.mm_cid(),
        None => fallback_id(),
    }
}

/// The CPU the calling thread is running on: rseq's `cpu_id` when an rseq
/// area is registered, otherwise `sched_getcpu()`, otherwise 0.
#[inline]
pub fn current_cpu() -> u32 {
    state();
    match AREA.get() {
        Some(a) => a.cpu_id(),
        None => sys::sched_getcpu().unwrap_or(0),
    }
}

/// Where [`current_cid`] gets its value from in the calling thread.
pub fn source() -> Source {
    match state() {
        State::Glibc if CID_AREA.get().is_some() => Source::GlibcRseq,
        State::Own if CID_AREA.get().is_some() => Source::OwnRseq,
        _ => Source::ThreadIdFallback,
    }
}

/// Whether the calling thread has a registered rseq area at all (even one
/// without `mm_cid`, i.e. on kernels 4.18 to 6.2).
pub fn rseq_registered() -> bool {
    state();
    AREA.get().is_some()
}

/// Address of the calling thread's rseq area (diagnostics).
pub fn rseq_area_addr() -> Option<usize> {
    state();
    AREA.get().map(|a| a.addr())
}

/// Helpers for this crate's tests and for the observer; not a stable API.
#[doc(hidden)]
pub mod test_support {
    use crate::sys;

    /// Kernel thread ID of the calling thread.
    pub fn gettid() -> i32 {
        sys::gettid()
    }

    /// Sends `sig` to thread `tid` of this process.
    pub fn tgkill(tid: i32, sig: i32) -> bool {
        sys::tgkill(tid, sig)
    }

    /// Installs a no-op handler for `sig`.
    pub fn install_noop_handler(sig: i32) -> bool {
        sys::install_noop_handler(sig)
    }

    /// Runs the observer's interval critical section once with `spin`
    /// busy iterations: `Some((cid, cpu))` if it completed, `None` if the
    /// kernel aborted it (or there is no usable `mm_cid`).
    pub fn running_interval(spin: u32) -> Option<(u32, u32)> {
        crate::cid_area()?.running_interval(spin).map(|i| (i.cid, i.cpu))
    }

    /// The calling thread's `rseq_cs` field, `None` without an area (does
    /// not initialise the thread).
    pub fn rseq_cs() -> Option<u64> {
        crate::AREA.get().map(|a| a.rseq_cs())
    }

    /// The raw `(mm_cid, cpu_id)` pair from the rseq area.
    pub fn raw_ids() -> Option<(u32, u32)> {
        crate::cid_area().map(|a| (a.mm_cid(), a.cpu_id()))
    }
}

static ABORTS: AtomicU64 = AtomicU64::new(0);

#[cold]
#[inline(never)]
pub(crate) fn note_abort() {
    ABORTS.fetch_add(1, Ordering::Relaxed);
}

/// How many rseq critical sections of [`PerCidCounter::add`] were aborted
/// (preemption, migration, signal or an `mm_cid` change) and retried,
/// process-wide. Non-zero values are evidence that the restart path ran.
pub fn rseq_abort_count() -> u64 {
    ABORTS.load(Ordering::Relaxed)
}

/// The number of possible CPUs (`nr_cpu_ids`): one more than the highest
/// CPU number in `/sys/devices/system/cpu/possible`, falling back to
/// `sysconf(_SC_NPROCESSORS_CONF)`. Every `mm_cid` is below it (I2).
pub fn possible_cpus() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/possible")
            .ok()
            .and_then(|s| parse_cpu_list(s.trim()).ok())
            .and_then(|v| v.iter().max().map(|m| m + 1))
            .unwrap_or_else(sys::nprocessors_conf)
    })
}

/// The CPUs the calling thread may run on (its affinity mask).
pub fn allowed_cpus() -> Vec<usize> {
    sys::get_affinity().unwrap_or_else(|| (0..possible_cpus()).collect())
}

/// Parses a CPU list such as `0`, `0-3`, `0,2,4-7` (the kernel's format).
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parse = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad CPU number {x:?} in {s:?}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b {
                    return Err(format!("bad CPU range {part:?}"));
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(parse(part)?);
            }
        }
    }
    if out.is_empty() {
        return Err(format!("empty CPU list {s:?}"));
    }
    Ok(out.into_iter().collect())
}

/// Pins the calling thread to `cpus` with `sched_setaffinity`.
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    sys::set_affinity(cpus).map_err(std::io::Error::from_raw_os_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_size_rules() {
        // This machine: glibc 2.36 says 20, kernel says 28 or more.
        assert_eq!(active_rseq_size(Some(20), 28), 28);
        assert_eq!(active_rseq_size(Some(32), 28), 28);
        assert_eq!(active_rseq_size(Some(20), 0), 20);
        assert_eq!(active_rseq_size(Some(32), 0), 20);
        assert_eq!(active_rseq_size(Some(20), 64), 32);
        assert_eq!(active_rseq_size(Some(33), 64), 33);
        assert_eq!(active_rseq_size(None, 28), 28);
        assert_eq!(active_rseq_size(Some(0), 0), 20);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("0-1").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("0,2,4-6").unwrap(), vec![0, 2, 4, 5, 6]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }
}
