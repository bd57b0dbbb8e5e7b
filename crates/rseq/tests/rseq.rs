//! Tests against the running kernel. Each test prints `SKIP: <reason>` and
//! returns when the kernel or C library cannot provide what it needs.
//!
//! Some scenarios need a fresh process (a different environment, or a
//! process whose CPU mask is narrow from the start). Those re-execute this
//! test binary with `MMCID_TEST_CHILD=<scenario>` and `--exact <test>`; the
//! child tests do nothing unless that variable names them.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mmcid_rseq::test_support as ts;
use mmcid_rseq::{
    AddOutcome, FORCE_FALLBACK_ENV, PerCidCounter, Source, current_cid, current_cpu, possible_cpus,
    rseq_abort_count, rseq_info, source,
};

const CHILD_ENV: &str = "MMCID_TEST_CHILD";

/// Why the mm_cid tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    if !cfg!(target_arch = "x86_64") {
        return Some("rseq critical sections are only implemented on x86_64".into());
    }
    let info = rseq_info();
    if info.forced_fallback {
        return Some(format!("{FORCE_FALLBACK_ENV}=1 is set"));
    }
    if source() == Source::ThreadIdFallback {
        return Some(format!(
            "no usable mm_cid on this system (glibc __rseq_size {:?}, AT_RSEQ_FEATURE_SIZE {}, \
             active size {}, rseq registered: {})",
            info.glibc_rseq_size,
            info.kernel_feature_size,
            info.active_size,
            mmcid_rseq::rseq_registered()
        ));
    }
    None
}

macro_rules! skip_unless_mm_cid {
    () => {
        if let Some(reason) = skip_reason() {
            eprintln!("SKIP: {reason}");
            return;
        }
    };
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == name)
}

/// Runs test `test` of this binary in a child process with `env`, asserts
/// that it ran (one test passed) and returns its stdout+stderr.
fn run_child(test: &str, scenario: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("re-exec test binary");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {scenario} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {scenario} did not run its test:\n{text}"
    );
    text
}

#[test]
fn mm_cid_path_is_what_runs_here() {
    let info = rseq_info();
    eprintln!("rseq info: {info:?}; source {}", source());
    skip_unless_mm_cid!();
    assert!(source().is_mm_cid());
    if info.glibc_registered {
        assert_eq!(source(), Source::GlibcRseq);
    }
    let c = PerCidCounter::new();
    let mut seen_rseq = 0;
    for _ in 0..1000 {
        match c.add_traced(1) {
            AddOutcome::Rseq { cid, .. } => {
                assert!((cid as usize) < possible_cpus(), "I2: cid {cid}");
                seen_rseq += 1;
            }
            other => panic!("atomic fallback ran: {other:?}"),
        }
    }
    assert_eq!(seen_rseq, 1000);
    assert_eq!(c.sum(), 1000);
    let cid = current_cid();
    assert!((cid as usize) < possible_cpus());
    assert!((current_cpu() as usize) < possible_cpus());
}

/// The critical section compares `mm_cid` (offset 24), not `cpu_id`: with
/// a wrong expected ID it aborts without writing; with the right one it
/// commits. Threads pinned to CPU 1 whose mm_cid differs from their CPU
/// number show which field is checked.
#[test]
fn critical_section_checks_mm_cid_not_cpu_id() {
    skip_unless_mm_cid!();
    let c = PerCidCounter::new();
    let n = c.slots() as u32;
    // Wrong ID: must abort, must not write.
    let mut aborted = 0;
    for _ in 0..1000 {
        let cid = current_cid();
        if c.try_add_as((cid + 1) % n, 1) == Some(false) {
            aborted += 1;
        }
    }
    assert!(aborted >= 990, "wrong-cid sections committed: {aborted}/1000");
    assert_eq!(c.sum(), 1000 - aborted);

    // Find moments where mm_cid != cpu_id and show the section follows
    // mm_cid.
    if possible_cpus() < 2 {
        eprintln!("SKIP (part): one possible CPU, mm_cid and cpu_id cannot differ");
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut hs = vec![];
    for t in 0..4 {
        let stop = stop.clone();
        hs.push(std::thread::spawn(move || {
            let _ = mmcid_rseq::pin_current_thread(&[t % 2]);
            let c = PerCidCounter::new();
            let mut differing = 0u32;
            let mut follows_mm_cid = 0u32;
            let deadline = Instant::now() + Duration::from_millis(500);
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let Some((cid, cpu)) = ts::raw_ids() else {
                    continue;
                };
                if cid != cpu && (cpu as usize) < c.slots() {
                    differing += 1;
                    let by_cpu = c.try_add_as(cpu, 1);
                    let by_cid = c.try_add_as(cid, 1);
                    if by_cpu == Some(false) && by_cid == Some(true) {
                        follows_mm_cid += 1;
                    }
                    if follows_mm_cid >= 100 {
                        break;
                    }
                }
                std::thread::yield_now();
            }
            (differing, follows_mm_cid)
        }));
    }
    let results: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    eprintln!("(differing, follows_mm_cid) per thread: {results:?}");
    let differing: u32 = results.iter().map(|r| r.0).sum();
    let follows: u32 = results.iter().map(|r| r.1).sum();
    if differing == 0 {
        eprintln!("SKIP (part): mm_cid always equalled cpu_id in this run");
        return;
    }
    assert!(follows > 0, "no section followed mm_cid: {results:?}");
}

