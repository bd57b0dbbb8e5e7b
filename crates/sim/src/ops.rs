//! Kernel operations as timed state machines on the CPU that runs them: `pthread_create`,
//! `posix_spawn` (vfork), `execve`, `exit`, `sched_setaffinity`, and the 7.0 family's CID
//! sub-operations inside them (`mm.mutex`, the locked section, spins in `get_cid`, fix-up walks
//! visit by visit, the deferred work), so that other CPUs keep switching while they run.

use mmcid_cid::legacy::{v6_3, v6_18};
use mmcid_cid::storage::Users;
use mmcid_cid::{
    Alloc, ExitCid, ForkCid, Mode, Registration, TaskWalk, Work as CidWork, complete_transit,
    exit_cid_locked, fixup_cpus_to_tasks_visit, fixup_one, fixup_tasks_to_cpus_visit, fork_cid_after_fixup,
    fork_cid_locked, fork_cid_retry, update_cpus_allowed, work_locked,
};

use crate::cid::{K, two};
use crate::machine::{Machine, NONE, TState, Work};
use crate::trace::Kind;

/// Stages of fork and vfork.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkSt {
    /// `copy_process` up to `copy_mm` (6.19.1 and earlier register here).
    Copy,
    /// Publication in the thread and task lists.
    Publish,
    /// `sched_post_fork` (7.0 registers here).
    PostFork,
    /// `wake_up_new_task`.
    Wake,
}

/// Stages of exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitSt {
    /// `sched_mm_cid_exit`.
    Cid,
    /// `exit_mm` (`mm_release` wakes a vfork parent).
    MmRelease,
    /// The final `schedule()`.
    Final,
}

/// Stages of execve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecSt {
    /// `sched_mm_cid_before_execve`.
    Before,
    /// The outcome: `exec_mmap` to a new mm, or failure.
    Outcome,
    /// `sched_mm_cid_after_execve` on the new or the old mm.
    After,
    /// Back to user space.
    Done,
}

/// The CID call a sub-operation makes once it holds `mm.mutex`.
#[derive(Clone, Copy, Debug)]
pub enum Call {
    /// `sched_mm_cid_fork(t)` with `current` the forker (NONE: `t` itself, after execve).
    Fork {
        /// mm.
        m: u32,
        /// The task registered.
        t: u32,
        /// The forker.
        current: u32,
    },
    /// `sched_mm_cid_exit(t)` by `t` itself.
    Exit {
        /// mm.
        m: u32,
        /// The task.
        t: u32,
    },
    /// `mm_cid_work_fn` (the deferred switch back to per-task).
    Work {
        /// mm.
        m: u32,
    },
}

/// How a fix-up walk finds its next visit.
#[derive(Clone, Debug)]
pub enum WalkKind {
    /// 7.0: `mm.user_list`, fixed while the walk holds the mutex.
    ToCpus {
        /// The users.
        list: Vec<u32>,
        /// Next index.
        i: usize,
    },
    /// ≤ 6.19.1: the budgeted two-pass walk over the thread group, then every process.
    Budgeted {
        /// 1, 2, or 3 (done).
        pass: u8,
        /// Position.
        i: u32,
        /// Position in pass 2's group.
        j: u32,
        /// Visits left.
        budget: u32,
    },
    /// CPU by CPU.
    ToTasks {
        /// Next CPU.
        cpu: u32,
    },
}

/// What follows a walk.
#[derive(Clone, Copy, Debug)]
pub enum AfterWalk {
    /// Release the mutex.
    Release,
    /// `fork_cid`'s tail: the child's own CID (may spin with the mutex held).
    ForkGetCid {
        /// The child.
        t: u32,
    },
}

/// A CID sub-operation of the 7.0 family.
#[derive(Clone, Debug)]
pub enum Sub {
    /// Waiting for `mm.mutex`.
    Mutex {
        /// The call to make.
        call: Call,
        /// Since.
        since: u64,
    },
    /// A fix-up walk, holding the mutex.
    Walk {
        /// The mm.
        m: u32,
        /// The walker task.
        walker: u32,
        /// Cursor.
        kind: WalkKind,
        /// Continuation.
        then: AfterWalk,
        /// Visits so far.
        visits: u32,
        /// When the mutex was taken.
        started: u64,
        /// Since when the next visit waits for a spinning CPU's rq lock (0: not waiting).
        blocked: u64,
    },
    /// Spinning in `get_cid` with the mutex (and, if `locked`, `mm.lock` with IRQs off) held.
    Spin {
        /// mm.
        m: u32,
        /// The task registered.
        t: u32,
        /// First-user path.
        first_user: bool,
        /// Since.
        since: u64,
    },
}

