//! Words for the 7.0 family's state and steps: kernel function names, effects, state lines.

use std::fmt::Write as _;

use mmcid_cid::{Cid, Mode, SchedinSpin, TaskId};

use crate::family::Rewrite;
use crate::ops::{Params, Step};
use crate::rewrite::cid_op::{CidOp, walking};
use crate::rewrite::walk::{Visit, next_visit};
use crate::state::*;
use crate::trace::{cn, tn};

/// The kernel function of a 7.0-family step (`None`: the kernel names it).
pub fn name(p: &Params, s: &State<Rewrite>, step: Step) -> Option<(String, &'static str, Option<String>)> {
    Some(match step {
        Step::SchedinRetry { cpu } if s.cpus[cpu as usize].spin().is_some_and(|x| !x.spins()) => {
            (cn(cpu), "from_task_transit_load", None)
        }
        Step::SchedinRetry { cpu } => (cn(cpu), "get_cid_retry", None),
        Step::IrqWork { cpu } => (cn(cpu), "mm_cid_irq_work", None),
        Step::Retry { task } => (tn(task), "get_cid_retry", None),
        Step::Next { task } => {
            let t = s.task(task);
            let (f, a) = match t.cid_op? {
                CidOp::Fork { t } => ("sched_mm_cid_fork", Some(tn(t))),
                CidOp::ForkLocked { t } => ("sched_mm_cid_fork_locked", Some(tn(t))),
                CidOp::ExecAssign { spun: false } => ("mm_cid_schedin", Some(tn(task))),
                CidOp::ExecAssign { spun: true } => ("sched_mm_cid_fork_return", None),
                CidOp::ForkGetCid { t } => ("get_cid", Some(tn(t))),
                CidOp::Exit { t: who } => {
                    let f = if matches!(t.op, Op::Exec { .. }) {
                        "sched_mm_cid_before_execve"
                    } else {
                        "sched_mm_cid_exit"
                    };
                    (f, Some(tn(who)))
                }
                CidOp::LastUserSync => ("irq_work_sync", None),
                CidOp::Work => ("mm_cid_work_fn", None),
                op @ (CidOp::TasksToCpus { .. }
                | CidOp::TasksToCpusBudgeted { .. }
                | CidOp::CpusToTasks { .. }) => match next_visit(p, s, task) {
                    Visit::Task(v) if matches!(op, CidOp::TasksToCpusBudgeted { .. }) => {
                        ("fixup_one", Some(tn(v)))
                    }
                    Visit::Task(v) => ("fixup_tasks_to_cpus", Some(tn(v))),
                    Visit::Cpu(c) => ("fixup_cpus_to_tasks", Some(cn(c))),
                    Visit::Complete => ("complete_transit", None),
                },
                CidOp::ForkSpinLocked { .. } | CidOp::ForkSpinMutex { .. } => ("get_cid_retry", None),
            };
            (tn(task), f, a)
        }
        _ => return None,
    })
}

/// What a step changed in the CPUs' and mms' CID state.
pub fn effects(before: &State<Rewrite>, after: &State<Rewrite>, out: &mut Vec<String>) {
    for (i, (a, b)) in before.cpus.iter().zip(&after.cpus).enumerate() {
        let spins = |c: &crate::rewrite::RwCpu| c.spin().is_some_and(|x| x.spins());
        if !spins(a) && spins(b) {
            out.push("get_cid: no free CID, spins (rq lock held)".to_string());
        } else if spins(a) && !spins(b) {
            out.push(format!("CPU{i} stops spinning"));
        }
        if let Some(SchedinSpin::TransitLoad { tc }) = b.spin() {
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
            out.push(format!("{pre}FAULT {}", faults_words(&y.faults, y.np)));
        }
        if ma.irq_work != mb.irq_work && mb.irq_work.is_some() {
            out.push(format!("{pre}irq_work queued"));
        }
    }
}

/// What a step changed in task `i`'s CID state.
pub fn task_effects(i: usize, ta: &Task<Rewrite>, tb: &Task<Rewrite>, out: &mut Vec<String>) {
    if ta.cid.cid != tb.cid.cid {
        out.push(format!("T{i}.cid {} -> {}", ta.cid.cid, tb.cid.cid));
    }
    if ta.cid.active != tb.cid.active {
        out.push(format!(
            "T{i} {}",
            if tb.cid.active { "active" } else { "inactive" }
        ));
    }
}

/// A compact one-line CID state: `mode ONCPU users 4 max 3 bits {0,1,2} | CPU0 T1 [0|ONCPU] ...`.
pub fn state_line(s: &State<Rewrite>) -> String {
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
        let spin = if s.cpus[c as usize].spin().is_some_and(|x| x.spins()) {
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
        let st = crate::trace::sched_short(t.sched);
        let _ = write!(out, "T{i}:{}@{}{} ", t.cid.cid, st, t.cpu);
    }
    out.trim_end().to_string()
}

