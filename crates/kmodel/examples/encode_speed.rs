//! How long it takes to fingerprint a state by hashing its fields versus encoding it and hashing
//! the bytes (a measurement aid for the engine's fingerprints).
use std::time::Instant;

use mmcid_engine::Model;
use mmcid_engine::fingerprint::fingerprint;
use mmcid_kmodel::{Budgets, Config, KernelModel, Rewrite, encode};

fn main() {
    let cfg = Config::new(
        "7.0",
        2,
        3,
        Budgets {
            forks: 1,
            exits: 2,
            ..Budgets::default()
        },
    );
    let model = KernelModel::<Rewrite>::new(cfg).unwrap();
    // Collect some states by a BFS prefix.
    let mut states = vec![*model.initial_state()];
    let mut acts = Vec::new();
    let mut i = 0;
    while states.len() < 20_000 {
        acts.clear();
        let s = states[i];
        model.actions(&s, &mut acts);
        for a in &acts {
            states.push(model.next_state(&s, a));
        }
        i += 1;
    }
    let t = Instant::now();
    let mut x = 0u64;
    for _ in 0..10 {
        for s in &states {
            x ^= fingerprint(s);
        }
    }
    let hash_ns = t.elapsed().as_nanos() as f64 / (10 * states.len()) as f64;
    let mut buf = Vec::new();
    let mut total = 0usize;
    let t = Instant::now();
    for _ in 0..10 {
        for s in &states {
            buf.clear();
            encode::encode(s, &mut buf);
            total += buf.len();
            x ^= fingerprint(&buf[..]);
        }
    }
    let enc_ns = t.elapsed().as_nanos() as f64 / (10 * states.len()) as f64;
    let t = Instant::now();
    for _ in 0..10 {
        for s in &states {
            buf.clear();
            encode::encode(s, &mut buf);
            let d: mmcid_kmodel::state::State<Rewrite> = encode::decode(&buf);
            x ^= d.tasks.len() as u64;
        }
    }
    let dec_ns = t.elapsed().as_nanos() as f64 / (10 * states.len()) as f64 - enc_ns;
    let t = Instant::now();
    for _ in 0..10 {
        for s in &states {
            let c = *s;
            x ^= c.tasks.len() as u64;
            acts.clear();
            model.actions(s, &mut acts);
            x ^= acts.len() as u64;
        }
    }
    let act_ns = t.elapsed().as_nanos() as f64 / (10 * states.len()) as f64;
    println!(
        "hash fields {hash_ns:.0} ns; encode+hash {enc_ns:.0} ns ({:.1} bytes); decode ~{dec_ns:.0} ns; actions {act_ns:.0} ns; state {} bytes ({x})",
        total as f64 / (10 * states.len()) as f64,
        std::mem::size_of::<mmcid_kmodel::state::State<Rewrite>>()
    );
}
