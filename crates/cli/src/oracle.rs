//! `--engine stateright`, `mmcid explore` and `mmcid bench`: the independent oracle.

use std::fmt::Write as _;

use mmcid_engine::{NoObserver, Options};
use mmcid_kmodel::checker::ViolationKind;
use mmcid_kmodel::invariants::Property;
use mmcid_kmodel::{Config, Family, KernelModel, ModelVisitor, with_model};
use mmcid_oracle::{OracleRun, Presentation, serve_explorer_with, stateright_bfs};
use serde::Serialize;

use crate::bounds::{Bounds, args_line};
use crate::exit;

/// The result of `mmcid check --engine stateright` (its `--json` output; schema:
/// `docs/schema/check-stateright.json`): no traces, since stateright's are not shortest.
#[derive(Serialize, schemars::JsonSchema)]
pub struct StaterightCheck {
    /// JSON format version (the same as `check`'s).
    pub format_version: u32,
    /// Always `stateright`.
    pub engine: &'static str,
    /// Design name.
    pub design: String,
    /// The configuration.
    pub config: Config,
    /// Distinct states (no symmetry reduction).
    pub unique_states: u64,
    /// States generated.
    pub states: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The invariants violated.
    pub violations: Vec<StaterightViolation>,
}

/// An invariant stateright found violated.
#[derive(Serialize, schemars::JsonSchema)]
pub struct StaterightViolation {
    /// The property.
    pub property: Property,
    /// Always `invariant` (stateright does not look for stalls here).
    pub kind: ViolationKind,
}

/// Checks `cfg` with stateright's BFS: unique states and which properties fired (no symmetry, no
/// stall detection, traces not shortest).
pub fn check(cfg: &Config, json: bool) -> i32 {
    struct Bfs;
    impl ModelVisitor for Bfs {
        type Out = OracleRun;
        fn visit<F: Family>(self, model: KernelModel<F>) -> OracleRun {
            stateright_bfs(model, 2)
        }
    }
    let r = match with_model(cfg, Bfs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mmcid check: {e}");
            return exit::USAGE;
        }
    };
    let violated: Vec<&str> = r
        .discoveries
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| Property::from_id(n).is_some_and(Property::is_invariant))
        .collect();
    if json {
        let v = StaterightCheck {
            format_version: mmcid_kmodel::checker::FORMAT_VERSION,
            engine: "stateright",
            design: cfg.design.clone(),
            config: cfg.clone(),
            unique_states: r.unique_states,
            states: r.states,
            seconds: r.seconds,
            violations: violated
                .iter()
                .filter_map(|p| Property::from_id(p))
                .map(|property| StaterightViolation {
                    property,
                    kind: ViolationKind::Invariant,
                })
                .collect(),
        };
        outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        outln!("mmcid (stateright engine) | {}", args_line(cfg));
        for p in &violated {
            outln!("    VIOLATED {p}");
        }
        outln!(
            "     Summary {} unique states, {} generated, {:.2}s (no symmetry; stalls are not checked by this engine)",
            r.unique_states,
            r.states,
            r.seconds
        );
    }
    if violated.is_empty() {
        exit::OK
    } else {
        exit::VIOLATION
    }
}

