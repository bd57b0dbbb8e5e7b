//! `mmcid replay FILE`: run a scenario and print its CPU-column trace.

use mmcid_kmodel::replay::{ReplayEnd, replay};

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
                outln!("{}", serde_json::to_string_pretty(&o).expect("serialisable"));
            } else {
                out!("{}", crate::render::text::replay_report(&o, !a.no_state));
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
