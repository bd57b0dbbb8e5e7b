//! A state in words, drawn from its typed [`Snapshot`]: the compact *state line* a trace prints
//! under each step (`--states`) and the multi-line *state report* printed at a violating point
//! or at the end of a replay. Each design family lays out its own CID state (the 7.0 family's
//! mode, counters and per-CPU slots; 6.18's slots, counters and continuations; 6.3's bitmap);
//! the kernel words of the small types (CID values, program points, continuations) are their
//! `Display`, beside them in `mmcid_kmodel::snapshot` and `mmcid_cid`.

use std::fmt::Write as _;

use mmcid_cid::Cid;
use mmcid_cid::legacy::LegacyCid;
use mmcid_kmodel::FamilyKind;
use mmcid_kmodel::facts::bits_words;
use mmcid_kmodel::rewrite::describe::faults_words;
use mmcid_kmodel::snapshot::{CpuSnapshot, MmCidSnapshot, Snapshot, TaskSnapshot, TaskState};

/// A task's CID in its family's kernel words (`3|ONCPU`, `UNSET|TRANSIT`; 6.3 and 6.18: `3`,
/// `3|LAZY`, `UNSET`).
pub fn task_cid(family: FamilyKind, t: &TaskSnapshot) -> String {
    match family {
        FamilyKind::Rewrite => Cid::from_raw(t.cid).to_string(),
        FamilyKind::Lazy618 | FamilyKind::PerSwitch63 => LegacyCid::from_raw(t.cid).to_string(),
    }
}

/// The scheduler state as a state report writes it.
fn sched_words(s: TaskState) -> &'static str {
    match s {
        TaskState::New => "new (not yet woken)",
        TaskState::Running => "running",
        TaskState::Runnable => "runnable",
        TaskState::Sleeping => "sleeping",
        TaskState::Dead => "dead",
    }
}

/// The scheduler state as the compact state line writes it.
fn sched_short(s: TaskState) -> &'static str {
    match s {
        TaskState::New => "new",
        TaskState::Running => "run",
        TaskState::Runnable => "rq",
        TaskState::Sleeping => "sleep",
        TaskState::Dead => "dead",
    }
}

/// `T<n>`, or `-` for an idle CPU (state line).
fn curr_short(c: &CpuSnapshot) -> String {
    c.curr.map_or_else(|| "-".to_string(), |t| format!("T{t}"))
}

/// `T<n>`, or `idle` (state report).
fn curr_words(c: &CpuSnapshot) -> String {
    c.curr.map_or_else(|| "idle".to_string(), |t| format!("T{t}"))
}

/// `[T1 T2]`: the tasks on a run queue.
fn runqueue(c: &CpuSnapshot) -> String {
    let rq: Vec<String> = c.runqueue.iter().map(|t| format!("T{t}")).collect();
    format!("[{}]", rq.join(" "))
}

/// `mm<n>`, or `-` for a task without one.
fn mm_words(t: &TaskSnapshot) -> String {
    t.mm.map_or_else(|| "-".to_string(), |m| format!("mm{m}"))
}

/// Does the compact state line show the task (not a kworker, not a dead task without an mm)?
fn on_state_line(t: &TaskSnapshot) -> bool {
    !(t.kworker || t.mm.is_none() && t.state == TaskState::Dead)
}

