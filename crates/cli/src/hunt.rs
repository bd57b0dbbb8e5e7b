//! `mmcid hunt`: look for the bugs of a design over many configurations.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mmcid_engine::Flow;
use mmcid_kmodel::hunt::{self, HuntOptions, HuntReport};

use crate::exit;

/// Look for bugs without knowing where they live: sweep configurations from the smallest up over
/// every knob (CPUs, allowed CPUs, threads, forks, vforks, failing forks, exits, execs, failing
/// execs, affinity changes, 6.18's compactions), checking each breadth first where it fits and
/// with swarms of random walks beyond (up to 8 CPUs and a dozen threads); merge what is found into
/// distinct findings by a root-cause signature (property, the kernel function at the violating
/// step, the operations the trace needs) and print each once, with its smallest configuration,
/// its shortest trace and the `mmcid check` command that reproduces it.
///
/// The run is deterministic given `--seed`; the budget decides where it stops. Exit status: 0
/// nothing found, 1 findings, 2 usage error.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Design to hunt in (`mmcid designs` lists them).
    #[arg(long, default_value = "7.0")]
    pub design: String,
    /// Wall-clock budget: `90s`, `10m`, `1h` (1 second to 24 hours).
    #[arg(long, default_value = "90s", value_parser = parse_budget)]
    pub budget: Duration,
    /// Seed of the random configurations and walks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Cap on the distinct states of one breadth-first check (a configuration that does not fit is
    /// checked to the depth the cap allows, and larger ones go to the swarm).
    #[arg(long, default_value_t = 250_000)]
    pub max_states: u64,
    /// Stop after this many configurations (then the run is the same on any machine, as long as
    /// the budget does not cut it first). At least 1: a hunt that tries nothing finds nothing.
    #[arg(long, value_parser = at_least_one_config)]
    pub max_configs: Option<u64>,
    /// Write each finding's trace as a scenario file (`mmcid replay`) into this directory.
    #[arg(long, value_name = "DIR")]
    pub save_dir: Option<std::path::PathBuf>,
    /// Print the CID state after every trace step.
    #[arg(long)]
    pub states: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop each breadth-first check cleanly before the process would use more memory than this
    /// (`512M`, `4G`, `80%` of the memory available at start, `off`); it then counts as capped.
    #[arg(long, default_value = crate::stop::DEFAULT_MEMORY, value_parser = crate::stop::parse_memory)]
    pub max_memory: crate::stop::MemoryLimit,
}

/// Parses `--budget`: a duration with a unit, between one second and a day.
pub fn parse_budget(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}: expected a duration with a unit, such as 90s, 10m or 1h30m"))?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(24 * 3600) {
        return Err(format!(
            "{s} is out of range: the budget must be between 1s and 24h"
        ));
    }
    Ok(d)
}

/// Parses `--max-configs`: a count of at least 1.
fn at_least_one_config(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("a hunt that tries no configuration finds nothing: give at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

/// Runs `mmcid hunt`.
pub fn run(a: &Args) -> i32 {
    if let Err(e) = mmcid_kmodel::config::design(&a.design) {
        eprintln!("mmcid hunt: {e}");
        return exit::USAGE;
    }
    if a.max_states < 1000 {
        eprintln!(
            "mmcid hunt: --max-states must be at least 1000, got {}",
            a.max_states
        );
        return exit::USAGE;
    }
    if let Some(dir) = &a.save_dir
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("mmcid hunt: cannot create {}: {e}", dir.display());
        return exit::USAGE;
    }
    let opts = HuntOptions {
        seed: a.seed,
        max_states: a.max_states,
        max_configs: a.max_configs,
        cancel: Some(crate::stop::ctrl_c()),
        memory_limit: a.max_memory.bytes(),
        ..HuntOptions::new(&a.design, a.budget)
    };
    let bar = (!a.quiet && !a.json && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new_spinner();
        b.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("template"));
        b
    });
    let mut announced = 0;
    let result = hunt::run(&opts, &mut |p| {
        if let Some(b) = &bar {
            for s in &p.signatures[announced..] {
                b.println(format!("  found: {s}"));
            }
            b.set_message(format!(
                "[{:>5.0}s/{:.0}s] {} {} | {} configurations | {} findings",
                p.elapsed,
                p.budget,
                p.lane,
                hunt::space::short_name(p.config),
                p.configs_tried,
                p.signatures.len()
            ));
            b.tick();
        }
        announced = p.signatures.len();
        if crate::stop::interrupted() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mmcid hunt: {e}");
            return exit::USAGE;
        }
    };
    let mut saved = Vec::new();
    if let Some(dir) = &a.save_dir {
        for (i, f) in r.findings.iter().enumerate() {
            let path = dir.join(format!("{}-{}-{}.scenario", r.design, i + 1, f.property()));
            if let Err(e) = std::fs::write(&path, &f.scenario) {
                eprintln!("mmcid hunt: cannot write {}: {e}", path.display());
                return exit::USAGE;
            }
            saved.push(path.display().to_string());
        }
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r).expect("serialisable"));
    } else {
        out!("{}", human(&r, a.states, &saved));
    }
    if crate::stop::interrupted() {
        exit::INTERRUPTED
    } else if r.findings.is_empty() {
        exit::OK
    } else {
        exit::VIOLATION
    }
}

