//! `mmcid sim`: every design under real workloads at machine scale (crate `mmcid-sim`).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use mmcid_sim::{Checking, Outcome, SimConfig, Workload};

/// Simulate the designs on a many-CPU machine running real workload shapes, side by side: ID
/// compactness, cost per context switch, mode switches and walks, spins, 6.18's compaction; with
/// the invariants checked as the run goes (a violation stops that run and prints its last events
/// in CPU columns).
///
/// With no arguments: every design the simulator runs (the releases 6.3 to 7.1.3 and the fix
/// 7.0+fix-affinity-switchback; not yet the execve fixes, which `mmcid check` covers) on the
/// `mixed` workload at 64 CPUs, 1,000,000 context switches each. Runs use every core. Exit status: 0 no violation, 1 a violation in some run, 2 usage or
/// input error.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Designs to run (repeat or comma-separate; `mmcid designs` lists them); default: every
    /// design the simulator runs (all but 7.0+fixes and the two execve fixes).
    #[arg(long, value_delimiter = ',')]
    pub design: Vec<String>,
    /// Workloads: a name (mixed, thread-pool, fork-storm, spawn, containers, oversubscribed,
    /// many-small) or a TOML file in the format of crates/sim/workloads/*.toml; repeatable.
    #[arg(long, value_delimiter = ',', default_value = "mixed")]
    pub workload: Vec<String>,
    /// Possible CPUs (1-4096).
    #[arg(long, default_value_t = 64)]
    pub cpus: u32,
    /// Context switches per run [default: 1000000; 10000000 with --bench].
    #[arg(long)]
    pub switches: Option<u64>,
    /// Seed of the first run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runs per design and workload, with seeds seed, seed+1, ... (the table shows the first; JSON
    /// has all).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Invariant checking: `sampled` (cheap checks on every event, full per-mm checks after
    /// operations and periodically) or `every` (full checks after every event; slow).
    #[arg(long, default_value = "sampled", value_parser = ["sampled", "every"])]
    pub check: String,
    /// Print JSON (an array of run outcomes) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write SVG plots (per workload: ID compactness per design, ID range over time, cost per
    /// switch, walk lengths) and an index.html with the table and a caption per plot into this
    /// directory.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// Benchmark mode: the thread-pool workload at --cpus, each design on one core, 10^7 switches
    /// unless --switches says otherwise; prints switches/s per design (with --json, as JSON).
    #[arg(long)]
    pub bench: bool,
    /// Run one thread/affinity setup on the real kernel (threads read mm_cid through rseq) and the
    /// same setup simulated under design 6.18, and compare the two ID distributions.
    #[arg(long)]
    pub against_kernel: bool,
    /// --against-kernel: threads of the real process (and of the simulated one).
    #[arg(long, default_value_t = 8)]
    pub kernel_threads: u32,
    /// --against-kernel: CPUs the threads may use (`0-3`, `all`).
    #[arg(long, default_value = "all")]
    pub kernel_cpus: String,
    /// --against-kernel: seconds of real run.
    #[arg(long, default_value_t = 2.0)]
    pub kernel_seconds: f64,
    /// --against-kernel: CPU-bound single-threaded processes (20 ms bursts, 5 ms sleeps) the
    /// simulated machine also runs, standing in for the real machine's other load.
    #[arg(long, default_value_t = 0)]
    pub kernel_background: u32,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn load(w: &str) -> Result<Workload, String> {
    if w.ends_with(".toml") || std::path::Path::new(w).exists() {
        let src = std::fs::read_to_string(w).map_err(|e| format!("{w}: {e}"))?;
        Workload::from_toml(&src).map_err(|e| format!("{w}: {e}"))
    } else {
        Workload::named(w)
    }
}

/// Runs `mmcid sim`; returns the exit code.
pub fn run(args: &Args) -> i32 {
    if args.against_kernel {
        return crate::sim_kernel::run(args);
    }
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mmcid sim: {e}");
            2
        }
    }
}

