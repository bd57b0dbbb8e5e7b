//! Naming steps after the kernel functions they perform, and rendering traces as CPU columns
//! (one column per CPU, time downwards), the way the kernel mails draw interleavings.

use std::fmt::Write as _;

use mmcid_cid::{Cid, CpuId, TaskId};
use serde::Serialize;

use crate::state::*;
use crate::step::{Params, StartOp, Step, Visit, apply, next_visit};

/// A step as words: who acts, the kernel function, its argument. This is also the scenario syntax:
/// `<actor> <function> [<arg>]`, e.g. `CPU1 schedule T3`, `T0 sched_mm_cid_fork T4`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepName {
    /// `CPU<n>` or `T<n>`.
    pub actor: String,
    /// The kernel function (or event) the step performs.
    pub function: String,
    /// Its argument, if any (`T3`, `CPU2`, `idle`, `+CPU1`).
    pub arg: Option<String>,
}

impl std::fmt::Display for StepName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.actor, self.function)?;
        if let Some(a) = &self.arg {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

fn tn(t: TaskId) -> String {
    format!("T{t}")
}
fn cn(c: CpuId) -> String {
    format!("CPU{c}")
}

/// The name of `step` taken in `s`.
pub fn name(p: &Params, s: &State, step: Step) -> StepName {
    let (actor, function, arg): (String, &str, Option<String>) = match step {
        Step::Switch { cpu, next } => (
            cn(cpu),
            "schedule",
            Some(next.map_or_else(|| "idle".to_string(), tn)),
        ),
        Step::SchedinRetry { cpu } => (cn(cpu), "get_cid_retry", None),
        Step::Migrate { task, to } => (cn(to), "migrate", Some(tn(task))),
        Step::IrqWork { cpu } => (cn(cpu), "mm_cid_irq_work", None),
        Step::Start { task, op } => {
            let (f, a) = match op {
                StartOp::Fork => ("clone", None),
                StartOp::Vfork => ("vfork", None),
                StartOp::Exit => ("exit", None),
                StartOp::Exec => ("execve", None),
                StartOp::ExecFail => ("execve_fail", None),
                StartOp::Affinity { cpu } => ("sched_setaffinity", Some(format!("+{}", cn(cpu)))),
            };
            (tn(task), f, a)
        }
        Step::Fail { task } => (tn(task), "fork_fail", None),
        Step::Wake { task, cpu } => (tn(task), "wake_up_new_task", Some(cn(cpu))),
        Step::Retry { task } => (tn(task), "get_cid_retry", None),
        Step::Next { task } => {
            let t = s.task(task);
            let (f, a) = match t.cid_op {
                Some(CidOp::Fork { t }) => ("sched_mm_cid_fork", Some(tn(t))),
                Some(CidOp::ForkGetCid { t }) => ("get_cid", Some(tn(t))),
                Some(CidOp::Exit { t: who }) => {
                    let f = if matches!(t.op, Op::Exec { .. }) {
                        "sched_mm_cid_before_execve"
                    } else {
                        "sched_mm_cid_exit"
                    };
                    (f, Some(tn(who)))
                }
                Some(CidOp::LastUserSync) => ("irq_work_sync", None),
                Some(CidOp::Work) => ("mm_cid_work_fn", None),
                Some(
                    CidOp::TasksToCpus { .. } | CidOp::TasksToCpusBudgeted { .. } | CidOp::CpusToTasks { .. },
                ) => match next_visit(p, s, task) {
                    Visit::Task(v) if matches!(t.cid_op, Some(CidOp::TasksToCpusBudgeted { .. })) => {
                        ("fixup_one", Some(tn(v)))
                    }
                    Visit::Task(v) => ("fixup_tasks_to_cpus", Some(tn(v))),
                    Visit::Cpu(c) => ("fixup_cpus_to_tasks", Some(cn(c))),
                    Visit::Complete => ("complete_transit", None),
                },
                Some(CidOp::ForkSpinLocked { .. } | CidOp::ForkSpinMutex { .. }) => ("get_cid_retry", None),
                None => match t.op {
                    Op::Fork { child, at, .. } => match at {
                        ForkAt::Copy => ("copy_process", Some(tn(child))),
                        ForkAt::Publish => ("publish", Some(tn(child))),
                        ForkAt::PostFork => ("sched_post_fork", Some(tn(child))),
                        ForkAt::Failed | ForkAt::Cleanup => ("bad_fork_cleanup", Some(tn(child))),
                        ForkAt::Wake => ("wake_up_new_task", Some(tn(child))),
                    },
                    Op::Exit { at: ExitAt::Cid } => ("do_exit", None),
                    Op::Exit { .. } => ("exit_mm_release", None),
                    Op::Exec { at, ok } => match at {
                        ExecAt::Before => ("bprm_execve", None),
                        ExecAt::Outcome if ok => ("de_thread", None),
                        ExecAt::Outcome => ("exec_binprm_fails", None),
                        ExecAt::DeThread => ("exec_mmap", None),
                        ExecAt::After => ("sched_mm_cid_after_execve", None),
                    },
                    Op::Work { .. } => ("process_one_work", None),
                    _ => ("?", None),
                },
            };
            (tn(task), f, a)
        }
    };
    StepName {
        actor,
        function: function.to_string(),
        arg,
    }
}

/// The CPU a step runs on (its column).
pub fn cpu_of(s: &State, step: Step) -> CpuId {
    match step {
        Step::Switch { cpu, .. } | Step::SchedinRetry { cpu } | Step::IrqWork { cpu } => cpu,
        Step::Migrate { to, .. } => to,
        Step::Start { task, .. }
        | Step::Next { task }
        | Step::Fail { task }
        | Step::Wake { task, .. }
        | Step::Retry { task } => s.task(task).cpu,
    }
}

/// What a step changed in the CID state (and the scheduler facts a reader needs), as short lines.
pub fn effects(before: &State, after: &State) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (a, b)) in before.cpus.iter().zip(&after.cpus).enumerate() {
        if a.spin.is_none() && b.spin.is_some() {
            out.push("get_cid: no free CID, spins (rq lock held)".to_string());
        } else if a.spin.is_some() && b.spin.is_none() {
            out.push(format!("CPU{i} stops spinning"));
        }
    }
    for (m, mb) in after.mms.iter().enumerate() {
        let Some(ma) = before.mms.get(m) else {
            out.push(format!("new mm{m}"));
            continue;
        };
        let (x, y) = (&ma.cid, &mb.cid);
        let pre = if after.mms.len() > 1 {
            format!("mm{m} ")
        } else {
            String::new()
        };
        if x.mode != y.mode {
            out.push(format!("{pre}mode {} -> {}", x.mode, y.mode));
        }
        if x.users != y.users {
            out.push(format!("{pre}users {} -> {}", x.users, y.users));
        }
        if x.max_cids != y.max_cids {
            out.push(format!("{pre}max_cids {} -> {}", x.max_cids, y.max_cids));
        }
        if x.pcpu_thrs != y.pcpu_thrs {
            out.push(format!("{pre}pcpu_thrs {} -> {}", x.pcpu_thrs, y.pcpu_thrs));
        }
        if x.bitmap != y.bitmap {
            out.push(format!("{pre}bits {} -> {}", x.bitmap, y.bitmap));
        }
        for c in 0..after.cpus.len() {
            if x.pcpu[c] != y.pcpu[c] {
                out.push(format!("{pre}slot{c} {} -> {}", x.pcpu[c], y.pcpu[c]));
            }
        }
        if x.faults != y.faults {
            out.push(format!("{pre}FAULT {:?}", y.faults));
        }
        if ma.irq_work != mb.irq_work && mb.irq_work.is_some() {
            out.push(format!("{pre}irq_work queued"));
        }
    }
    for (i, tb) in after.tasks.iter().enumerate() {
        match before.tasks.get(i) {
            None => out.push(format!("T{i} created (unpublished)")),
            Some(ta) => {
                if ta.cid.cid != tb.cid.cid {
                    out.push(format!("T{i}.cid {} -> {}", ta.cid.cid, tb.cid.cid));
                }
                if ta.cid.active != tb.cid.active {
                    out.push(format!(
                        "T{i} {}",
                        if tb.cid.active { "active" } else { "inactive" }
                    ));
                }
                if ta.sched != tb.sched && !matches!(tb.sched, Sched::Running) {
                    let what = match tb.sched {
                        Sched::Runnable => "runnable",
                        Sched::Sleeping => "sleeps",
                        Sched::Dead => "dead",
                        _ => "new",
                    };
                    out.push(format!("T{i} {what} on CPU{}", tb.cpu));
                }
                if let (true, Some(m)) = (ta.mm != tb.mm, tb.mm) {
                    out.push(format!("T{i} mm -> mm{m}"));
                }
            }
        }
    }
    if before.groups != after.groups || before.process_list != after.process_list {
        out.push("published".to_string());
    }
    out
}

