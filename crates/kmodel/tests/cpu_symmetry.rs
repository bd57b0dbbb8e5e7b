//! CPU symmetry (`KernelModel::with_cpu_symmetry`, `symmetry::cpu_canonical`): in 6.18, renaming the
//! CPUs of a state consistently gives a state that behaves the same up to that renaming. The
//! claim is checked here directly, on every state of small searches and for every permutation of
//! the CPUs: the renamed state has the same firing properties, its spinning CPUs are the renamed
//! ones, and its successors are exactly the renamed successors (an automorphism of the transition
//! system, so every invariant keeps its verdict and its shortest depth). A control shows that
//! the check notices a configuration that is not symmetric (6.18's compaction scan visits CPUs
//! in ascending order), and the checker is run with and without CPU symmetry on configurations
//! that finish in seconds: same verdicts and depths, fewer states.

use std::collections::{HashSet, VecDeque};

use mmcid_cid::{CpuId, MAX_CPUS};
use mmcid_engine::{Model, NoObserver};
use mmcid_kmodel::checker::{CheckOptions, CheckOutcome, Liveness, run_model};
use mmcid_kmodel::state::State;
use mmcid_kmodel::symmetry::cpus_permuted;
use mmcid_kmodel::{Budgets, Config, KernelModel, Lazy618};

