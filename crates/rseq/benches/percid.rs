//! Criterion micro-benchmark: one thread, `PerCidCounter::add` against a
//! thread-local `Cell` and a shared `AtomicU64`. The multi-threaded
//! comparison is `mmcid bench-percid`.

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use mmcid_rseq::PerCidCounter;

thread_local! {
    static TL: Cell<u64> = const { Cell::new(0) };
}

fn bench(c: &mut Criterion) {
    eprintln!("mm_cid source: {}", mmcid_rseq::source());
    let mut g = c.benchmark_group("increment");
    let counter = PerCidCounter::new();
    g.bench_function("percid_add", |b| b.iter(|| counter.add(black_box(1))));
    g.bench_function("thread_local", |b| {
        b.iter(|| TL.with(|c| c.set(c.get().wrapping_add(black_box(1)))))
    });
    let a = AtomicU64::new(0);
    g.bench_function("shared_atomic", |b| {
        b.iter(|| a.fetch_add(black_box(1), Ordering::Relaxed))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
