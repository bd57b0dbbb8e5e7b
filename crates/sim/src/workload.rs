//! Workloads: named, parameterised shapes of processes and threads, read from TOML.
//!
//! A workload is a list of process groups; each group starts `processes` identical processes with
//! `threads` threads each. A thread alternates run bursts and sleeps (exponential, with the given
//! means); at the end of each burst it may start an operation, each with its probability:
//! `pthread_create` a short-lived thread, `exit`, `spawn` (posix_spawn: vfork then execve, which
//! fails with probability `exec_fail`), or `setaffinity` (the whole process moves between a cpuset
//! of `cpuset` CPUs and one twice as large). Counts may be numbers or expressions in `cpus`
//! (`"4*cpus"`, `"cpus/4"`), so one file describes a shape at every machine size.
//!
//! The named workloads are the TOML files in `crates/sim/workloads/`, compiled in; `mmcid sim
//! --workload FILE.toml` reads a custom one in the same format.

use serde::{Deserialize, Serialize};

/// A count: a number, or an expression `a*cpus`, `cpus/b`, `a*cpus/b`, `cpus` (evaluated for a
/// machine size; the result is at least 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Count {
    /// A plain number.
    N(u64),
    /// An expression in `cpus`.
    Expr(String),
}

impl Default for Count {
    fn default() -> Self {
        Count::N(0)
    }
}

impl Count {
    /// The value on a machine with `cpus` CPUs.
    pub fn eval(&self, cpus: u32) -> Result<u64, String> {
        match self {
            Count::N(n) => Ok(*n),
            Count::Expr(e) => {
                let s: String = e.chars().filter(|c| !c.is_whitespace()).collect();
                let bad = || {
                    format!("bad count {e:?}: expected N, \"cpus\", \"A*cpus\", \"cpus/B\" or \"A*cpus/B\"")
                };
                let (num, den) = match s.split_once('/') {
                    Some((a, b)) => (a.to_string(), b.parse::<u64>().map_err(|_| bad())?),
                    None => (s.clone(), 1),
                };
                if den == 0 {
                    return Err(bad());
                }
                let mul = match num.split_once('*') {
                    Some((a, "cpus")) => a.parse::<u64>().map_err(|_| bad())?,
                    None if num == "cpus" => 1,
                    _ => return Err(bad()),
                };
                Ok(mul * cpus as u64 / den)
            }
        }
    }
}

fn one() -> Count {
    Count::N(1)
}
fn d_burst() -> f64 {
    50.0
}
fn d_sleep() -> f64 {
    200.0
}
fn d_child_bursts() -> f64 {
    4.0
}
fn d_max_threads() -> Count {
    Count::Expr("4*cpus".into())
}

/// One group of identical processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// A name for the report.
    #[serde(default)]
    pub name: String,
    /// How many processes.
    #[serde(default = "one")]
    pub processes: Count,
    /// Threads per process at the start.
    #[serde(default = "one")]
    pub threads: Count,
    /// Mean run burst, microseconds.
    #[serde(default = "d_burst")]
    pub burst_us: f64,
    /// Mean sleep between bursts, microseconds (0: never sleeps, CPU bound).
    #[serde(default = "d_sleep")]
    pub sleep_us: f64,
    /// Size of each process's cpuset (consecutive CPUs, processes packed side by side); 0 = all.
    #[serde(default)]
    pub cpuset: Count,
    /// Per burst end: probability of `pthread_create` (the new thread lives `child_bursts`
    /// bursts on average, then exits).
    #[serde(default)]
    pub pthread_create: f64,
    /// Mean number of bursts a created (or spawned) thread runs before it exits.
    #[serde(default = "d_child_bursts")]
    pub child_bursts: f64,
    /// Most threads a process may have (creation stops there).
    #[serde(default = "d_max_threads")]
    pub max_threads: Count,
    /// Per burst end: probability that the thread exits (initial threads included; the last
    /// thread of a process never exits this way).
    #[serde(default)]
    pub exit: f64,
    /// Per burst end: probability of posix_spawn (vfork + execve of a short-lived process).
    #[serde(default)]
    pub spawn: f64,
    /// Fraction of spawns whose execve fails (the child then exits).
    #[serde(default)]
    pub exec_fail: f64,
    /// Per burst end: probability that the process changes its affinity (grows its cpuset to
    /// twice the size, or shrinks it back). Needs `cpuset`.
    #[serde(default)]
    pub setaffinity: f64,
}

