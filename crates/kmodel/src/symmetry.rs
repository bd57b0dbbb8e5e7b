//! Symmetry reduction: tasks are interchangeable up to renaming.
//!
//! Task ids are names: nothing in the model's semantics depends on their numeric order (new tasks
//! take the next free index; every order that matters — thread lists, the process list,
//! `user_list` — is stored explicitly as a list). So renaming the tasks consistently everywhere
//! gives a state that behaves identically. The representative sorts tasks by everything they
//! carry except the names of other tasks (a stable sort, so ties keep their order) and renames
//! all references. Two symmetric states may still get different representatives when their tasks
//! tie on that key but differ in references; that only costs reduction, never soundness.
//!
//! References to tasks outside the tasks themselves (thread lists, and whatever the family keeps:
//! `user_list`, a 6.18 CPU's migration in progress) are renamed too ([`Family::rename`]).
//!
//! Not reduced: CPUs (the CPU→task walk visits them in ascending order, and affinities and slots
//! name them) and mms (created in order by execve). CID numbers are never permuted: allocation
//! takes the lowest free bit.

use mmcid_cid::TaskId;

use crate::family::Family;
use crate::state::*;

/// The canonical representative of `s`'s class under task renaming.
pub fn representative<F: Family>(s: &State<F>) -> State<F> {
    let n = s.tasks.len();
    let mut keys = [Task::<F>::default(); MAX_TASKS];
    for (k, t) in keys.iter_mut().zip(s.tasks.iter()) {
        *k = rename_task(t, &|_| 0);
    }
    if keys[..n].is_sorted() {
        return *s;
    }
    let mut order = [0usize; MAX_TASKS];
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    let order = &mut order[..n];
    order.sort_by_key(|&i| keys[i]);
    let mut map = [0 as TaskId; MAX_TASKS];
    for (new, &old) in order.iter().enumerate() {
        map[old] = new as TaskId;
    }
    let r = |t: TaskId| map[t as usize];
    let mut out = *s;
    for (new, &old) in order.iter().enumerate() {
        out.tasks[new] = rename_task(&s.tasks[old], &r);
    }
    for g in out.groups.iter_mut() {
        for t in g.threads.iter_mut() {
            *t = r(*t);
        }
    }
    F::rename(&mut out, &r);
    out
}

/// `t` with every reference to another task renamed through `r`.
fn rename_task<F: Family>(t: &Task<F>, r: &dyn Fn(TaskId) -> TaskId) -> Task<F> {
    let mut t = *t;
    t.op = match t.op {
        Op::Fork { child, vfork, at } => Op::Fork {
            child: r(child),
            vfork,
            at,
        },
        Op::VforkWait { child } => Op::VforkWait { child: r(child) },
        o => o,
    };
    t.cid_op = t.cid_op.map(|c| F::rename_op(c, r));
    t.vfork_parent = t.vfork_parent.map(r);
    t
}
