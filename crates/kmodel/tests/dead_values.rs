//! Dead values (`Family::forget_dead`): the representative forgets values no step reads before
//! writing them again. The claim behind it is checked here directly, on every state of small
//! searches: a state and each of its variants that differ only in a forgotten value (the CPU a
//! dead task last ran on; 6.18's `migrate_from_cpu`, set to every other CPU; in the 7.0 family
//! the number in a per-CPU slot its CPU does not own, and the number of a CID a task that is
//! not running borrowed from a CPU) have the same
//! representative, the same enabled steps, the same firing properties and spinning CPUs, and
//! successors with the same representative: a bisimulation, so every verdict (stalls and live
//! locks included) is the same with and without forgetting. A control shows that the check
//! notices a value that is not dead (a queued task's CPU).

use std::collections::{HashSet, VecDeque};

use mmcid_cid::{Cid, TaskId};
use mmcid_engine::Model;
use mmcid_kmodel::state::{Sched, State};
use mmcid_kmodel::{Budgets, Config, Family, KernelModel, Lazy618, PerSwitch63, Rewrite};

/// Every variant of `s` with one dead task moved to another CPU.
fn dead_cpu_variants<F: Family>(s: &State<F>) -> Vec<State<F>> {
    let mut out = Vec::new();
    for i in 0..s.tasks.len() as TaskId {
        let t = s.task(i);
        if t.sched == Sched::Dead {
            for other in (0..s.np()).filter(|&o| o != t.cpu) {
                let mut v = *s;
                v.task_mut(i).cpu = other;
                out.push(v);
            }
        }
    }
    out
}

/// 6.18: also every variant with one task's `migrate_from_cpu` moved to another CPU.
fn lazy618_variants(s: &State<Lazy618>) -> Vec<State<Lazy618>> {
    let mut out = dead_cpu_variants(s);
    for i in 0..s.tasks.len() as TaskId {
        if let Some(c) = s.task(i).cid.migrate_from_cpu {
            for other in (0..s.np()).filter(|&o| o != c) {
                let mut v = *s;
                v.task_mut(i).cid.migrate_from_cpu = Some(other);
                out.push(v);
            }
        }
    }
    out
}

/// The 7.0 family: also every variant with the number of one slot its CPU does not own (no
/// ONCPU) changed, flags kept.
fn rewrite_variants(s: &State<Rewrite>) -> Vec<State<Rewrite>> {
    let mut out = dead_cpu_variants(s);
    out.extend(slot_variants(s));
    out.extend(borrowed_variants(s));
    out
}

/// Every variant of `s` with the number of a CID borrowed from a CPU (ONCPU) by an active task
/// that is not running with its switch done changed, flags kept.
fn borrowed_variants(s: &State<Rewrite>) -> Vec<State<Rewrite>> {
    let mut out = Vec::new();
    for i in 0..s.tasks.len() as TaskId {
        let t = s.task(i);
        if t.cid.active && t.sched != Sched::Dead && !s.on_cpu_settled(i) && t.cid.cid.on_cpu() {
            for n in 0..s.np() as u32 {
                let other = Cid::from_raw(t.cid.cid.raw() & !0x1f | n);
                if other != t.cid.cid {
                    let mut v = *s;
                    v.task_mut(i).cid.cid = other;
                    out.push(v);
                }
            }
        }
    }
    out
}

/// Every variant of `s` with the number of one slot its CPU does not own changed, flags kept.
fn slot_variants(s: &State<Rewrite>) -> Vec<State<Rewrite>> {
    let mut out = Vec::new();
    for m in 0..s.mms.len() as u8 {
        for cpu in 0..s.np() {
            let c = s.mm(m).slot(cpu);
            if c.on_cpu() {
                continue;
            }
            for n in 0..s.np() as u32 {
                let other = Cid::from_raw(c.raw() & !0x1f | n);
                if other != c {
                    let mut v = *s;
                    v.mm_mut(m).cid.set_slot(cpu, other);
                    out.push(v);
                }
            }
        }
    }
    out
}