/// The CID state on one line, e.g. `mode ONCPU users 4 max 3 thrs 3 bits {0,1,2} | CPU0 T1
/// [0|ONCPU]  ... | T1:0|ONCPU@run0 ...` (7.0 family).
pub fn state_line(s: &Snapshot) -> String {
    let mut out = String::new();
    let multi = s.mms.len() > 1;
    for mm in &s.mms {
        if multi {
            let _ = write!(out, "mm{}: ", mm.mm);
        }
        match &mm.cid {
            MmCidSnapshot::Rewrite {
                mode,
                users,
                max_cids,
                pcpu_thrs,
                bitmap,
                ..
            } => {
                let _ = write!(
                    out,
                    "mode {mode} users {users} max {max_cids} thrs {pcpu_thrs} bits {}",
                    bits_words(bitmap)
                );
            }
            MmCidSnapshot::Lazy618 {
                cidmask,
                max_nr_cid,
                mm_users,
                nr_cpus_allowed,
                use_cid_lock,
                slots,
                ..
            } => {
                let _ = write!(
                    out,
                    "bits {} max_nr_cid {max_nr_cid} users {mm_users} allowed {nr_cpus_allowed}{}",
                    bits_words(cidmask),
                    if *use_cid_lock { " use_cid_lock" } else { "" }
                );
                for (c, sl) in slots.iter().enumerate().take(s.cpus.len()) {
                    let _ = write!(out, " s{c}[{}/r{}]", sl.cid, sl.recent_cid);
                }
            }
            MmCidSnapshot::PerSwitch63 { cidmask, .. } => {
                let _ = write!(out, "bits {}", bits_words(cidmask));
            }
        }
        out.push_str(" | ");
    }
    for c in &s.cpus {
        let curr = curr_short(c);
        match s.family {
            FamilyKind::Rewrite => {
                let spin = if c.schedin.is_some_and(|x| x.spins()) {
                    " SPIN"
                } else {
                    ""
                };
                // (the slot of the first mm, as the kernel's per-CPU slot of the mm in use)
                let slot = match s.mms.first().map(|m| &m.cid) {
                    Some(MmCidSnapshot::Rewrite { slots, .. }) => {
                        slots.get(c.cpu as usize).map(Cid::to_string).unwrap_or_default()
                    }
                    _ => String::new(),
                };
                let _ = write!(out, "CPU{} {curr} [{slot}]{spin}  ", c.cpu);
            }
            FamilyKind::Lazy618 => {
                let busy = match (&c.mm_cid_get, &c.migrating) {
                    (Some(_), _) => " GET",
                    (_, Some(_)) => " MIG",
                    _ => "",
                };
                let _ = write!(out, "CPU{} {curr}{busy}  ", c.cpu);
            }
            FamilyKind::PerSwitch63 => {
                let _ = write!(out, "CPU{} {curr}  ", c.cpu);
            }
        }
    }
    out.push_str("| ");
    for t in s.tasks.iter().filter(|t| on_state_line(t)) {
        let cid = task_cid(s.family, t);
        let (st, cpu) = (sched_short(t.state), t.cpu);
        let act = if t.active { "" } else { "-" };
        let _ = match s.family {
            FamilyKind::Rewrite => write!(out, "T{}:{cid}@{st}{cpu} ", t.task),
            FamilyKind::Lazy618 => {
                let last = t.last_mm_cid.unwrap_or(LegacyCid::UNSET);
                write!(out, "T{}:{act}{cid}/l{last}@{st}{cpu} ", t.task)
            }
            FamilyKind::PerSwitch63 => write!(out, "T{}:{act}{cid}@{st}{cpu} ", t.task),
        };
    }
    out.trim_end().to_string()
}