/// A kernel operation in progress on a CPU.
#[derive(Clone, Debug)]
pub enum Op {
    /// `pthread_create` (vfork: posix_spawn's `vfork`, the child in a new thread group).
    Fork {
        /// Forker.
        t: u32,
        /// Child (NONE before Copy).
        child: u32,
        /// vfork?
        vfork: bool,
        /// Stage.
        st: ForkSt,
    },
    /// `do_exit`.
    Exit {
        /// The task.
        t: u32,
        /// Stage.
        st: ExitSt,
    },
    /// `execve`.
    Exec {
        /// The task.
        t: u32,
        /// Succeeds?
        ok: bool,
        /// Stage.
        st: ExecSt,
    },
    /// `sched_setaffinity` of a whole process.
    Affinity {
        /// The caller.
        t: u32,
    },
    /// A CID sub-operation, then the rest of the operation.
    Cid {
        /// The sub-operation.
        sub: Sub,
        /// What continues after it.
        then: Box<Op>,
    },
    /// The operation is over: back to user space.
    Return {
        /// The task.
        t: u32,
    },
}

impl Op {
    /// `pthread_create` by `t`.
    pub fn fork(t: u32) -> Op {
        Op::Fork {
            t,
            child: NONE,
            vfork: false,
            st: ForkSt::Copy,
        }
    }
    /// `posix_spawn` by `t`.
    pub fn spawn(t: u32) -> Op {
        Op::Fork {
            t,
            child: NONE,
            vfork: true,
            st: ForkSt::Copy,
        }
    }
    /// `exit` of `t`.
    pub fn exit(t: u32) -> Op {
        Op::Exit { t, st: ExitSt::Cid }
    }
    /// `execve` by `t`.
    pub fn exec(t: u32, ok: bool) -> Op {
        Op::Exec {
            t,
            ok,
            st: ExecSt::Before,
        }
    }
    /// `sched_setaffinity` by `t`.
    pub fn affinity(t: u32) -> Op {
        Op::Affinity { t }
    }
}

/// Starts `op` on `cpu` (its first step comes after the stage's cost).
pub fn begin(mc: &mut Machine, cpu: u32, op: Op) {
    let c = mc.cfg.costs;
    let delay = match &op {
        Op::Fork { .. } => c.fork_ns / 2,
        Op::Exit { .. } => c.exit_ns / 2,
        Op::Exec { .. } => c.lock_hold_ns,
        _ => c.lock_hold_ns,
    };
    match &op {
        Op::Fork { vfork: false, .. } => mc.m.forks += 1,
        Op::Fork { vfork: true, .. } => mc.m.spawns += 1,
        Op::Exit { .. } => mc.m.exits += 1,
        Op::Affinity { .. } => mc.m.affinity_changes += 1,
        _ => {}
    }
    later(mc, cpu, op, delay);
}

fn later(mc: &mut Machine, cpu: u32, op: Op, delay: u64) {
    mc.cpus[cpu as usize].work = Work::Kernel;
    mc.ops[cpu as usize] = Some(op);
    let t = mc.now + delay;
    mc.cpu_at(cpu, t);
}

fn is_rewrite(mc: &Machine) -> bool {
    matches!(mc.fam.k, K::Rw(_))
}

fn registration(mc: &Machine) -> Option<Registration> {
    match &mc.fam.k {
        K::Rw(r) => Some(r.sw.registration),
        _ => None,
    }
}

/// Runs `call` (7.0 family) on `cpu`, then `then`; or, for the other families, nothing.
fn cid_then(mc: &mut Machine, cpu: u32, call: Call, then: Op) {
    if !is_rewrite(mc) {
        return step(mc, cpu, then);
    }
    let sub = Sub::Mutex { call, since: mc.now };
    step(
        mc,
        cpu,
        Op::Cid {
            sub,
            then: Box::new(then),
        },
    )
}