/// Explores `model` breadth first (expanding up to `limit` states) and compares every state with
/// its variants under `canon` (the representative to test). Returns how many variants were
/// compared, or the first difference.
fn bisimulation<F: Family>(
    model: &KernelModel<F>,
    limit: usize,
    variants: impl Fn(&State<F>) -> Vec<State<F>>,
    canon: impl Fn(&State<F>) -> State<F>,
) -> Result<usize, String> {
    let init = *model.initial_state();
    let mut seen = HashSet::from([canon(&init)]);
    let mut queue = VecDeque::from([init]);
    let (mut compared, mut expanded) = (0, 0);
    let facts = |s: &State<F>| {
        let (mut steps, mut fired, mut spinning) = (Vec::new(), Vec::new(), Vec::new());
        model.actions(s, &mut steps);
        model.check(s, &mut fired);
        model.spinning(s, &mut spinning);
        (steps, fired, spinning)
    };
    while let Some(s) = queue.pop_front() {
        expanded += 1;
        let (steps, fired, spinning) = facts(&s);
        // The state with its dead values forgotten is one of its variants too: this catches a
        // forget_dead that forgets more than the variants vary.
        let mut forgotten = s;
        F::forget_dead(&model.params, &mut forgotten);
        for v in variants(&s)
            .into_iter()
            .chain((forgotten != s).then_some(forgotten))
        {
            compared += 1;
            if canon(&v) != canon(&s) {
                return Err(format!("different representatives: {s:?} vs {v:?}"));
            }
            let (vsteps, vfired, vspinning) = facts(&v);
            if (&vsteps, &vfired, &vspinning) != (&steps, &fired, &spinning) {
                return Err(format!(
                    "steps, properties or spins differ: {steps:?} vs {vsteps:?}"
                ));
            }
            for a in &steps {
                if canon(&model.next_state(&v, a)) != canon(&model.next_state(&s, a)) {
                    return Err(format!(
                        "successors by {a:?} differ beyond dead values: {:?} vs {:?} from {s:?} vs {v:?}",
                        model.next_state(&s, a),
                        model.next_state(&v, a)
                    ));
                }
            }
        }
        if expanded < limit {
            for a in &steps {
                let n = model.next_state(&s, a);
                if seen.insert(canon(&n)) {
                    queue.push_back(n);
                }
            }
        }
    }
    Ok(compared)
}

fn model<F: Family>(design: &str, cpus: u8, threads: u8, b: Budgets) -> KernelModel<F> {
    KernelModel::<F>::new(Config::new(design, cpus, threads, b))
        .unwrap()
        .with_reduction(true)
}

#[test]
fn forgetting_is_a_bisimulation_in_6_18() {
    // Three CPUs so that a task can have left either of two other CPUs; a fork, an exit and a
    // compaction scan so that migrations meet every kind of slot.
    let m = model::<Lazy618>(
        "6.18",
        3,
        2,
        Budgets {
            forks: 1,
            exits: 1,
            compactions: 1,
            ..Budgets::default()
        },
    );
    let n = bisimulation(&m, 20_000, lazy618_variants, |s| m.representative(s)).unwrap();
    assert!(n > 10_000, "only {n} variants compared");
}

#[test]
fn forgetting_is_a_bisimulation_in_6_3_and_7_0() {
    let b = Budgets {
        forks: 1,
        exits: 2,
        ..Budgets::default()
    };
    let m = model::<PerSwitch63>("6.3", 3, 2, b);
    let n = bisimulation(&m, 20_000, dead_cpu_variants, |s| m.representative(s)).unwrap();
    assert!(n > 1_000, "6.3: only {n} variants compared");
    for design in ["7.0", "7.0+fixes"] {
        let m = model::<Rewrite>(design, 3, 3, b);
        let n = bisimulation(&m, 20_000, rewrite_variants, |s| m.representative(s)).unwrap();
        assert!(n > 1_000, "{design}: only {n} variants compared");
    }
    // 6.19.1 guards drop_on_cpu but walks the thread list, dead threads included: only the slot
    // numbers are dead there.
    let m = model::<Rewrite>("6.19.1", 3, 3, b);
    let variants = |s: &State<Rewrite>| {
        let mut v = slot_variants(s);
        v.extend(borrowed_variants(s));
        v
    };
    let n = bisimulation(&m, 20_000, variants, |s| m.representative(s)).unwrap();
    assert!(n > 1_000, "6.19.1: only {n} variants compared");
    // 6.19 and 6.19-rc7 keep the slot numbers and the dead tasks' CPUs, not the borrowed numbers.
    for design in ["6.19", "6.19-rc7"] {
        let m = model::<Rewrite>(design, 3, 3, b);
        let n = bisimulation(&m, 20_000, borrowed_variants, |s| m.representative(s))
            .map_err(|e| format!("{design}: {e}"))
            .unwrap();
        assert!(n > 1_000, "{design}: only {n} variants compared");
    }
    // Per-CPU mode, a failing execve and a switch back, in every design of the family, with the
    // variants of the values each design forgets.
    let ef = Budgets {
        forks: 1,
        exits: 2,
        exec_fails: 1,
        ..Budgets::default()
    };
    for design in mmcid_kmodel::DESIGNS
        .iter()
        .filter(|d| d.family == mmcid_kmodel::FamilyKind::Rewrite)
    {
        let m = model::<Rewrite>(design.name, 2, 3, ef);
        let sw = m.params.sw;
        let variants = |s: &State<Rewrite>| {
            let mut v = borrowed_variants(s);
            if sw.task_walk == mmcid_cid::TaskWalk::UserList {
                v.extend(dead_cpu_variants(s));
            }
            if sw.drop_on_cpu_guarded {
                v.extend(slot_variants(s));
            }
            v
        };
        let n = bisimulation(&m, 5_000, variants, |s| m.representative(s))
            .map_err(|e| format!("{}: {e}", design.name))
            .unwrap();
        assert!(n > 500, "{}: only {n} variants compared", design.name);
    }
}

