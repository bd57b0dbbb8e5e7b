//! The configurations a hunt visits: the *ladder* (every small configuration, smallest first,
//! for exhaustive checks) and random large ones (for the swarm).
//!
//! A configuration's **size** is `(cpus - 1) + (threads - 1) + (cpus - allowed) + Σ budgets`: one
//! unit per CPU, thread, CPU taken out of the allowed set and operation beyond the smallest
//! configuration (one CPU, one thread, nothing to do). The ladder lists every valid configuration
//! within its limits in order of size, and within a size with fewer CPUs and threads first; it
//! leaves out combinations that mean nothing (a fork failure budget above the forks and vforks, an
//! affinity budget with every CPU allowed, compactions outside 6.18) and mixes of more than
//! [`Limits::max_mix`] operation kinds at once (combinatorial testing's observation that most
//! faults need few interacting features; every known finding needs at most three).

use rand::Rng;

use crate::config::{Budgets, Config, FamilyKind as Family};

/// Bounds of a part of the configuration space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Limits {
    /// Most CPUs.
    pub max_cpus: u8,
    /// Most initial threads.
    pub max_threads: u8,
    /// Most operations of one kind.
    pub max_budget: u8,
    /// Most operation kinds (counting a restricted allowed set as one) in one configuration.
    pub max_mix: u8,
}

impl Limits {
    /// The exhaustive ladder's default: what a breadth-first search of a few hundred thousand
    /// states covers whole or to a useful depth.
    pub const LADDER: Limits = Limits {
        max_cpus: 4,
        max_threads: 4,
        max_budget: 2,
        max_mix: 3,
    };
    /// The swarm's default: up to 8 CPUs (the model's limit) and 8 initial threads plus up to 4
    /// forks, a dozen threads in all.
    pub const SWARM: Limits = Limits {
        max_cpus: 8,
        max_threads: 8,
        max_budget: 4,
        max_mix: 5,
    };
}

/// The knobs of a configuration as a vector, in a fixed order (for ordering and dominance).
pub fn knobs(c: &Config) -> [u8; 11] {
    let b = &c.budgets;
    [
        c.cpus,
        c.threads,
        c.cpus - c.allowed.unwrap_or(c.cpus),
        b.forks,
        b.vforks,
        b.fork_fails,
        b.exits,
        b.execs,
        b.exec_fails,
        b.affinity,
        b.compactions,
    ]
}

/// The size of a configuration (see the module doc).
pub fn size(c: &Config) -> u32 {
    let k = knobs(c);
    (k[0] as u32 - 1) + (k[1] as u32 - 1) + k[2..].iter().map(|&x| x as u32).sum::<u32>()
}

/// Does `big` have at least every knob of `small` (same design)?
pub fn dominates(big: &Config, small: &Config) -> bool {
    big.design == small.design && knobs(big).iter().zip(knobs(small)).all(|(b, s)| *b >= s)
}

/// A short name: `c3t2f2`, `c4t3a2f1x2` (the letters of `mmcid matrix`).
pub fn short_name(c: &Config) -> String {
    let b = &c.budgets;
    let mut name = format!("c{}t{}", c.cpus, c.threads);
    if let Some(a) = c.allowed {
        name.push_str(&format!("a{a}"));
    }
    for (k, v) in [
        ("f", b.forks),
        ("v", b.vforks),
        ("ff", b.fork_fails),
        ("x", b.exits),
        ("e", b.execs),
        ("ef", b.exec_fails),
        ("ec", b.exec_checks),
        ("s", b.affinity),
        ("k", b.compactions),
    ] {
        if v > 0 {
            name.push_str(&format!("{k}{v}"));
        }
    }
    name
}

fn make(design: &str, k: &[u8; 11]) -> Config {
    Config {
        design: design.to_string(),
        cpus: k[0],
        threads: k[1],
        allowed: (k[2] > 0).then(|| k[0] - k[2]),
        budgets: Budgets {
            forks: k[3],
            vforks: k[4],
            fork_fails: k[5],
            exits: k[6],
            execs: k[7],
            exec_fails: k[8],
            // AT_EXECVE_CHECK runs the window of a failing execve step for step: the failing
            // execve stands for both here.
            exec_checks: 0,
            affinity: k[9],
            compactions: k[10],
        },
    }
}

/// Number of operation kinds (a restricted allowed set counts as one).
pub fn kinds(c: &Config) -> usize {
    knobs(c)[2..].iter().filter(|&&x| x > 0).count()
}

/// Is this combination meaningful (beyond what [`Config::validate`] checks)?
fn meaningful(c: &Config, family: Family, max_mix: u8) -> bool {
    let b = &c.budgets;
    let restricted = c.allowed.is_some();
    if b.fork_fails > b.forks + b.vforks
        || (b.affinity > 0 && !restricted)
        || (b.compactions > 0 && family != Family::Lazy618)
    {
        return false;
    }
    kinds(c) <= max_mix as usize && c.validate().is_ok()
}

