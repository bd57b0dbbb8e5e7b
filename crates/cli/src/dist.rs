//! `mmcid dist`: `mmcid check`'s exploration on timely-dataflow workers, across threads,
//! processes and hosts (crate `mmcid-dist`), for configurations that outgrow one machine.
//!
//! The report is `check`'s (same text, same JSON, same exit status), built from the distributed
//! run's counts and findings; what the distributed engine does not do (liveness, a state cap) is
//! refused rather than ignored.

use std::sync::Arc;

use mmcid_dist::{DistOptions, DistReport, check_from_args};
use mmcid_engine::{Memory, Report};
use mmcid_kmodel::checker::{self, CheckOptions, Liveness};
use mmcid_kmodel::family::{Family, ModelVisitor, with_model};
use mmcid_kmodel::model::KernelModel;
use mmcid_kmodel::ops::Step;

use crate::check::{Bounds, OnOff};
use crate::exit;

/// Check every interleaving within bounds on timely-dataflow workers: threads (`-- -w 2`),
/// processes (`-- -w 2 -n 2 -p 0` and `-p 1`, on 127.0.0.1:2101...) or hosts (`-- -n N -p P -h
/// hosts.txt`, one `host:port` line per process; start the same command on every host, varying
/// only `-p`). Every state belongs to one worker by its fingerprint; the counts and findings are
/// exactly `mmcid check --liveness off`'s. Invariants and reachability only: stalls and live
/// locks need the whole graph (run `mmcid check` for those). Exit status as `mmcid check`'s.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub bounds: Bounds,
    /// Turn off symmetry reduction: task renaming, and forgetting dead values (values no step
    /// reads before writing them again, such as the CPU a dead task last ran on).
    #[arg(long)]
    pub no_symmetry: bool,
    /// Partial-order reduction by silent steps (see `mmcid check --help`).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub reduction: OnOff,
    /// Do not expand states at this depth (the result is then marked incomplete).
    #[arg(long)]
    pub max_depth: Option<u32>,
    /// Print the result as JSON (`mmcid check --json`'s shape).
    #[arg(long)]
    pub json: bool,
    /// Print the CID state after every trace step.
    #[arg(long)]
    pub states: bool,
    /// timely's own arguments, after `--`: `-w` worker threads per process, `-n` processes, `-p`
    /// this process's index, `-h` a host file (`host:port` per process). Default: one process
    /// with one worker.
    #[arg(last = true, value_name = "TIMELY_ARGS")]
    pub timely: Vec<String>,
}

/// `mmcid dist --json` (schema: `docs/schema/dist.json`): `mmcid check --json`'s fields and the
/// distinct states each timely worker stored.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct DistJson<'a> {
    /// The check's report, as `mmcid check --json` prints it.
    #[serde(flatten)]
    pub check: &'a checker::CheckOutcome,
    /// Distinct states stored by each timely worker.
    pub states_per_worker: &'a [u64],
}

/// Runs `mmcid dist`.
pub fn run(a: &Args) -> i32 {
    let cfg = a.bounds.config();
    if let Err(e) = cfg.validate() {
        eprintln!("mmcid dist: {e}");
        return exit::USAGE;
    }
    struct Run<'a>(&'a Args);
    impl ModelVisitor for Run<'_> {
        type Out = i32;
        fn visit<F: Family>(self, model: KernelModel<F>) -> i32 {
            run_model(self.0, model)
        }
    }
    match with_model(&cfg, Run(a)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mmcid dist: {e}");
            exit::USAGE
        }
    }
}

fn run_model<F: Family>(a: &Args, model: KernelModel<F>) -> i32 {
    // Safety only (no liveness here), so CPU symmetry where it is sound, as `check` does.
    let model = model
        .with_reduction(a.reduction == OnOff::On)
        .with_cpu_symmetry(!a.no_symmetry);
    let opts = DistOptions {
        symmetry: !a.no_symmetry,
        max_depth: a.max_depth,
    };
    let shared = Arc::new(model.clone());
    let d = {
        // timely prints its connection progress ("awaiting connections") on stdout, which is the
        // report's (and `--json`'s): send it to stderr for the run.
        let _guard = StdoutToStderr::new();
        check_from_args(a.timely.iter().cloned(), shared, opts)
    };
    let d = match d {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "mmcid dist: {e} (timely's arguments after `--`: -w THREADS, -n PROCESSES, -p INDEX, -h HOSTFILE)"
            );
            return exit::USAGE;
        }
    };
    let per_worker = d.states_per_worker.clone();
    let workers = d.workers;
    let check_opts = CheckOptions {
        reduction: a.reduction == OnOff::On,
        symmetry: !a.no_symmetry,
        liveness: Liveness::Off,
        max_depth: a.max_depth,
        ..CheckOptions::default()
    };
    let out = checker::outcome(
        &model,
        &model.config,
        &check_opts,
        &engine_report(d, !a.no_symmetry),
    );
    if a.json {
        let j = DistJson {
            check: &out,
            states_per_worker: &per_worker,
        };
        outln!("{}", serde_json::to_string_pretty(&j).expect("serialisable"));
    } else {
        out!("{}", crate::render::text::check_report(&out, a.states, None));
        outln!(
            "distributed over {workers} timely workers; distinct states per worker: {}",
            per_worker
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !out.violations.is_empty() {
        exit::VIOLATION
    } else if !out.complete {
        exit::INCOMPLETE
    } else {
        exit::OK
    }
}

/// The distributed run as the single-process engine's report, so that `check`'s outcome and
/// renderers apply unchanged. Fields the distributed engine does not measure stay empty.
fn engine_report(d: DistReport<Step>, symmetry: bool) -> Report<Step> {
    let peak = mmcid_engine::chunked::rss().map(|r| r.peak);
    Report {
        unique_states: d.unique_states,
        transitions: d.transitions,
        max_depth: d.max_depth,
        seconds: d.seconds,
        complete: d.complete,
        cut: None,
        states_left_on_frontier: 0,
        symmetry,
        liveness_checked: false,
        stalls_undecided: 0,
        fingerprint_bits: 64,
        collision_probability: d.collision_probability,
        bytes_per_state: 0.0,
        // This process's peak (its share of the states, plus timely's buffers).
        peak_rss_bytes: peak,
        peak_rss_per_state: peak.map(|p| p as f64 / d.unique_states.max(1) as f64),
        workers: d.workers,
        memory: Memory::default(),
        unreached_sometimes: Vec::new(),
        findings: d.findings.into_iter().map(|f| f.finding).collect(),
    }
}

/// Points file descriptor 1 at stderr while it lives, then restores it.
struct StdoutToStderr {
    saved: libc::c_int,
}

impl StdoutToStderr {
    fn new() -> StdoutToStderr {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: dup and dup2 on the process's own standard descriptors; a failure leaves
        // stdout as it was (saved < 0 is then not restored).
        let saved = unsafe { libc::dup(1) };
        if saved >= 0 {
            unsafe { libc::dup2(2, 1) };
        }
        StdoutToStderr { saved }
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        if self.saved >= 0 {
            // SAFETY: `saved` is the descriptor dup'ed in `new`, owned by this guard.
            unsafe {
                libc::dup2(self.saved, 1);
                libc::close(self.saved);
            }
        }
    }
}
