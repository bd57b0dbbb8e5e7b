//! `mmcid sim --against-kernel`: one thread/affinity setup run for real, with threads reading the
//! running kernel's `mm_cid` and `cpu_id` through rseq (the critical section `mmcid observe` uses,
//! so each sample proves the thread was running on that CPU with that CID), and the same setup
//! simulated under design 6.18 (this machine's kernel family); both ID distributions side by side.
//!
//! The setup: one process, `--kernel-threads` threads pinned to `--kernel-cpus`, each taking a
//! sample and sleeping 50 µs, over and over. The simulated process has the same threads on as many
//! CPUs (CPUs are symmetric in the simulator), bursts of 2 µs and sleeps of 60 µs (50 µs plus the
//! timer's slack), for as much simulated time as the real run lasted; it counts the (CPU, CID) each
//! thread has at every return to user space, where a real thread takes its sample.
//!
//! Two agreement measures, each `1 - total variation distance` (1 = same shares, 0 = disjoint):
//! - raw: the shares of samples per CID. On a shared machine they depend on where the threads got
//!   to run, which other processes decide and the simulator does not know;
//! - given the CPUs: the kernel's joint (CPU, CID) distribution against the model's prediction
//!   `P_kernel(cpu) * P_sim(cid | cpu)`, with the simulated CPUs matched to the real ones by the
//!   best permutation (CPUs are symmetric and which CID a CPU gets first is an accident of
//!   timing). This asks: knowing where the threads ran, does the model predict the IDs they saw?
//!
//! The setups agree when the second measure is at least 0.9 and the largest ID and the number of
//! distinct IDs are the same.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mmcid_sim::{SimConfig, Workload};

/// Runs the comparison; returns the exit code (0 agreement, 1 disagreement, 2 cannot run).
pub fn run(args: &crate::sim::Args) -> i32 {
    match inner(args) {
        Ok(agree) => (!agree) as i32,
        Err(e) => {
            eprintln!("mmcid sim --against-kernel: {e}");
            2
        }
    }
}

/// Shares of a histogram.
fn shares<K: Ord + Copy>(h: &BTreeMap<K, u64>) -> BTreeMap<K, f64> {
    let n: u64 = h.values().sum();
    h.iter().map(|(&k, &v)| (k, v as f64 / n.max(1) as f64)).collect()
}

/// `1 - TVD` of two distributions given as shares.
fn agree_shares<K: Ord + Copy>(p: &BTreeMap<K, f64>, q: &BTreeMap<K, f64>) -> f64 {
    let keys: std::collections::BTreeSet<K> = p.keys().chain(q.keys()).copied().collect();
    let tvd: f64 = keys
        .iter()
        .map(|k| (p.get(k).unwrap_or(&0.0) - q.get(k).unwrap_or(&0.0)).abs())
        .sum::<f64>()
        / 2.0;
    1.0 - tvd
}

