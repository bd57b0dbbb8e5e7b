//! The 7.0 family's checks of [`crate::invariants::Property`] (when each applies: [`crate::invariants`]).

use mmcid_cid::{Mode, SchedinSpin, TaskId};

use crate::family::Rewrite;
use crate::invariants::{Fired, Property as P};
use crate::ops::Params;
use crate::rewrite::cid_op::CidOp;
use crate::state::*;

/// Appends the indices of the properties that fire in `s`.
///
/// Runs once per explored state, so every task is unpacked once up front (the checks below scan
/// the tasks about ten times) and the bit owners are counted in masks rather than an array.
pub fn check(p: &Params, s: &State<Rewrite>, out: &mut Vec<usize>) {
    let np = s.np() as u32;
    let mut fired = Fired::default();
    let nt = s.tasks.len();
    // Every state has its initial task (tasks are never removed).
    let Some(first) = s.tasks.iter().next() else {
        return fired.push_to(out);
    };
    let mut all = [first; MAX_TASKS];
    for (x, t) in all.iter_mut().zip(s.tasks.iter()) {
        *x = t;
    }
    let all = &all[..nt];
    // Is the task's context switch complete (`State::on_cpu_settled` on the unpacked task)?
    let settled = |t: &Task<Rewrite>| t.sched == Sched::Running && s.cpus[t.cpu as usize].spin().is_none();
    for (mi, mm) in s.mms.iter().enumerate() {
        let m = mi as MmId;
        let c = &mm.cid;
        let tasks_of = || {
            all.iter()
                .enumerate()
                .filter(move |(_, t)| t.mm == Some(m))
                .map(|(i, t)| (i as TaskId, t))
        };
        // F1's fix (fix-execve-cid) hides current from schedin while its own after_execve
        // registration runs: a counted user on user_list with `active` clear, by design.
        let hidden = |i: TaskId, t: &Task<Rewrite>| {
            p.sw.fix_execve_cid
                && !t.cid.active
                && matches!(
                    t.op,
                    Op::Exec {
                        at: ExecAt::Return,
                        ..
                    }
                )
                && c.user_list.as_slice().contains(&i)
        };
        // I1: unique among running tasks of the mm (switch complete, active, holding a CID).
        let mut seen = 0u64;
        for (_, t) in tasks_of() {
            if t.cid.active && settled(t) && !t.cid.cid.is_unset() {
                let v = t.cid.cid.index();
                if v < 64 {
                    fired.set(P::I1, seen & (1 << v) != 0);
                    seen |= 1 << v;
                }
            }
        }
        // I2: a task in user space holds a CID below np.
        for (_, t) in tasks_of() {
            if t.cid.active && settled(t) && t.op == Op::User && t.cid_op.is_none() {
                let v = t.cid.cid;
                fired.set(P::I2, v.is_unset() || v.user_value() >= np);
            }
        }
        // I5
        fired.set(
            P::I5,
            c.pcpu
                .iter()
                .take(np as usize)
                .copied()
                .chain(tasks_of().map(|(_, t)| t.cid.cid))
                .any(|x| x.on_cpu() && x.in_transit()),
        );
        // I8
        let active = tasks_of().filter(|&(i, t)| t.cid.active || hidden(i, t)).count();
        fired.set(
            P::I8,
            c.users as usize != c.user_list.len() || active != c.users as usize,
        );
        // I8v
        fired.set(
            P::I8v,
            c.user_list
                .as_slice()
                .iter()
                .any(|&t| all[t as usize].thread_pos == 0),
        );
        // D1, W
        fired.set(
            P::D1,
            c.faults.out_of_range.is_some() || c.faults.already_clear.is_some(),
        );
        fired.set(P::W, c.faults.warn.is_some());
        if c.users == 0 {
            continue;
        }
        // I4: owners per bit: tasks holding a plain or TRANSIT value, CPUs holding an ONCPU value;
        // `once` has the bits owned at least once, `twice` those owned more than once.
        let (mut once, mut twice) = (0u64, 0u64);
        let mut own = |b: u32| {
            let bit = 1u64 << b;
            twice |= once & bit;
            once |= bit;
        };
        let mut bad = false;
        for (i, t) in tasks_of() {
            let v = t.cid.cid;
            if !v.is_unset() && !v.on_cpu() {
                if !t.cid.active && !hidden(i, t) {
                    bad = true; // an exited or inactive task still owns a CID
                }
                if v.index() < 64 {
                    own(v.index());
                } else {
                    bad = true;
                }
            }
        }
        for slot in c.pcpu.iter().take(np as usize) {
            if slot.on_cpu() {
                if slot.index() < 64 {
                    own(slot.index());
                } else {
                    bad = true;
                }
            }
        }
        // 6.19-rc7: a schedin between get_cid and its second mode load holds the CID it just
        // took in its continuation; it owns that bit unless the CID is the task's own plain one or
        // its CPU's ONCPU one (those owners are counted above).
        for cpu in 0..s.np() {
            if let Some(SchedinSpin::TransitLoad { tc }) = s.cpus[cpu as usize].spin() {
                let curr = all.iter().position(|t| t.sched == Sched::Running && t.cpu == cpu);
                let task_holds = curr.is_some_and(|t| all[t].cid.cid == tc);
                if curr.and_then(|t| all[t].mm) == Some(m)
                    && c.slot(cpu) != tc.add_cpu()
                    && !task_holds
                    && tc.index() < 64
                {
                    own(tc.index());
                }
            }
        }
        // Every set bit owned exactly once, no clear bit owned.
        bad |= twice != 0 || once != c.bitmap.bits();
        fired.set(P::I4, bad);
        // I6 / I7
        let walking = all
            .iter()
            .any(|t| s.op_mm(t) == Some(m) && t.cid_op.is_some_and(CidOp::is_walk));
        let transit_expected = if p.sw.one_word_mode {
            walking
        } else {
            // walking towards per-task
            all.iter()
                .any(|t| s.op_mm(t) == Some(m) && matches!(t.cid_op, Some(CidOp::CpusToTasks { .. })))
        };
        fired.set(P::I7, c.mode.in_transit() != transit_expected);
        if !walking && !c.mode.in_transit() {
            let cpu_owned = c.pcpu.iter().take(np as usize).any(|x| x.on_cpu());
            let task_owned = tasks_of().any(|(_, t)| t.cid.active && t.cid.cid.on_task());
            fired.set(
                P::I6,
                (c.mode == Mode::PER_TASK && cpu_owned) || (c.mode == Mode::PER_CPU && task_owned),
            );
        }
        // reachability
        fired.set(P::R1, c.mode.percpu());
        fired.set(P::R2, c.mode == Mode::TO_TASK);
        fired.set(
            P::R3,
            tasks_of().any(|(_, t)| t.cid.cid.in_transit() && settled(t)),
        );
        fired.set(P::R5, mm.irq_work.is_some());
    }
    fired.set(
        P::R4,
        s.cpus.iter().any(|c| c.spin().is_some_and(|x| x.spins()))
            || all.iter().any(|t| t.cid_op.is_some_and(CidOp::is_spin)),
    );
    fired.push_to(out);
}
