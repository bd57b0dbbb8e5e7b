//! Naming steps after the kernel functions they perform, and rendering traces as CPU columns
//! (one column per CPU, time downwards), the way the kernel mails draw interleavings.

use std::fmt::Write as _;

use mmcid_cid::{Cid, CpuId, SchedinSpin, TaskId};
use serde::Serialize;

use mmcid_cid::legacy::v6_18::Migrate;

use crate::config::Family;
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

/// The name of a pre-rewrite design's own step (`None`: named as in the 7.0 family).
fn legacy_name(p: &Params, s: &State, step: Step) -> Option<(String, &'static str, Option<String>)> {
    if p.family == Family::Rewrite {
        return None;
    }
    Some(match step {
        Step::SchedinRetry { cpu } => (cn(cpu), "mm_cid_get", None),
        Step::Next { task } => {
            let t = s.task(task);
            if let Some((_, st)) = s.cpus[t.cpu as usize].migrating.filter(|(m, _)| *m == task) {
                let f = match st {
                    Migrate::Fetched(_) => "mm_cid_steal",
                    Migrate::Stolen(_) => "mm_cid_steal_unset",
                    _ => "mm_cid_migrate_place",
                };
                return Some((cn(t.cpu), f, Some(tn(task))));
            }
            let (f, a) = match t.op {
                Op::User => ("task_work", Some("mm_cid_work".to_string())),
                Op::CidWork { at } => match at {
                    WorkAt::Scan { cpu } => ("sched_mm_cid_remote_clear", Some(cn(cpu))),
                    WorkAt::Marked { cpu, .. } => ("remote_clear_unset", Some(cn(cpu))),
                    WorkAt::Unset { cpu, .. } => ("__mm_cid_put", Some(cn(cpu))),
                },
                Op::Exit { at: ExitAt::Cid } => ("sched_mm_cid_exit_signals", None),
                Op::Exec {
                    at: ExecAt::Before, ..
                } => ("sched_mm_cid_before_execve", None),
                _ => return None,
            };
            (tn(task), f, a)
        }
        Step::Fail { task } => match s.task(task).op {
            Op::CidWork {
                at: WorkAt::Scan { cpu },
            } => (tn(task), "clear_old_skip", Some(cn(cpu))),
            _ => return None,
        },
        _ => return None,
    })
}