/// A compact one-line CID state: `mode ONCPU users 4 max 3 bits {0,1,2} | CPU0 T1 0|ONCPU ...`.
pub fn state_line(s: &State) -> String {
    let mut out = String::new();
    for (m, mm) in s.mms.iter().enumerate() {
        let c = &mm.cid;
        if s.mms.len() > 1 {
            let _ = write!(out, "mm{m}: ");
        }
        let _ = write!(
            out,
            "mode {} users {} max {} thrs {} bits {}",
            c.mode, c.users, c.max_cids, c.pcpu_thrs, c.bitmap
        );
        out.push_str(" | ");
    }
    for c in 0..s.np() {
        let curr = s.curr(c).map_or_else(|| "-".to_string(), tn);
        let spin = if s.cpus[c as usize].spin.is_some() {
            " SPIN"
        } else {
            ""
        };
        let slot = s
            .mms
            .first()
            .map(|m| m.cid.slot(c).to_string())
            .unwrap_or_default();
        let _ = write!(out, "CPU{c} {curr} [{slot}]{spin}  ");
    }
    out.push_str("| ");
    for (i, t) in s.tasks.iter().enumerate() {
        if t.kworker || t.mm.is_none() && t.sched == Sched::Dead {
            continue;
        }
        let st = match t.sched {
            Sched::New => "new",
            Sched::Running => "run",
            Sched::Runnable => "rq",
            Sched::Sleeping => "sleep",
            Sched::Dead => "dead",
        };
        let _ = write!(out, "T{i}:{}@{}{} ", t.cid.cid, st, t.cpu);
    }
    out.trim_end().to_string()
}

