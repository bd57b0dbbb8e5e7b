//! `mmcid replay FILE`: run a scenario and print its CPU-column trace.

use std::fmt::Write as _;

use mmcid_engine::Model;
use mmcid_kmodel::checker::continuation_stalls;
use mmcid_kmodel::invariants::PROPERTIES;
use mmcid_kmodel::scenario::{self, Scenario};
use mmcid_kmodel::{KernelModel, trace};
use serde::Serialize;

use crate::exit;

/// Replay a scenario file (the format is in the README; `mmcid check --save-trace` writes one):
/// print one column per CPU, time downwards, each step named after the kernel function it
/// performs, with the CID state after each step; then every invariant that fired (first step),
/// and, if a CPU is left spinning in get_cid, whether any continuation can release it.
/// Exit status: 0 nothing fired, 1 an invariant fired or a CPU is stuck, 2 bad input.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The scenario file.
    pub file: std::path::PathBuf,
    /// Run it under this design instead of the one named in the file.
    #[arg(long)]
    pub design: Option<String>,
    /// Print JSON instead of columns.
    #[arg(long)]
    pub json: bool,
    /// Omit the CID state line after each step.
    #[arg(long)]
    pub no_state: bool,
    /// States to explore when deciding whether a final spin is a stall.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_states: u64,
}

/// The result of a replay.
#[derive(Serialize)]
pub struct ReplayOutcome {
    /// Design.
    pub design: String,
    /// The configuration.
    pub config: mmcid_kmodel::Config,
    /// The steps as described.
    pub steps: Vec<trace::TraceStep>,
    /// Properties that fired: (property, first step).
    pub violations: Vec<Fired>,
    /// CPUs spinning in get_cid at the end.
    pub spinning: Vec<u16>,
    /// Of those, the ones no continuation releases (a stall); None if undecided.
    pub stalled: Option<Vec<u16>>,
    /// `completed` (nothing spinning), `stall`, `spinning` (releasable or undecided).
    pub outcome: &'static str,
    /// The CID state at the end.
    pub state: String,
    /// Who owns each set bit at the end.
    pub bits: Vec<String>,
}

/// A property that fired during the replay.
#[derive(Serialize)]
pub struct Fired {
    /// Property id.
    pub property: &'static str,
    /// Its sentence.
    pub description: &'static str,
    /// The first step after which it fired (0: the initial state).
    pub step: usize,
}

/// Runs `mmcid replay`.
pub fn run(a: &Args) -> i32 {
    let text = match std::fs::read_to_string(&a.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mmcid replay: cannot read {}: {e}", a.file.display());
            return exit::USAGE;
        }
    };
    match replay(&text, a.design.as_deref(), a.max_states) {
        Ok(o) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&o).expect("serialisable"));
            } else {
                print!("{}", human(&o, !a.no_state));
            }
            if o.violations.iter().any(|f| !f.property.starts_with('R')) || o.outcome != "completed" {
                exit::VIOLATION
            } else {
                exit::OK
            }
        }
        Err(e) => {
            eprintln!("mmcid replay: {}: {e}", a.file.display());
            exit::USAGE
        }
    }
}

/// Parses and replays a scenario text.
pub fn replay(text: &str, design: Option<&str>, max_states: u64) -> Result<ReplayOutcome, String> {
    let sc = Scenario::parse(text).map_err(|e| e.to_string())?;
    let cfg = sc.config(design);
    let model = KernelModel::new(cfg.clone())?;
    let (steps, last) =
        scenario::run(&model.params, model.initial_state(), &sc).map_err(|e| e.to_string())?;
    let described = trace::describe(&model.params, model.initial_state(), &steps);
    let mut violations: Vec<Fired> = Vec::new();
    let mut s = *model.initial_state();
    let mut fired = Vec::new();
    for i in 0..=steps.len() {
        if i > 0 {
            s = model.next_state(&s, &steps[i - 1]);
        }
        fired.clear();
        model.check(&s, &mut fired);
        for &p in &fired {
            let prop = &PROPERTIES[p];
            if prop.name.starts_with('R') {
                continue;
            }
            if !violations.iter().any(|v| v.property == prop.name) {
                violations.push(Fired {
                    property: prop.name,
                    description: prop.description,
                    step: i,
                });
            }
        }
    }
    let mut spinning = Vec::new();
    model.spinning(&last, &mut spinning);
    let (stalled, outcome) = if spinning.is_empty() {
        (Some(vec![]), "completed")
    } else {
        match continuation_stalls(&cfg, &last, max_states) {
            Ok(st) if !st.is_empty() => (Some(st), "stall"),
            Ok(st) => (Some(st), "spinning"),
            Err(_) => (None, "spinning"),
        }
    };
    Ok(ReplayOutcome {
        design: cfg.design.clone(),
        config: cfg,
        steps: described,
        violations,
        spinning,
        stalled,
        outcome,
        state: trace::state_report(&last),
        bits: (0..last.mms.len())
            .flat_map(|m| trace::bit_owners(&last, m as u8))
            .collect(),
    })
}

fn human(o: &ReplayOutcome, with_state: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mmcid replay | design {} | {} CPUs | {} threads",
        o.design, o.config.cpus, o.config.threads
    );
    let model = KernelModel::new(o.config.clone()).expect("replayed");
    s.push_str(&trace::render_columns(
        o.config.cpus,
        model.initial_state(),
        &o.steps,
        None,
        with_state,
    ));
    let _ = writeln!(s, "\nat the end (step {}):", o.steps.len());
    s.push_str(&o.state);
    for b in &o.bits {
        let _ = writeln!(s, "  {b}");
    }
    for v in &o.violations {
        let _ = writeln!(
            s,
            "VIOLATED {} ({}) first after step {}",
            v.property, v.description, v.step
        );
    }
    match (o.outcome, &o.stalled) {
        ("completed", _) => {
            let _ = writeln!(s, "outcome: completed, no CPU spinning");
        }
        ("stall", Some(c)) => {
            let cpus: Vec<String> = c.iter().map(|c| format!("CPU{c}")).collect();
            let _ = writeln!(
                s,
                "outcome: STALL: {} spin(s) in get_cid and no continuation within the budgets releases it",
                cpus.join(", ")
            );
        }
        (_, Some(_)) => {
            let _ = writeln!(
                s,
                "outcome: a CPU spins in get_cid, but some continuation releases it"
            );
        }
        (_, None) => {
            let _ = writeln!(
                s,
                "outcome: a CPU spins in get_cid; whether it can be released was not decided (raise --max-states)"
            );
        }
    }
    s
}