/// Every meaningful configuration of `design` within `lim`, smallest first (see the module doc).
pub fn ladder(design: &str, family: Family, lim: Limits) -> Vec<Config> {
    let mut out = Vec::new();
    let mb = lim.max_budget;
    let compactions = if family == Family::Lazy618 { mb } else { 0 };
    for cpus in 1..=lim.max_cpus {
        for threads in 1..=lim.max_threads {
            for restrict in 0..cpus {
                let mut k = [cpus, threads, restrict, 0, 0, 0, 0, 0, 0, 0, 0];
                budgets(&mut k, 3, mb, compactions, &mut |k| {
                    let c = make(design, k);
                    if meaningful(&c, family, lim.max_mix) {
                        out.push(c);
                    }
                });
            }
        }
    }
    // Within a size: fewer operation kinds first (most bugs need few), then concurrent machines
    // (two CPUs or more) before a single CPU.
    out.sort_by_key(|c| (size(c), kinds(c), c.cpus == 1, c.cpus, c.threads, knobs(c)));
    out
}

fn budgets(k: &mut [u8; 11], i: usize, mb: u8, compactions: u8, f: &mut dyn FnMut(&[u8; 11])) {
    if i == k.len() {
        f(k);
        return;
    }
    let max = match i {
        7 => mb.min(2), // execs: the model holds at most three mms
        10 => compactions,
        _ => mb,
    };
    for v in 0..=max {
        k[i] = v;
        budgets(k, i + 1, mb, compactions, f);
    }
    k[i] = 0;
}

/// The valid configurations one step below `c`: one CPU fewer (the allowed set shrinking with
/// it), one thread fewer, one more CPU allowed, one operation fewer of each kind.
pub fn lower(c: &Config) -> Vec<Config> {
    let k = knobs(c);
    let mut out = Vec::new();
    for i in 0..k.len() {
        if k[i] == 0 || (i < 2 && k[i] == 1) {
            continue;
        }
        let mut k2 = k;
        k2[i] -= 1;
        if i == 0 {
            k2[2] = k2[2].min(k2[0] - 1);
        }
        if k2[2] == 0 {
            k2[9] = 0;
        }
        k2[5] = k2[5].min(k2[3] + k2[4]);
        let c2 = make(&c.design, &k2);
        if c2.validate().is_ok() && !out.contains(&c2) {
            out.push(c2);
        }
    }
    out
}

/// A random configuration of `design` within `lim` for the swarm: CPUs from 2, each operation
/// kind present with probability 2/5, a restricted allowed set one time in three. Always valid.
pub fn random(design: &str, family: Family, lim: Limits, rng: &mut impl Rng) -> Config {
    loop {
        let cpus = rng.random_range(2..=lim.max_cpus.max(2));
        let threads = rng.random_range(1..=lim.max_threads.max(1));
        let restrict = if cpus > 1 && rng.random_bool(1.0 / 3.0) {
            rng.random_range(1..cpus)
        } else {
            0
        };
        let mut k = [cpus, threads, restrict, 0, 0, 0, 0, 0, 0, 0, 0];
        for (i, v) in k.iter_mut().enumerate().skip(3) {
            let max = match i {
                7 => lim.max_budget.min(2),
                10 if family != Family::Lazy618 => 0,
                _ => lim.max_budget,
            };
            if max > 0 && rng.random_bool(0.4) {
                *v = rng.random_range(1..=max);
            }
        }
        if restrict == 0 {
            k[9] = 0;
        }
        k[5] = k[5].min(k[3] + k[4]);
        let c = make(design, &k);
        if meaningful(&c, family, lim.max_mix) {
            return c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_ladder_starts_small_and_holds_the_known_findings_configurations() {
        let l = ladder("7.0", Family::Rewrite, Limits::LADDER);
        assert_eq!(short_name(&l[0]), "c1t1");
        assert!(l.windows(2).all(|w| size(&w[0]) <= size(&w[1])));
        for name in [
            "c2t2f1x1",
            "c3t2f2",
            "c2t3f1x2ef1",
            "c2t2f1ef1",
            "c3t2f1v1",
            "c4t3a2f1x2",
        ] {
            assert!(l.iter().any(|c| short_name(c) == name), "{name}");
        }
        // No meaningless combinations, nothing the model rejects.
        assert!(l.iter().all(|c| c.validate().is_ok()));
        assert!(!l.iter().any(|c| c.budgets.affinity > 0 && c.allowed.is_none()));
        assert!(!l.iter().any(|c| c.budgets.compactions > 0));
        assert!(
            ladder("6.18", Family::Lazy618, Limits::LADDER)
                .iter()
                .any(|c| c.budgets.compactions > 0)
        );
    }

    #[test]
    fn random_configurations_are_valid_and_reach_the_limits() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let cs: Vec<Config> = (0..500)
            .map(|_| random("7.0", Family::Rewrite, Limits::SWARM, &mut rng))
            .collect();
        assert!(cs.iter().all(|c| c.validate().is_ok()));
        assert!(cs.iter().any(|c| c.cpus == 8));
        assert!(cs.iter().any(|c| c.threads + c.budgets.forks >= 11));
    }

    #[test]
    fn dominance_is_knob_wise() {
        let small = Config::new("7.0", 2, 2, Budgets::default());
        let mut big = small.clone();
        big.budgets.forks = 1;
        assert!(dominates(&big, &small) && !dominates(&small, &big));
        assert_eq!(size(&big), 3);
    }
}
