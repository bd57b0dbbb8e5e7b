//! The initial state of a configuration, built by the model's own steps.
//!
//! No CID state is written by hand: the process starts as one task that has just exec'd (the
//! first-user path of `sched_mm_cid_fork`), which then creates the other threads with ordinary fork
//! steps of the configured design, wakes each on the next allowed CPU, and every idle CPU switches
//! to a runnable task. Whatever mode switches and walks that takes happen on the way, so the
//! initial state is one the kernel really reaches.

use mmcid_cid::{CpuId, MmCid, TaskCid, TaskId};

use crate::config::{Budgets, Config, Family};
use crate::fixed::Fixed;
use crate::state::*;
use crate::step::{Params, StartOp, Step, apply, enabled};

/// Builds the parameters and the initial state of `cfg`.
pub fn initial(cfg: &Config) -> Result<(Params, State), String> {
    let design = cfg.validate()?;
    let p = Params {
        sw: design.switches,
        family: design.family,
    };
    let legacy = design.family != Family::Rewrite;
    let np = cfg.cpus;
    let mask = cfg.allowed_mask();
    let t0 = Task {
        kworker: false,
        mm: Some(0),
        group: 0,
        sched: Sched::Running,
        cpu: 0,
        affinity: mask,
        cid: TaskCid::default(),
        // A pre-rewrite design runs its own sched_mm_cid_after_execve step.
        op: if legacy {
            Op::Exec {
                at: ExecAt::After,
                ok: true,
            }
        } else {
            Op::User
        },
        cid_op: if legacy { None } else { Some(CidOp::Fork { t: 0 }) },
        killed: false,
        vfork_parent: None,
        legacy: LegacyTask::new(design.family),
    };
    let mut s = State {
        cpus: Fixed::from_slice(&vec![Cpu::default(); np as usize]),
        tasks: Fixed::from_slice(&[t0]),
        mms: Fixed::from_slice(&[Mm {
            cid: MmCid::new(np, mask),
            legacy: crate::legacy::new_mm(design.family, np, mask),
            irq_work: None,
            work_pending: false,
        }]),
        groups: Fixed::from_slice(&[Group {
            threads: Fixed::from_slice(&[0]),
        }]),
        process_list: Fixed::from_slice(&[0]),
        left: Budgets {
            forks: cfg.threads - 1,
            ..Budgets::default()
        },
    };
    // sched_mm_cid_after_execve of the process's first task: the first-user path (7.0 family: its
    // sched_mm_cid_fork(current); pre-rewrite designs: their own after_execve step).
    s = run_task(&p, s, 0, 0)?;
    let allowed: Vec<CpuId> = (0..np).filter(|c| mask & (1 << c) != 0).collect();
    for i in 1..cfg.threads {
        s = apply(
            &p,
            &s,
            Step::Start {
                task: 0,
                op: StartOp::Fork,
            },
        );
        s = run_task(&p, s, 0, allowed[i as usize % allowed.len()])?;
    }
    for cpu in 0..np {
        if s.curr(cpu).is_none() {
            let first = s.runqueue(cpu).next();
            if let Some(t) = first {
                s = apply(&p, &s, Step::Switch { cpu, next: Some(t) });
            }
        }
    }
    if s.cpus
        .iter()
        .any(|c| c.spin.is_some() || c.legacy_spin.is_some() || c.migrating.is_some())
    {
        return Err("setting up the initial threads left a CPU spinning in get_cid".into());
    }
    if cfg.budgets.affinity > 0 && !legacy {
        // The kworker that runs the deferred work (system_wq), asleep.
        s.tasks.push(Task {
            kworker: true,
            mm: None,
            group: 0,
            sched: Sched::Sleeping,
            cpu: 0,
            affinity: ((1u16 << np) - 1) as u8,
            cid: TaskCid::default(),
            op: Op::KworkerIdle,
            cid_op: None,
            killed: false,
            vfork_parent: None,
            legacy: LegacyTask::None,
        });
    }
    s.left = cfg.budgets;
    Ok((p, s))
}

/// Takes `task`'s own steps until it is back in user space, waking children on `wake_cpu`.
fn run_task(p: &Params, mut s: State, task: TaskId, wake_cpu: CpuId) -> Result<State, String> {
    let mut steps = Vec::new();
    for _ in 0..1000 {
        let t = s.task(task);
        if t.op == Op::User && t.cid_op.is_none() {
            return Ok(s);
        }
        steps.clear();
        enabled(p, &s, &mut steps);
        let step = steps
            .iter()
            .copied()
            .find(|st| match *st {
                Step::Wake { task: w, cpu } => w == task && cpu == wake_cpu,
                Step::Next { task: w } | Step::Retry { task: w } => w == task,
                _ => false,
            })
            .ok_or_else(|| format!("setup: T{task} has no step to take ({:?})", s.task(task).op))?;
        s = apply(p, &s, step);
    }
    Err(format!("setup: T{task} did not return to user space"))
}