#[test]
fn a_hint_number_is_live_where_drop_on_cpu_is_unguarded() {
    // 6.19's drop_on_cpu clears whatever number the slot holds, ONCPU or not (the seed's
    // `clear_bit(0x2000000N)`): 6.19 keeps the numbers, and forgetting them by force must fail.
    // Matrix configuration #13: 6.19 breaks D1 at depth 4 there.
    let mut cfg = Config::new(
        "6.19",
        4,
        2,
        Budgets {
            exits: 1,
            affinity: 1,
            ..Budgets::default()
        },
    );
    cfg.allowed = Some(1);
    let m = KernelModel::<Rewrite>::new(cfg).unwrap().with_reduction(true);
    let forced = |s: &State<Rewrite>| {
        let mut f = *s;
        for stored in f.mms.stored_mut() {
            stored.forget_hint_numbers();
        }
        m.representative(&f)
    };
    let r = bisimulation(&m, 200_000, rewrite_variants, forced);
    assert!(r.is_err(), "no difference found in {r:?} comparisons");
}

#[test]
fn the_check_notices_a_value_that_is_not_dead() {
    // Control: the CPU of a task that is not dead is read (by its switch-in, its migrations):
    // treating it as dead must fail the check.
    let m = model::<Rewrite>(
        "7.0",
        2,
        2,
        Budgets {
            forks: 1,
            exits: 1,
            ..Budgets::default()
        },
    );
    let queued_cpu_variants = |s: &State<Rewrite>| {
        let mut out = Vec::new();
        for i in 0..s.tasks.len() as TaskId {
            let t = s.task(i);
            if t.sched == Sched::Runnable {
                let mut v = *s;
                v.task_mut(i).cpu = 1 - t.cpu;
                out.push(v);
            }
        }
        out
    };
    let forced = |s: &State<Rewrite>| {
        let mut f = *s;
        for i in 0..f.tasks.len() as TaskId {
            if f.task(i).sched == Sched::Runnable {
                f.task_mut(i).cpu = 0;
            }
        }
        m.representative(&f)
    };
    let r = bisimulation(&m, 20_000, queued_cpu_variants, forced);
    assert!(r.is_err(), "no difference found in {r:?} comparisons");
}

#[test]
fn forgetting_changes_no_verdict_and_saves_states() {
    use mmcid_kmodel::checker::{CheckOptions, CheckOutcome, Liveness, run};
    // 6.18 with two threads on three CPUs: little task symmetry to speak of, so most of the
    // saving is the forgotten CPU numbers.
    let cfg = Config::new(
        "6.18",
        3,
        2,
        Budgets {
            exits: 1,
            ..Budgets::default()
        },
    );
    let check = |symmetry| {
        run(
            &cfg,
            &CheckOptions {
                symmetry,
                liveness: Liveness::Full,
                reduction: true,
                ..CheckOptions::default()
            },
            &mut mmcid_engine::NoObserver,
        )
        .unwrap()
    };
    let (on, off) = (check(true), check(false));
    assert!(on.complete && off.complete);
    let verdicts = |o: &CheckOutcome| {
        o.properties
            .iter()
            .map(|p| (p.property, p.status, p.depth))
            .collect::<Vec<_>>()
    };
    assert_eq!(verdicts(&on), verdicts(&off));
    assert!(
        on.unique_states * 2 < off.unique_states,
        "{} vs {}",
        on.unique_states,
        off.unique_states
    );
}