/// A workload: process groups on a machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Its name.
    pub name: String,
    /// One line: what it is.
    #[serde(default)]
    pub description: String,
    /// The process groups.
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
}

/// The named workloads, as (name, TOML source).
pub const NAMED: &[(&str, &str)] = &[
    ("mixed", include_str!("../workloads/mixed.toml")),
    ("thread-pool", include_str!("../workloads/thread-pool.toml")),
    ("fork-storm", include_str!("../workloads/fork-storm.toml")),
    ("spawn", include_str!("../workloads/spawn.toml")),
    ("containers", include_str!("../workloads/containers.toml")),
    ("oversubscribed", include_str!("../workloads/oversubscribed.toml")),
    ("many-small", include_str!("../workloads/many-small.toml")),
];

impl Workload {
    /// Parses a workload from TOML; the error names the problem.
    pub fn from_toml(src: &str) -> Result<Workload, String> {
        let w: Workload = toml::from_str(src).map_err(|e| e.to_string())?;
        w.validate()?;
        Ok(w)
    }

    /// A named workload (see [`NAMED`]); the error lists the names.
    pub fn named(name: &str) -> Result<Workload, String> {
        let Some((_, src)) = NAMED.iter().find(|(n, _)| *n == name) else {
            let names: Vec<_> = NAMED.iter().map(|(n, _)| *n).collect();
            return Err(format!("unknown workload {name:?}; known: {}", names.join(", ")));
        };
        Workload::from_toml(src)
    }

    /// Checks probabilities and sizes.
    pub fn validate(&self) -> Result<(), String> {
        if self.groups.is_empty() {
            return Err(format!("workload {:?} has no [[group]]", self.name));
        }
        for (i, g) in self.groups.iter().enumerate() {
            let at = format!("group {} ({:?})", i + 1, g.name);
            for (n, p) in [
                ("pthread_create", g.pthread_create),
                ("exit", g.exit),
                ("spawn", g.spawn),
                ("exec_fail", g.exec_fail),
                ("setaffinity", g.setaffinity),
            ] {
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!("{at}: {n} must be a probability in [0, 1], got {p}"));
                }
            }
            if g.pthread_create + g.exit + g.spawn + g.setaffinity > 1.0 {
                return Err(format!(
                    "{at}: pthread_create + exit + spawn + setaffinity exceed 1"
                ));
            }
            if g.burst_us <= 0.0 || g.sleep_us < 0.0 || g.child_bursts < 1.0 {
                return Err(format!(
                    "{at}: burst_us must be > 0, sleep_us >= 0, child_bursts >= 1"
                ));
            }
            for c in [&g.processes, &g.threads, &g.cpuset, &g.max_threads] {
                c.eval(64)?;
            }
            if g.setaffinity > 0.0 && g.cpuset.eval(64)? == 0 {
                return Err(format!("{at}: setaffinity needs a cpuset size"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_workload_parses() {
        for (n, _) in NAMED {
            let w = Workload::named(n).unwrap();
            assert_eq!(w.name, *n);
        }
        assert!(Workload::named("nope").unwrap_err().contains("thread-pool"));
    }

    #[test]
    fn counts_in_cpus() {
        assert_eq!(Count::Expr("4*cpus".into()).eval(64), Ok(256));
        assert_eq!(Count::Expr("cpus/4".into()).eval(64), Ok(16));
        assert_eq!(Count::Expr("3*cpus/2".into()).eval(64), Ok(96));
        assert!(Count::Expr("cpu".into()).eval(64).is_err());
    }

    #[test]
    fn bad_input_is_reported() {
        let e = Workload::from_toml("name='x'\n[[group]]\nexit=2.0\n").unwrap_err();
        assert!(e.contains("probability"), "{e}");
        let e = Workload::from_toml("name='x'\n[[group]]\nbogus=1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }
}
