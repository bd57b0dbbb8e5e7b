//! `mmcid sim --against-kernel`: one thread/affinity setup run for real, with threads reading the
//! running kernel's `mm_cid` through rseq (as `mmcid observe` does), and the same setup simulated
//! under design 6.18 (this machine's kernel family); both ID distributions side by side.
//!
//! The setup: one process, `--kernel-threads` threads allowed on `--kernel-cpus`, each taking a
//! sample (a short rseq critical section) and sleeping 50 µs, over and over. The simulated process
//! has the same threads on as many CPUs (CPUs are symmetric in the simulator, so `0-3` and `4-7`
//! are the same setup), bursts of 2 µs (the sample) and sleeps of 60 µs (50 µs plus the timer's
//! slack), for as much simulated time as the real run lasted; the simulator counts the CID each
//! thread has at every return to user space, the point where a real thread takes its sample.
//!
//! Agreement is measured as `1 - total variation distance` between the two distributions of
//! samples over IDs (1 = the same shares, 0 = disjoint), plus whether the largest ID and the number
//! of distinct IDs match. The real run shares the machine with whatever else runs on it; the
//! simulator has only this process.

use std::collections::BTreeMap;
use std::time::Duration;

use mmcid_rseq::{ObserveConfig, ObserveError, Workload as RealWorkload};
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

/// Share per ID.
fn shares(h: &BTreeMap<u32, u64>) -> BTreeMap<u32, f64> {
    let n: u64 = h.values().sum();
    h.iter().map(|(&k, &v)| (k, v as f64 / n.max(1) as f64)).collect()
}

/// `1 - TVD` of two distributions over IDs.
pub fn agreement(a: &BTreeMap<u32, u64>, b: &BTreeMap<u32, u64>) -> f64 {
    let (p, q) = (shares(a), shares(b));
    let keys: std::collections::BTreeSet<u32> = p.keys().chain(q.keys()).copied().collect();
    let tvd: f64 = keys
        .iter()
        .map(|k| (p.get(k).unwrap_or(&0.0) - q.get(k).unwrap_or(&0.0)).abs())
        .sum::<f64>()
        / 2.0;
    1.0 - tvd
}

fn inner(args: &crate::sim::Args) -> Result<bool, String> {
    if args.kernel_threads == 0 || args.kernel_threads > 1024 {
        return Err("--kernel-threads must be 1..=1024".into());
    }
    if !(args.kernel_seconds.is_finite() && args.kernel_seconds > 0.0 && args.kernel_seconds <= 600.0) {
        return Err("--kernel-seconds must be in (0, 600]".into());
    }
    let cpus = if args.kernel_cpus.trim() == "all" {
        None
    } else {
        Some(mmcid_rseq::parse_cpu_list(&args.kernel_cpus).map_err(|e| format!("--kernel-cpus: {e}"))?)
    };
    let cfg = ObserveConfig {
        threads: args.kernel_threads as usize,
        cpus,
        duration: Duration::from_secs_f64(args.kernel_seconds),
        workload: RealWorkload::Sleep,
        ..ObserveConfig::default()
    };
    let real = mmcid_rseq::observe(&cfg).map_err(|e| match e {
        ObserveError::RseqUnavailable(m) => format!("rseq mm_cid is not available here: {m}"),
        other => other.to_string(),
    })?;
    let np = real.possible_cpus as u32;
    let allowed = real.allowed_cpus.len() as u32;
    let src = format!(
        "name = \"against-kernel\"\ndescription = \"{} threads on {} of {} CPUs, 2 us samples, 60 us sleeps\"\n\
         [[group]]\nprocesses = 1\nthreads = {}\nburst_us = 2\nsleep_us = 60\ncpuset = {}\n",
        args.kernel_threads,
        allowed,
        np,
        args.kernel_threads,
        if allowed >= np { 0 } else { allowed }
    );
    let w = Workload::from_toml(&src)?;
    // switches for as much simulated time as the real run: each thread wakes every ~62 us and
    // a wake-up is about two switches
    let switches =
        ((args.kernel_threads as f64 * args.kernel_seconds / 62e-6) * 2.0).clamp(10_000.0, 2e7) as u64;
    let mut sc = SimConfig::new("6.18", np, w, args.seed, switches);
    sc.series = false;
    let sim = mmcid_sim::run(sc, |_| {})?;
    let sim_hist: BTreeMap<u32, u64> = sim.cid_hist.iter().copied().collect();
    let real_hist = real.cid_histogram.clone();
    let agree = agreement(&real_hist, &sim_hist);
    let (ps, qs) = (shares(&real_hist), shares(&sim_hist));
    let real_max = real_hist.keys().max().copied();
    let sim_max = sim_hist.keys().max().copied();
    let same_shape = real_max == sim_max && real_hist.len() == sim_hist.len();
    let ok = agree >= 0.9 && same_shape;
    if args.json {
        let doc = serde_json::json!({
            "setup": {"threads": args.kernel_threads, "allowed_cpus": real.allowed_cpus, "possible_cpus": np,
                      "seconds": args.kernel_seconds, "sample_then_sleep_us": 50},
            "kernel": {"source": format!("{:?}", real.source), "samples": real.samples, "max_cid": real_max,
                       "distinct_cids": real_hist.len(), "cid_histogram": real_hist, "violations": real.violations},
            "simulated_6_18": {"switches": sim.switches, "sim_ms": sim.sim_ms, "max_cid": sim_max,
                               "distinct_cids": sim_hist.len(), "cid_histogram": sim_hist,
                               "violation": sim.violation.as_ref().map(|v| &v.property)},
            "agreement_1_minus_tvd": agree, "same_max_and_distinct": same_shape, "agree": ok,
            "machine": crate::sim::load_line(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        );
        return Ok(ok);
    }
    println!(
        "setup: 1 process, {} threads on CPUs {:?} of {np}, each: sample mm_cid, sleep 50 us; {:.1} s ({})",
        args.kernel_threads,
        real.allowed_cpus,
        args.kernel_seconds,
        crate::sim::load_line()
    );
    println!(
        "kernel (Linux, mm_cid via {:?}): {} samples; simulated 6.18: {} returns to user space in {:.0} ms",
        real.source,
        real.samples,
        sim_hist.values().sum::<u64>(),
        sim.sim_ms
    );
    println!("{:>6} {:>12} {:>12}", "CID", "kernel", "sim 6.18");
    let keys: std::collections::BTreeSet<u32> = ps.keys().chain(qs.keys()).copied().collect();
    for k in keys {
        println!(
            "{k:>6} {:>11.1}% {:>11.1}%",
            ps.get(&k).unwrap_or(&0.0) * 100.0,
            qs.get(&k).unwrap_or(&0.0) * 100.0
        );
    }
    println!(
        "{:>6} {:>12} {:>12}\n{:>6} {:>12} {:>12}",
        "max",
        real_max.map_or("-".into(), |m| m.to_string()),
        sim_max.map_or("-".into(), |m| m.to_string()),
        "ids",
        real_hist.len(),
        sim_hist.len()
    );
    println!(
        "agreement (1 - total variation distance): {agree:.3}; same max ID and distinct IDs: {same_shape} -> {}",
        if ok {
            "AGREE"
        } else {
            "DISAGREE (the model is suspect until shown otherwise)"
        }
    );
    if !real.violations.is_empty() {
        println!("kernel-side violations seen by observe: {:?}", real.violations);
    }
    if let Some(v) = &sim.violation {
        println!("simulator violation: {} {}", v.property, v.message);
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

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