/// A multi-line description of the CID state at one point: the mm, each CPU and each task.
pub fn state_report(s: &State<Rewrite>) -> String {
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
                format!(", FAULT {}", faults_words(&c.faults, c.np))
            }
        );
        for cpu in 0..s.np() {
            let curr = s.curr(cpu).map_or_else(|| "idle".to_string(), tn);
            let spin = if s.cpus[cpu as usize].spin().is_some_and(|x| x.spins()) {
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
            "  T{i}: {} on CPU{}, {mm}, cid {}, active {}, {vis}, in {}{}",
            crate::trace::sched_words(t.sched),
            t.cpu,
            t.cid.cid,
            t.cid.active as u8,
            crate::trace::op_words(&t.op),
            t.cid_op
                .map_or_else(String::new, |c| format!("; {}", cid_op_words(c)))
        );
    }
    out
}

/// A CID operation in kernel words (state reports).
pub fn cid_op_words(op: CidOp) -> String {
    match op {
        CidOp::Fork { t } => format!("next sched_mm_cid_fork(T{t})"),
        CidOp::ForkLocked { t } => format!("sched_mm_cid_fork(T{t}) after the revive walk (mutex held)"),
        CidOp::ExecAssign { spun: false } => "next mm_cid_schedin(current) (mutex held)".into(),
        CidOp::ExecAssign { spun: true } => "after mm_cid_schedin(current) (mutex held)".into(),
        CidOp::ForkSpinLocked { t, .. } => {
            format!("sched_mm_cid_fork(T{t}) spinning in get_cid (mm_cid.lock held, IRQs off)")
        }
        CidOp::ForkGetCid { t } => format!("sched_mm_cid_fork(T{t}), next get_cid (mutex held)"),
        CidOp::ForkSpinMutex { t } => format!("sched_mm_cid_fork(T{t}) spinning in get_cid (mutex held)"),
        CidOp::Exit { t } => format!("next sched_mm_cid_exit(T{t})"),
        CidOp::LastUserSync => "last user, next irq_work_sync".into(),
        CidOp::Work => "next mm_cid_work_fn".into(),
        CidOp::TasksToCpus { .. } | CidOp::TasksToCpusBudgeted { .. } => {
            "in mm_cid_fixup_tasks_to_cpus (mutex held)".into()
        }
        CidOp::CpusToTasks { cpu, .. } => {
            format!("in mm_cid_fixup_cpus_to_tasks, next CPU{cpu} (mutex held)")
        }
    }
}

/// Recorded faults in kernel words.
pub fn faults_words(f: &mmcid_cid::DropFaults, np: u8) -> String {
    let mut w = Vec::new();
    if let Some(b) = f.out_of_range {
        w.push(format!("clear_bit({b:#x}) outside the {np}-bit bitmap"));
    }
    if let Some(b) = f.already_clear {
        w.push(format!("clear_bit({b}) of a bit nobody owned"));
    }
    if let Some(site) = f.warn {
        w.push(format!("WARN_ON_ONCE: {}", warn_words(site)));
    }
    w.join(", ")
}

/// A WARN site in kernel words.
pub fn warn_words(site: mmcid_cid::WarnSite) -> &'static str {
    use mmcid_cid::WarnSite as W;
    match site {
        W::ForkCidNotUnset => "sched_mm_cid_fork: the task already has a CID",
        W::ExitSwitchedToPerCpu => "sched_mm_cid_exit: removing a user switched to per-CPU",
        W::ExitForeignMm => "sched_mm_cid_exit: a mode switch while current uses another mm",
        W::WorkSwitchedToPerCpu => "mm_cid_work_fn: re-evaluation switched to per-CPU",
        W::ReviveNotTransit => {
            "sched_mm_cid_fork (fix-execve-revive): mode of an mm without users is not TRANSIT"
        }
    }
}