/// The CID state on several lines: each mm with its CPUs, then each task with where it is in
/// the kernel.
pub fn state_report(s: &Snapshot) -> String {
    let mut out = String::new();
    for mm in &s.mms {
        let m = mm.mm;
        match &mm.cid {
            MmCidSnapshot::Rewrite {
                mode,
                users,
                max_cids,
                pcpu_thrs,
                bitmap,
                bitmap_bits,
                slots,
                user_list,
                faults,
            } => {
                let fault = if *faults == Default::default() {
                    String::new()
                } else {
                    format!(", FAULT {}", faults_words(faults, *bitmap_bits as u8))
                };
                let _ = writeln!(
                    out,
                    "mm{m}: mode {mode}, users {users}, max_cids {max_cids}, pcpu_thrs {pcpu_thrs}, bitmap {} of {bitmap_bits} bits, user_list {user_list:?}{fault}",
                    bits_words(bitmap),
                );
                for c in &s.cpus {
                    let spin = if c.schedin.is_some_and(|x| x.spins()) {
                        ", SPINNING in get_cid with its rq lock held"
                    } else {
                        ""
                    };
                    let slot = slots.get(c.cpu as usize).map(Cid::to_string).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  CPU{}: curr {}, slot {slot}, rq {}{spin}",
                        c.cpu,
                        curr_words(c),
                        runqueue(c)
                    );
                }
            }
            MmCidSnapshot::Lazy618 {
                cidmask,
                bitmap_bits,
                max_nr_cid,
                mm_users,
                nr_cpus_allowed,
                cpus_allowed,
                use_cid_lock,
                cid_lock,
                slots,
                faults,
            } => {
                let mask: u64 = cpus_allowed.iter().fold(0, |m, &c| m | 1 << c);
                let lock = cid_lock.map_or_else(|| "free".to_string(), |c| format!("held by CPU{c}"));
                let _ = writeln!(
                    out,
                    "mm{m}: cidmask {} of {bitmap_bits} bits, max_nr_cid {max_nr_cid}, mm_users {mm_users}, nr_cpus_allowed {nr_cpus_allowed} (mask {mask:#b}), use_cid_lock {}, cid_lock {lock}, faults: {faults}",
                    bits_words(cidmask),
                    *use_cid_lock as u8,
                );
                for c in &s.cpus {
                    let mut extra = String::new();
                    if let Some(g) = &c.mm_cid_get {
                        let _ = write!(extra, ", in mm_cid_get ({}) with its rq lock held", g.at);
                    }
                    if let Some(mg) = &c.migrating {
                        let _ = write!(
                            extra,
                            ", migrating T{} ({}) with its rq lock held",
                            mg.task, mg.at
                        );
                    }
                    let (cid, recent) = slots
                        .get(c.cpu as usize)
                        .map_or((LegacyCid::UNSET, LegacyCid::UNSET), |sl| (sl.cid, sl.recent_cid));
                    let _ = writeln!(
                        out,
                        "  CPU{}: curr {}, slot cid {cid} recent_cid {recent}, rq {}{extra}",
                        c.cpu,
                        curr_words(c),
                        runqueue(c)
                    );
                }
            }
            MmCidSnapshot::PerSwitch63 {
                cidmask,
                bitmap_bits,
                faults,
            } => {
                let _ = writeln!(
                    out,
                    "mm{m}: cidmask {} of {bitmap_bits} bits, faults: {faults}",
                    bits_words(cidmask)
                );
                for c in &s.cpus {
                    let _ = writeln!(out, "  CPU{}: curr {}, rq {}", c.cpu, curr_words(c), runqueue(c));
                }
            }
        }
    }
    for t in &s.tasks {
        let head = format!(
            "  T{}: {} on CPU{}, {}",
            t.task,
            sched_words(t.state),
            t.cpu,
            mm_words(t)
        );
        let cid = task_cid(s.family, t);
        let _ = match s.family {
            FamilyKind::Rewrite => {
                if t.kworker {
                    continue;
                }
                let vis = if t.visible { "visible" } else { "NOT visible" };
                let op = t.cid_op.map_or_else(String::new, |c| format!("; {c}"));
                writeln!(
                    out,
                    "{head}, cid {cid}, active {}, {vis}, in {}{op}",
                    t.active as u8, t.at
                )
            }
            FamilyKind::Lazy618 => {
                let work = t
                    .cid_op
                    .map_or_else(String::new, |w| format!(" / mm_cid_work: {w}"));
                writeln!(
                    out,
                    "{head}, mm_cid {cid}, last_mm_cid {}, active {}, migrate_from_cpu {}, in {}{work}",
                    t.last_mm_cid.unwrap_or(LegacyCid::UNSET),
                    t.active as u8,
                    t.migrate_from_cpu
                        .map_or_else(|| "-1".to_string(), |c| format!("CPU{c}")),
                    t.at
                )
            }
            FamilyKind::PerSwitch63 => writeln!(
                out,
                "{head}, mm_cid {cid}, active {}, in {}",
                t.active as u8, t.at
            ),
        };
    }
    out
}
