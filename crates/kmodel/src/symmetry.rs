//! Symmetry reduction: tasks are interchangeable up to renaming (and, in 6.18, CPUs).
//!
//! Task ids are names: nothing in the model's semantics depends on their numeric order (new tasks
//! take the next free index; every order that matters — thread lists (per-task positions), the process list,
//! `user_list` — is stored explicitly as a list). So renaming the tasks consistently everywhere
//! gives a state that behaves identically. The representative sorts tasks by everything they
//! carry except the names of other tasks (a stable sort, so ties keep their order) and renames
//! all references. Two symmetric states may still get different representatives when their tasks
//! tie on that key but differ in references; that only costs reduction, never soundness.
//!
//! References to tasks outside the tasks themselves (whatever the family keeps:
//! `user_list`, a 6.18 CPU's migration in progress) are renamed too ([`Family::rename`]).
//!
//! Dead values: before sorting, the representative also forgets the values of a state that no
//! step reads before writing them again ([`Family::forget_dead`]: in the 7.0 family the number in
//! a per-CPU slot its CPU does not own and the number a task off its CPU borrowed from a CPU; the
//! CPU a dead task last ran on, except in 6.19.x whose thread-list walk visits dead tasks; in 6.18
//! which CPU a task last migrated from). States that differ only there are bisimilar, so this is
//! a reduction of the same kind: one state per class is expanded, the concrete one, and traces
//! show real values.
//!
//! CPUs are renamed too where that is sound ([`cpu_canonical`], [`Params::cpu_symmetry`]): in 6.18,
//! whose code treats every CPU alike, in configurations that do too (every CPU allowed, no
//! affinity change, no compaction scan), and not with the whole-graph live-lock analysis,
//! since it renames agents. Not in the 7.0 family: its CPU→task walk visits CPUs in ascending
//! order. Never renamed: mms (created in order by execve) and CID numbers (allocation takes the
//! lowest free bit).

use mmcid_cid::{CpuId, CpuMask, MAX_CPUS, TaskId};

use crate::family::Family;
use crate::ops::Params;
use crate::state::*;
use crate::tasks::StoredTask;

/// The canonical representative of `s`'s class under task renaming, with its dead values
/// forgotten ([`Family::forget_dead`]).
pub fn representative<F: Family>(p: &Params, s: &State<F>) -> State<F> {
    canonical(p, s).unwrap_or(*s)
}

/// [`representative`], or `None` when `s` is its own representative (no dead value to forget,
/// tasks in canonical order: the common case, checked without copying anything). Dead values are
/// forgotten first, so that the sort sees tasks as the representative will have them.
#[inline]
pub fn canonical<F: Family>(p: &Params, s: &State<F>) -> Option<State<F>> {
    if p.cpu_symmetry {
        return cpu_canonical(p, s);
    }
    if F::has_dead(p, s) {
        let mut f = *s;
        F::forget_dead(p, &mut f);
        return Some(canonical_order(&f).map_or(f, |order| permuted(&f, &order)));
    }
    canonical_order(s).map(|order| permuted(s, &order))
}

