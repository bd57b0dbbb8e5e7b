//! The `mmcid` command line: argument parsing ([`Cli`]), one module per command, and the text
//! rendering of the model's typed results (`render`; `--json` prints those results as they are,
//! described by [`schema`]). The binary (`src/main.rs`) only calls [`run`]; the library form lets tests and
//! the fuzz targets (`crates/cli/fuzz`) reach the argument layer without starting a process.

/// `print!` for a command's output: when standard output is a closed pipe (`mmcid ... | head`)
/// the process ends quietly with status 141 (128 + SIGPIPE, what a shell reports for a command
/// the signal ended) instead of panicking as `print!` does; any other write error is one line
/// on standard error and status 2.
macro_rules! out {
    ($($t:tt)*) => {
        $crate::write_out(format_args!($($t)*))
    };
}

/// `println!` for a command's output (see [`out!`]).
macro_rules! outln {
    () => {
        $crate::write_out(format_args!("\n"))
    };
    ($($t:tt)*) => {
        $crate::write_out(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// Writes to standard output for [`out!`] and [`outln!`].
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("mmcid: cannot write to standard output: {e}");
        std::process::exit(exit::USAGE);
    }
}

mod bench_percid;
mod bounds;
mod check;
mod designs;
mod dist;
pub mod exit;
mod hunt;
mod matrix;
mod observe;
mod oracle;
mod progress;
mod render;
mod replay;
pub mod schema;
mod sim;
mod sim_kernel;
pub mod stop;

use clap::{CommandFactory, Parser, Subcommand};

/// mmcid: the Linux kernel's MM CID (rseq mm_cid) allocator, modelled step by step and checked
/// over every interleaving within bounds.
///
/// Exit status: 0 no violation, 1 violation found, 2 usage or input error, 3 no violation but the
/// search was cut (nothing can be claimed to hold).
#[derive(Parser, Debug)]
#[command(name = "mmcid", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Check every interleaving within bounds (default: 7.0 at a bound that finishes in seconds).
    ///
    /// Prints one line per property (HOLDS / VIOLATED / REACHED / NOT REACHED / UNKNOWN), a summary,
    /// then each violation as a CPU-column trace (shortest first) with the CID state at the
    /// violating point and what went wrong. Exit status: 0 no violation, 1 violation found, 2 usage
    /// or input error, 3 no violation but the search was cut.
    Check(check::Args),
    /// Replay a scenario file as a CPU-column trace.
    ///
    /// A scenario is `design NAME`, `cpus N`, `threads N`, optional `allowed N` and
    /// `budget forks=N vforks=N fork_fails=N exits=N execs=N exec_fails=N exec_checks=N affinity=N compactions=N`,
    /// then one step per line, `<actor> <kernel function> [<argument>]` as traces print them
    /// (`CPU1 schedule T3`, `T0 sched_mm_cid_fork T2`), or `T<n> until <function> [<argument>]`
    /// to run a task's own steps up to that function; `#` starts a comment. `mmcid check
    /// --save-trace FILE` writes one. Exit status: 0 nothing fired and nothing is stuck, 1 an
    /// invariant fired or a CPU is left spinning, 2 bad input (the message names the line).
    Replay(replay::Args),
    /// List the designs.
    Designs(designs::Args),
    /// Check every design over a grid of small configurations.
    Matrix(matrix::Args),
    /// Check on timely-dataflow workers: threads, processes or hosts (invariants, reachability).
    ///
    /// The same exploration as `mmcid check --liveness off`, with the states partitioned by
    /// fingerprint over timely workers; timely's arguments follow `--` (`-w 2`, `-n 2 -p 0`,
    /// `-h hosts.txt`). Same report and exit status as `mmcid check`.
    Dist(dist::Args),
    /// Look for a design's bugs over many configurations (exhaustive where it fits, swarm beyond).
    Hunt(hunt::Args),
    /// Our engine against stateright's on the same configuration: states/s, ratio, bytes/state.
    Bench(oracle::BenchArgs),
    /// Step through the state space by hand in stateright's web Explorer (127.0.0.1).
    Explore(oracle::ExploreArgs),
    /// Observe the running kernel's mm_cid through rseq.
    Observe(observe::Args),
    /// Benchmark PerCidCounter against other per-thread/per-CPU counters.
    BenchPercid(bench_percid::Args),
    /// Simulate every design under real workloads at machine scale, side by side.
    ///
    /// A seeded discrete-event kernel drives the checker's own CID functions on up to 4096 CPUs;
    /// one table column per design (ID compactness, cost per switch, walks, spins, compaction),
    /// invariants checked as it runs. Default: every design, workload `mixed`, 64 CPUs, 10^6
    /// switches each. Exit status: 0 no violation, 1 a violation in some run, 2 usage or input error.
    Sim(sim::Args),
    /// Print the JSON Schema of a command's --json output (or write them all with --out).
    Schema(schema::Args),
}

