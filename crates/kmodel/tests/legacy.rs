//! The pre-rewrite designs (6.3, 6.18; designs.md E) in the kernel model: small configurations
//! check without engine errors, and what the checker finds at a small configuration of each.

use mmcid_kmodel::checker::{self, CheckOptions, CheckOutcome, Liveness};
use mmcid_kmodel::scenario::{self, Scenario};
use mmcid_kmodel::{Budgets, Config, KernelModel, Lazy618};

fn run(cfg: &Config, liveness: Liveness) -> CheckOutcome {
    let opts = CheckOptions {
        liveness,
        // The state counts below are pinned: one kernel step per transition.
        reduction: false,
        ..CheckOptions::default()
    };
    checker::run(cfg, &opts, &mut mmcid_engine::NoObserver).unwrap()
}

fn status<'a>(o: &'a CheckOutcome, p: &str) -> &'a str {
    o.properties
        .iter()
        .find(|s| s.property.id() == p)
        .unwrap()
        .status
        .as_str()
}

fn violated(o: &CheckOutcome) -> Vec<&str> {
    o.violations.iter().map(|v| v.property.as_str()).collect()
}

#[test]
fn small_configs_check_without_engine_errors() {
    let mixes = [
        Budgets {
            forks: 1,
            exits: 1,
            ..Budgets::default()
        },
        Budgets {
            vforks: 1,
            execs: 1,
            exits: 1,
            ..Budgets::default()
        },
        Budgets {
            forks: 1,
            fork_fails: 1,
            exec_fails: 1,
            ..Budgets::default()
        },
    ];
    for design in ["6.3", "6.18"] {
        for b in mixes {
            let o = run(&Config::new(design, 2, 2, b), Liveness::Full);
            assert!(o.complete, "{design} {b:?}");
            assert!(o.unique_states > 100, "{design} {b:?}: {}", o.unique_states);
            assert!(o.violations.is_empty(), "{design} {b:?}: {:?}", violated(&o));
            // The rewrite's properties do not apply and hold vacuously.
            for p in ["I5", "I6", "I7", "I8", "I8v", "W"] {
                assert_eq!(status(&o, p), "holds", "{design} {p}");
            }
        }
    }
    // 6.18 with affinity growth and with the compaction scan.
    let mut cfg = Config::new(
        "6.18",
        2,
        2,
        Budgets {
            forks: 1,
            exits: 1,
            affinity: 1,
            ..Budgets::default()
        },
    );
    cfg.allowed = Some(1);
    let o = run(&cfg, Liveness::Full);
    assert!(o.complete && o.violations.is_empty(), "{:?}", violated(&o));
}

/// 6.3 at 2 CPUs, 3 threads (more threads than CIDs), a fork and two exits: every property holds
/// and nothing spins. The allocator cannot hand out −1 here: a task holds a CID exactly while it
/// is switched in (E.1), so at most `np` bits are ever set and the lowest free bit is always
/// below `nr_cpu_ids` when a CPU switches a task in.
#[test]
fn v6_3_holds_at_a_small_config() {
    let cfg = Config::new(
        "6.3",
        2,
        3,
        Budgets {
            forks: 1,
            exits: 2,
            ..Budgets::default()
        },
    );
    let o = run(&cfg, Liveness::Full);
    assert!(o.complete);
    assert_eq!(o.unique_states, 37066); // 44,394 before dead tasks' CPUs were forgotten
    assert!(o.violations.is_empty(), "{:?}", violated(&o));
    assert_eq!(o.no_stall, Some(true));
    assert_eq!(status(&o, "R4"), "not_reached", "6.3's allocator never spins");
}

/// 6.18 at 2 CPUs, 2 threads, a fork, an exit and one compaction scan: every property holds, and
/// a CPU really busy-waits in `mm_cid_get` (R4) without ever stalling: a remote clear that has
/// taken CID 1 out of CPU1's slot but not yet cleared its bit leaves CPU1's next switch-in with no
/// free bit below `nr_cpus_allowed` = 2 (E.0.8: "the fallback spin only waits for in-flight
/// steals/clears"); the clearing task runs with IRQs off on the other CPU and drops the bit in its
/// next step.
#[test]
fn v6_18_spins_only_on_in_flight_clears_and_holds() {
    let cfg = Config::new(
        "6.18",
        2,
        2,
        Budgets {
            forks: 1,
            exits: 1,
            compactions: 1,
            ..Budgets::default()
        },
    );
    let o = run(&cfg, Liveness::Full);
    assert!(o.complete);
    assert_eq!(o.unique_states, 172509); // 196,090 before dead values were forgotten
    assert!(o.violations.is_empty(), "{:?}", violated(&o));
    assert_eq!(o.no_stall, Some(true));
    assert_eq!(status(&o, "R4"), "reached");
}

/// The scenario syntax reaches the 6.18-only steps by their kernel names.
#[test]
fn v6_18_scenario_names() {
    let text = "design 6.18\ncpus 2\nthreads 2\nbudget forks=0 exits=1 compactions=1\n\
                CPU1 schedule idle\n\
                T0 task_work mm_cid_work\n\
                T0 sched_mm_cid_remote_clear CPU1\n\
                T0 remote_clear_unset CPU1\n\
                CPU1 schedule T1\n\
                CPU1 mm_cid_get\n\
                T0 __mm_cid_put CPU1\n\
                CPU1 mm_cid_get\n\
                CPU1 mm_cid_get\n";
    let sc = Scenario::parse(text).unwrap();
    let cfg = sc.config(None);
    let model = KernelModel::<Lazy618>::new(cfg.clone()).unwrap();
    let (steps, end) = scenario::run(&model.params, model.initial_state(), &sc).unwrap();
    assert_eq!(steps.len(), 9);
    // CPU1 got CID 1 back once the clear dropped it; the written trace replays.
    let snap = mmcid_kmodel::trace::snapshot(&end);
    let t1 = &snap.tasks[1];
    assert_eq!(
        (t1.cid, t1.last_mm_cid.map(|c| c.raw()), t1.cpu, t1.state),
        (1, Some(1), 1, mmcid_kmodel::trace::TaskState::Running),
        "{snap:?}"
    );
    assert!(snap.cpus.iter().all(|c| c.mm_cid_get.is_none()), "{snap:?}");
    let written = scenario::write(&cfg, &model.params, model.initial_state(), &steps, "t");
    assert!(written.contains("compactions=1"), "{written}");
    let again = Scenario::parse(&written).unwrap();
    let (steps2, _) = scenario::run(&model.params, model.initial_state(), &again).unwrap();
    assert_eq!(steps, steps2);
}
