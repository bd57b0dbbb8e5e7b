use mmcid_kmodel::hunt::space;
use mmcid_kmodel::config::Family;
use std::time::Instant;
fn main() {
    let cap: u64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(25_000);
    let n: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(300);
    let l = space::ladder("6.19.1", Family::Rewrite, space::Limits::LADDER);
    let t0 = Instant::now();
    for (i, c) in l.iter().take(n).enumerate() {
        let t = Instant::now();
        let m = mmcid_kmodel::KernelModel::new(c.clone()).unwrap();
        let o = mmcid_engine::Options { symmetry: true, stall_search: Some(200_000), max_states: Some(cap), ..Default::default() };
        let r = mmcid_engine::check(&m, &o, &mut mmcid_engine::NoObserver).unwrap();
        let st: Vec<String> = r.findings.iter().filter(|f| f.kind == mmcid_engine::FindingKind::Stall).map(|f| f.depth.to_string()).collect();
        println!("{i:4} {:<16} size {} states {:>7} complete {} depth {:>3} {:.3}s stalls {:?} total {:.1}s", space::short_name(c), space::size(c), r.unique_states, r.complete, r.max_depth, t.elapsed().as_secs_f64(), st, t0.elapsed().as_secs_f64());
    }
}
