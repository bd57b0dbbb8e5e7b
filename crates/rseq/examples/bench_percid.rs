//! The `mmcid bench-percid` benchmark without the CLI crate:
//! `cargo run --release -p mmcid-rseq --example bench_percid -- [threads] [run_ms] [repeats] [nopin]`,
//! e.g. `-- 1,2,8 200 5` (`mmcid bench-percid --json` prints the JSON form).

use std::time::Duration;

use mmcid_rseq::{BenchConfig, run_bench};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pos: Vec<&String> = args.iter().collect();
    let d = BenchConfig::default();
    let threads = pos
        .first()
        .map(|s| s.split(',').map(|x| x.parse().expect("thread count")).collect())
        .unwrap_or(d.threads);
    let run = pos
        .get(1)
        .map(|s| Duration::from_millis(s.parse().expect("run ms")))
        .unwrap_or(d.run);
    let repeats = pos
        .get(2)
        .map(|s| s.parse().expect("repeats"))
        .unwrap_or(d.repeats);
    let pin = pos.get(3).is_none_or(|s| s.as_str() != "nopin");
    let report = run_bench(&BenchConfig {
        threads,
        run,
        repeats,
        pin,
    });
    print!("{report}");
}
