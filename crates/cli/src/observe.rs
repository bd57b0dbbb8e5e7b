//! `mmcid observe`: watch the running kernel hand out `mm_cid`s and check
//! them against the spec's promises (I1 uniqueness among running threads,
//! I2 every CID below the number of possible CPUs, I3 compaction).

use std::time::Duration;

use mmcid_rseq::{ObserveConfig, ObserveError, Workload};

/// What each observed thread does between samples.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadArg {
    /// Busy loop between samples (threads stay runnable).
    Spin,
    /// sched_yield() between samples (frequent context switches).
    Yield,
    /// Sleep 50 µs between samples (threads come and go).
    Sleep,
    /// Rotate through spin, yield and sleep, out of phase across threads.
    Mixed,
}

/// Spawn threads with the given affinity and workload, sample each thread's
/// mm_cid and cpu_id from the real kernel (inside rseq critical sections, so
/// a sample proves the thread was running with that CID), and report the CID
/// range, distribution and distinctness among threads running at the same
/// instant. Exit code: 0 all promises held, 1 a promise was violated, 2 usage
/// error or rseq mm_cid unavailable.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of threads to spawn.
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// CPUs the threads are pinned to: a list such as `0`, `0-1`, `0,2-3`,
    /// or `all` (keep the inherited mask).
    #[arg(long, default_value = "all")]
    pub cpus: String,
    /// How long to sample, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// What each thread does between samples.
    #[arg(long, value_enum, default_value_t = WorkloadArg::Mixed)]
    pub workload: WorkloadArg,
    /// Print the report as a JSON object (source, threads, max_cid,
    /// distinct_cids, cid_histogram, violations, ...).
    #[arg(long)]
    pub json: bool,
}

/// Runs `mmcid observe`; returns the process exit code.
pub fn run(args: &Args) -> i32 {
    let cpus = if args.cpus.trim() == "all" {
        None
    } else {
        match mmcid_rseq::parse_cpu_list(&args.cpus) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("mmcid observe: --cpus: {e}");
                return 2;
            }
        }
    };
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 3600.0) {
        eprintln!("mmcid observe: --seconds must be in (0, 3600]");
        return 2;
    }
    let cfg = ObserveConfig {
        threads: args.threads,
        cpus,
        duration: Duration::from_secs_f64(args.seconds),
        workload: match args.workload {
            WorkloadArg::Spin => Workload::Spin,
            WorkloadArg::Yield => Workload::Yield,
            WorkloadArg::Sleep => Workload::Sleep,
            WorkloadArg::Mixed => Workload::Mixed,
        },
        ..ObserveConfig::default()
    };
    let report = match mmcid_rseq::observe(&cfg) {
        Ok(r) => r,
        Err(e @ ObserveError::RseqUnavailable(_)) | Err(e @ ObserveError::BadConfig(_)) => {
            eprintln!("mmcid observe: {e}");
            return 2;
        }
    };
    let text = if args.json {
        let doc = ObserveJson {
            format_version: FORMAT_VERSION,
            report: &report,
        };
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("mmcid observe: cannot serialise report: {e}");
                return 2;
            }
        }
    } else {
        crate::render::observe::observe_report(&report)
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    if report.violations.is_empty() { 0 } else { 1 }
}

/// Version of `mmcid observe --json` (1: the first with a schema, `docs/schema/observe.json`; 2:
/// typed violations with their evidence, `i1_pairs`; 3: typed `findings`).
pub const FORMAT_VERSION: u32 = 3;

/// The `--json` output of `mmcid observe`: the observer's report with its format version.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ObserveJson<'a> {
    /// JSON format version.
    pub format_version: u32,
    /// The report (its fields appear at this level).
    #[serde(flatten)]
    pub report: &'a mmcid_rseq::ObserveReport,
}