/// Who owns each set bit (for explaining I4 and stalls): `bit 2: T3 (plain)`.
pub fn bit_owners(s: &State<Rewrite>, m: MmId) -> Vec<String> {
    let c = s.mm(m);
    let mut out = Vec::new();
    for b in c.bitmap.iter() {
        let mut owners = Vec::new();
        for (i, t) in s.tasks_of(m) {
            if t.cid.cid.index() == b && !t.cid.cid.is_unset() && !t.cid.cid.on_cpu() {
                let kind = if t.cid.cid.in_transit() {
                    "TRANSIT"
                } else {
                    "plain"
                };
                let vis = if s.published(i) { "" } else { ", not visible" };
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

/// One sentence, in the kernel's terms, on what is wrong in `s`: first the violated property's own
/// sentence ([`property_sentence`]), then whatever else is off in the state.
pub fn explain(property: &str, agent: Option<u16>, s: &State<Rewrite>) -> String {
    let mut why = Vec::new();
    if let Some(sentence) = property_sentence(property, s) {
        why.push(sentence);
    }
    for (m, mm) in s.mms.iter().enumerate() {
        let m = m as MmId;
        let c = &mm.cid;
        for (id, t) in s.tasks_of(m) {
            // (the violated property's own sentence, above, already says what it says)
            if t.cid.cid.on_task() && c.mode.percpu() && !walking(s, m) && property != "I6" {
                let vis = if s.published(id) {
                    ""
                } else {
                    ", invisible to the fix-up walk"
                };
                why.push(format!("T{id} owns plain CID {} in per-CPU mode{vis}", t.cid.cid));
            }
            if t.cid.active && !s.published(id) && property != "I8v" {
                why.push(format!("T{id} is counted as a CID user before it is visible"));
            }
            if t.cid.active
                && t.cid.cid.is_unset()
                && s.on_cpu_settled(id)
                && s.in_user(id)
                && property != "I2"
            {
                why.push(format!("T{id} runs in user space without a CID"));
            }
        }
        if c.users > 0 && c.mode.in_transit() && !walking(s, m) && property != "I7" {
            why.push(format!("mode {} with no fix-up walk running", c.mode));
        }
        if c.mode == Mode::PER_TASK
            && c.users > 0
            && c.pcpu.iter().take(s.cpus.len()).any(|x| x.on_cpu())
            && property != "I6"
        {
            why.push("a CPU still owns a CID in per-task mode".into());
        }
        if let Some(b) = c.faults.out_of_range {
            why.push(format!("drop() cleared bit {b}, outside the {}-bit bitmap", c.np));
        }
        if let Some(b) = c.faults.already_clear {
            why.push(format!("drop() cleared bit {b}, which nobody owned"));
        }
        if let Some(w) = c.faults.warn {
            why.push(format!("WARN_ON_ONCE: {}", warn_words(w)));
        }
    }
    let head = match (property, agent) {
        ("stall", Some(cpu)) | ("livelock", Some(cpu)) => {
            let holder = if s.cpus[cpu as usize].spin().is_some() {
                "in schedin, holding its rq lock with IRQs off".to_string()
            } else {
                let t = s.curr(cpu as u8);
                match t.map(|t| s.task(t).cid_op) {
                    Some(Some(CidOp::ForkSpinLocked { .. })) => {
                        "in sched_mm_cid_fork, holding mm.lock with IRQs off".into()
                    }
                    _ => "in sched_mm_cid_fork, holding mm.mutex".to_string(),
                }
            };
            let full = s
                .mms
                .first()
                .map(|m| m.cid.bitmap.weight() == m.cid.np as u32)
                .unwrap_or(false);
            let blocked: Vec<String> = s.runqueue(cpu as u8).map(tn).collect();
            let mut h = format!("CPU{cpu} spins in get_cid {holder}");
            if full {
                h.push_str("; every CID bit is set");
            }
            if !blocked.is_empty() {
                h.push_str(&format!(
                    "; {} wait(s) on its run queue, which nobody can lock",
                    blocked.join(", ")
                ));
            }
            h
        }
        _ => String::new(),
    };
    let mut seen = std::collections::HashSet::new();
    why.retain(|w| seen.insert(w.clone()));
    match (head.is_empty(), why.is_empty()) {
        (true, true) => crate::invariants::broken_promise(property),
        (true, false) => why.join("; "),
        (false, true) => head,
        (false, false) => format!("{head}; {}", why.join("; ")),
    }
}

/// The sentence for `property` (a [`crate::invariants::Property`] id) built from the state: which
/// task, CPU or bit breaks it and what it should have been. `None` if nothing in `s` shows it
/// (or the property has no specific sentence).
pub fn property_sentence(property: &str, s: &State<Rewrite>) -> Option<String> {
    use crate::invariants::Property as P;
    let p = P::from_id(property)?;
    let np = s.np() as u32;
    let mut out = Vec::new();
    for (mi, mm) in s.mms.iter().enumerate() {
        let m = mi as MmId;
        let c = &mm.cid;
        let on = |i: TaskId| cn(s.task(i).cpu);
        match p {
            P::I1 => {
                let running: Vec<(TaskId, Cid)> = s
                    .tasks_of(m)
                    .filter(|&(i, t)| t.cid.active && s.on_cpu_settled(i) && !t.cid.cid.is_unset())
                    .map(|(i, t)| (i, t.cid.cid))
                    .collect();
                for (k, &(a, ca)) in running.iter().enumerate() {
                    if let Some(&(b, cb)) = running[k + 1..].iter().find(|(_, cb)| cb.index() == ca.index()) {
                        out.push(format!(
                            "T{a} on {} (cid {ca}) and T{b} on {} (cid {cb}) run with the same CID {} at once",
                            on(a),
                            on(b),
                            ca.index()
                        ));
                    }
                }
            }
            P::I2 => {
                for (i, t) in s.tasks_of(m) {
                    if t.cid.active && s.on_cpu_settled(i) && s.in_user(i) {
                        let v = t.cid.cid;
                        if v.is_unset() {
                            out.push(format!(
                                "T{i} runs in user space on {} with cid {v} (raw {:#010x}): rseq hands it no CID below num_possible_cpus = {np}",
                                on(i),
                                v.raw()
                            ));
                        } else if v.user_value() >= np {
                            out.push(format!(
                                "T{i} runs in user space on {} with mm_cid {}, not below num_possible_cpus = {np}",
                                on(i),
                                v.user_value()
                            ));
                        }
                    }
                }
            }
            P::I5 => {
                for cpu in 0..s.np() {
                    let x = c.slot(cpu);
                    if x.on_cpu() && x.in_transit() {
                        out.push(format!(
                            "{}'s mm_cid.pcpu slot holds {:#010x} ({x}): ONCPU and TRANSIT together",
                            cn(cpu),
                            x.raw()
                        ));
                    }
                }
                for (i, t) in s.tasks_of(m) {
                    let x = t.cid.cid;
                    if x.on_cpu() && x.in_transit() {
                        out.push(format!(
                            "T{i}'s mm_cid.cid is {:#010x} ({x}): ONCPU and TRANSIT together",
                            x.raw()
                        ));
                    }
                }
            }
            P::I4 => {
                for line in bit_problems(s, m) {
                    out.push(line);
                }
            }
            P::I6 => {
                if c.mode == Mode::PER_TASK {
                    for cpu in 0..s.np() {
                        if c.slot(cpu).on_cpu() {
                            out.push(format!(
                                "mode is per-task, yet {} still owns {} (it should hold no CID)",
                                cn(cpu),
                                c.slot(cpu)
                            ));
                        }
                    }
                } else if c.mode == Mode::PER_CPU {
                    for (i, t) in s.tasks_of(m) {
                        if t.cid.active && t.cid.cid.on_task() {
                            out.push(format!(
                                "mode is per-CPU, yet T{i} owns the plain CID {} (it should borrow its CPU's ONCPU CID)",
                                t.cid.cid
                            ));
                        }
                    }
                }
            }
            P::I7 => {
                let w = walking(s, m);
                if c.mode.in_transit() && !w {
                    out.push(format!("mode is {} but no fix-up walk runs", c.mode));
                } else if !c.mode.in_transit() && w {
                    out.push(format!("a fix-up walk runs but mode {} lacks TRANSIT", c.mode));
                }
            }
            P::I8 => {
                let active = s.tasks_of(m).filter(|(_, t)| t.cid.active).count();
                out.push(format!(
                    "mm{m}: users is {}, user_list holds {}, {active} tasks are active CID users (all three should agree)",
                    c.users,
                    c.user_list.len()
                ));
            }
            P::I8v => {
                for &t in c.user_list.as_slice() {
                    if !s.published(t) {
                        out.push(format!(
                            "T{t} is on mm{m}'s user_list but in neither its thread list nor the task list, so a fix-up walk cannot see it"
                        ));
                    }
                }
            }
            _ => return None,
        }
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// What is wrong with the bitmap's ownership (I4): a set bit with no owner or two, a clear bit
/// with an owner, an inactive task still holding a CID.
fn bit_problems(s: &State<Rewrite>, m: MmId) -> Vec<String> {
    let c = s.mm(m);
    let mut out = Vec::new();
    for (i, t) in s.tasks_of(m) {
        let v = t.cid.cid;
        if !v.is_unset() && !v.on_cpu() && !t.cid.active {
            out.push(format!("T{i} is no longer a CID user but still holds CID {v}"));
        }
    }
    for b in 0..c.np as u32 {
        let mut owners = Vec::new();
        for (i, t) in s.tasks_of(m) {
            let v = t.cid.cid;
            if !v.is_unset() && !v.on_cpu() && v.index() == b {
                owners.push(tn(i));
            }
        }
        for cpu in 0..s.np() {
            if c.slot(cpu) == Cid::new(b).add_cpu() {
                owners.push(cn(cpu));
            }
        }
        match (c.bitmap.is_set(b), owners.len()) {
            (true, 0) => out.push(format!("bit {b} is set but nobody owns CID {b} (leaked)")),
            (true, 1) | (false, 0) => {}
            (true, _) => out.push(format!("bit {b} is owned by {} at once", owners.join(" and "))),
            (false, _) => out.push(format!(
                "bit {b} is clear but {} holds CID {b}",
                owners.join(" and ")
            )),
        }
    }
    out
}
