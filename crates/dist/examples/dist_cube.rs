//! The distributed checker on a toy model, on threads, processes or hosts:
//!
//! ```text
//! cargo run --release -p mmcid-dist --example dist_cube -- [K N] [--symmetry] [--compare] -- TIMELY_ARGS
//!   K N          K counters in 0..=N (default 6 8: 5,764,801 states)
//!   --symmetry   fingerprint sorted counters
//!   --compare    also run the single-process engine and compare the counts
//!   TIMELY_ARGS  -w threads per process, -n processes, -p this process, -h host file
//! ```
//!
//! On two hosts (same command on both, `-p 0` and `-p 1`, the same `hosts.txt` listing
//! `host:port` per process): `... --example dist_cube -- 6 8 -- -w 2 -n 2 -p 0 -h hosts.txt`.

#[path = "../tests/toy/mod.rs"]
mod toy;

use std::sync::Arc;

use mmcid_dist::{DistOptions, check_from_args};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (ours, timely) = (&args[..split], args.get(split + 1..).unwrap_or(&[]));
    let numbers: Vec<u64> = ours.iter().filter_map(|a| a.parse().ok()).collect();
    let model = toy::Cube {
        k: numbers.first().copied().unwrap_or(6) as usize,
        n: numbers.get(1).copied().unwrap_or(8) as u8,
        bad_sum: u32::MAX,
        codec: true,
    };
    let symmetry = ours.iter().any(|a| a == "--symmetry");
    let opts = DistOptions {
        symmetry,
        ..DistOptions::default()
    };
    let report = match check_from_args(timely.iter().cloned(), Arc::new(model.clone()), opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dist_cube: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "dist: {} workers, {} unique states, {} transitions, depth {}, {:.2} s ({:.0} states/s), per worker {:?}",
        report.workers,
        report.unique_states,
        report.transitions,
        report.max_depth,
        report.seconds,
        report.unique_states as f64 / report.seconds,
        report.states_per_worker
    );
    if ours.iter().any(|a| a == "--compare") {
        let e = mmcid_engine::check(
            &model,
            &mmcid_engine::Options {
                symmetry,
                ..Default::default()
            },
            &mut mmcid_engine::NoObserver,
        )
        .expect("engine");
        println!(
            "engine: {} unique states, {} transitions, depth {}, {:.2} s: {}",
            e.unique_states,
            e.transitions,
            e.max_depth,
            e.seconds,
            if (e.unique_states, e.transitions) == (report.unique_states, report.transitions) {
                "same counts"
            } else {
                "COUNTS DIFFER"
            }
        );
    }
}