/// Serve stateright's web Explorer over the kernel model on 127.0.0.1, to step through the
/// state space by hand (each step named after its kernel function, with the CID state). Blocks
/// until interrupted.
#[derive(clap::Args, Debug)]
pub struct ExploreArgs {
    #[command(flatten)]
    pub bounds: Bounds,
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

/// A step in the Explorer: its kernel name, what it changed, and the CID state after it (the
/// state report of `check`).
fn explorer_step<F: Family>(
    model: &KernelModel<F>,
    state: &mmcid_kmodel::state::State<F>,
    step: &mmcid_kmodel::ops::Step,
) -> String {
    use mmcid_engine::Model as _;
    let mut out = model.format_step(state, step);
    out.push('\n');
    let next = model.next_state(state, step);
    out.push_str(&crate::render::state::state_report(
        &mmcid_kmodel::trace::snapshot(&next),
    ));
    out
}

/// Runs `mmcid explore`.
pub fn explore(a: &ExploreArgs) -> i32 {
    struct Serve(String);
    impl ModelVisitor for Serve {
        type Out = String;
        fn visit<F: Family>(self, model: KernelModel<F>) -> String {
            eprintln!(
                "mmcid explore: serving the Explorer on http://{}/ (Ctrl-C to stop)",
                self.0
            );
            let Err(e) = serve_explorer_with(model, &self.0, Some(explorer_step::<F>));
            e.to_string()
        }
    }
    let addr = format!("127.0.0.1:{}", a.port);
    match with_model(&a.bounds.config(), Serve(addr)) {
        Ok(e) | Err(e) => eprintln!("mmcid explore: {e}"),
    }
    exit::USAGE
}

/// Run our engine and stateright's BFS on the same configuration (symmetry off, liveness off, so
/// both explore the same states) and print unique states/s for each, their ratio, and bytes per
/// stored state. Also runs ours with symmetry and stall detection, for reference.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub bounds: Bounds,
    /// Worker threads for stateright, at least 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub stateright_threads: u16,
    /// Worker threads for ours, besides the single-worker run (default: all cores), at least 1.
    #[arg(long, default_value_t = mmcid_engine::all_cores(), value_parser = crate::bounds::workers)]
    pub workers: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Version of `mmcid bench --json` (1: the first with a version and a schema).
pub const BENCH_FORMAT_VERSION: u32 = 1;

/// One engine's figures.
#[derive(Serialize, schemars::JsonSchema)]
pub struct EngineFigures {
    /// Distinct states.
    pub unique_states: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Unique states per second.
    pub states_per_s: f64,
    /// Bytes per stored state (ours: Seen + Parents; stateright: not reported).
    pub bytes_per_state: Option<f64>,
    /// Peak resident memory of the process during the run / unique states (ours only).
    pub peak_rss_per_state: Option<f64>,
}

/// The result of `mmcid bench` (its `--json` output; schema: `docs/schema/bench.json`).
#[derive(Serialize, schemars::JsonSchema)]
pub struct Bench {
    /// JSON format version.
    pub format_version: u32,
    /// The configuration.
    pub config: Config,
    /// `size_of` the design family's in-memory state (what each successor copies; the engine
    /// stores states encoded, see `bytes_per_state`).
    pub state_bytes: usize,
    /// Our engine, symmetry and liveness off, one worker.
    pub ours: EngineFigures,
    /// The same with `--workers` workers (absent when that is 1).
    pub ours_workers: Option<EngineFigures>,
    /// Worker threads of `ours_workers`.
    pub workers: usize,
    /// stateright's BFS.
    pub stateright: EngineFigures,
    /// ours states/s divided by stateright's.
    pub ratio: f64,
    /// Our engine with every technique on, as `check --liveness stalls` runs by default: reduction
    /// by silent steps, symmetry, on-the-fly stall detection, `workers` workers. Fewer states (each
    /// stands for a class), so compare its time, not its states/s.
    pub ours_reduced: EngineFigures,
    /// stateright's seconds divided by `ours_reduced`'s: how much sooner a user gets the complete
    /// verdict with every technique on.
    pub verdict_ratio: f64,
}

/// Runs `mmcid bench`.
pub fn bench(a: &BenchArgs) -> i32 {
    struct Run<'a>(&'a BenchArgs);
    impl ModelVisitor for Run<'_> {
        type Out = i32;
        fn visit<F: Family>(self, model: KernelModel<F>) -> i32 {
            bench_model(self.0, model)
        }
    }
    match with_model(&a.bounds.config(), Run(a)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mmcid bench: {e}");
            exit::USAGE
        }
    }
}