/// CPU symmetry: the representative of `s`'s class under renaming CPUs and tasks, with dead values
/// forgotten ([`canonical`] when [`Params::cpu_symmetry`]), or `None` when `s` is its own. Dead
/// values are forgotten, the CPUs sorted by their content and renamed, dead values forgotten
/// again (renaming CPUs moves the fixed "CPU0" of a forgotten CPU), then tasks sorted. It works
/// on one copy of the state (a 6.18 state is 1 KB, and copies were a fifth of the search's
/// instructions), none when `s` is its own representative.
///
/// Where the family's code and the configuration treat every CPU alike
/// ([`crate::KernelModel::with_cpu_symmetry`]), renaming CPUs consistently (the CPUs' own
/// states, each task's CPU and affinity, every slot, lock holder and remembered CPU) gives a
/// state that behaves the same up to the renaming, and every property is about all CPUs at once.
/// So, like task renaming, it keeps every invariant's verdict and shortest depth; unlike it, it
/// renames agents (a stall of CPU 1 may be found as one of CPU 2), which the engine knows from
/// [`mmcid_engine::Model::symmetry_preserves_agents`]. On three CPUs it folds up to 3! = 6
/// states into one: in 6.18 the slots of a process hold its CIDs in every permutation over
/// the CPUs.
///
/// A CPU's content is what the family holds about it ([`Family::cpu_key`]) and the tasks on it
/// (their sort keys without the CPU; dead tasks left out, their CPU is a dead value). CPUs whose
/// contents tie (two idle CPUs with the same slots, or tasks that differ only in their place
/// in a thread list) are ordered by trying each arrangement and keeping the representative with
/// the smallest encoding, so that the representative does not depend on which member of the
/// class the search met first (the same counts on one process and on several, `mmcid dist`).
pub fn cpu_canonical<F: Family>(p: &Params, s: &State<F>) -> Option<State<F>> {
    let forgotten = F::has_dead(p, s).then(|| {
        let mut c = *s;
        F::forget_dead(p, &mut c);
        c
    });
    let base = forgotten.as_ref().unwrap_or(s);
    let keys = cpu_keys(base);
    let np = base.np() as usize;
    let ties = has_ties(&keys[..np]);
    let mut c = if !ties && keys[..np].is_sorted() {
        // Already in order, no tie: only the tasks may move.
        let Some(f) = forgotten else {
            return canonical_order(s).map(|order| permuted(s, &order));
        };
        f
    } else {
        let mut best: Option<(Vec<u8>, State<F>)> = None;
        for_each_order(&keys[..np], &mut |old| {
            let mut c = *base;
            rename_cpus(&mut c, old);
            finish(p, &mut c);
            if !ties {
                best = Some((Vec::new(), c));
                return;
            }
            let mut bytes = Vec::with_capacity(128);
            crate::encode::encode(&c, &mut bytes);
            if best.as_ref().is_none_or(|(b, _)| bytes < *b) {
                best = Some((bytes, c));
            }
        });
        return best.map(|(_, c)| c);
    };
    finish(p, &mut c);
    Some(c)
}

/// The end of a representative: dead values forgotten (again), tasks sorted.
fn finish<F: Family>(p: &Params, c: &mut State<F>) {
    if F::has_dead(p, c) {
        F::forget_dead(p, c);
    }
    if let Some(order) = canonical_order(c) {
        permute_in_place(c, &order);
    }
}

/// Do two CPUs have the same key?
fn has_ties(keys: &[(u64, u64)]) -> bool {
    (0..keys.len()).any(|i| keys[i + 1..].contains(&keys[i]))
}