/// One rendered step of a trace (the JSON form of a trace step).
#[derive(Clone, Debug, Serialize)]
pub struct TraceStep {
    /// Step number (1-based).
    pub step: usize,
    /// The CPU it ran on.
    pub cpu: CpuId,
    /// The acting task, if a task acts.
    pub task: Option<TaskId>,
    /// The kernel function.
    #[serde(rename = "fn")]
    pub function: String,
    /// Its argument.
    pub arg: Option<String>,
    /// The scenario line that replays it.
    pub line: String,
    /// What changed.
    pub effect: Vec<String>,
    /// The CID state after the step.
    pub state: String,
}

/// Replays `steps` from `init` and describes each.
pub fn describe(p: &Params, init: &State, steps: &[Step]) -> Vec<TraceStep> {
    let mut s = *init;
    let mut out = Vec::new();
    for (i, &step) in steps.iter().enumerate() {
        let n = name(p, &s, step);
        let cpu = cpu_of(&s, step);
        let next = apply(p, &s, step);
        let task = n.actor.strip_prefix('T').and_then(|x| x.parse().ok());
        out.push(TraceStep {
            step: i + 1,
            cpu,
            task,
            function: n.function.clone(),
            arg: n.arg.clone(),
            line: n.to_string(),
            effect: effects(&s, &next),
            state: state_line(&next),
        });
        s = next;
    }
    out
}