/// The next step of the operation on `cpu`.
pub fn step(mc: &mut Machine, cpu: u32, op: Op) {
    if mc.violation.is_some() {
        return;
    }
    let costs = mc.cfg.costs;
    match op {
        Op::Return { t } => {
            let mean = mc.grt[mc.tasks[t as usize].group as usize].burst;
            if mc.tasks[t as usize].burst_left == 0 {
                mc.tasks[t as usize].burst_left = mc.rng.exp(mean);
            }
            mc.start_user(cpu, 0);
        }
        Op::Fork { t, child, vfork, st } => match st {
            ForkSt::Copy => {
                let (p, m, g, cs) = {
                    let x = &mc.tasks[t as usize];
                    (x.proc, x.mm, x.group, x.cpuset)
                };
                let (proc, bursts) = if vfork {
                    let pc = mc.procs[p as usize].cpusets;
                    let np = mc.new_proc(g, pc);
                    mc.procs[np as usize].mm = m;
                    mc.mms[m as usize].procs.push(np);
                    (np, 1)
                } else {
                    let cb = mc.grt[g as usize].child_bursts;
                    let b = mc.rng.exp(cb).div_ceil(1000).max(1) as u32;
                    (p, b)
                };
                let c = mc.new_task(proc, m, g, cs, bursts);
                mc.tasks[c as usize].cpu = cpu;
                mc.rec(cpu, if vfork { Kind::Spawn } else { Kind::Fork }, t, c as u64);
                match &mut mc.fam.k {
                    K::Lz(l) => {
                        v6_18::fork(&mut l.t[c as usize]);
                        l.mms[m as usize].mm_users += 1;
                    }
                    K::Ps(ps) => v6_3::fork(&mut ps.t[c as usize]),
                    K::Rw(_) => {}
                }
                let next = Op::Fork {
                    t,
                    child: c,
                    vfork,
                    st: ForkSt::Publish,
                };
                if registration(mc) == Some(Registration::CopyMm) {
                    cid_then(mc, cpu, Call::Fork { m, t: c, current: t }, next)
                } else {
                    later(mc, cpu, next, costs.fork_ns / 4)
                }
            }
            ForkSt::Publish => {
                let p = mc.tasks[child as usize].proc;
                mc.procs[p as usize].threads.push(child);
                let next = Op::Fork {
                    t,
                    child,
                    vfork,
                    st: ForkSt::PostFork,
                };
                later(mc, cpu, next, costs.fork_ns / 4)
            }
            ForkSt::PostFork => {
                let m = mc.tasks[t as usize].mm;
                let next = Op::Fork {
                    t,
                    child,
                    vfork,
                    st: ForkSt::Wake,
                };
                if registration(mc) == Some(Registration::PostFork) {
                    cid_then(
                        mc,
                        cpu,
                        Call::Fork {
                            m,
                            t: child,
                            current: t,
                        },
                        next,
                    )
                } else {
                    step(mc, cpu, next)
                }
            }
            ForkSt::Wake => {
                let m = mc.tasks[t as usize].mm;
                mc.after_op(m);
                if vfork {
                    let f = mc.grt[mc.tasks[t as usize].group as usize].exec_fail;
                    let ok = !mc.rng.chance(f);
                    let ck = &mut mc.tasks[child as usize];
                    ck.exec_pending = Some(ok);
                    ck.vfork_parent = t;
                    ck.burst_left = 5_000; // the child's setup before execve
                    mc.wake(child);
                    // the parent waits for the child's exec or exit (no wake-up pending)
                    let pk = &mut mc.tasks[t as usize];
                    pk.state = TState::Sleeping;
                    crate::machine::next_epoch(&mut pk.epoch);
                    mc.switch(cpu);
                } else {
                    mc.wake(child);
                    step(mc, cpu, Op::Return { t })
                }
            }
        },
        Op::Exit { t, st } => match st {
            ExitSt::Cid => {
                let m = mc.tasks[t as usize].mm;
                mc.rec(cpu, Kind::Exit, t, 0);
                clear_running(mc, cpu);
                let next = Op::Exit {
                    t,
                    st: ExitSt::MmRelease,
                };
                match &mut mc.fam.k {
                    K::Lz(l) => v6_18::exit_signals(&mut l.mms[m as usize], cpu, &mut l.t[t as usize]),
                    K::Ps(p) => v6_3::exit_signals(&mut p.mms[m as usize], &mut p.t[t as usize]),
                    K::Rw(_) => return cid_then(mc, cpu, Call::Exit { m, t }, next),
                }
                mc.after_op(m);
                later(mc, cpu, next, costs.exit_ns / 2)
            }
            ExitSt::MmRelease => {
                let m = mc.tasks[t as usize].mm;
                if let K::Lz(l) = &mut mc.fam.k {
                    l.mms[m as usize].mm_users -= 1;
                }
                release_vfork(mc, t);
                step(mc, cpu, Op::Exit { t, st: ExitSt::Final })
            }
            ExitSt::Final => {
                mc.tasks[t as usize].state = TState::Dead;
                mc.cpus[cpu as usize].run_cid = NONE;
                mc.switch(cpu);
                mc.reap(t);
            }
        },
        Op::Exec { t, ok, st } => match st {
            ExecSt::Before => {
                let m = mc.tasks[t as usize].mm;
                clear_running(mc, cpu);
                let next = Op::Exec {
                    t,
                    ok,
                    st: ExecSt::Outcome,
                };
                match &mut mc.fam.k {
                    K::Lz(l) => v6_18::before_execve(&mut l.mms[m as usize], cpu, &mut l.t[t as usize]),
                    K::Ps(p) => v6_3::before_execve(&mut p.mms[m as usize], &mut p.t[t as usize]),
                    K::Rw(_) => return cid_then(mc, cpu, Call::Exit { m, t }, next),
                }
                mc.after_op(m);
                later(mc, cpu, next, costs.exec_ns)
            }
            ExecSt::Outcome => {
                let old = mc.tasks[t as usize].mm;
                if ok {
                    mc.m.execs_ok += 1;
                    let cs = mc.tasks[t as usize].cpuset;
                    let new = mc.new_mm(cs);
                    let p = mc.tasks[t as usize].proc;
                    mc.mms[old as usize].procs.retain(|&x| x != p);
                    mc.mms[old as usize].tasks -= 1;
                    mc.mms[new as usize].procs.push(p);
                    mc.mms[new as usize].tasks += 1;
                    mc.procs[p as usize].mm = new;
                    mc.tasks[t as usize].mm = new;
                    if let K::Lz(l) = &mut mc.fam.k {
                        l.mms[old as usize].mm_users -= 1; // mmput of the old mm
                    }
                    if let K::Ps(ps) = &mut mc.fam.k {
                        v6_3::mm_init_cid(&mut ps.mms[new as usize]);
                    }
                    release_vfork(mc, t);
                    // the new image: a plain process that runs a few bursts, then exits
                    let cb = mc.grt[mc.tasks[t as usize].group as usize].child_bursts;
                    let b = mc.rng.exp(cb).div_ceil(1000).max(1) as u32;
                    mc.tasks[t as usize].bursts_left = b;
                } else {
                    mc.m.execs_failed += 1;
                    mc.tasks[t as usize].bursts_left = 1; // returns to user space, then _exit
                }
                mc.rec(cpu, Kind::Exec, t, ok as u64);
                step(
                    mc,
                    cpu,
                    Op::Exec {
                        t,
                        ok,
                        st: ExecSt::After,
                    },
                )
            }
            ExecSt::After => {
                let m = mc.tasks[t as usize].mm;
                let next = Op::Exec {
                    t,
                    ok,
                    st: ExecSt::Done,
                };
                let now = mc.now;
                match &mut mc.fam.k {
                    K::Lz(l) => {
                        let mm = &mut l.mms[m as usize];
                        let tk = &mut l.t[t as usize];
                        if let v6_18::LegacyAllocOf::Spin(k) = v6_18::after_execve(mm, cpu, tk, now) {
                            // run the allocation to its end (a spin here is counted as laps)
                            let mut k = k;
                            let mut laps = 0u64;
                            loop {
                                match v6_18::get_retry(mm, cpu, tk, k, now) {
                                    v6_18::LegacyAllocOf::Got(_) => break,
                                    v6_18::LegacyAllocOf::Spin(n) => {
                                        k = n;
                                        laps += 1;
                                        if laps > 1_000_000 {
                                            mc.violate(
                                                "stall",
                                                format!("T{t}'s after_execve spins in mm_cid_get"),
                                            );
                                            return;
                                        }
                                    }
                                }
                            }
                            mc.m.spin_laps += laps;
                        }
                    }
                    K::Ps(p) => v6_3::after_execve(&mut p.mms[m as usize], &mut p.t[t as usize]),
                    K::Rw(_) => return cid_then(mc, cpu, Call::Fork { m, t, current: NONE }, next),
                }
                mc.after_op(m);
                step(mc, cpu, next)
            }
            ExecSt::Done => {
                let m = mc.tasks[t as usize].mm;
                mc.after_op(m);
                mc.tasks[t as usize].burst_left = 0;
                step(mc, cpu, Op::Return { t })
            }
        },
        Op::Affinity { t } => {
            let p = mc.tasks[t as usize].proc;
            let m = mc.tasks[t as usize].mm;
            let pr = &mut mc.procs[p as usize];
            pr.grown = !pr.grown;
            let cs = if pr.grown { pr.cpusets.1 } else { pr.cpusets.0 };
            let threads = pr.threads.clone();
            let mask = mc.cpusets[cs as usize].mask.clone();
            mc.mms[m as usize].allowed = mc.cpusets[cs as usize].list.len() as u32;
            mc.rec(cpu, Kind::Affinity, t, mc.cpusets[cs as usize].list.len() as u64);
            for x in threads {
                mc.tasks[x as usize].cpuset = cs;
                mc.requeue_if_disallowed(x);
            }
            let mut deferred = false;
            match &mut mc.fam.k {
                K::Rw(r) => deferred = update_cpus_allowed(&mut r.mms[m as usize], &mask, &r.sw),
                K::Lz(l) => v6_18::update_cpus_allowed(&mut l.mms[m as usize], &mask),
                K::Ps(_) => {}
            }
            mc.after_op(m);
            if deferred {
                // irq_work, then the kworker: run here, on this CPU, as the work function
                mc.m.deferred_work += 1;
                return cid_then(mc, cpu, Call::Work { m }, Op::Return { t });
            }
            later(mc, cpu, Op::Return { t }, costs.lock_hold_ns)
        }
        Op::Cid { sub, then } => cid_step(mc, cpu, sub, *then),
    }
}

