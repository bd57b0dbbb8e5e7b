//! `mmcid replay FILE`: run a scenario and print its CPU-column trace.

use std::fmt::Write as _;

use mmcid_kmodel::replay::{ReplayEnd, ReplayOutcome, replay};
use mmcid_kmodel::trace;

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
            if !o.violations.is_empty() || o.outcome != ReplayEnd::Completed {
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

fn human(o: &ReplayOutcome, with_state: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mmcid replay | design {} | {} CPUs | {} threads",
        o.design, o.config.cpus, o.config.threads
    );
    s.push_str(&trace::render_columns_for(&o.config, &o.steps, None, with_state).unwrap_or_default());
    let _ = writeln!(s, "\nat the end (step {}):", o.steps.len());
    s.push_str(&o.state);
    for b in &o.bits {
        let _ = writeln!(s, "  {}", trace::bit_owners_words(b, o.snapshot.family));
    }
    for v in &o.violations {
        let _ = writeln!(
            s,
            "VIOLATED {} ({}) first after step {}",
            v.property, v.description, v.step
        );
    }
    match (o.outcome, &o.stalled) {
        (ReplayEnd::Completed, _) => {
            let _ = writeln!(s, "outcome: completed, no CPU spinning");
        }
        (ReplayEnd::Stall, Some(c)) => {
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
