//! `mmcid`: the Linux MM CID system as an executable, checkable model. The commands only parse
//! arguments and render; the logic lives in the library crates.

mod bench_percid;
mod check;
mod designs;
mod dist;
mod exit;
mod hunt;
mod matrix;
mod observe;
mod oracle;
mod progress;
mod replay;
mod sim;
mod sim_kernel;

use clap::{Parser, Subcommand};

/// mmcid: the Linux kernel's MM CID (rseq mm_cid) allocator, modelled step by step and checked
/// over every interleaving within bounds.
///
/// Exit status: 0 no violation, 1 violation found, 2 usage or input error, 3 no violation but the
/// search was cut (nothing can be claimed to hold).
#[derive(Parser, Debug)]
#[command(name = "mmcid", version, about, long_about)]
struct Cli {
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
}

fn main() {
    let cli = Cli::parse();
    let code = match &cli.cmd {
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
    };
    std::process::exit(code);
}
