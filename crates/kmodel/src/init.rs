//! The initial state of a configuration, built by the model's own steps.
//!
//! No CID state is written by hand: the process starts as one task that has just exec'd (its
//! `sched_mm_cid_after_execve`: the first-user path), which then creates the other threads with
//! ordinary fork steps of the configured design, wakes each on the next allowed CPU, and every
//! idle CPU switches to a runnable task. Whatever mode switches and walks that takes happen on the
//! way, so the initial state is one the kernel really reaches.

use mmcid_cid::{CpuId, TaskId};

use crate::config::{Budgets, Config};
use crate::family::Family;
use crate::fixed::Fixed;
use crate::ops::{Params, StartOp, Step, apply, enabled};
use crate::state::*;

/// The parameters of `cfg`'s design, which must be of family `F`.
pub fn params<F: Family>(cfg: &Config) -> Result<Params, String> {
    let design = cfg.validate()?;
    if design.family != F::KIND {
        return Err(format!(
            "design {} runs {}, not {}",
            design.name,
            design.family,
            F::KIND
        ));
    }
    Ok(Params {
        sw: design.switches,
        reduction: false,
        cpu_symmetry: false,
    })
}

/// Builds the parameters and the initial state of `cfg`.
pub fn initial<F: Family>(cfg: &Config) -> Result<(Params, State<F>), String> {
    let p = params::<F>(cfg)?;
    let np = cfg.cpus;
    let mask = cfg.allowed_mask();
    let t0 = Task {
        mm: Some(0),
        sched: Sched::Running,
        affinity: mask,
        thread_pos: 1,
        // The process's first task is about to return from execve.
        op: Op::Exec {
            at: ExecAt::After,
            kind: ExecKind::Load,
            in_exec: false,
        },
        ..Task::default()
    };
    let mut s = State {
        cpus: Fixed::from_slice(&vec![F::CpuCid::default(); np as usize]),
        tasks: crate::tasks::Tasks::from_slice(&[t0]),
        mms: crate::mms::Mms::from_slice(&[Mm::new(np, mask)]),
        process_list: Fixed::from_slice(&[0]),
        left: Budgets {
            forks: cfg.threads - 1,
            ..Budgets::default()
        },
    };
    // sched_mm_cid_after_execve of the process's first task: the first-user path.
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
    if s.cpus.iter().any(F::rq_locked) {
        return Err("setting up the initial threads left a CPU spinning in get_cid".into());
    }
    if cfg.budgets.affinity > 0 && F::DEFERRED_WORK {
        // The kworker that runs the deferred work (system_wq), asleep.
        s.tasks.push(Task {
            kworker: true,
            sched: Sched::Sleeping,
            affinity: ((1u16 << np) - 1) as u8,
            op: Op::KworkerIdle,
            ..Task::default()
        });
    }
    s.left = cfg.budgets;
    Ok((p, s))
}

/// Takes `task`'s own steps until it is back in user space, waking children on `wake_cpu`.
fn run_task<F: Family>(
    p: &Params,
    mut s: State<F>,
    task: TaskId,
    wake_cpu: CpuId,
) -> Result<State<F>, String> {
    let mut steps = Vec::new();
    for _ in 0..1000 {
        if s.in_user(task) {
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
            .ok_or_else(|| {
                format!(
                    "setup: T{task} has no step to take ({})",
                    crate::snapshot::ProgramPoint::from(s.task(task).op)
                )
            })?;
        s = apply(p, &s, step);
    }
    Err(format!("setup: T{task} did not return to user space"))
}
