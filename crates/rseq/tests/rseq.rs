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
            AddOutcome::Atomic { slot } => panic!("atomic fallback ran (slot {slot})"),
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
                    AddOutcome::Atomic { .. } => atomic += 1,
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

/// `add` with fewer slots than IDs: IDs without a slot take the atomic
/// path (the section's bounds check jumps out without writing), and the
/// total is still exact.
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
    // A thread whose mm_cid has no slot is reported as atomic.
    let empty = PerCidCounter::with_slots(1);
    if current_cid() >= 1 {
        assert!(matches!(empty.add_traced(1), AddOutcome::Atomic { .. }));
    }
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
    eprintln!("{rep}");
    assert!(rep.violations.is_empty(), "{:?}", rep.violations);
    assert!(rep.samples > 0);
    assert!(rep.max_cid.is_some_and(|m| (m as usize) < possible_cpus()));
    assert_eq!(rep.same_cpu_overlaps, 0, "TSC not usable for the I1 check");
}
