//! The text report of `mmcid observe`, drawn from the observer's typed report
//! ([`mmcid_rseq::ObserveReport`]): sample counts, the CID and CPU histograms, and each promise
//! with the evidence of every violation.

use std::fmt::Write as _;

use mmcid_rseq::{ObserveFinding, ObserveReport, ObservedViolation, cpu_list};

/// A violation with its evidence, in one sentence.
pub fn violation_words(v: &ObservedViolation) -> String {
    match v {
        ObservedViolation::SameCid { cid, a, b } => format!(
            "I1: threads {} (CPU {}, TSC {}..{}) and {} (CPU {}, TSC {}..{}) both ran with mm_cid {cid} at the same time",
            a.thread, a.cpu, a.tsc_start, a.tsc_end, b.thread, b.cpu, b.tsc_start, b.tsc_end
        ),
        ObservedViolation::CidNotBelowPossibleCpus {
            thread,
            cpu,
            cid,
            possible_cpus,
        } => format!(
            "I2: thread {thread} ran with mm_cid {cid} on CPU {cpu} but there are only {possible_cpus} possible CPUs"
        ),
        ObservedViolation::NoRseqArea { thread } => format!("thread {thread}: no rseq area in this thread"),
    }
}

/// A soft finding, in one sentence.
pub fn finding_words(x: &ObserveFinding) -> String {
    match x {
        ObserveFinding::UnsyncedClocks { same_cpu_overlaps } => format!(
            "method: {same_cpu_overlaps} overlapping intervals of different threads on the same CPU; \
             the TSCs are not synchronised enough for the I1 check to be trusted"
        ),
        ObserveFinding::NoConcurrency => {
            "method: no two threads were seen running at the same instant, so I1 \
                                          was not exercised (one allowed CPU, or too little overlap)"
                .into()
        }
        ObserveFinding::Compaction {
            max_cid,
            threads,
            allowed_cpus,
            bound,
            holds: true,
        } => format!(
            "I3 (best effort): compaction holds, max CID {max_cid} < min(threads {threads}, allowed CPUs {allowed_cpus}) = {bound}"
        ),
        ObserveFinding::Compaction {
            max_cid,
            threads,
            allowed_cpus,
            bound,
            holds: false,
        } => format!(
            "I3 (best effort): compaction not reached, max CID {max_cid} >= min(threads {threads}, allowed CPUs {allowed_cpus}) = {bound}"
        ),
        ObserveFinding::NoSamples => "I3: no samples".into(),
        ObserveFinding::ProcessWider {
            worker_cpus,
            process_cpus,
            bound,
        } => format!(
            "note: the workers are pinned to {} CPU(s) but the rest of this process may run on {process_cpus}; \
             Linux compacts CIDs towards the CPUs the whole process has been allowed (the union of \
             its threads' masks), so compaction to {bound} is not guaranteed here. Start the process \
             confined (e.g. `taskset -c {} mmcid observe ...`) to test it",
            worker_cpus.len(),
            cpu_list(worker_cpus)
        ),
    }
}

/// The report as text.
pub fn observe_report(r: &ObserveReport) -> String {
    let mut f = String::new();
    let _ = writeln!(
        f,
        "mm_cid observation: {} threads, workload {:?}, {:.2}s, source {}",
        r.threads, r.workload, r.seconds, r.source
    );
    let _ = writeln!(
        f,
        "  allowed CPUs {} ({}), rest of process {}, possible CPUs {}",
        cpu_list(&r.allowed_cpus),
        r.allowed_cpus.len(),
        cpu_list(&r.process_cpus),
        r.possible_cpus
    );
    let _ = writeln!(
        f,
        "  samples {} (aborted {}), intervals checked {}, concurrent pairs compared {}",
        r.samples, r.aborted_samples, r.intervals_checked, r.concurrent_pairs
    );
    let max = r.max_cid.map_or_else(|| "-".to_string(), |m| m.to_string());
    let _ = writeln!(f, "  CIDs: max {max}, distinct {}", r.distinct_cids);
    let total = r.samples.max(1) as f64;
    for (cid, n) in &r.cid_histogram {
        let _ = writeln!(f, "    cid {cid:>3}: {n:>9} ({:5.1}%)", 100.0 * *n as f64 / total);
    }
    let cpus: Vec<String> = r.cpu_histogram.iter().map(|(c, n)| format!("{c}:{n}")).collect();
    let _ = writeln!(f, "  CPU histogram: {}", cpus.join(" "));
    for t in &r.per_thread {
        let _ = writeln!(
            f,
            "    thread {:>2}: {:>8} samples, {:>6} aborted, cids {:?}, cpus {:?}",
            t.thread, t.samples, t.aborted, t.cids, t.cpus
        );
    }
    let _ = writeln!(f, "  promises:");
    let held = |p: &str| !r.violations.iter().any(|v| v.property() == Some(p));
    let _ = writeln!(
        f,
        "    I1 uniqueness among running threads: {} ({} overlapping pairs of threads compared)",
        if held("I1") { "held" } else { "VIOLATED" },
        r.concurrent_pairs
    );
    let _ = writeln!(
        f,
        "    I2 every CID < possible CPUs ({}): {}",
        r.possible_cpus,
        if held("I2") { "held" } else { "VIOLATED" }
    );
    for v in &r.violations {
        let _ = writeln!(f, "    violation: {}", violation_words(v));
    }
    if r.i1_pairs > 10 {
        let _ = writeln!(
            f,
            "    violation: I1: {} overlapping same-CID pairs in all",
            r.i1_pairs
        );
    }
    for x in &r.findings {
        let _ = writeln!(f, "    finding: {}", finding_words(x));
    }
    f
}
