//! `mmcid bench-percid`: how fast is a per-CID counter on this machine?

use std::time::Duration;

use mmcid_rseq::BenchConfig;

/// Measure CPU ns per increment of mmcid's PerCidCounter::add (an rseq
/// critical section indexed by mm_cid) against a thread-local counter, one
/// shared AtomicU64::fetch_add, an AtomicU64 per CPU indexed by
/// sched_getcpu(), and the thread_local crate, at several thread counts, and
/// print the medians (and the fastest runs) with ratios, the shared atomic's
/// concurrency, the CPU model and the load average: figures from a loaded or
/// different machine are not comparable. The README compares them with
/// librseq's own loop on the same machine. Takes about threads x 5 methods x
/// repeats x run-ms (default 3 x 5 x 5 x 0.2 s, ~15 s).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Thread counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,8")]
    pub threads: Vec<usize>,
    /// Length of one measured run, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub run_ms: u64,
    /// Runs per configuration (interleaved across methods); the median is
    /// reported.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Do not pin worker i to allowed CPU i mod cpus (pinning makes the
    /// shared-atomic threads run on different CPUs at the same time).
    #[arg(long)]
    pub no_pin: bool,
    /// Fail (exit 2) unless the kernel's mm_cid is in use (otherwise the
    /// benchmark also runs on the thread-ID fallback and says so).
    #[arg(long)]
    pub require_rseq: bool,
    /// Print `{"cpu_model","loadavg_before","loadavg_after","threads":[{"n",
    /// "percid_ns","percid_min_ns","thread_local_ns","shared_atomic_ns",
    /// "getcpu_sharded_ns","thread_local_crate_ns",...}],...}`.
    #[arg(long)]
    pub json: bool,
}

/// Runs `mmcid bench-percid`; returns the process exit code.
pub fn run(args: &Args) -> i32 {
    if args.threads.is_empty() || args.threads.contains(&0) || args.threads.iter().any(|&n| n > 1024) {
        eprintln!("mmcid bench-percid: --threads needs counts between 1 and 1024");
        return 2;
    }
    if args.run_ms == 0 || args.repeats == 0 {
        eprintln!("mmcid bench-percid: --run-ms and --repeats must be positive");
        return 2;
    }
    let src = mmcid_rseq::source();
    if !src.is_mm_cid() {
        if args.require_rseq {
            eprintln!("mmcid bench-percid: rseq mm_cid unavailable (source {src})");
            return 2;
        }
        eprintln!("mmcid bench-percid: note: no rseq mm_cid here (source {src}); PerCidCounter uses atomics");
    }
    let report = mmcid_rseq::run_bench(&BenchConfig {
        threads: args.threads.clone(),
        run: Duration::from_millis(args.run_ms),
        repeats: args.repeats,
        pin: !args.no_pin,
    });
    let text = if args.json {
        let doc = BenchPercidJson {
            format_version: FORMAT_VERSION,
            report: &report,
        };
        match serde_json::to_string(&doc) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("mmcid bench-percid: cannot serialise report: {e}");
                return 2;
            }
        }
    } else {
        report.to_string()
    };
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    0
}

/// Version of `mmcid bench-percid --json` (1: the first with a schema,
/// `docs/schema/bench-percid.json`).
pub const FORMAT_VERSION: u32 = 1;

/// The `--json` output of `mmcid bench-percid`: the benchmark's report with its format version.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct BenchPercidJson<'a> {
    /// JSON format version.
    pub format_version: u32,
    /// The report (its fields appear at this level).
    #[serde(flatten)]
    pub report: &'a mmcid_rseq::BenchReport,
}