/// The summary, the table of findings, then each finding with its trace.
pub fn human(r: &HuntReport, with_states: bool, saved: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mmcid {} hunt | design {} | budget {}s | seed {}",
        env!("CARGO_PKG_VERSION"),
        r.design,
        r.budget_s,
        r.seed
    );
    let _ = writeln!(
        s,
        "tried {} configurations in {:.1}s: {} checked whole (largest {}), {} breadth first to the state cap, {} by swarm ({} walks, {} steps{}); ladder {} of {} ({} handed to the swarm as too large)",
        r.configs_tried,
        r.seconds,
        r.exhaustive_complete,
        r.largest_complete.as_deref().unwrap_or("-"),
        r.exhaustive_capped,
        r.swarm_configs,
        r.swarm_walks,
        r.swarm_steps,
        if r.swarm_stalls_undecided > 0 {
            format!(", {} spins undecided", r.swarm_stalls_undecided)
        } else {
            String::new()
        },
        r.ladder_done,
        r.ladder_size,
        r.dominated
    );
    if r.stop == "stopped" {
        let _ = writeln!(s, "interrupted by Ctrl-C: what was found until then follows");
    }
    if r.findings.is_empty() {
        let _ = writeln!(
            s,
            "\nno violation found within the budget (this is not a proof: see the counts above)"
        );
        return s;
    }
    let _ = writeln!(s, "\n{} distinct findings:", r.findings.len());
    let _ = writeln!(
        s,
        "{:>3}  {:<9} {:<14} {:>5}  {:<10} signature",
        "#", "property", "config", "depth", "found by"
    );
    for (i, f) in r.findings.iter().enumerate() {
        let _ = writeln!(
            s,
            "{:>3}  {:<9} {:<14} {:>5}  {:<10} {}",
            i + 1,
            f.property(),
            f.config_name,
            f.depth(),
            f.found_by,
            f.signature
        );
    }
    for (i, f) in r.findings.iter().enumerate() {
        let _ = writeln!(s, "\n=== finding {}: {}", i + 1, f.signature);
        let also = if f.configs > 1 {
            format!(
                " (met in {} configurations: {}{})",
                f.configs,
                f.found_in.join(", "),
                if f.configs as usize > f.found_in.len() {
                    ", ..."
                } else {
                    ""
                }
            )
        } else {
            String::new()
        };
        let _ = writeln!(s, "smallest configuration: {}{also}", f.config_name);
        if !f.variants.is_empty() {
            let _ = writeln!(
                s,
                "also reached with more operations than it needs: {}",
                f.variants.join(", ")
            );
        }
        if let Some(raw) = f.raw_depth {
            let _ = writeln!(
                s,
                "first met by the swarm: a walk of {raw} steps, shrunk to {}",
                f.depth()
            );
        }
        let _ = writeln!(s, "reproduce: {}", f.command);
        if !f.check_confirmed {
            let _ = writeln!(
                s,
                "  (that check may show another trace first; the trace below replays with --save-dir and mmcid replay)"
            );
        }
        if let Some(p) = saved.get(i) {
            let _ = writeln!(s, "replay: mmcid replay {p}");
        }
        s.push_str(&crate::render::text::violation_text(
            &f.config,
            &f.violation,
            with_states,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_budget("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_budget("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_budget("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "90", "ten minutes", "-5s"] {
            let e = parse_budget(bad).unwrap_err();
            assert!(e.contains("90s, 10m or 1h30m"), "{bad}: {e}");
        }
        assert!(parse_budget("0s").unwrap_err().contains("between 1s and 24h"));
        assert!(parse_budget("2days").unwrap_err().contains("between 1s and 24h"));
    }
}
