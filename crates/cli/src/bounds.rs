//! The model's bounds and the small value types the commands share (`check`, `bench`,
//! `explore`, `matrix`): their own module, so that `check` and the stateright oracle each depend
//! on it rather than on each other.

use mmcid_kmodel::{Budgets, Config};

/// The model's bounds, shared by `check`, `bench` and `explore`.
#[derive(clap::Args, Debug, Clone)]
pub struct Bounds {
    /// Design to check (`mmcid designs` lists them).
    #[arg(long, default_value = "7.0")]
    pub design: String,
    /// Possible CPUs (num_possible_cpus), 1-8.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub cpus: u8,
    /// Threads of the process at the start (created by the model's own fork steps), 1-8.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub threads: u8,
    /// CPUs the process may use at the start (the first N); default: all.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub allowed: Option<u8>,
    /// pthread_create budget (clone with CLONE_VM|CLONE_THREAD).
    #[arg(long, default_value_t = 1, value_parser = budget)]
    pub forks: u8,
    /// vfork budget (CLONE_VM child in a new thread group).
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub vforks: u8,
    /// How many forks may fail after copy_mm.
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub fork_fails: u8,
    /// exit budget.
    #[arg(long, default_value_t = 2, value_parser = budget)]
    pub exits: u8,
    /// Successful execve budget.
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub execs: u8,
    /// Failing execve budget (fails before the point of no return: ENOEXEC, LSM denial).
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub exec_fails: u8,
    /// execveat(..., AT_EXECVE_CHECK) budget: the same exec window as a failing execve
    /// (before_execve, then after_execve on the old mm), returning 0.
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub exec_checks: u8,
    /// sched_setaffinity budget (each grows a task's mask by one CPU; needs --allowed).
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub affinity: u8,
    /// Design 6.18 only: runs of the compaction scan (task_work mm_cid_work), each remote-clearing
    /// at most one CPU's CID.
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub compactions: u8,
}

/// A worker count: at least 1.
pub fn workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("at least one worker is needed".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("not a number: {s:?}")),
    }
}

/// A budget: 0..=15 (`mmcid_kmodel::config::MAX_BUDGET`).
fn budget(s: &str) -> Result<u8, String> {
    let max = mmcid_kmodel::config::MAX_BUDGET;
    match s.parse::<u64>() {
        Ok(n) if n <= max as u64 => Ok(n as u8),
        Ok(n) => Err(format!("{n} is out of range: a budget is 0..={max}")),
        Err(_) => Err(format!("not a number: {s:?}")),
    }
}

impl Bounds {
    /// The model configuration.
    pub fn config(&self) -> Config {
        Config {
            design: self.design.clone(),
            cpus: self.cpus,
            threads: self.threads,
            allowed: self.allowed,
            budgets: Budgets {
                forks: self.forks,
                vforks: self.vforks,
                fork_fails: self.fork_fails,
                exits: self.exits,
                execs: self.execs,
                exec_fails: self.exec_fails,
                exec_checks: self.exec_checks,
                affinity: self.affinity,
                compactions: self.compactions,
            },
        }
    }
}

/// A switch that is on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// The flags that reproduce `cfg`.
pub fn args_line(cfg: &Config) -> String {
    mmcid_kmodel::hunt::check_args(cfg)
}