/// Runs the command line `args` (program name first) and returns the exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, subcommand(&args)),
    };
    match &cli.cmd {
        Cmd::Check(a) => check::run(a),
        Cmd::Replay(a) => replay::run(a),
        Cmd::Designs(a) => designs::run(a),
        Cmd::Matrix(a) => matrix::run(a),
        Cmd::Dist(a) => dist::run(a),
        Cmd::Hunt(a) => hunt::run(a),
        Cmd::Bench(a) => oracle::bench(a),
        Cmd::Explore(a) => oracle::explore(a),
        Cmd::Observe(a) => observe::run(a),
        Cmd::BenchPercid(a) => bench_percid::run(a),
        Cmd::Sim(a) => sim::run(a),
        Cmd::Schema(a) => schema::run(a),
    }
}

/// The argument layer alone: parses `args` (program name first) and checks every value the
/// commands check before they start work, without running anything. `Err` is the one-line
/// message the command would print (exit status 2); `--help` and `--version` are `Ok`. The fuzz
/// targets and the argument property tests call it: it must never panic.
pub fn validate<I, T>(args: I) -> Result<(), String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::error::ErrorKind;
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => return Ok(()),
        Err(e) => return Err(one_line(&e.render().to_string(), subcommand(&args))),
    };
    let design = |d: &str| mmcid_kmodel::config::design(d).map(|_| ());
    let checked = match &cli.cmd {
        Cmd::Check(a) => a.bounds.config().validate().map(|_| ()),
        Cmd::Bench(a) => a.bounds.config().validate().map(|_| ()),
        Cmd::Dist(a) => a.bounds.config().validate().map(|_| ()),
        Cmd::Explore(a) => a.bounds.config().validate().map(|_| ()),
        Cmd::Hunt(a) => design(&a.design),
        Cmd::Matrix(a) => a.designs.iter().try_for_each(|d| design(d)),
        Cmd::Sim(a) => a.design.iter().try_for_each(|d| design(d)),
        Cmd::Replay(_) | Cmd::Designs(_) | Cmd::Observe(_) | Cmd::BenchPercid(_) | Cmd::Schema(_) => Ok(()),
    };
    checked.map_err(|e| format!("mmcid {}: {e}", subcommand(&args).unwrap_or("")))
}

/// Prints a command-line error as one line naming the flag (help and version as clap prints
/// them) and returns the exit status.
fn usage_error(e: clap::Error, sub: Option<&str>) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                exit::USAGE
            } else {
                exit::OK
            }
        }
        _ => {
            eprintln!("{}", one_line(&e.render().to_string(), sub));
            exit::USAGE
        }
    }
}

/// Clap's error text on one line: what is wrong (and clap's tip, if any), with a pointer to
/// `--help`.
fn one_line(text: &str, sub: Option<&str>) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let what = parts.join(" ").replacen("error: ", "", 1).replace(" tip: ", "; ");
    let help = match sub {
        Some(cmd) => format!("mmcid {cmd} --help"),
        None => "mmcid --help".to_string(),
    };
    format!("mmcid: {what} (see {help})")
}

/// The subcommand named in `args` (program name first), if it is one.
fn subcommand(args: &[std::ffi::OsString]) -> Option<&str> {
    args.get(1)
        .and_then(|a| a.to_str())
        .filter(|a| Cli::command().find_subcommand(a).is_some())
}