/// Every permutation of `0..n` as `old[new]`.
fn permutations(n: usize) -> Vec<[CpuId; MAX_CPUS]> {
    fn go(prefix: &mut Vec<CpuId>, n: usize, out: &mut Vec<[CpuId; MAX_CPUS]>) {
        if prefix.len() == n {
            let mut p = [0; MAX_CPUS];
            for (i, o) in p.iter_mut().enumerate() {
                *o = prefix.get(i).copied().unwrap_or(i as CpuId);
            }
            out.push(p);
            return;
        }
        for c in 0..n as CpuId {
            if !prefix.contains(&c) {
                prefix.push(c);
                go(prefix, n, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(&mut Vec::new(), n, &mut out);
    out
}

fn model(cpus: u8, threads: u8, b: Budgets) -> KernelModel<Lazy618> {
    KernelModel::<Lazy618>::new(Config::new("6.18", cpus, threads, b))
        .unwrap()
        .with_reduction(true)
}

/// Explores `model` breadth first (expanding up to `limit` states, task symmetry only) and
/// checks every state against each renaming of its CPUs. Returns how many (state, renaming)
/// pairs were compared, or the first difference.
fn automorphism(model: &KernelModel<Lazy618>, limit: usize) -> Result<usize, String> {
    let np = model.np() as usize;
    let perms = permutations(np);
    let init = *model.initial_state();
    let mut seen = HashSet::from([model.representative(&init)]);
    let mut queue = VecDeque::from([init]);
    let (mut compared, mut expanded) = (0, 0);
    let successors = |s: &State<Lazy618>| {
        let mut steps = Vec::new();
        model.actions(s, &mut steps);
        steps.iter().map(|a| model.next_state(s, a)).collect::<Vec<_>>()
    };
    while let Some(s) = queue.pop_front() {
        expanded += 1;
        let mut fired = Vec::new();
        model.check(&s, &mut fired);
        let mut spinning = Vec::new();
        model.spinning(&s, &mut spinning);
        let next = successors(&s);
        for old in &perms {
            let mut map = [0u16; MAX_CPUS];
            for (new, &o) in old[..np].iter().enumerate() {
                map[o as usize] = new as u16;
            }
            let v = cpus_permuted(&s, old);
            compared += 1;
            let mut vfired = Vec::new();
            model.check(&v, &mut vfired);
            if vfired != fired {
                return Err(format!(
                    "properties {fired:?} vs {vfired:?} under {old:?} in {s:?}"
                ));
            }
            let mut vspinning = Vec::new();
            model.spinning(&v, &mut vspinning);
            let mut expected: Vec<u16> = spinning.iter().map(|&c| map[c as usize]).collect();
            expected.sort();
            vspinning.sort();
            if vspinning != expected {
                return Err(format!(
                    "spinning {spinning:?} renamed is not {vspinning:?} in {s:?}"
                ));
            }
            let got: HashSet<State<Lazy618>> = successors(&v).into_iter().collect();
            let want: HashSet<State<Lazy618>> = next.iter().map(|n| cpus_permuted(n, old)).collect();
            if got != want {
                let extra = got.difference(&want).next();
                let missing = want.difference(&got).next();
                return Err(format!(
                    "successors differ under {:?} from {s:?}: extra {extra:?}, missing {missing:?}",
                    &old[..np]
                ));
            }
        }
        if expanded < limit {
            for n in next {
                if seen.insert(model.representative(&n)) {
                    queue.push_back(n);
                }
            }
        }
    }
    Ok(compared)
}

#[test]
fn renaming_cpus_is_an_automorphism_of_6_18() {
    // Three CPUs (six renamings); forks, a vfork, exits, a failing fork, execs (one failing):
    // migrations, steals, lazy puts and the forward-progress lock all occur.
    for b in [
        Budgets {
            forks: 1,
            exits: 1,
            ..Budgets::default()
        },
        Budgets {
            vforks: 1,
            execs: 1,
            exec_fails: 1,
            ..Budgets::default()
        },
        Budgets {
            forks: 2,
            fork_fails: 1,
            ..Budgets::default()
        },
    ] {
        let m = model(3, 2, b);
        assert!(m.cpu_symmetric(), "{b:?}");
        let n = automorphism(&m, 2_500)
            .map_err(|e| format!("{b:?}: {e}"))
            .unwrap();
        assert!(n > 10_000, "{b:?}: only {n} comparisons");
    }
}

#[test]
fn the_check_notices_a_configuration_that_is_not_symmetric() {
    // Control: 6.18's compaction scan considers CPUs in ascending order (it may skip any, but
    // once past a CPU it does not come back), so renaming CPUs in the middle of a scan changes
    // what it can still clear. CPU symmetry is not granted there, and the check finds why.
    let m = model(
        3,
        2,
        Budgets {
            forks: 1,
            compactions: 1,
            ..Budgets::default()
        },
    );
    assert!(!m.cpu_symmetric());
    let r = automorphism(&m, 50_000);
    assert!(r.is_err(), "no difference found in {r:?} comparisons");
}

#[test]
fn cpu_symmetry_changes_no_verdict_and_saves_states() {
    let verdicts = |o: &CheckOutcome| {
        o.properties
            .iter()
            .map(|p| (p.property, p.status, p.depth))
            .collect::<Vec<_>>()
    };
    // The last one is matrix configuration #3 without a fork, cut at depth 21: R4 (a CPU
    // busy-waits in mm_cid_get) is first reached there, so the search on CPU classes must still
    // find it at the same shortest depth.
    for (cpus, b, max_depth) in [
        (
            3,
            Budgets {
                exits: 1,
                ..Budgets::default()
            },
            None,
        ),
        (
            2,
            Budgets {
                forks: 1,
                vforks: 1,
                exits: 1,
                ..Budgets::default()
            },
            None,
        ),
        (
            3,
            Budgets {
                forks: 1,
                ..Budgets::default()
            },
            Some(21),
        ),
    ] {
        let opts = CheckOptions {
            symmetry: true,
            liveness: Liveness::Stalls,
            reduction: true,
            max_depth,
            ..CheckOptions::default()
        };
        let m = model(cpus, 2, b);
        let on = run_model(&m.clone().with_cpu_symmetry(true), &opts, &mut NoObserver).unwrap();
        let off = run_model(&m.with_cpu_symmetry(false), &opts, &mut NoObserver).unwrap();
        assert_eq!(on.complete, max_depth.is_none());
        assert_eq!(verdicts(&on), verdicts(&off), "c{cpus} {b:?}");
        assert_eq!(on.no_stall, off.no_stall);
        if max_depth.is_some() {
            let r4 = on.properties.iter().find(|p| p.property.id() == "R4").unwrap();
            assert_eq!(r4.depth, Some(21));
        }
        // Less than the 2 or 6 renamings: on two CPUs each CPU keeps the CID it started with
        // while two tasks use the mm (a migration steals only into an unset slot), so the
        // renamed twin of most states is not reachable.
        assert!(
            on.unique_states < off.unique_states,
            "c{cpus} {b:?}: {} vs {}",
            on.unique_states,
            off.unique_states
        );
    }
}

#[test]
fn every_renaming_of_a_state_has_the_same_representative() {
    // CPUs whose contents tie (two idle CPUs with the same slots, tasks that differ only in
    // their place in a thread list) are ordered by trying each arrangement: the representative
    // must not depend on which renaming of a class the search met first, or the count would
    // depend on the order of exploration (one process against several in `mmcid dist`).
    let m = model(
        3,
        2,
        Budgets {
            forks: 1,
            exits: 1,
            ..Budgets::default()
        },
    )
    .with_cpu_symmetry(true);
    let init = *m.initial_state();
    let mut seen = HashSet::from([m.representative(&init)]);
    let mut queue = VecDeque::from([init]);
    let (mut compared, mut expanded) = (0, 0);
    while let Some(s) = queue.pop_front() {
        expanded += 1;
        let r = m.representative(&s);
        for old in permutations(3) {
            compared += 1;
            assert_eq!(
                m.representative(&cpus_permuted(&s, &old)),
                r,
                "{s:?} under {old:?}"
            );
        }
        if expanded < 3_000 {
            let mut steps = Vec::new();
            m.actions(&s, &mut steps);
            for a in &steps {
                let n = m.next_state(&s, a);
                if seen.insert(m.representative(&n)) {
                    queue.push_back(n);
                }
            }
        }
    }
    assert!(compared > 10_000, "only {compared} comparisons");
}