fn run_inner(args: &Args) -> Result<i32, String> {
    let designs: Vec<String> = if args.design.is_empty() {
        mmcid_kmodel::DESIGNS
            .iter()
            .filter(|d| mmcid_sim::machine::simulated(d).is_ok())
            .map(|d| d.name.to_string())
            .collect()
    } else {
        for d in &args.design {
            mmcid_kmodel::config::design(d)?;
        }
        args.design.clone()
    };
    if !(1..=4096).contains(&args.cpus) {
        return Err(format!("--cpus must be 1..=4096, got {}", args.cpus));
    }
    if args.seeds == 0 || args.switches == Some(0) {
        return Err("--seeds and --switches must be at least 1".into());
    }
    let workloads: Vec<Workload> = if args.bench {
        vec![Workload::named("thread-pool")?]
    } else {
        args.workload.iter().map(|w| load(w)).collect::<Result<_, _>>()?
    };
    // an explicit --switches is taken as given, 1000000 included (it used to mean "the default"
    // and ran 10^7 under --bench)
    let switches = args
        .switches
        .unwrap_or(if args.bench { 10_000_000 } else { 1_000_000 });
    let checking = if args.check == "every" {
        Checking::Every
    } else {
        Checking::Sampled
    };
    let mut cfgs = Vec::new();
    for w in &workloads {
        for d in &designs {
            for s in 0..args.seeds {
                let mut c = SimConfig::new(d, args.cpus, w.clone(), args.seed + s, switches);
                c.checking = checking;
                c.series = args.report.is_some() && s == 0;
                cfgs.push(c);
            }
        }
    }
    let total = cfgs.len() as u64 * switches;
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} [{elapsed} < {eta}]")
                .expect("template"),
        );
        b.set_message(format!("{} runs of {} switches", cfgs.len(), switches));
        b
    });
    let done = AtomicU64::new(0);
    let tick = |n: u64| {
        let d = done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(b) = &bar {
            b.set_position(d);
        }
    };
    let t0 = std::time::Instant::now();
    let stop = crate::stop::ctrl_c();
    let stop = move || stop.is_cancelled();
    let results = if args.bench {
        // one run at a time: switches/s of one core each
        cfgs.into_iter()
            .map(|c| mmcid_sim::run_until(c, |_| {}, &stop))
            .collect::<Vec<_>>()
    } else {
        mmcid_sim::run_all_until(cfgs, &tick, &stop)
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let wall = t0.elapsed().as_secs_f64();
    let outs: Vec<Outcome> = results.into_iter().collect::<Result<_, _>>()?;
    let violated = outs.iter().any(|o| o.violation.is_some());
    if let Some(dir) = &args.report {
        mmcid_sim::report::plots::write(dir, &outs)
            .map_err(|e| format!("--report {}: {e}", dir.display()))?;
        if !args.json {
            eprintln!("report: {}", dir.join("index.html").display());
        }
    }
    let code = if crate::stop::interrupted() {
        crate::exit::INTERRUPTED
    } else {
        violated as i32
    };
    if args.bench {
        print_bench(&outs, args.json);
        return Ok(code);
    }
    if args.json {
        let report = SimReport {
            format_version: FORMAT_VERSION,
            runs: outs,
        };
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        for w in &workloads {
            let cols: Vec<&Outcome> = outs
                .iter()
                .filter(|o| o.workload == w.name && o.seed == args.seed)
                .collect();
            out!("{}", table(w, &cols));
            outln!();
        }
        outln!(
            "{} runs, {} context switches in {:.1}s wall on {} threads (machine: {})",
            outs.len(),
            outs.iter().map(|o| o.switches).sum::<u64>(),
            wall,
            rayon_threads(),
            load_line()
        );
        for o in outs.iter().filter(|o| o.violation.is_some()) {
            let v = o.violation.as_ref().expect("filtered");
            outln!(
                "\n{} on {} (seed {}): VIOLATED {} at {:.3} ms: {}\n{}",
                o.design,
                o.workload,
                o.seed,
                v.property,
                v.time_ns as f64 / 1e6,
                v.message,
                v.trace
            );
        }
        if crate::stop::interrupted() {
            outln!("\ninterrupted by Ctrl-C: each run's figures cover the switches simulated until then");
        }
    }
    Ok(code)
}

/// Version of `mmcid sim --json` (2: an object with a version around the runs).
pub const FORMAT_VERSION: u32 = 2;