/// Renders described steps as CPU columns. `cycle_start`: index of the first step of a live lock's
/// cycle (a `--- cycle ---` rule is drawn before it and `back to step k` after the last).
pub fn render_columns(
    np: u8,
    init: &State,
    steps: &[TraceStep],
    cycle_start: Option<usize>,
    with_state: bool,
) -> String {
    const W: usize = 30;
    let mut out = String::new();
    let _ = write!(out, "step ");
    for c in 0..np {
        let _ = write!(out, "{:<W$}", cn(c));
    }
    out.push('\n');
    let _ = write!(out, "{:>4} ", 0);
    for c in 0..np {
        let cell = match init.curr(c) {
            Some(t) => format!("{} cid {}", tn(t), init.task(t).cid.cid),
            None => "idle".to_string(),
        };
        let _ = write!(out, "{:<W$}", cell);
    }
    out.push('\n');
    if with_state {
        let _ = writeln!(out, "     {}", state_line(init));
    }
    for (i, st) in steps.iter().enumerate() {
        if Some(i) == cycle_start {
            let _ = writeln!(out, "     --- cycle ---");
        }
        let pad = " ".repeat(W * st.cpu as usize);
        let head = match (st.task, &st.arg) {
            (Some(t), Some(a)) => format!("T{t} {} {a}", st.function),
            (Some(t), None) => format!("T{t} {}", st.function),
            (None, Some(a)) => format!("{} {a}", st.function),
            (None, None) => st.function.clone(),
        };
        let _ = writeln!(out, "{:>4} {pad}{head}", st.step);
        for e in &st.effect {
            let _ = writeln!(out, "     {pad}  {e}");
        }
        if with_state {
            let _ = writeln!(out, "     {}", st.state);
        }
    }
    if let Some(k) = cycle_start {
        let _ = writeln!(out, "     back to step {k} (up to renaming of tasks)");
    }
    out
}

/// A multi-line description of the CID state at one point: the mm, each CPU and each task.
pub fn state_report(s: &State) -> String {
    let mut out = String::new();
    for (m, mm) in s.mms.iter().enumerate() {
        let c = &mm.cid;
        let _ = writeln!(
            out,
            "mm{m}: mode {}, users {}, max_cids {}, pcpu_thrs {}, bitmap {} of {} bits, user_list {:?}{}",
            c.mode,
            c.users,
            c.max_cids,
            c.pcpu_thrs,
            c.bitmap,
            c.np,
            c.user_list,
            if c.faults == Default::default() {
                String::new()
            } else {
                format!(", faults {:?}", c.faults)
            }
        );
        for cpu in 0..s.np() {
            let curr = s.curr(cpu).map_or_else(|| "idle".to_string(), tn);
            let spin = if s.cpus[cpu as usize].spin.is_some() {
                ", SPINNING in get_cid with its rq lock held"
            } else {
                ""
            };
            let rq: Vec<String> = s.runqueue(cpu).map(tn).collect();
            let _ = writeln!(
                out,
                "  CPU{cpu}: curr {curr}, slot {}, rq [{}]{spin}",
                c.slot(cpu),
                rq.join(" ")
            );
        }
    }
    for (i, t) in s.tasks.iter().enumerate() {
        if t.kworker {
            continue;
        }
        let mm = t.mm.map_or_else(|| "-".to_string(), |m| format!("mm{m}"));
        let vis = if s.published(i as TaskId) {
            "visible"
        } else {
            "NOT visible"
        };
        let _ = writeln!(
            out,
            "  T{i}: {:?} on CPU{}, {mm}, cid {}, active {}, {vis}, in {:?}{}",
            t.sched,
            t.cpu,
            t.cid.cid,
            t.cid.active as u8,
            t.op,
            t.cid_op.map_or_else(String::new, |c| format!(" / {c:?}"))
        );
    }
    out
}

/// Who owns each set bit (for explaining I4 and stalls): `bit 2: T3 (plain)`.
pub fn bit_owners(s: &State, m: MmId) -> Vec<String> {
    let c = s.mm(m);
    let mut out = Vec::new();
    for b in c.bitmap.iter() {
        let mut owners = Vec::new();
        for (i, t) in s.tasks.iter().enumerate() {
            if t.mm == Some(m) && t.cid.cid.index() == b && !t.cid.cid.is_unset() && !t.cid.cid.on_cpu() {
                let kind = if t.cid.cid.in_transit() {
                    "TRANSIT"
                } else {
                    "plain"
                };
                let vis = if s.published(i as TaskId) {
                    ""
                } else {
                    ", not visible"
                };
                owners.push(format!("T{i} ({kind}{vis})"));
            }
        }
        for cpu in 0..s.np() {
            if c.slot(cpu) == Cid::new(b).add_cpu() {
                owners.push(format!("CPU{cpu} (ONCPU)"));
            }
        }
        if owners.is_empty() {
            owners.push("nobody (leaked)".into());
        }
        out.push(format!("bit {b}: {}", owners.join(", ")));
    }
    out
}