/// Calls `f` with every order (`old[new]`) that sorts the CPUs by `keys`: one when no two CPUs
/// tie, else every arrangement of each group of tied CPUs (at most 4! per group is tried; beyond
/// that a group keeps its order, which only costs reduction).
fn for_each_order(keys: &[(u64, u64)], f: &mut dyn FnMut(&[CpuId; MAX_CPUS])) {
    let np = keys.len();
    let mut old = [0 as CpuId; MAX_CPUS];
    for (i, o) in old.iter_mut().enumerate() {
        *o = i as CpuId;
    }
    old[..np].sort_by_key(|&c| keys[c as usize]);
    // The groups of tied CPUs, as ranges of positions in `old`.
    let mut groups = Vec::new();
    let mut i = 0;
    while i < np {
        let mut j = i + 1;
        while j < np && keys[old[j] as usize] == keys[old[i] as usize] {
            j += 1;
        }
        if j - i > 1 && j - i <= 4 {
            groups.push(i..j);
        }
        i = j;
    }
    fn go(
        old: &mut [CpuId; MAX_CPUS],
        groups: &[std::ops::Range<usize>],
        f: &mut dyn FnMut(&[CpuId; MAX_CPUS]),
    ) {
        let Some((g, rest)) = groups.split_first() else {
            f(old);
            return;
        };
        // Heap's algorithm over the group's positions.
        let n = g.len();
        let mut c = vec![0usize; n];
        go(old, rest, f);
        let mut i = 0;
        while i < n {
            if c[i] < i {
                let j = if i % 2 == 0 { 0 } else { c[i] };
                old.swap(g.start + j, g.start + i);
                go(old, rest, f);
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
    }
    go(&mut old, &groups, f);
}

/// Each CPU's sort key ([`cpu_canonical`]).
fn cpu_keys<F: Family>(s: &State<F>) -> [(u64, u64); MAX_CPUS] {
    let np = s.np() as usize;
    let mut keys = [(0u64, 0u64); MAX_CPUS];
    for (c, k) in keys.iter_mut().enumerate().take(np) {
        k.0 = F::cpu_key(s, c as CpuId);
    }
    // The tasks on each CPU, as a sum of hashes of their keys (the same for any task order).
    for t in s.tasks.stored() {
        let (sched, cpu) = t.sched_cpu();
        if sched == Sched::Dead {
            continue;
        }
        let k = stored_key(t) & !(0xffu128 << (64 + 21));
        let h = (k as u64 ^ (k >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        keys[cpu as usize].1 = keys[cpu as usize].1.wrapping_add(h ^ h >> 29);
    }
    keys
}

/// `s` with its CPUs renamed: CPU `old[new]` becomes `new`, everywhere. Only for a family with
/// [`Family::CPU_SYMMETRIC`] (the others do not say where their state names CPUs).
pub fn cpus_permuted<F: Family>(s: &State<F>, old: &[CpuId; MAX_CPUS]) -> State<F> {
    let mut out = *s;
    rename_cpus(&mut out, old);
    out
}

/// `m` with its bits for CPUs `0..np` renamed through `map` (`map[old] = new`); bits at or above
/// `np` kept. For every CPU mask a state holds (task affinities, a 6.18 mm's `cpus_allowed`).
pub fn renamed_mask(m: CpuMask, map: &[CpuId; MAX_CPUS], np: usize) -> CpuMask {
    let all = ((1u16 << np) - 1) as CpuMask;
    (0..np)
        .filter(|&c| m & 1 << c != 0)
        .fold(m & !all, |acc, c| acc | 1 << map[c])
}

/// [`cpus_permuted`] in place.
fn rename_cpus<F: Family>(s: &mut State<F>, old: &[CpuId; MAX_CPUS]) {
    let np = s.np() as usize;
    let mut map = [0 as CpuId; MAX_CPUS];
    for (new, &o) in old[..np].iter().enumerate() {
        map[o as usize] = new as CpuId;
    }
    let cpus = s.cpus;
    for new in 0..np {
        s.cpus[new] = cpus[old[new] as usize];
    }
    for i in 0..s.tasks.len() {
        let t = s.tasks.stored()[i].cpus_renamed(&map, np);
        s.tasks.set_stored(i, t);
    }
    for m in 0..s.mms.len() as MmId {
        if s.mms.at(m as usize).irq_work.is_some() {
            let mut mm = s.mm_mut(m);
            mm.irq_work = mm.irq_work.map(|c| map[c as usize]);
        }
    }
    F::rename_cpus(s, &map);
}

/// Does a dead task (exited, or a failed fork's child) still name a CPU other than 0? Where a
/// dead task ran is a dead value unless a walk visits dead tasks: the pre-rewrite designs never
/// walk tasks, 7.0's walk visits `mm.user_list` (active users only), the CPU→task walk visits
/// CPUs; only the budgeted thread-list walk of 6.19.x takes a dead task's rq lock
/// (`crate::rewrite::walk::lock`), so there it is live. Shared by every family's [`Family::forget_dead`].
pub fn has_dead_task_cpu<F: Family>(s: &State<F>) -> bool {
    (0..s.tasks.len()).any(|i| matches!(s.tasks.sched_cpu(i), (Sched::Dead, c) if c != 0))
}

/// Sets every dead task's CPU to 0 ([`has_dead_task_cpu`]).
pub fn forget_dead_task_cpu<F: Family>(s: &mut State<F>) {
    for i in 0..s.tasks.len() {
        if let (Sched::Dead, c) = s.tasks.sched_cpu(i)
            && c != 0
        {
            s.task_mut(i as TaskId).cpu = 0;
        }
    }
}

/// The order that sorts `s`'s tasks by their content without references (`order[new] = old`),
/// or `None` when they already are in that order (the state is its own representative: the
/// common case, checked without copying anything).
pub fn canonical_order<F: Family>(s: &State<F>) -> Option<Order> {
    let n = s.tasks.len();
    let mut keys = [0u128; MAX_TASKS];
    for (k, t) in keys.iter_mut().zip(s.tasks.stored()) {
        *k = stored_key(t);
        debug_assert_eq!(*k, key(&t.load()));
    }
    if keys[..n].is_sorted() {
        return None;
    }
    let mut order = Order {
        n,
        old: [0; MAX_TASKS],
    };
    for (i, o) in order.old.iter_mut().enumerate() {
        *o = i as TaskId;
    }
    // A stable insertion sort by hand: at most MAX_TASKS entries, nearly sorted (a step moves
    // one task), and the standard library's stable sort spent more in its driver than in
    // sorting (185 M of 2,680 M instructions at the default bound).
    let old = &mut order.old[..n];
    for i in 1..n {
        let x = old[i];
        let kx = keys[x as usize];
        let mut j = i;
        while j > 0 && keys[old[j - 1] as usize] > kx {
            old[j] = old[j - 1];
            j -= 1;
        }
        old[j] = x;
    }
    Some(order)
}

/// A permutation of a state's tasks: `old[new]` is the task that becomes `new`.
#[derive(Clone, Copy, Debug)]
pub struct Order {
    n: usize,
    old: [TaskId; MAX_TASKS],
}

/// `s` with its tasks permuted by `order` and every reference renamed.
pub fn permuted<F: Family>(s: &State<F>, order: &Order) -> State<F> {
    let mut out = *s;
    permute_in_place(&mut out, order);
    out
}

/// [`permuted`] in place (copies only the tasks).
fn permute_in_place<F: Family>(s: &mut State<F>, order: &Order) {
    let mut map = [0 as TaskId; MAX_TASKS];
    for (new, &old) in order.old[..order.n].iter().enumerate() {
        map[old as usize] = new as TaskId;
    }
    let r = |t: TaskId| map[t as usize];
    let tasks = s.tasks;
    let stored = tasks.stored();
    for (new, &old) in order.old[..order.n].iter().enumerate() {
        let t = stored[old as usize].renamed(&map);
        debug_assert_eq!(t.load(), rename_task(&stored[old as usize].load(), r));
        s.tasks.set_stored(new, t);
    }
    F::rename(s, &r);
}

/// The sort key of a task: everything it carries except the names of other tasks, packed into
/// one number (the kernel's part in the high word, the family's [`Family::task_key`] in the low
/// word). Injective on that content, so two tasks tie exactly when they differ only in whom
/// they name, as with comparing the tasks field by field, at a fraction of the cost.
#[inline(always)]
fn key<F: Family>(t: &Task<F>) -> u128 {
    let op: u64 = match t.op {
        Op::User => 0,
        Op::Fork { vfork, at, .. } => 1 | (vfork as u64) << 3 | (at as u64) << 4,
        Op::Exit { at } => 2 | (at as u64) << 4,
        Op::Exec { at, kind, in_exec } => 3 | (kind as u64) << 3 | (in_exec as u64) << 5 | (at as u64) << 6,
        Op::VforkWait { .. } => 4,
        Op::Work { mm } => 5 | (mm as u64) << 4,
        Op::KworkerIdle => 6,
    };
    let kernel: u64 = (t.kworker as u64)
        | (t.killed as u64) << 1
        | (t.mm.map_or(0, |m| m as u64 + 1)) << 2
        | (t.group as u64) << 10
        | (t.sched as u64) << 18
        | (t.cpu as u64) << 21
        | (t.affinity as u64) << 29
        | (t.vfork_parent.is_some() as u64) << 37
        | op << 38;
    (kernel as u128) << 64 | F::task_key(&t.cid, t.cid_op.as_ref()) as u128
}

/// [`key`] of a stored task, read off its bits (the layout: [`StoredTask`]) without unpacking
/// it: computed for every task of every successor, so worth the bit-twiddling. Debug builds check
/// it against [`key`].
#[inline(always)]
fn stored_key<F: Family>(t: &StoredTask<F>) -> u128 {
    let w = t.kernel_word();
    let p = w >> 32 & 0xff;
    let op: u64 = match w >> 29 & 7 {
        0 => 0,
        // Fork: vfork (payload bit 4) and at (5–7) to bits 3 and 4–6.
        1 => 1 | (p >> 1 & 0x78),
        2 => 2 | p << 4,
        // Exec: at (payload 0–2) to 6–8, kind and in_exec (3–5) stay.
        3 => 3 | (p & 0x38) | (p & 7) << 6,
        4 => 4,
        5 => 5 | p << 4,
        _ => 6,
    };
    let kernel: u64 = (w & 15)
        | (w >> 4 & 7) << 10
        | (w >> 7 & 7) << 18
        | (w >> 10 & 7) << 21
        | (w >> 13 & 0xff) << 29
        | ((w >> 21 & 15 != 0) as u64) << 37
        | op << 38;
    (kernel as u128) << 64 | F::task_key_stored(t.family()) as u128
}

/// `t` with every reference to another task renamed through `r`.
#[inline(always)]
fn rename_task<F: Family>(t: &Task<F>, r: impl Fn(TaskId) -> TaskId + Copy) -> Task<F> {
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
    t.cid_op = t.cid_op.map(|c| F::rename_op(c, &r));
    t.vfork_parent = t.vfork_parent.map(r);
    t
}