/// `mmcid sim --json` (schema: `docs/schema/sim.json`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SimReport {
    /// JSON format version.
    pub format_version: u32,
    /// One entry per design, workload and seed.
    pub runs: Vec<Outcome>,
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `uptime`'s load averages, for figures printed beside them.
pub fn load_line() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            format!(
                "load {}",
                s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            )
        })
        .unwrap_or_else(|_| "load unknown".into())
}

/// Splits a design name into header lines of at most `w` characters, after a `+` or `-` where
/// possible (`7.0+fix-affinity-switchback` in a 12-wide column: `7.0+fix-`, `affinity-`,
/// `switchback`).
fn header_lines(name: &str, w: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut rest: Vec<char> = name.chars().collect();
    while rest.len() > w {
        let cut = rest[..w]
            .iter()
            .rposition(|&c| c == '+' || c == '-')
            .map_or(w, |i| i + 1);
        lines.push(rest[..cut].iter().collect());
        rest.drain(..cut);
    }
    lines.push(rest.into_iter().collect());
    lines
}

fn table(w: &Workload, cols: &[&Outcome]) -> String {
    use std::fmt::Write;
    let mut rows: Vec<(&str, Vec<String>)> = Vec::new();
    let mut row = |name: &'static str, f: &dyn Fn(&Outcome) -> String| {
        rows.push((name, cols.iter().map(|o| f(o)).collect()));
    };
    row("invariants", &|o| {
        o.violation
            .as_ref()
            .map_or("ok".to_string(), |v| format!("VIOLATED {}", v.property))
    });
    row("context switches", &|o| o.switches.to_string());
    row("simulated ms", &|o| format!("{:.1}", o.sim_ms));
    row("ID range in use p50/p99/max", &|o| {
        format!("{}/{}/{}", o.id_range.p50, o.id_range.p99, o.id_range.max)
    });
    row("  above running tasks p50/p99/max", &|o| {
        format!("{}/{}/{}", o.id_excess.p50, o.id_excess.p99, o.id_excess.max)
    });
    row("high-ID episodes (n, p99 µs)", &|o| {
        format!("{} {}", o.high_id_us.count, o.high_id_us.p99)
    });
    row("bitmap atomics / switch", &|o| {
        format!("{:.3}", o.per_switch.bit_ops)
    });
    row("slot writes / switch", &|o| {
        format!("{:.3}", o.per_switch.slot_writes)
    });
    row("CID lock acquisitions / switch", &|o| {
        format!("{:.3}", o.per_switch.locks)
    });
    row("  lock wait p99/max ns", &|o| {
        format!("{}/{}", o.lock_wait_ns.p99, o.lock_wait_ns.max)
    });
    row("shared-line writes / switch", &|o| {
        format!("{:.3}", o.per_switch.shared_writes)
    });
    row("mode switches", &|o| o.mode_switches.to_string());
    row("fix-up walks (n, max visits)", &|o| {
        format!("{} {}", o.walk_len.count, o.walk_len.max)
    });
    row("  mutex hold max µs", &|o| {
        format!("{:.1}", o.walk_hold_ns.max as f64 / 1e3)
    });
    row("get_cid spin laps", &|o| o.spin_laps.to_string());
    row("  longest spin, rq lock held µs", &|o| {
        format!("{:.1}", o.spin_ns.max as f64 / 1e3)
    });
    row("deferred work queued", &|o| o.deferred_work.to_string());
    row("compaction scans (n, CPUs each)", &|o| {
        format!("{} {:.0}", o.scans, o.scan_visits_per_scan)
    });
    row("  reclaimed CIDs (n, age p50 ms)", &|o| {
        format!(
            "{} {:.0}",
            o.reclaim_age_us.count,
            o.reclaim_age_us.p50 as f64 / 1e3
        )
    });
    row("forks/spawns/execs/exits", &|o| {
        format!(
            "{}/{}/{}/{}",
            o.ops.forks,
            o.ops.spawns,
            o.ops.execs_ok + o.ops.execs_failed,
            o.ops.exits
        )
    });
    row("migrations", &|o| o.ops.migrations.to_string());
    row("checks cheap/full", &|o| format!("{}/{}", o.checks.0, o.checks.1));
    row("simulated switches/s (wall)", &|o| {
        format!("{:.2}M", o.switches_per_s / 1e6)
    });
    // each column as wide as its widest figure (at least 10), names wrapped to fit
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.1[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(10)
                + 2
        })
        .collect();
    let heads: Vec<Vec<String>> = cols
        .iter()
        .zip(&widths)
        .map(|(o, w)| header_lines(&o.design, w - 2))
        .collect();
    let depth = heads.iter().map(Vec::len).max().unwrap_or(1);
    let mut out = String::new();
    let cpus = cols.first().map_or(0, |o| o.cpus);
    let _ = writeln!(out, "workload {} at {cpus} CPUs: {}", w.name, w.description);
    for line in 0..depth {
        let _ = write!(out, "{:<34}", "");
        for (h, w) in heads.iter().zip(&widths) {
            // bottom-aligned: short names sit on the last header line
            let k = (line + h.len()).checked_sub(depth);
            let _ = write!(out, "{:>w$}", k.map_or("", |k| h[k].as_str()));
        }
        out.push('\n');
    }
    for (name, cells) in &rows {
        let _ = write!(out, "{name:<34}");
        for (c, w) in cells.iter().zip(&widths) {
            let _ = write!(out, "{c:>w$}");
        }
        out.push('\n');
    }
    out
}