fn clear_running(mc: &mut Machine, cpu: u32) {
    let cp = &mut mc.cpus[cpu as usize];
    let (c, m) = (cp.run_cid, cp.run_mm);
    cp.run_cid = NONE;
    if c != NONE {
        mc.fam.running_clear(m, c);
    }
}

/// A vfork child execs or exits: its parent wakes.
fn release_vfork(mc: &mut Machine, t: u32) {
    let p = std::mem::replace(&mut mc.tasks[t as usize].vfork_parent, NONE);
    if p != NONE && mc.tasks[p as usize].state == TState::Sleeping {
        mc.wake(p);
    }
}

/// One step of a 7.0-family CID sub-operation.
fn cid_step(mc: &mut Machine, cpu: u32, sub: Sub, then: Op) {
    let costs = mc.cfg.costs;
    match sub {
        Sub::Mutex { call, since } => {
            let m = match call {
                Call::Fork { m, .. } | Call::Exit { m, .. } | Call::Work { m } => m,
            };
            let owner = mc.mms[m as usize].mutex;
            if owner != NONE && owner != cpu {
                if mc.now - since > costs.stall_ns {
                    return mc.violate(
                        "stall",
                        format!("CPU{cpu} waits for mm{m}'s mutex held by CPU{owner}"),
                    );
                }
                let sub = Sub::Mutex { call, since };
                return later(
                    mc,
                    cpu,
                    Op::Cid {
                        sub,
                        then: Box::new(then),
                    },
                    costs.lap_ns,
                );
            }
            mc.mms[m as usize].mutex = cpu;
            locked(mc, cpu, call, then)
        }
        Sub::Spin {
            m,
            t,
            first_user,
            since,
        } => {
            let K::Rw(r) = &mut mc.fam.k else { unreachable!() };
            if fork_cid_retry(&mut r.mms[m as usize], &mut r.t[t as usize], cpu, first_user) {
                mc.m.spin_time.add(mc.now - since);
                mc.mms[m as usize].mutex = NONE;
                mc.after_op(m);
                return later(mc, cpu, then, costs.lock_hold_ns);
            }
            mc.m.spin_laps += 1;
            if mc.now - since > costs.stall_ns {
                let d = mc.fam.describe(m);
                return mc.violate(
                    "stall",
                    format!(
                        "CPU{cpu} has spun in sched_mm_cid_fork's get_cid for T{t} for over {} ms: {d}",
                        costs.stall_ns / 1_000_000
                    ),
                );
            }
            let sub = Sub::Spin {
                m,
                t,
                first_user,
                since,
            };
            later(
                mc,
                cpu,
                Op::Cid {
                    sub,
                    then: Box::new(then),
                },
                costs.lap_ns,
            )
        }
        Sub::Walk {
            m,
            walker,
            kind,
            then: aw,
            visits,
            started,
            blocked,
        } => walk_step(mc, cpu, m, walker, kind, aw, visits, started, blocked, then),
    }
}