/// Many threads, many increments, with yields and a signal storm: the
/// exact total, and evidence that sections were aborted and restarted.
#[test]
fn exact_total_under_yields_and_signals() {
    skip_unless_mm_cid!();
    const THREADS: usize = 8;
    const PER_THREAD: u64 = 1_000_000;
    assert!(ts::install_noop_handler(libc::SIGUSR1));
    let c = Arc::new(PerCidCounter::new());
    let tids: Arc<Vec<AtomicI32>> = Arc::new((0..THREADS).map(|_| AtomicI32::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let aborts_before = rseq_abort_count();
    let mut hs = vec![];
    for t in 0..THREADS {
        let (c, tids, barrier) = (c.clone(), tids.clone(), barrier.clone());
        hs.push(std::thread::spawn(move || {
            tids[t].store(ts::gettid(), Ordering::Relaxed);
            barrier.wait();
            let mut local_aborts = 0u64;
            let mut atomic = 0u64;
            for i in 0..PER_THREAD {
                match c.add_traced(1) {
                    AddOutcome::Rseq { aborts, .. } => local_aborts += aborts as u64,
                    AddOutcome::Atomic { .. } | AddOutcome::Side { .. } => atomic += 1,
                }
                if i % 10_000 == 0 {
                    std::thread::yield_now();
                }
            }
            (local_aborts, atomic)
        }));
    }
    let signaller = {
        let (tids, done) = (tids.clone(), done.clone());
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !done.load(Ordering::Relaxed) {
                for t in tids.iter() {
                    let tid = t.load(Ordering::Relaxed);
                    if tid != 0 && ts::tgkill(tid, libc::SIGUSR1) {
                        sent += 1;
                    }
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            sent
        })
    };
    barrier.wait();
    let results: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    let sent = signaller.join().unwrap();
    let aborts: u64 = results.iter().map(|r| r.0).sum();
    let atomic: u64 = results.iter().map(|r| r.1).sum();
    eprintln!(
        "signals sent {sent}, aborted+retried sections {aborts} (global counter +{}), atomic adds {atomic}, per slot {:?}",
        rseq_abort_count() - aborts_before,
        c.per_slot()
    );
    assert_eq!(c.sum(), THREADS as u64 * PER_THREAD);
    assert_eq!(atomic, 0, "the atomic fallback ran");
    assert!(sent > 0);
}

/// The same as `exact_total_under_yields_and_signals`, but through the
/// hot path `PerCidCounter::add` (whose section reads `mm_cid` once, inside
/// the section, and has its retry loop out of line): no increment is lost
/// or doubled, and the kernel's aborts of that section are seen and retried.
#[test]
fn add_exact_under_signals_and_aborts_retry() {
    skip_unless_mm_cid!();
    const THREADS: usize = 4;
    const ROUND: u64 = 200_000;
    assert!(ts::install_noop_handler(libc::SIGUSR1));
    let c = Arc::new(PerCidCounter::new());
    let tids: Arc<Vec<AtomicI32>> = Arc::new((0..THREADS).map(|_| AtomicI32::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let aborts_before = rseq_abort_count();
    let hs: Vec<_> = (0..THREADS)
        .map(|t| {
            let (c, tids, stop) = (c.clone(), tids.clone(), stop.clone());
            std::thread::spawn(move || {
                tids[t].store(ts::gettid(), Ordering::Relaxed);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..ROUND {
                        c.add(1);
                    }
                    n += ROUND;
                    std::thread::yield_now();
                }
                n
            })
        })
        .collect();
    // Signal until the abort path has run a good number of times (or give
    // up after 20 s and let the assertion below report it).
    let t0 = Instant::now();
    let mut sent = 0u64;
    while rseq_abort_count() - aborts_before < 100 && t0.elapsed() < Duration::from_secs(20) {
        for t in tids.iter() {
            let tid = t.load(Ordering::Relaxed);
            if tid != 0 && ts::tgkill(tid, libc::SIGUSR1) {
                sent += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    stop.store(true, Ordering::Relaxed);
    let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    let aborts = rseq_abort_count() - aborts_before;
    eprintln!(
        "signals sent {sent}, aborts {aborts}, total {total}, per slot {:?}",
        c.per_slot()
    );
    assert_eq!(c.sum(), total);
    assert!(aborts > 0, "no section of add() was aborted ({sent} signals)");
}

/// `add` with fewer slots than IDs: IDs without a slot add atomically to a
/// side cell (the section's bounds check jumps out without writing), and
/// the total is still exact.
#[test]
fn add_with_too_few_slots_is_exact() {
    skip_unless_mm_cid!();
    let c = Arc::new(PerCidCounter::with_slots(1));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..500_000u64 {
                    c.add(1);
                    if i % 1000 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(c.sum(), 2_000_000);
    // A thread whose mm_cid has no slot is reported as using a side cell.
    let empty = PerCidCounter::with_slots(1);
    if current_cid() >= 1 {
        assert!(matches!(empty.add_traced(1), AddOutcome::Side { .. }));
        assert_eq!(empty.side_sum(), 1);
        assert_eq!(empty.per_slot(), [0]);
    }
}

/// Slots that cannot be packed into one word for the hot path (here: more
/// than 65,535) are still committed to by critical sections, through the
/// out-of-range path.
#[test]
fn add_with_unpackable_slots_commits_to_slots() {
    skip_unless_mm_cid!();
    let c = PerCidCounter::with_slots(1 << 16);
    for _ in 0..1000 {
        c.add(1);
    }
    assert_eq!(c.sum(), 1000);
    assert_eq!(
        c.side_sum(),
        0,
        "unpackable slots must not send adds to the side cells"
    );
}

/// A signal delivered inside a long critical section makes the kernel jump
/// to our abort handler (which it only does if the descriptor and the
/// signature in front of the handler are right; otherwise it kills the
/// process). Without signals the same section completes.
#[test]
fn kernel_aborts_section_on_signal() {
    skip_unless_mm_cid!();
    assert!(ts::install_noop_handler(libc::SIGUSR2));
    // Short sections mostly complete.
    let ok = (0..100).filter(|_| ts::running_interval(100).is_some()).count();
    assert!(ok >= 50, "only {ok}/100 short sections completed");
    // A long section (hundreds of ms of spinning) with signals arriving.
    let tid = Arc::new(AtomicI32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let h = {
        let (tid, done) = (tid.clone(), done.clone());
        std::thread::spawn(move || {
            tid.store(ts::gettid(), Ordering::SeqCst);
            let mut aborted = 0;
            for _ in 0..5 {
                if ts::running_interval(1_000_000_000).is_none() {
                    aborted += 1;
                }
            }
            done.store(true, Ordering::SeqCst);
            aborted
        })
    };
    while !done.load(Ordering::SeqCst) {
        let t = tid.load(Ordering::SeqCst);
        if t != 0 {
            ts::tgkill(t, libc::SIGUSR2);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let aborted = h.join().unwrap();
    assert_eq!(aborted, 5, "long sections were not aborted by signals");
}

/// Threads of a process confined to one CPU see CIDs below the number of
/// allowed CPUs. The bound the kernel applies is the union of the CPU masks
/// of the process's threads, so the whole process must be confined from its
/// start: the scenario runs in a child started from a thread pinned to the
/// highest allowed CPU (the mask is inherited across fork and exec). There
/// `mm_cid` is 0 while `cpu_id` is not, which also shows that the critical
/// section checks `mm_cid` and not `cpu_id`.
#[test]
fn pinned_process_sees_cids_below_allowed_cpus() {
    skip_unless_mm_cid!();
    if possible_cpus() < 2 {
        eprintln!("SKIP: one possible CPU, every CID is trivially 0");
        return;
    }
    let allowed = mmcid_rseq::allowed_cpus();
    let cpu = *allowed.last().unwrap();
    let out = std::thread::spawn(move || {
        mmcid_rseq::pin_current_thread(&[cpu]).unwrap();
        run_child("child_pinned_cids", "pinned", &[])
    })
    .join()
    .unwrap();
    eprintln!("{out}");
}

#[test]
fn child_pinned_cids() {
    if !is_child("pinned") {
        return;
    }
    skip_unless_mm_cid!();
    let allowed = mmcid_rseq::allowed_cpus();
    assert_eq!(allowed.len(), 1, "child should be confined: {allowed:?}");
    let hs: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(|| {
                let c = PerCidCounter::new();
                let mut max = 0;
                for i in 0..200_000u32 {
                    if let AddOutcome::Rseq { cid, .. } = c.add_traced(1) {
                        max = max.max(cid);
                    } else {
                        panic!("atomic path");
                    }
                    if i % 100 == 0 {
                        std::thread::yield_now();
                    }
                }
                max
            })
        })
        .collect();
    let maxes: Vec<u32> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    eprintln!("max cid per thread: {maxes:?} (allowed CPUs {allowed:?})");
    for m in maxes {
        assert!((m as usize) < allowed.len(), "cid {m} >= allowed CPUs");
    }
    // Here mm_cid (0) differs from cpu_id (the pinned CPU, if not 0): a
    // section expecting the CPU number aborts, one expecting mm_cid commits.
    let (cid, cpu) = ts::raw_ids().unwrap();
    eprintln!("pinned child: mm_cid {cid}, cpu_id {cpu}");
    if cid != cpu {
        let c = PerCidCounter::new();
        let (mut by_cpu, mut by_cid) = (0, 0);
        for _ in 0..1000 {
            by_cpu += (c.try_add_as(cpu, 1) == Some(true)) as u32;
            by_cid += (c.try_add_as(cid, 1) == Some(true)) as u32;
        }
        eprintln!("commits expecting cpu_id {by_cpu}/1000, expecting mm_cid {by_cid}/1000");
        assert_eq!(by_cpu, 0);
        assert!(by_cid >= 990);
        assert_eq!(c.per_slot()[cid as usize], by_cid as u64);
    } else {
        eprintln!("SKIP (part): pinned to CPU {cpu}, which equals the CID");
    }
}

/// Forced fallback: lowest free thread ID, released at thread exit, and
/// the counter uses atomics.
#[test]
fn forced_fallback_uses_compact_thread_ids() {
    let out = run_child("child_forced_fallback", "fallback", &[(FORCE_FALLBACK_ENV, "1")]);
    eprintln!("{out}");
}

#[test]
fn child_forced_fallback() {
    if !is_child("fallback") {
        return;
    }
    assert_eq!(source(), Source::ThreadIdFallback);
    assert_eq!(current_cid(), 0, "main thread takes the lowest ID");
    let id = || std::thread::spawn(current_cid).join().unwrap();
    assert_eq!(id(), 1);
    assert_eq!(id(), 1, "ID 1 was released at thread exit and reused");
    // Concurrent threads get distinct, compact IDs.
    let barrier = Arc::new(Barrier::new(4));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                let id = current_cid();
                b.wait();
                id
            })
        })
        .collect();
    let mut ids: Vec<u32> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    assert_eq!(id(), 1);
    let c = Arc::new(PerCidCounter::new());
    assert!(matches!(c.add_traced(1), AddOutcome::Atomic { .. }));
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                for _ in 0..100_000 {
                    c.add(1);
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(c.sum(), 800_001);
}

/// With glibc's registration disabled, the crate registers its own area
/// per thread (and unregisters it at thread exit) and the mm_cid path
/// still runs.
#[test]
fn own_registration_when_glibc_does_not_register() {
    skip_unless_mm_cid!();
    if !rseq_info().glibc_registered {
        eprintln!("note: glibc does not register here; the main tests already used our own area");
    }
    let out = run_child(
        "child_own_registration",
        "own",
        &[("GLIBC_TUNABLES", "glibc.pthread.rseq=0")],
    );
    eprintln!("{out}");
}

#[test]
fn child_own_registration() {
    if !is_child("own") {
        return;
    }
    let info = rseq_info();
    eprintln!("child rseq info: {info:?}");
    assert!(!info.glibc_registered, "glibc still registered: {info:?}");
    assert_eq!(source(), Source::OwnRseq);
    let c = Arc::new(PerCidCounter::new());
    assert!(matches!(c.add_traced(1), AddOutcome::Rseq { .. }));
    // Many short-lived threads: each registers and unregisters.
    for _ in 0..50 {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    assert_eq!(source(), Source::OwnRseq);
                    for _ in 0..10_000 {
                        assert!(matches!(c.add_traced(1), AddOutcome::Rseq { .. }));
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    }
    assert_eq!(c.sum(), 1 + 50 * 4 * 10_000);
    // prepare_unload unregisters our area: another rseq user can now
    // register one on this thread, and after it leaves, the next add
    // registers ours again.
    mmcid_rseq::prepare_unload();
    let area = Box::into_raw(Box::new(ForeignArea {
        cpu_id_start: 0,
        cpu_id: u32::MAX,
        rseq_cs: 0,
        flags: 0,
        node_id: 0,
        mm_cid: 0,
        pad: 0,
    }));
    foreign_register(area, 0).expect("our area is still registered after prepare_unload");
    foreign_register(area, 1).expect("foreign rseq unregistration");
    // SAFETY: allocated above, no longer registered.
    drop(unsafe { Box::from_raw(area) });
    assert!(matches!(c.add_traced(1), AddOutcome::Rseq { .. }));
    assert_eq!(source(), Source::OwnRseq);
}

/// `prepare_unload` clears the `rseq_cs` pointer that a section leaves
/// behind (the kernel would otherwise read the descriptor at the next
/// preemption, after the code holding it may have been unloaded).
#[test]
fn prepare_unload_clears_rseq_cs() {
    skip_unless_mm_cid!();
    let c = PerCidCounter::new();
    // The kernel clears rseq_cs itself when it preempts the thread outside
    // a section; try until a section's pointer is seen.
    let armed = (0..1000).any(|_| {
        c.add(1);
        ts::rseq_cs().is_some_and(|p| p != 0)
    });
    assert!(armed, "rseq_cs never seen armed after a section");
    mmcid_rseq::prepare_unload();
    assert_eq!(ts::rseq_cs(), Some(0));
    c.add(1);
    assert_eq!(c.sum(), c.per_slot().iter().sum::<u64>() + c.side_sum());
}

/// The observer on the real kernel: no I1/I2 violation, CIDs below the
/// possible CPUs, and (with 2+ CPUs) overlapping intervals were compared.
#[test]
fn observer_finds_no_violation() {
    skip_unless_mm_cid!();
    let rep = mmcid_rseq::observe(&mmcid_rseq::ObserveConfig {
        threads: 4,
        duration: Duration::from_millis(300),
        workload: mmcid_rseq::Workload::Spin,
        ..Default::default()
    })
    .unwrap();
    eprintln!("{rep:?}");
    assert!(rep.violations.is_empty(), "{:?}", rep.violations);
    assert!(rep.samples > 0);
    assert!(rep.max_cid.is_some_and(|m| (m as usize) < possible_cpus()));
    assert_eq!(rep.same_cpu_overlaps, 0, "TSC not usable for the I1 check");
}

/// A 32-byte rseq area that a "foreign" rseq user (librseq with glibc's
/// registration off, musl + librseq, ...) registers for its thread by the
/// raw system call before this crate gets a chance to.
#[repr(C, align(32))]
struct ForeignArea {
    cpu_id_start: u32,
    cpu_id: u32,
    rseq_cs: u64,
    flags: u32,
    node_id: u32,
    mm_cid: u32,
    pad: u32,
}

#[cfg(target_arch = "x86_64")]
const RSEQ_SIG: u32 = 0x5305_3053;
#[cfg(not(target_arch = "x86_64"))]
const RSEQ_SIG: u32 = 0xd428_bc00;

/// Registers `area` for the calling thread; `Err(errno)` on failure.
fn foreign_register(area: *mut ForeignArea, flags: i32) -> Result<(), i32> {
    // SAFETY: a 32-byte, 32-aligned area that outlives the registration
    // (the caller unregisters before freeing it).
    let r = unsafe { libc::syscall(libc::SYS_rseq, area, 32u32, flags, RSEQ_SIG) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// Mixed registration: with glibc's registration off, some threads get an
/// rseq area from this crate (mm_cid path, non-atomic commits) while others
/// were registered first by someone else, so this crate cannot find their
/// area and gives them thread-ID fallback IDs, which coincide with the
/// mm_cids of the first kind. Every increment must still be counted, the
/// first kind's in the slots and the second kind's in the side cells.
#[test]
fn mixed_registration_loses_no_count() {
    skip_unless_mm_cid!();
    let out = run_child(
        "child_mixed_registration",
        "mixed",
        &[("GLIBC_TUNABLES", "glibc.pthread.rseq=0")],
    );
    eprintln!("{out}");
}

/// The same scenario with the bug of issue 14 put back (threads without
/// `mm_cid` fold into the slots that critical sections commit to): the
/// test above must see increments lost. Racy by nature (it needs two CPUs
/// running both kinds of thread at once), hence not part of the default
/// run: `cargo test -p mmcid-rseq --test rseq -- --ignored`.
#[test]
#[ignore = "shows the bug, needs 2 free CPUs"]
fn mixed_registration_with_the_old_folding_loses_counts() {
    skip_unless_mm_cid!();
    if mmcid_rseq::allowed_cpus().len() < 2 {
        eprintln!("SKIP: needs 2 CPUs for the plain add and the atomic add to overlap");
        return;
    }
    let out = run_child(
        "child_mixed_registration",
        "mixed-old",
        &[("GLIBC_TUNABLES", "glibc.pthread.rseq=0")],
    );
    eprintln!("{out}");
}

#[test]
fn child_mixed_registration() {
    let old_folding = is_child("mixed-old");
    if !is_child("mixed") && !old_folding {
        return;
    }
    assert!(!rseq_info().glibc_registered, "glibc still registered");
    assert!(rseq_info().critical_sections);
    assert_eq!(source(), Source::OwnRseq, "main thread");
    if old_folding {
        // The loss needs the two kinds to overlap on two CPUs; on a loaded
        // machine one round may not get there.
        for round in 1..=10 {
            let r = mixed_round(true);
            if r.lost() > 0 {
                eprintln!("the old folding lost increments in round {round}");
                return;
            }
        }
        panic!("the old folding lost nothing in 10 rounds");
    }
    let r = mixed_round(false);
    assert_eq!(r.got, r.expected, "increments lost under mixed registration");
    assert_eq!(
        r.side, r.foreign,
        "threads without mm_cid must add to the side cells only"
    );
}

/// What one round of the mixed-registration scenario counted.
struct MixedRound {
    expected: u64,
    got: u64,
    /// Increments made by the threads without mm_cid.
    foreign: u64,
    /// The counter's side cells.
    side: u64,
}

impl MixedRound {
    fn lost(&self) -> i64 {
        self.expected as i64 - self.got as i64
    }
}

/// Two threads with this crate's own rseq area and four registered by a
/// "foreign" rseq user increment one counter at the same time; with
/// `old_folding` the latter use the pre-issue-14 fallback.
fn mixed_round(old_folding: bool) -> MixedRound {
    const PER_THREAD: u64 = 5_000_000;
    const RSEQ_THREADS: usize = 2;
    const FOREIGN_THREADS: usize = 4;
    let c = Arc::new(PerCidCounter::new());
    let barrier = Arc::new(Barrier::new(RSEQ_THREADS + FOREIGN_THREADS));
    let foreign_left = Arc::new(std::sync::atomic::AtomicUsize::new(FOREIGN_THREADS));
    let allowed = mmcid_rseq::allowed_cpus();
    let t0 = Instant::now();
    let hs: Vec<_> = (0..RSEQ_THREADS + FOREIGN_THREADS)
        .map(|t| {
            let (c, barrier, foreign_left) = (c.clone(), barrier.clone(), foreign_left.clone());
            let allowed = allowed.clone();
            std::thread::spawn(move || {
                let foreign = t >= RSEQ_THREADS;
                let area = Box::into_raw(Box::new(ForeignArea {
                    cpu_id_start: 0,
                    cpu_id: u32::MAX,
                    rseq_cs: 0,
                    flags: 0,
                    node_id: 0,
                    mm_cid: 0,
                    pad: 0,
                }));
                if foreign {
                    foreign_register(area, 0).expect("foreign rseq registration");
                }
                let src = source();
                // Pin so that every CPU runs one thread of each kind and
                // fallback IDs of every parity: whatever mm_cid a thread of
                // the first kind holds, a thread of the second kind on
                // another CPU adds to that slot's ID at the same time.
                if allowed.len() >= 2 {
                    let k = if foreign { current_cid() as usize / 2 } else { t };
                    let _ = mmcid_rseq::pin_current_thread(&[allowed[k % allowed.len()]]);
                }
                barrier.wait();
                // The foreign threads make PER_THREAD increments; the
                // others keep incrementing until those are done, so that
                // both kinds run at the same time throughout.
                let mut n = 0u64;
                if foreign {
                    for _ in 0..PER_THREAD {
                        if old_folding {
                            c.add_folding_into_slots_for_tests(1);
                        } else {
                            c.add(1);
                        }
                    }
                    n = PER_THREAD;
                    foreign_left.fetch_sub(1, Ordering::Relaxed);
                } else {
                    while foreign_left.load(Ordering::Relaxed) > 0 {
                        for _ in 0..1000 {
                            c.add(1);
                        }
                        n += 1000;
                    }
                }
                if foreign {
                    foreign_register(area, 1).expect("foreign rseq unregistration");
                }
                // SAFETY: allocated above, no longer registered.
                drop(unsafe { Box::from_raw(area) });
                (src, n)
            })
        })
        .collect();
    let who: Vec<(Source, u64)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    let expected: u64 = who.iter().map(|w| w.1).sum();
    let got = c.sum();
    eprintln!(
        "mixed registration{}: sources and increments per thread {who:?}; total {got} of {expected} \
         (lost {}) in {:?}; per slot {:?}, side cells {}",
        if old_folding { " (old folding)" } else { "" },
        expected as i64 - got as i64,
        t0.elapsed(),
        c.per_slot(),
        c.side_sum()
    );
    assert!(
        who[..RSEQ_THREADS].iter().all(|w| w.0 == Source::OwnRseq),
        "{who:?}"
    );
    assert!(
        who[RSEQ_THREADS..]
            .iter()
            .all(|w| w.0 == Source::ThreadIdFallback),
        "{who:?}"
    );
    MixedRound {
        expected,
        got,
        foreign: who[RSEQ_THREADS..].iter().map(|w| w.1).sum(),
        side: c.side_sum(),
    }
}

/// fork() in fallback mode: the child has one thread, so every fallback ID
/// but the forking thread's must be free again in the child, and the
/// allocator must work there although other threads of the parent were
/// allocating and releasing IDs when it forked.
#[test]
fn fork_in_fallback_mode_frees_absent_threads_ids() {
    let out = run_child("child_fork_fallback", "fork", &[(FORCE_FALLBACK_ENV, "1")]);
    eprintln!("{out}");
}

/// Forks, runs `in_child` in the child (its return value is the exit
/// status) and waits up to 10 s for it. `Err` describes a child that hung
/// or died.
fn fork_and_wait(in_child: impl FnOnce() -> i32) -> Result<i32, String> {
    // SAFETY: the child only runs `in_child` and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = in_child();
        // SAFETY: leave the child without running the parent's atexit
        // handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    let t0 = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return if libc::WIFEXITED(status) {
                Ok(libc::WEXITSTATUS(status))
            } else {
                Err(format!("child died: status {status:#x}"))
            };
        }
        if t0.elapsed() > Duration::from_secs(10) {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = unsafe { libc::waitpid(pid, &mut status, 0) };
            return Err("child hung for 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `current_cid()` in a new thread made with `pthread_create` directly.
///
/// In a fork child, `std::thread::spawn` can hang on a lock of the standard
/// library's own that a thread of the parent held at the fork (seen here:
/// the mutex of std's stack-overflow handler registry, taken by every new
/// std thread), which has nothing to do with this crate; so the children
/// below make their threads without std.
fn id_in_raw_thread() -> u32 {
    extern "C" fn run(out: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `out` points to the caller's u32, which outlives the
        // thread (the caller joins it).
        unsafe { *(out as *mut u32) = current_cid() };
        std::ptr::null_mut()
    }
    let mut id = u32::MAX;
    // SAFETY: `run` has the signature pthread_create wants; the thread is
    // joined before `id` goes out of scope.
    unsafe {
        let mut th: libc::pthread_t = std::mem::zeroed();
        let arg = &mut id as *mut u32 as *mut libc::c_void;
        assert_eq!(libc::pthread_create(&mut th, std::ptr::null(), run, arg), 0);
        assert_eq!(libc::pthread_join(th, std::ptr::null_mut()), 0);
    }
    id
}

#[test]
fn child_fork_fallback() {
    if !is_child("fork") {
        return;
    }
    assert_eq!(source(), Source::ThreadIdFallback);
    assert_eq!(current_cid(), 0);
    // Three threads hold IDs 1, 2, 3 while this thread forks: in the child
    // they do not exist, so a new thread there takes ID 1, and so does the
    // next one (the first returned it at exit).
    let hold = Arc::new(Barrier::new(4));
    let holders: Vec<_> = (0..3)
        .map(|_| {
            let hold = hold.clone();
            std::thread::spawn(move || {
                let id = current_cid();
                hold.wait();
                hold.wait();
                id
            })
        })
        .collect();
    hold.wait();
    let child = fork_and_wait(|| {
        let ids = [id_in_raw_thread(), id_in_raw_thread()];
        if current_cid() == 0 && ids == [1, 1] {
            0
        } else {
            10 + ids[0].min(100) as i32
        }
    });
    hold.wait();
    let mut held: Vec<u32> = holders.into_iter().map(|h| h.join().unwrap()).collect();
    held.sort();
    assert_eq!(held, [1, 2, 3]);
    match child {
        Ok(0) => {}
        Ok(c) => panic!("the child's new thread got ID {} instead of 1", c - 10),
        Err(e) => panic!("{e}"),
    }
    // Fork again and again while other threads take and return IDs: a lock
    // of the allocator held at fork time would hang the child, and IDs held
    // by the parent's threads would show in the child's new thread.
    let stop = Arc::new(AtomicBool::new(false));
    let churn: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::spawn(current_cid).join().unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut bad = Vec::new();
    for _ in 0..200 {
        match fork_and_wait(|| if id_in_raw_thread() == 1 { 0 } else { 1 }) {
            Ok(0) => {}
            other => bad.push(other),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let churned: u64 = churn.into_iter().map(|h| h.join().unwrap()).sum();
    eprintln!(
        "200 forks while {churned} threads came and went: {} bad children {bad:?}",
        bad.len()
    );
    assert!(bad.is_empty(), "{bad:?}");
}

/// `struct rseq_cs` as the kernel reads it.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[repr(C)]
#[derive(Debug)]
struct RseqCs {
    version: u32,
    flags: u32,
    start_ip: u64,
    post_commit_offset: u64,
    abort_ip: u64,
}

/// The tables the critical sections of this binary put in `__rseq_cs`,
/// `__rseq_cs_ptr_array` and `__rseq_exit_point_array` (read through the
/// linker's `__start_`/`__stop_` symbols) agree with each other and with
/// the ABI: each descriptor is version 0 without flags, has an abort
/// handler outside the section preceded by the signature, is listed once
/// in the pointer array, and every exit point belongs to a section and
/// lies outside it (neither its abort handler nor its post-commit address,
/// which the descriptor already gives).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn rseq_section_tables_are_consistent() {
    use std::collections::BTreeSet;
    unsafe extern "C" {
        static __start___rseq_cs: RseqCs;
        static __stop___rseq_cs: RseqCs;
        static __start___rseq_cs_ptr_array: u64;
        static __stop___rseq_cs_ptr_array: u64;
        static __start___rseq_exit_point_array: [u64; 2];
        static __stop___rseq_exit_point_array: [u64; 2];
    }
    // Make sure the sections of `add`, `add_traced` and `try_add_as` are in
    // this binary (they are instantiated where they are used).
    let c = PerCidCounter::new();
    c.add(1);
    c.add_traced(1);
    let _ = c.try_add_as(0, 1);
    // SAFETY: the linker defines the start and stop symbols of each
    // section; between them lie only the entries our `asm!` blocks emit
    // (descriptors are 32 bytes, aligned to 32, so there is no padding).
    let (descs, ptrs, exits) = unsafe {
        let slice = |a: *const u8, b: *const u8, size: usize| (b as usize - a as usize) / size;
        let d = std::ptr::addr_of!(__start___rseq_cs);
        let nd = slice(d.cast(), std::ptr::addr_of!(__stop___rseq_cs).cast(), 32);
        let p = std::ptr::addr_of!(__start___rseq_cs_ptr_array);
        let np = slice(p.cast(), std::ptr::addr_of!(__stop___rseq_cs_ptr_array).cast(), 8);
        let e = std::ptr::addr_of!(__start___rseq_exit_point_array);
        let ne = slice(
            e.cast(),
            std::ptr::addr_of!(__stop___rseq_exit_point_array).cast(),
            16,
        );
        (
            std::slice::from_raw_parts(d, nd),
            std::slice::from_raw_parts(p, np),
            std::slice::from_raw_parts(e, ne),
        )
    };
    eprintln!(
        "{} descriptors, {} pointers, {} exit points",
        descs.len(),
        ptrs.len(),
        exits.len()
    );
    assert!(descs.len() >= 3, "{descs:?}");
    let addrs: BTreeSet<u64> = descs.iter().map(|d| d as *const RseqCs as u64).collect();
    let listed: BTreeSet<u64> = ptrs.iter().copied().collect();
    assert_eq!(listed.len(), ptrs.len(), "a descriptor is listed twice");
    assert_eq!(
        listed, addrs,
        "__rseq_cs_ptr_array does not list exactly the descriptors"
    );
    let inside = |d: &RseqCs, ip: u64| ip.wrapping_sub(d.start_ip) < d.post_commit_offset;
    for d in descs {
        assert_eq!((d.version, d.flags), (0, 0), "{d:?}");
        assert!(d.post_commit_offset > 0, "{d:?}");
        assert!(!inside(d, d.abort_ip), "abort handler inside its section: {d:?}");
        // SAFETY: abort_ip points into this binary's code, preceded by the
        // 4-byte signature (the last 4 bytes of the `ud1` instruction).
        let sig = unsafe { ((d.abort_ip - 4) as *const u32).read_unaligned() };
        assert_eq!(sig, 0x5305_3053, "no RSEQ_SIG before the abort handler: {d:?}");
    }
    // Every section of this crate but the observer's sample (recognised by
    // its `rdtsc`, 0f 31) has an early exit and so must record it.
    for d in descs {
        // SAFETY: the section's code lies in this binary's text.
        let code =
            unsafe { std::slice::from_raw_parts(d.start_ip as *const u8, d.post_commit_offset as usize) };
        let is_sample = code.windows(2).any(|w| w == [0x0f, 0x31]);
        let recorded = exits.iter().any(|e| e[0] == d.start_ip);
        assert_eq!(
            recorded, !is_sample,
            "exit point recorded: {recorded}, observer sample: {is_sample}: {d:?}"
        );
    }
    for &[start, exit] in exits {
        let d = descs
            .iter()
            .find(|d| d.start_ip == start)
            .unwrap_or_else(|| panic!("exit point for unknown section start {start:#x}"));
        assert!(!inside(d, exit), "exit point {exit:#x} inside its section {d:?}");
        assert_ne!(exit, d.abort_ip, "the abort handler is not an extra exit point");
        assert_ne!(
            exit,
            d.start_ip + d.post_commit_offset,
            "the post-commit address is not an extra exit point"
        );
    }
}

static SIGNAL_COUNTER: std::sync::OnceLock<PerCidCounter> = std::sync::OnceLock::new();
static SIGNAL_ADDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn add_from_handler(_: libc::c_int) {
    if let Some(c) = SIGNAL_COUNTER.get() {
        c.add(1);
        SIGNAL_ADDS.fetch_add(1, Ordering::Relaxed);
    }
}

/// After `register_current_thread`, `add` is usable from a signal handler:
/// the handler's critical section runs while the interrupted thread may be
/// inside its own (which the kernel aborts on signal delivery and the
/// thread retries), and the total stays exact.
#[test]
fn add_from_a_signal_handler_after_register_current_thread() {
    skip_unless_mm_cid!();
    let sig = libc::SIGRTMIN() + 1; // not used by the other tests
    let c = SIGNAL_COUNTER.get_or_init(PerCidCounter::new);
    // SAFETY: a zeroed sigaction is valid; the handler only calls what the
    // crate documents as async-signal-safe on a registered thread.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = add_from_handler as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
    }
    let tid = Arc::new(AtomicI32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (tid, stop) = (tid.clone(), stop.clone());
        std::thread::spawn(move || {
            assert!(mmcid_rseq::register_current_thread().is_mm_cid());
            tid.store(ts::gettid(), Ordering::SeqCst);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..10_000 {
                    c.add(1);
                }
                n += 10_000;
            }
            n
        })
    };
    while tid.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let mut sent = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(300) {
        if ts::tgkill(tid.load(Ordering::SeqCst), sig) {
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    stop.store(true, Ordering::Relaxed);
    let own = worker.join().unwrap();
    let handled = SIGNAL_ADDS.load(Ordering::Relaxed);
    eprintln!("{own} adds in the thread, {handled} in its handler ({sent} signals sent)");
    assert!(handled > 0, "no signal was handled");
    assert_eq!(c.sum(), own + handled);
    assert_eq!(c.side_sum(), 0);
}