fn print_bench(outs: &[Outcome], json: bool) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    if json {
        let doc = SimBench {
            format_version: BENCH_FORMAT_VERSION,
            cpu_model: cpu,
            loadavg: mmcid_rseq::loadavg(),
            runs: outs
                .iter()
                .map(|o| SimBenchRun {
                    design: o.design.clone(),
                    workload: o.workload.clone(),
                    cpus: o.cpus,
                    switches: o.switches,
                    wall_s: o.wall_s,
                    switches_per_s: o.switches_per_s,
                    bytes_per_task: o.bytes_per_task,
                    bytes_per_mm: o.bytes_per_mm,
                    peak_tasks: o.peak_tasks,
                    violation: o.violation.as_ref().map(|v| v.property.clone()),
                })
                .collect(),
        };
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    outln!(
        "mmcid sim --bench: thread-pool workload, one core per run ({cpu}; {})",
        load_line()
    );
    outln!(
        "{:<28}{:>12}{:>10}{:>16}{:>12}{:>12}",
        "design",
        "switches",
        "wall s",
        "switches/s",
        "B/task",
        "B/mm"
    );
    for o in outs {
        outln!(
            "{:<28}{:>12}{:>10.2}{:>15.2}M{:>12}{:>12}",
            o.design,
            o.switches,
            o.wall_s,
            o.switches_per_s / 1e6,
            o.bytes_per_task,
            o.bytes_per_mm
        );
    }
}

/// Version of `mmcid sim --bench --json` (1: the first with a schema,
/// `docs/schema/sim-bench.json`, and a `format_version`; the load is numbers, `loadavg`).
pub const BENCH_FORMAT_VERSION: u32 = 1;

/// The `--json` output of `mmcid sim --bench`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SimBench {
    /// JSON format version.
    pub format_version: u32,
    /// The CPU model (`/proc/cpuinfo`; empty if unknown).
    pub cpu_model: String,
    /// `/proc/loadavg`'s 1, 5 and 15 minute load averages after the runs (empty if unreadable).
    pub loadavg: Vec<f64>,
    /// One run per design.
    pub runs: Vec<SimBenchRun>,
}

/// One design's run of `mmcid sim --bench`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SimBenchRun {
    /// Design.
    pub design: String,
    /// Workload name.
    pub workload: String,
    /// Simulated CPUs.
    pub cpus: u32,
    /// Context switches simulated.
    pub switches: u64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Simulated switches per wall-clock second.
    pub switches_per_s: f64,
    /// Bytes of simulator state per task.
    pub bytes_per_task: usize,
    /// Bytes of simulator state per mm.
    pub bytes_per_mm: usize,
    /// Most tasks alive at once.
    pub peak_tasks: u32,
    /// The property the run violated, if any.
    pub violation: Option<String>,
}