/// The locked section of the call (mutex held): its result decides what follows.
fn locked(mc: &mut Machine, cpu: u32, call: Call, then: Op) {
    let costs = mc.cfg.costs;
    let K::Rw(r) = &mut mc.fam.k else { unreachable!() };
    let sw = r.sw;
    let (m, walker) = match call {
        Call::Fork { m, t, current } => (m, if current == NONE { t } else { current }),
        Call::Exit { m, t } => (m, t),
        Call::Work { m } => (m, NONE),
    };
    let mm = &mut r.mms[m as usize];
    let mode_before = mm.mode;
    let before = mmcid_cid::storage::Stats::totals(&mm.stats);
    enum Next {
        Release,
        Spin(u32, bool),
        ToCpus,
        ToTasks(AfterWalk),
    }
    let next = match call {
        Call::Fork { t, current, .. } => {
            let res = if current == NONE {
                fork_cid_locked(mm, &mut r.t[t as usize], t, None, cpu, &sw)
            } else {
                let (c, cur) = two(r.t.as_mut_slice(), t as usize, current as usize);
                fork_cid_locked(mm, c, t, Some(cur), cpu, &sw)
            };
            match res {
                ForkCid::Done => Next::Release,
                ForkCid::SpinLocked { first_user } => Next::Spin(t, first_user),
                ForkCid::FixupTasksToCpus => Next::ToCpus,
                ForkCid::FixupCpusToTasks => Next::ToTasks(AfterWalk::ForkGetCid { t }),
                ForkCid::FixupRevive => unreachable!("fix-execve-revive is refused by Machine::new"),
            }
        }
        Call::Exit { t, .. } => match exit_cid_locked(mm, &mut r.t[t as usize], t, None, true, cpu, &sw) {
            ExitCid::NotUser | ExitCid::Done | ExitCid::LastUser => Next::Release,
            ExitCid::FixupCpusToTasks => Next::ToTasks(AfterWalk::Release),
        },
        Call::Work { .. } => match work_locked(mm, &sw) {
            CidWork::Done => Next::Release,
            CidWork::FixupCpusToTasks => Next::ToTasks(AfterWalk::Release),
        },
    };
    let mode_after = mm.mode;
    let d = mmcid_cid::storage::Stats::totals(&mm.stats).since(&before);
    mc.m.other_bit_ops += d.bit_ops;
    mc.m.other_slot_writes += d.slot_writes;
    if mode_after != mode_before && (matches!(next, Next::ToCpus | Next::ToTasks(_))) {
        mc.m.mode_switches += 1;
        if mode_after.percpu() {
            mc.m.to_percpu += 1;
        }
        mc.rec(
            cpu,
            Kind::Mode,
            walker,
            mode_after.percpu() as u64 | (mode_after.in_transit() as u64) << 1,
        );
    }
    let hold = costs.lock_hold_ns;
    match next {
        Next::Release => {
            mc.mms[m as usize].mutex = NONE;
            mc.after_op(m);
            later(mc, cpu, then, hold)
        }
        Next::Spin(t, first_user) => {
            mc.m.spin_laps += 1;
            let sub = Sub::Spin {
                m,
                t,
                first_user,
                since: mc.now,
            };
            later(
                mc,
                cpu,
                Op::Cid {
                    sub,
                    then: Box::new(then),
                },
                costs.lap_ns,
            )
        }
        Next::ToCpus => {
            let K::Rw(r) = &mc.fam.k else { unreachable!() };
            let users = r.mms[m as usize].users;
            let kind = match r.sw.task_walk {
                TaskWalk::UserList => WalkKind::ToCpus {
                    list: r.mms[m as usize].user_list.each().collect(),
                    i: 0,
                },
                TaskWalk::Budgeted2 => {
                    let budget = users.saturating_sub(2);
                    WalkKind::Budgeted {
                        pass: if budget == 0 { 3 } else { 1 },
                        i: 1,
                        j: 0,
                        budget,
                    }
                }
                TaskWalk::Budgeted1 | TaskWalk::Budgeted1NoEarlyReturn => WalkKind::Budgeted {
                    pass: 1,
                    i: 1,
                    j: 0,
                    budget: users.saturating_sub(1),
                },
            };
            start_walk(mc, cpu, m, walker, kind, AfterWalk::Release, then)
        }
        Next::ToTasks(aw) => start_walk(mc, cpu, m, walker, WalkKind::ToTasks { cpu: 0 }, aw, then),
    }
}

