use mmcid_engine::{FindingKind, Model, NoObserver, Options, check};
use mmcid_kmodel::{Budgets, Config, KernelModel, trace};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let design = a.get(1).cloned().unwrap_or("7.0".into());
    let n = |i: usize, d: u8| a.get(i).map(|x| x.parse().unwrap()).unwrap_or(d);
    let (cpus, threads, forks, exits) = (n(2, 2), n(3, 2), n(4, 1), n(5, 0));
    let liveness = a.get(6).map(|x| x == "live").unwrap_or(false);
    let cfg = Config::new(
        &design,
        cpus,
        threads,
        Budgets {
            forks,
            exits,
            ..Default::default()
        },
    );
    let m = KernelModel::new(cfg).unwrap();
    let opts = Options {
        symmetry: true,
        liveness,
        ..Default::default()
    };
    let r = check(&m, &opts, &mut NoObserver).unwrap();
    let props = m.properties();
    println!(
        "states {} transitions {} depth {} secs {:.2}",
        r.unique_states, r.transitions, r.max_depth, r.seconds
    );
    for f in &r.findings {
        let name = f
            .property
            .map(|p| props[p].name.to_string())
            .unwrap_or(format!("{:?}", f.kind));
        println!("{:?} {} depth {} agent {:?}", f.kind, name, f.depth, f.agent);
        if !matches!(f.kind, FindingKind::Sometimes) {
            let st = trace::describe(&m.params, m.initial_state(), &f.trace.actions);
            print!(
                "{}",
                trace::render_columns(m.np(), m.initial_state(), &st, f.trace.cycle_start, false)
            );
            let fin = mmcid_engine::trace_states(&m, &f.trace).unwrap();
            print!("{}", trace::state_report(fin.last().unwrap()));
            for l in trace::bit_owners(fin.last().unwrap(), 0) {
                println!("  {l}");
            }
        }
    }
}