/// `1 - TVD` of two histograms.
pub fn agreement<K: Ord + Copy>(a: &BTreeMap<K, u64>, b: &BTreeMap<K, u64>) -> f64 {
    agree_shares(&shares(a), &shares(b))
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..n {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

/// The agreement "given the CPUs": the kernel's joint (CPU, CID) shares against
/// `P_kernel(cpu) * P_sim(cid | sigma(cpu))`, best over matchings `sigma` of the kernel's CPUs to
/// the simulated ones (all permutations up to 7 CPUs, else the identity).
pub fn conditional_agreement(
    kernel: &BTreeMap<(u32, u32), u64>,
    sim: &BTreeMap<(u32, u32), u64>,
    kcpus: &[u32],
    scpus: &[u32],
) -> f64 {
    let kj = shares(kernel);
    let mut kcpu: BTreeMap<u32, f64> = BTreeMap::new();
    for (&(c, _), &p) in &kj {
        *kcpu.entry(c).or_insert(0.0) += p;
    }
    let mut scpu: BTreeMap<u32, u64> = BTreeMap::new();
    for (&(c, _), &n) in sim {
        *scpu.entry(c).or_insert(0) += n;
    }
    let n = kcpus.len().min(scpus.len());
    let perms = if n <= 7 {
        permutations(n)
    } else {
        vec![(0..n).collect()]
    };
    let mut best = 0.0f64;
    for perm in perms {
        let mut pred: BTreeMap<(u32, u32), f64> = BTreeMap::new();
        for (i, &kc) in kcpus.iter().take(n).enumerate() {
            let sc = scpus[perm[i]];
            let tot = *scpu.get(&sc).unwrap_or(&0) as f64;
            let pk = *kcpu.get(&kc).unwrap_or(&0.0);
            if tot == 0.0 {
                continue;
            }
            for (&(c, cid), &m) in sim.range((sc, 0)..=(sc, u32::MAX)) {
                let _ = c;
                *pred.entry((kc, cid)).or_insert(0.0) += pk * m as f64 / tot;
            }
        }
        best = best.max(agree_shares(&kj, &pred));
    }
    best
}

/// The real run: `threads` threads pinned to `cpus`, each sampling (CPU, CID) in an rseq critical
/// section and sleeping 50 µs, for `seconds`.
fn real_run(threads: u32, cpus: &[usize], seconds: f64) -> Result<BTreeMap<(u32, u32), u64>, String> {
    if mmcid_rseq::test_support::running_interval(10).is_none() && !mmcid_rseq::source().is_mm_cid() {
        return Err(format!(
            "rseq mm_cid is not available here (source: {})",
            mmcid_rseq::source()
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut hs = Vec::new();
    for _ in 0..threads {
        let stop = stop.clone();
        let cpus = cpus.to_vec();
        hs.push(std::thread::spawn(
            move || -> Result<BTreeMap<(u32, u32), u64>, String> {
                mmcid_rseq::pin_current_thread(&cpus).map_err(|e| format!("sched_setaffinity: {e}"))?;
                let mut h = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Some((cid, cpu)) = mmcid_rseq::test_support::running_interval(500) {
                        *h.entry((cpu, cid)).or_insert(0) += 1;
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
                Ok(h)
            },
        ));
    }
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all = BTreeMap::new();
    for h in hs {
        let m = h.join().map_err(|_| "a sampling thread panicked".to_string())??;
        for (k, v) in m {
            *all.entry(k).or_insert(0) += v;
        }
    }
    Ok(all)
}

fn marginal(j: &BTreeMap<(u32, u32), u64>, cid: bool) -> BTreeMap<u32, u64> {
    let mut m = BTreeMap::new();
    for (&(c, i), &n) in j {
        *m.entry(if cid { i } else { c }).or_insert(0) += n;
    }
    m
}

fn inner(args: &crate::sim::Args) -> Result<bool, String> {
    if args.kernel_threads == 0 || args.kernel_threads > 1024 {
        return Err("--kernel-threads must be 1..=1024".into());
    }
    if !(args.kernel_seconds.is_finite() && args.kernel_seconds > 0.0 && args.kernel_seconds <= 600.0) {
        return Err("--kernel-seconds must be in (0, 600]".into());
    }
    let cpus: Vec<usize> = if args.kernel_cpus.trim() == "all" {
        mmcid_rseq::allowed_cpus()
    } else {
        mmcid_rseq::parse_cpu_list(&args.kernel_cpus).map_err(|e| format!("--kernel-cpus: {e}"))?
    };
    let np = mmcid_rseq::possible_cpus() as u32;
    if cpus.is_empty() || cpus.iter().any(|&c| c as u32 >= np) {
        return Err(format!("--kernel-cpus must name CPUs below {np}"));
    }
    let real = real_run(args.kernel_threads, &cpus, args.kernel_seconds)?;
    let allowed = cpus.len() as u32;
    let src = format!(
        "name = \"against-kernel\"\ndescription = \"{} threads on {} of {} CPUs, 2 us samples, 60 us sleeps\"\n\
         [[group]]\nprocesses = 1\nthreads = {}\nburst_us = 2\nsleep_us = 60\ncpuset = {}\n{}",
        args.kernel_threads,
        allowed,
        np,
        args.kernel_threads,
        if allowed >= np { 0 } else { allowed },
        if args.kernel_background > 0 {
            format!(
                "[[group]]\nname = \"background\"\nprocesses = {}\nthreads = 1\nburst_us = 20000\nsleep_us = 5000\n",
                args.kernel_background
            )
        } else {
            String::new()
        }
    );
    let w = Workload::from_toml(&src)?;
    // as much simulated time as the real run (each thread wakes every ~62 us, ~2 switches each)
    let switches =
        ((args.kernel_threads as f64 * args.kernel_seconds / 62e-6) * 2.0).clamp(10_000.0, 2e7) as u64;
    let mut sc = SimConfig::new("6.18", np, w, args.seed, switches);
    sc.max_sim_ms = args.kernel_seconds * 1000.0;
    sc.hist_group = Some(0);
    let sim = mmcid_sim::run(sc, |_| {})?;
    let sim_joint: BTreeMap<(u32, u32), u64> =
        sim.cpu_cid_hist.iter().map(|&(c, i, n)| ((c, i), n)).collect();
    let (kc, sc_) = (marginal(&real, true), marginal(&sim_joint, true));
    let raw = agreement(&kc, &sc_);
    let kcpus: Vec<u32> = marginal(&real, false).keys().copied().collect();
    let scpus: Vec<u32> = marginal(&sim_joint, false).keys().copied().collect();
    let cond = conditional_agreement(&real, &sim_joint, &kcpus, &scpus);
    let (real_max, sim_max) = (kc.keys().max().copied(), sc_.keys().max().copied());
    let same_shape = real_max == sim_max && kc.len() == sc_.len();
    let ok = cond >= 0.9 && same_shape;
    if args.json {
        let j = |h: &BTreeMap<(u32, u32), u64>| -> Vec<Sample> {
            h.iter()
                .map(|(&(cpu, cid), &samples)| Sample { cpu, cid, samples })
                .collect()
        };
        let doc = AgainstKernel {
            format_version: FORMAT_VERSION,
            setup: Setup {
                threads: args.kernel_threads,
                cpus: cpus.clone(),
                possible_cpus: np,
                seconds: args.kernel_seconds,
                sleep_us: 50,
                simulated_background_processes: args.kernel_background,
            },
            kernel: KernelSide {
                source: mmcid_rseq::source(),
                samples: real.values().sum::<u64>(),
                max_cid: real_max,
                distinct_cids: kc.len(),
                joint: j(&real),
            },
            simulated_6_18: SimulatedSide {
                switches: sim.switches,
                sim_ms: sim.sim_ms,
                max_cid: sim_max,
                distinct_cids: sc_.len(),
                joint: j(&sim_joint),
                violation: sim.violation.as_ref().map(|v| v.property.clone()),
            },
            agreement_raw: raw,
            agreement_given_cpus: cond,
            same_max_and_distinct: same_shape,
            agree: ok,
            loadavg: mmcid_rseq::loadavg(),
        };
        outln!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        );
        return Ok(ok);
    }
    outln!(
        "setup: 1 process, {} threads pinned to CPUs {:?} of {np}, each: sample (cpu, mm_cid) in an rseq \
         critical section, sleep 50 us; {:.1} s ({})",
        args.kernel_threads,
        cpus,
        args.kernel_seconds,
        crate::sim::load_line()
    );
    outln!(
        "kernel (mm_cid via {}): {} samples; simulated 6.18: {} returns to user space in {:.0} ms",
        mmcid_rseq::source(),
        real.values().sum::<u64>(),
        sim_joint.values().sum::<u64>(),
        sim.sim_ms
    );
    let (ks, ss) = (shares(&real), shares(&sim_joint));
    outln!("{:>5} {:>5} {:>10} {:>10}", "CPU", "CID", "kernel", "sim 6.18");
    let keys: std::collections::BTreeSet<(u32, u32)> = ks.keys().chain(ss.keys()).copied().collect();
    for k in keys {
        outln!(
            "{:>5} {:>5} {:>9.1}% {:>9.1}%",
            k.0,
            k.1,
            ks.get(&k).unwrap_or(&0.0) * 100.0,
            ss.get(&k).unwrap_or(&0.0) * 100.0
        );
    }
    let (kp, sp) = (shares(&kc), shares(&sc_));
    outln!("{:>11} {:>10} {:>10}", "CID share", "kernel", "sim 6.18");
    let keys: std::collections::BTreeSet<u32> = kp.keys().chain(sp.keys()).copied().collect();
    for k in keys {
        outln!(
            "{k:>11} {:>9.1}% {:>9.1}%",
            kp.get(&k).unwrap_or(&0.0) * 100.0,
            sp.get(&k).unwrap_or(&0.0) * 100.0
        );
    }
    outln!(
        "{:>11} {:>10} {:>10}\n{:>11} {:>10} {:>10}",
        "max ID",
        real_max.map_or("-".into(), |m| m.to_string()),
        sim_max.map_or("-".into(), |m| m.to_string()),
        "distinct",
        kc.len(),
        sc_.len()
    );
    outln!(
        "agreement (1 - total variation distance): raw CID shares {raw:.3}; given the CPUs {cond:.3}; \
         same max ID and distinct IDs: {same_shape} -> {}",
        if ok {
            "AGREE"
        } else {
            "DISAGREE (the model is suspect until shown otherwise)"
        }
    );
    if let Some(v) = &sim.violation {
        outln!("simulator violation: {} {}", v.property, v.message);
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_agreement_matches_cpus_to_cpus() {
        // kernel: CPU0 always CID 1, CPU1 always CID 0, CPU1 busier
        let k: BTreeMap<(u32, u32), u64> = [((0, 1), 20), ((1, 0), 80)].into();
        // sim: CPU0 CID 0, CPU1 CID 1, evenly: the same rule (a CPU keeps its CID), other labels
        let s: BTreeMap<(u32, u32), u64> = [((0, 0), 50), ((1, 1), 50)].into();
        assert!((conditional_agreement(&k, &s, &[0, 1], &[0, 1]) - 1.0).abs() < 1e-9);
        assert!((agreement(&marginal(&k, true), &marginal(&s, true)) - 0.7).abs() < 1e-9);
        // a kernel whose CPUs see both CIDs evenly does not follow that rule
        let k2: BTreeMap<(u32, u32), u64> = [((0, 0), 25), ((0, 1), 25), ((1, 0), 25), ((1, 1), 25)].into();
        assert!((conditional_agreement(&k2, &s, &[0, 1], &[0, 1]) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn agreement_is_one_minus_tvd() {
        let a: BTreeMap<u32, u64> = [(0, 50), (1, 50)].into();
        let b: BTreeMap<u32, u64> = [(0, 75), (1, 25)].into();
        assert!((agreement(&a, &a) - 1.0).abs() < 1e-12);
        assert!((agreement(&a, &b) - 0.75).abs() < 1e-12);
        let c: BTreeMap<u32, u64> = [(2, 1)].into();
        assert!(agreement(&a, &c).abs() < 1e-12);
    }
}

/// Version of `mmcid sim --against-kernel --json` (1: the first with a schema,
/// `docs/schema/sim-against-kernel.json`, and a `format_version`; the load is numbers).
pub const FORMAT_VERSION: u32 = 1;

/// The `--json` output of `mmcid sim --against-kernel`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct AgainstKernel {
    /// JSON format version.
    pub format_version: u32,
    /// The real run's setup (the simulated one copies it).
    pub setup: Setup,
    /// What the running kernel handed out.
    pub kernel: KernelSide,
    /// What the 6.18 simulation handed out in the same setup.
    pub simulated_6_18: SimulatedSide,
    /// `1 - total variation distance` of the two CID distributions.
    pub agreement_raw: f64,
    /// The same, CPU by CPU (matched by rank), weighted: the figure `agree` is judged on.
    pub agreement_given_cpus: f64,
    /// Both show the same largest CID and the same number of distinct CIDs.
    pub same_max_and_distinct: bool,
    /// `agreement_given_cpus >= 0.9` and `same_max_and_distinct`.
    pub agree: bool,
    /// `/proc/loadavg`'s 1, 5 and 15 minute load averages after the runs.
    pub loadavg: Vec<f64>,
}

/// The setup of `mmcid sim --against-kernel`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Setup {
    /// Threads of the one process.
    pub threads: u32,
    /// The CPUs they are pinned to.
    pub cpus: Vec<usize>,
    /// Possible CPUs (`nr_cpu_ids`).
    pub possible_cpus: u32,
    /// Seconds sampled.
    pub seconds: f64,
    /// Each thread's sleep between samples, in microseconds.
    pub sleep_us: u32,
    /// Background processes the simulation adds (`--kernel-background`).
    pub simulated_background_processes: u32,
}

/// How often a (CPU, CID) pair was seen.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Sample {
    /// The CPU.
    pub cpu: u32,
    /// The CID.
    pub cid: u32,
    /// Samples.
    pub samples: u64,
}

/// The kernel's side.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct KernelSide {
    /// Where `mm_cid` was read from.
    pub source: mmcid_rseq::Source,
    /// Samples taken.
    pub samples: u64,
    /// Largest CID seen.
    pub max_cid: Option<u32>,
    /// Distinct CIDs seen.
    pub distinct_cids: usize,
    /// Samples per (CPU, CID).
    pub joint: Vec<Sample>,
}

/// The simulation's side.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SimulatedSide {
    /// Context switches simulated.
    pub switches: u64,
    /// Simulated milliseconds.
    pub sim_ms: f64,
    /// Largest CID handed out.
    pub max_cid: Option<u32>,
    /// Distinct CIDs handed out.
    pub distinct_cids: usize,
    /// Returns to user space per (CPU, CID).
    pub joint: Vec<Sample>,
    /// The property the simulation violated, if any.
    pub violation: Option<String>,
}