fn bench_model<F: Family>(a: &BenchArgs, model: KernelModel<F>) -> i32 {
    let cfg = model.config.clone();
    let run = |m: &KernelModel<F>, opts: &Options| {
        let r = mmcid_engine::check(m, opts, &mut NoObserver).expect("engine");
        EngineFigures {
            unique_states: r.unique_states,
            seconds: r.seconds,
            states_per_s: r.unique_states as f64 / r.seconds.max(1e-9),
            bytes_per_state: Some(r.bytes_per_state),
            peak_rss_per_state: r.peak_rss_per_state,
        }
    };
    let run_ours = |opts: &Options| run(&model, opts);
    if a.workers == 0 {
        eprintln!("mmcid bench: --workers must be at least 1");
        return exit::USAGE;
    }
    let ours = run_ours(&Options {
        workers: 1,
        ..Options::default()
    });
    let ours_workers = (a.workers > 1).then(|| {
        run_ours(&Options {
            workers: a.workers,
            ..Options::default()
        })
    });
    let ours_reduced = run(
        &model.clone().with_reduction(true).with_cpu_symmetry(true),
        &Options {
            symmetry: true,
            stall_search: Some(mmcid_kmodel::checker::STALL_SEARCH_LIMIT),
            workers: a.workers,
            ..Options::default()
        },
    );
    let sr = stateright_bfs(model.clone(), a.stateright_threads as usize);
    let stateright = EngineFigures {
        unique_states: sr.unique_states,
        seconds: sr.seconds,
        states_per_s: sr.unique_states as f64 / sr.seconds.max(1e-9),
        bytes_per_state: None,
        peak_rss_per_state: None,
    };
    if ours.unique_states != stateright.unique_states {
        eprintln!(
            "mmcid bench: the engines disagree: ours {} unique states, stateright {}",
            ours.unique_states, stateright.unique_states
        );
        return exit::VIOLATION;
    }
    let b = Bench {
        format_version: BENCH_FORMAT_VERSION,
        ratio: ours.states_per_s / stateright.states_per_s,
        verdict_ratio: stateright.seconds / ours_reduced.seconds.max(1e-9),
        config: cfg,
        state_bytes: std::mem::size_of::<mmcid_kmodel::state::State<F>>(),
        ours,
        ours_workers,
        workers: a.workers,
        stateright,
        ours_reduced,
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&b).expect("json"));
    } else {
        let mut s = String::new();
        let _ = writeln!(s, "mmcid bench | {}", args_line(&b.config));
        let _ = writeln!(s, "in-memory state: {} bytes", b.state_bytes);
        let _ = writeln!(
            s,
            "{:<52} {:>12} {:>9} {:>14} {:>14} {:>14}",
            "engine", "unique", "seconds", "states/s", "stored B/state", "peak RSS B/st"
        );
        let with_workers = format!("ours (BFS, no symmetry, {} workers)", b.workers);
        let reduced = format!(
            "ours (all on: reduction, symmetry, stalls, {} workers)",
            b.workers
        );
        let sr = format!("stateright (BFS, {} thread(s))", a.stateright_threads);
        let mut rows = vec![("ours (BFS, no symmetry, 1 worker)", &b.ours)];
        if let Some(f) = &b.ours_workers {
            rows.push((&with_workers, f));
        }
        rows.extend([(&*sr, &b.stateright), (&*reduced, &b.ours_reduced)]);
        for (name, f) in rows {
            let _ = writeln!(
                s,
                "{name:<52} {:>12} {:>9.2} {:>14.0} {:>14} {:>14}",
                f.unique_states,
                f.seconds,
                f.states_per_s,
                f.bytes_per_state.map_or("-".into(), |x| format!("{x:.1}")),
                f.peak_rss_per_state.map_or("-".into(), |x| format!("{x:.1}"))
            );
        }
        let _ = writeln!(
            s,
            "ratio ours/stateright: {:.1}x with 1 worker{} (same states)",
            b.ratio,
            b.ours_workers.as_ref().map_or(String::new(), |f| format!(
                ", {:.1}x with {} ({:.2}x over 1 worker)",
                f.states_per_s / b.stateright.states_per_s,
                b.workers,
                f.states_per_s / b.ours.states_per_s
            ))
        );
        let _ = writeln!(
            s,
            "time to the complete verdict, stateright / ours with everything on: {:.1}x",
            b.verdict_ratio
        );
        out!("{s}");
    }
    exit::OK
}