/// The name of `step` taken in `s`.
pub fn name(p: &Params, s: &State, step: Step) -> StepName {
    if let Some((actor, function, arg)) = legacy_name(p, s, step) {
        return StepName {
            actor,
            function: function.to_string(),
            arg,
        };
    }
    let (actor, function, arg): (String, &str, Option<String>) = match step {
        Step::Switch { cpu, next } => (
            cn(cpu),
            "schedule",
            Some(next.map_or_else(|| "idle".to_string(), tn)),
        ),
        Step::SchedinRetry { cpu } if s.cpus[cpu as usize].spin.is_some_and(|x| !x.spins()) => {
            (cn(cpu), "from_task_transit_load", None)
        }
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
    if is_legacy(after) {
        return legacy_effects(before, after);
    }
    let mut out = Vec::new();
    for (i, (a, b)) in before.cpus.iter().zip(&after.cpus).enumerate() {
        let spins = |c: &Cpu| c.spin.is_some_and(|x| x.spins());
        if !spins(a) && spins(b) {
            out.push("get_cid: no free CID, spins (rq lock held)".to_string());
        } else if spins(a) && !spins(b) {
            out.push(format!("CPU{i} stops spinning"));
        }
        if let Some(SchedinSpin::TransitLoad { tc }) = b.spin {
            out.push(format!("from_task chose {tc}; next: READ_ONCE(transit)"));
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
                sched_effects(i, ta, tb, false, &mut out);
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
    if is_legacy(s) {
        return legacy_state_line(s);
    }
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
        let spin = if s.cpus[c as usize].spin.is_some_and(|x| x.spins()) {
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
        let st = sched_short(t.sched);
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
            Some(t) => format!("{} cid {}", tn(t), task_cid(init, t)),
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
    if is_legacy(s) {
        return legacy_state_report(s);
    }
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
            let spin = if s.cpus[cpu as usize].spin.is_some_and(|x| x.spins()) {
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
    if is_legacy(s) {
        return legacy_bit_owners(s, m);
    }
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

// ---------------------------------------------------------------------------------------------
// The pre-rewrite designs (6.3, 6.18).

/// Does `s` belong to a pre-rewrite design?
fn is_legacy(s: &State) -> bool {
    s.mms.first().is_some_and(|m| m.legacy != LegacyMm::None)
}

/// The CID a task shows (its `t.cid`, or a pre-rewrite design's `mm_cid`).
pub fn task_cid(s: &State, t: TaskId) -> String {
    let task = s.task(t);
    match task.legacy.mm_cid() {
        Some(c) => c.to_string(),
        None => task.cid.cid.to_string(),
    }
}

fn legacy_effects(before: &State, after: &State) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (a, b)) in before.cpus.iter().zip(&after.cpus).enumerate() {
        match (a.legacy_spin, b.legacy_spin) {
            (_, Some(k)) if a.legacy_spin != b.legacy_spin => {
                let waits =
                    after
                        .curr(i as CpuId)
                        .and_then(|t| after.task(t).mm)
                        .is_some_and(|m| match &after.mms[m as usize].legacy {
                            LegacyMm::V618(x) => k.waits(x),
                            _ => false,
                        });
                let what = if waits {
                    "spins (rq lock held)"
                } else {
                    "continues"
                };
                out.push(format!("CPU{i} mm_cid_get {what}: {k:?}"));
            }
            (Some(_), None) => out.push(format!("CPU{i} mm_cid_get done")),
            _ => {}
        }
        if a.migrating != b.migrating {
            match b.migrating {
                Some((t, st)) => out.push(format!("CPU{i} migrating T{t}: {st:?} (rq lock held)")),
                None => out.push(format!("CPU{i} migration done")),
            }
        }
    }
    for (m, mb) in after.mms.iter().enumerate() {
        let Some(ma) = before.mms.get(m) else {
            out.push(format!("new mm{m}"));
            continue;
        };
        let pre = if after.mms.len() > 1 {
            format!("mm{m} ")
        } else {
            String::new()
        };
        match (&ma.legacy, &mb.legacy) {
            (LegacyMm::V63(x), LegacyMm::V63(y)) => {
                if x.cidmask != y.cidmask {
                    out.push(format!("{pre}cidmask {} -> {}", x.cidmask, y.cidmask));
                }
                if x.faults != y.faults {
                    out.push(format!("{pre}FAULT {:?}", y.faults));
                }
            }
            (LegacyMm::V618(x), LegacyMm::V618(y)) => {
                if x.cidmask != y.cidmask {
                    out.push(format!("{pre}cidmask {} -> {}", x.cidmask, y.cidmask));
                }
                for c in 0..after.cpus.len() {
                    let (sa, sb) = (x.pcpu[c], y.pcpu[c]);
                    if sa.cid != sb.cid {
                        out.push(format!("{pre}slot{c}.cid {} -> {}", sa.cid, sb.cid));
                    }
                    if sa.recent_cid != sb.recent_cid {
                        out.push(format!(
                            "{pre}slot{c}.recent_cid {} -> {}",
                            sa.recent_cid, sb.recent_cid
                        ));
                    }
                }
                if x.max_nr_cid != y.max_nr_cid {
                    out.push(format!("{pre}max_nr_cid {} -> {}", x.max_nr_cid, y.max_nr_cid));
                }
                if x.mm_users != y.mm_users {
                    out.push(format!("{pre}mm_users {} -> {}", x.mm_users, y.mm_users));
                }
                if x.nr_cpus_allowed != y.nr_cpus_allowed {
                    out.push(format!(
                        "{pre}nr_cpus_allowed {} -> {}",
                        x.nr_cpus_allowed, y.nr_cpus_allowed
                    ));
                }
                if x.use_cid_lock != y.use_cid_lock {
                    out.push(format!("{pre}use_cid_lock {}", y.use_cid_lock as u8));
                }
                if x.cid_lock != y.cid_lock {
                    match y.cid_lock {
                        Some(c) => out.push(format!("{pre}cid_lock taken by CPU{c}")),
                        None => out.push(format!("{pre}cid_lock released")),
                    }
                }
                if x.faults != y.faults {
                    out.push(format!("{pre}FAULT {:?}", y.faults));
                }
            }
            _ => {}
        }
    }
    for (i, tb) in after.tasks.iter().enumerate() {
        let Some(ta) = before.tasks.get(i) else {
            out.push(format!("T{i} created (unpublished)"));
            continue;
        };
        match (ta.legacy, tb.legacy) {
            (LegacyTask::V63(x), LegacyTask::V63(y)) if x.mm_cid != y.mm_cid => {
                out.push(format!("T{i}.mm_cid {} -> {}", x.mm_cid, y.mm_cid));
            }
            (LegacyTask::V618(x), LegacyTask::V618(y)) => {
                if x.mm_cid != y.mm_cid {
                    out.push(format!("T{i}.mm_cid {} -> {}", x.mm_cid, y.mm_cid));
                }
                if x.last_mm_cid != y.last_mm_cid {
                    out.push(format!("T{i}.last_mm_cid {} -> {}", x.last_mm_cid, y.last_mm_cid));
                }
                if x.migrate_from_cpu != y.migrate_from_cpu {
                    if let Some(c) = y.migrate_from_cpu {
                        out.push(format!("T{i}.migrate_from_cpu = CPU{c}"));
                    }
                }
            }
            _ => {}
        }
        if ta.legacy.active() != tb.legacy.active() {
            out.push(format!(
                "T{i} {}",
                if tb.legacy.active() { "active" } else { "inactive" }
            ));
        }
        sched_effects(i, ta, tb, true, &mut out);
    }
    if before.groups != after.groups || before.process_list != after.process_list {
        out.push("published".to_string());
    }
    out
}

/// `bits {0,1} max 2 users 3 | CPU0 T1 [0/r0] ...` (6.18 slots as `cid/rRECENT`).
fn legacy_state_line(s: &State) -> String {
    let mut out = String::new();
    for (m, mm) in s.mms.iter().enumerate() {
        if s.mms.len() > 1 {
            let _ = write!(out, "mm{m}: ");
        }
        match &mm.legacy {
            LegacyMm::V63(x) => {
                let _ = write!(out, "bits {}", x.cidmask);
            }
            LegacyMm::V618(x) => {
                let _ = write!(
                    out,
                    "bits {} max_nr_cid {} users {} allowed {}{}",
                    x.cidmask,
                    x.max_nr_cid,
                    x.mm_users,
                    x.nr_cpus_allowed,
                    if x.use_cid_lock { " use_cid_lock" } else { "" }
                );
                for c in 0..s.np() {
                    let sl = x.slot(c);
                    let _ = write!(out, " s{c}[{}/r{}]", sl.cid, sl.recent_cid);
                }
            }
            LegacyMm::None => {}
        }
        out.push_str(" | ");
    }
    for c in 0..s.np() {
        let curr = s.curr(c).map_or_else(|| "-".to_string(), tn);
        let cpu = &s.cpus[c as usize];
        let spin = match (cpu.legacy_spin, cpu.migrating) {
            (Some(_), _) => " GET",
            (_, Some(_)) => " MIG",
            _ => "",
        };
        let _ = write!(out, "CPU{c} {curr}{spin}  ");
    }
    out.push_str("| ");
    for (i, t) in s.tasks.iter().enumerate() {
        if t.kworker || t.mm.is_none() && t.sched == Sched::Dead {
            continue;
        }
        let st = sched_short(t.sched);
        let last = match t.legacy {
            LegacyTask::V618(x) => format!("/l{}", x.last_mm_cid),
            _ => String::new(),
        };
        let act = if t.legacy.active() { "" } else { "-" };
        let _ = write!(
            out,
            "T{i}:{act}{}{last}@{}{} ",
            task_cid(s, i as TaskId),
            st,
            t.cpu
        );
    }
    out.trim_end().to_string()
}

fn legacy_state_report(s: &State) -> String {
    let mut out = String::new();
    for (m, mm) in s.mms.iter().enumerate() {
        match &mm.legacy {
            LegacyMm::V63(x) => {
                let _ = writeln!(
                    out,
                    "mm{m}: cidmask {} of {} bits, faults {:?}",
                    x.cidmask, x.np, x.faults
                );
            }
            LegacyMm::V618(x) => {
                let _ = writeln!(
                    out,
                    "mm{m}: cidmask {} of {} bits, max_nr_cid {}, mm_users {}, nr_cpus_allowed {} (mask {:#b}), use_cid_lock {}, cid_lock {:?}, faults {:?}",
                    x.cidmask,
                    x.np,
                    x.max_nr_cid,
                    x.mm_users,
                    x.nr_cpus_allowed,
                    x.cpus_allowed,
                    x.use_cid_lock as u8,
                    x.cid_lock,
                    x.faults
                );
            }
            LegacyMm::None => {}
        }
        for cpu in 0..s.np() {
            let curr = s.curr(cpu).map_or_else(|| "idle".to_string(), tn);
            let c = &s.cpus[cpu as usize];
            let mut extra = String::new();
            if let Some(k) = c.legacy_spin {
                let _ = write!(extra, ", in mm_cid_get at {k:?} with its rq lock held");
            }
            if let Some((t, st)) = c.migrating {
                let _ = write!(extra, ", migrating T{t} at {st:?} with its rq lock held");
            }
            let slot = match &mm.legacy {
                LegacyMm::V618(x) => format!(
                    ", slot cid {} recent_cid {}",
                    x.slot(cpu).cid,
                    x.slot(cpu).recent_cid
                ),
                _ => String::new(),
            };
            let rq: Vec<String> = s.runqueue(cpu).map(tn).collect();
            let _ = writeln!(out, "  CPU{cpu}: curr {curr}{slot}, rq [{}]{extra}", rq.join(" "));
        }
    }
    for (i, t) in s.tasks.iter().enumerate() {
        let mm = t.mm.map_or_else(|| "-".to_string(), |m| format!("mm{m}"));
        let detail = match t.legacy {
            LegacyTask::V63(x) => format!("mm_cid {}, active {}", x.mm_cid, x.active as u8),
            LegacyTask::V618(x) => format!(
                "mm_cid {}, last_mm_cid {}, active {}, migrate_from_cpu {:?}",
                x.mm_cid, x.last_mm_cid, x.active as u8, x.migrate_from_cpu
            ),
            LegacyTask::None => String::new(),
        };
        let _ = writeln!(
            out,
            "  T{i}: {:?} on CPU{}, {mm}, {detail}, in {:?}",
            t.sched, t.cpu, t.op
        );
    }
    out
}

fn legacy_bit_owners(s: &State, m: MmId) -> Vec<String> {
    let mut out = Vec::new();
    let (bits, is618) = match &s.mms[m as usize].legacy {
        LegacyMm::V63(x) => (x.cidmask, false),
        LegacyMm::V618(x) => (x.cidmask, true),
        LegacyMm::None => return out,
    };
    let in_flight = crate::legacy::in_flight(s, m);
    for b in bits.iter() {
        let mut owners = Vec::new();
        if let LegacyMm::V618(x) = &s.mms[m as usize].legacy {
            for cpu in 0..s.np() {
                let c = x.slot(cpu).cid;
                if !c.is_unset() && c.index() == b {
                    owners.push(format!("CPU{cpu} slot ({c})"));
                }
            }
            if in_flight.iter().any(|c| c.index() == b) {
                owners.push("in flight (remote clear or migration)".into());
            }
        }
        for (i, t) in s.tasks.iter().enumerate() {
            if t.mm == Some(m) {
                if let Some(c) = t.legacy.mm_cid().filter(|c| !c.is_unset() && c.index() == b) {
                    owners.push(format!("T{i} ({}{c})", if is618 { "copy " } else { "" }));
                }
            }
        }
        if owners.is_empty() {
            owners.push("nobody (leaked)".into());
        }
        out.push(format!("mm{m} bit {b}: {}", owners.join(", ")));
    }
    out
}

/// The scheduler state as the compact state line writes it.
fn sched_short(s: Sched) -> &'static str {
    match s {
        Sched::New => "new",
        Sched::Running => "run",
        Sched::Runnable => "rq",
        Sched::Sleeping => "sleep",
        Sched::Dead => "dead",
    }
}

/// What changed in a task's scheduler state and mm (shared by both families' effect lists).
/// `moves`: also report a CPU change of a task that stays in the same state (a migration, which
/// the 6.18 design reacts to).
fn sched_effects(i: usize, ta: &Task, tb: &Task, moves: bool, out: &mut Vec<String>) {
    if ta.sched != tb.sched && !matches!(tb.sched, Sched::Running) {
        let what = match tb.sched {
            Sched::Runnable => "runnable",
            Sched::Sleeping => "sleeps",
            Sched::Dead => "dead",
            _ => "new",
        };
        out.push(format!("T{i} {what} on CPU{}", tb.cpu));
    } else if moves && ta.cpu != tb.cpu {
        out.push(format!("T{i} now on CPU{}", tb.cpu));
    }
    if let (true, Some(m)) = (ta.mm != tb.mm, tb.mm) {
        out.push(format!("T{i} mm -> mm{m}"));
    }
}