fn start_walk(mc: &mut Machine, cpu: u32, m: u32, walker: u32, kind: WalkKind, aw: AfterWalk, then: Op) {
    mc.mms[m as usize].walking = true;
    let sub = Sub::Walk {
        m,
        walker,
        kind,
        then: aw,
        visits: 0,
        started: mc.now,
        blocked: 0,
    };
    let hold = mc.cfg.costs.lock_hold_ns;
    later(
        mc,
        cpu,
        Op::Cid {
            sub,
            then: Box::new(then),
        },
        hold,
    )
}

enum Visit {
    Task(u32),
    Cpu(u32),
    Complete,
}

/// The next visit of a walk and the advanced cursor (mirrors `crates/kmodel`'s cursors).
fn next_visit(mc: &Machine, m: u32, walker: u32, kind: &WalkKind) -> (Visit, WalkKind) {
    match kind {
        WalkKind::ToCpus { list, i } => {
            let mut i = *i;
            while i < list.len() && list[i] == walker {
                i += 1;
            }
            if i < list.len() {
                (
                    Visit::Task(list[i]),
                    WalkKind::ToCpus {
                        list: list.clone(),
                        i: i + 1,
                    },
                )
            } else {
                (Visit::Complete, kind.clone())
            }
        }
        WalkKind::ToTasks { cpu } => {
            if *cpu < mc.cfg.cpus {
                (Visit::Cpu(*cpu), WalkKind::ToTasks { cpu: cpu + 1 })
            } else {
                (Visit::Complete, kind.clone())
            }
        }
        &WalkKind::Budgeted {
            pass,
            mut i,
            mut j,
            budget,
        } => {
            if pass == 3 {
                return (Visit::Complete, kind.clone());
            }
            if pass == 1 {
                let p = mc.tasks[walker as usize].proc;
                let threads = &mc.procs[p as usize].threads;
                let me = threads.iter().position(|&x| x == walker).unwrap_or(0);
                let n = threads.len() as u32;
                while i < n {
                    let t = threads[((me as u32 + i) % n) as usize];
                    if t != walker {
                        return (
                            Visit::Task(t),
                            WalkKind::Budgeted {
                                pass: 1,
                                i: i + 1,
                                j: 0,
                                budget,
                            },
                        );
                    }
                    i += 1;
                }
                if budget == 0 {
                    return (Visit::Complete, kind.clone());
                }
                i = 0;
                j = 0;
            }
            let procs = &mc.mms[m as usize].procs;
            while (i as usize) < procs.len() {
                let threads = &mc.procs[procs[i as usize] as usize].threads;
                while (j as usize) < threads.len() {
                    let t = threads[j as usize];
                    if t != walker && mc.tasks[t as usize].mm == m {
                        return (
                            Visit::Task(t),
                            WalkKind::Budgeted {
                                pass: 2,
                                i,
                                j: j + 1,
                                budget,
                            },
                        );
                    }
                    j += 1;
                }
                i += 1;
                j = 0;
            }
            (Visit::Complete, kind.clone())
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn walk_step(
    mc: &mut Machine,
    cpu: u32,
    m: u32,
    walker: u32,
    kind: WalkKind,
    aw: AfterWalk,
    visits: u32,
    started: u64,
    blocked: u64,
    then: Op,
) {
    let costs = mc.cfg.costs;
    let (visit, cursor) = next_visit(mc, m, walker, &kind);
    // A visit takes the visited CPU's rq lock: a CPU spinning in schedin holds it.
    let lock_cpu = match visit {
        Visit::Task(t) => {
            let st = mc.tasks[t as usize].state;
            (matches!(st, TState::Running | TState::Runnable)).then(|| mc.tasks[t as usize].cpu)
        }
        Visit::Cpu(c) => Some(c),
        Visit::Complete => None,
    };
    if let Some(c) = lock_cpu.filter(|&c| c != cpu)
        && matches!(mc.cpus[c as usize].work, Work::SpinSwitch { .. })
    {
        let since = if blocked == 0 { mc.now } else { blocked };
        if mc.now - since > costs.stall_ns {
            let d = mc.fam.describe(m);
            return mc.violate(
                    "stall",
                    format!("the fix-up walk on CPU{cpu} waits for CPU{c}'s rq lock, held while CPU{c} spins in get_cid: {d}"),
                );
        }
        let sub = Sub::Walk {
            m,
            walker,
            kind,
            then: aw,
            visits,
            started,
            blocked: since,
        };
        return later(
            mc,
            cpu,
            Op::Cid {
                sub,
                then: Box::new(then),
            },
            costs.lap_ns,
        );
    }
    let K::Rw(r) = &mut mc.fam.k else { unreachable!() };
    let sw = r.sw;
    let mm = &mut r.mms[m as usize];
    let before = mmcid_cid::storage::Stats::totals(&mm.stats);
    let cursor = match visit {
        Visit::Task(t) => {
            let running_on = (mc.cpus[mc.tasks[t as usize].cpu as usize].curr == t
                && mc.tasks[t as usize].state == TState::Running)
                .then(|| mc.tasks[t as usize].cpu);
            match cursor {
                WalkKind::Budgeted { pass, i, j, budget } => {
                    let counted = fixup_one(mm, &mut r.t[t as usize], running_on, &sw);
                    let budget = if counted { budget.saturating_sub(1) } else { budget };
                    let early = pass == 2
                        && budget == 0
                        && counted
                        && sw.task_walk != TaskWalk::Budgeted1NoEarlyReturn;
                    WalkKind::Budgeted {
                        pass: if early { 3 } else { pass },
                        i,
                        j,
                        budget,
                    }
                }
                c => {
                    fixup_tasks_to_cpus_visit(mm, &mut r.t[t as usize], running_on, &sw);
                    c
                }
            }
        }
        Visit::Cpu(c) => {
            let curr = mc.cpus[c as usize].curr;
            let user = curr != NONE && mc.tasks[curr as usize].mm == m && r.t[curr as usize].active;
            if user {
                fixup_cpus_to_tasks_visit(mm, c, Some(&mut r.t[curr as usize]), &sw);
            } else {
                fixup_cpus_to_tasks_visit(mm, c, None, &sw);
            }
            cursor
        }
        Visit::Complete => {
            let mode = if matches!(kind, WalkKind::ToTasks { .. }) {
                Mode::PER_TASK
            } else {
                Mode::PER_CPU
            };
            complete_transit(mm, mode, &sw);
            mc.mms[m as usize].walking = false;
            mc.m.walk_len.add(visits as u64);
            match aw {
                AfterWalk::Release => {
                    mc.m.walk_hold.add(mc.now - started);
                    mc.mms[m as usize].mutex = NONE;
                    mc.after_op(m);
                    return later(mc, cpu, then, costs.lock_hold_ns);
                }
                AfterWalk::ForkGetCid { t } => {
                    let K::Rw(r) = &mut mc.fam.k else { unreachable!() };
                    match fork_cid_after_fixup(&mut r.mms[m as usize], &mut r.t[t as usize]) {
                        Alloc::Got(_) => {
                            mc.m.walk_hold.add(mc.now - started);
                            mc.mms[m as usize].mutex = NONE;
                            mc.after_op(m);
                            return later(mc, cpu, then, costs.lock_hold_ns);
                        }
                        Alloc::Spin => {
                            let sub = Sub::Spin {
                                m,
                                t,
                                first_user: false,
                                since: mc.now,
                            };
                            return later(
                                mc,
                                cpu,
                                Op::Cid {
                                    sub,
                                    then: Box::new(then),
                                },
                                costs.lap_ns,
                            );
                        }
                    }
                }
            }
        }
    };
    let K::Rw(r) = &mut mc.fam.k else { unreachable!() };
    let d = mmcid_cid::storage::Stats::totals(&r.mms[m as usize].stats).since(&before);
    mc.m.other_bit_ops += d.bit_ops;
    mc.m.other_slot_writes += d.slot_writes;
    if mc.cfg.checking == crate::config::Checking::Every {
        mc.full_check(m);
    }
    let sub = Sub::Walk {
        m,
        walker,
        kind: cursor,
        then: aw,
        visits: visits + 1,
        started,
        blocked: 0,
    };
    later(
        mc,
        cpu,
        Op::Cid {
            sub,
            then: Box::new(then),
        },
        costs.walk_visit_ns,
    )
}

impl Machine {
    /// A queued task whose new cpuset excludes its CPU moves at once (a running one finishes its
    /// burst).
    pub(crate) fn requeue_if_disallowed(&mut self, t: u32) {
        let tk = &self.tasks[t as usize];
        if tk.state != TState::Runnable || self.cpusets[tk.cpuset as usize].mask.has(tk.cpu) {
            return;
        }
        let cpu = tk.cpu;
        let rq = &mut self.cpus[cpu as usize].rq;
        if let Some(i) = rq.iter().position(|&x| x == t) {
            rq.remove(i);
            self.wake(t);
        }
    }
}
