//! The promises of spec section 6 as named checks over a state, plus reachability ("sometimes")
//! properties that tell a too-small configuration apart from a verified one.
//!
//! When each one must hold:
//! - I1, I4, I5, I8, I8v, D1, W: at every step (each step is a whole critical section).
//! - I2: for every task that is in user space (running, switch complete, no operation in progress);
//!   a task inside the kernel may transiently hold UNSET.
//! - I6: only while the mm is quiescent in a steady mode (no walk in progress, no TRANSIT).
//! - I7: while the mm has users (the last-user exit deliberately ignores the flip it causes).
//! - I4, I6, I7 are checked only while the mm has users: a dead mm's leftovers harm nobody, unless it
//!   comes back to life (a failed execve), which makes users non-zero again.
//!
//! The pre-rewrite designs (6.3, 6.18; designs.md E) keep the ids where the promise is the same
//! ([`check_legacy`]):
//! - I1: the running active tasks of an mm (switch complete) hold distinct CIDs
//!   (`legacy::check_unique`).
//! - I2: a task in user space holds a CID in `0..num_possible_cpus`; 6.3's −1 (the allocator found
//!   no free bit) is a violation, since user space reads it. For 6.18 the bound is the tighter
//!   derived one of designs.md E.0.8, the mm's current `nr_cpus_allowed` (`v6_18::check_bound`).
//! - I4: bit ownership, at every step and whether or not the mm has users: 6.3, the tasks of the
//!   mm own the bits their `mm_cid` names (`v6_3::check_ownership`); 6.18, the per-CPU slots (valid
//!   or LAZY) plus the CIDs in flight in a remote clear or a migration own them
//!   (`v6_18::check_ownership`), and a running active task's `mm_cid` is a copy of its CPU's slot
//!   (`v6_18::holds_slot_copy`: the slot was not taken away under a running user).
//! - D1: no `clear_bit` outside the bitmap or of a clear bit (the designs' recorded faults).
//! - I5, I6, I7, I8, I8v and W are about the rewrite's ONCPU/TRANSIT encoding, modes, user
//!   lists and WARN sites; they do not apply and hold vacuously. R1–R3 and R5 are never reached;
//!   R4 is reached when a 6.18 CPU busy-waits in `mm_cid_get` (a fallback lap with no free bit
//!   below `nr_cpus_allowed`, or `cid_lock` held by another CPU).

use mmcid_cid::legacy::{self as lg, v6_3, v6_18};
use mmcid_cid::{Cid, Mode, TaskId};
use mmcid_engine::{PropertyInfo, PropertyKind};

use crate::config::Family;
use crate::state::*;
use crate::step::Params;

/// A property of the kernel model.
pub struct Property {
    /// Short id.
    pub name: &'static str,
    /// One sentence in the kernel's terms.
    pub description: &'static str,
    /// Always (invariant) or Sometimes (reachability).
    pub kind: PropertyKind,
}

const fn always(name: &'static str, description: &'static str) -> Property {
    Property {
        name,
        description,
        kind: PropertyKind::Always,
    }
}
const fn sometimes(name: &'static str, description: &'static str) -> Property {
    Property {
        name,
        description,
        kind: PropertyKind::Sometimes,
    }
}

/// All properties, in report order. Indices are stable: `check` refers to them by position.
pub const PROPERTIES: &[Property] = &[
    always("I1", "no two running tasks of an mm hold the same CID"),
    always(
        "I2",
        "every task of an mm in user space holds a CID below num_possible_cpus",
    ),
    always(
        "I4",
        "every set bitmap bit has exactly one owner, and every owned CID's bit is set",
    ),
    always("I5", "no stored CID carries ONCPU and TRANSIT together"),
    always(
        "I6",
        "steady per-task: no CPU owns a CID; steady per-CPU: no task owns a plain CID",
    ),
    always("I7", "the mode carries TRANSIT exactly while a fix-up walk runs"),
    always("I8", "users == length of user_list == number of active tasks"),
    always("I8v", "every CID user is visible in the thread and task lists"),
    always("D1", "drop() clears only set bits inside the bitmap"),
    always("W", "no WARN_ON in the CID code fires"),
    sometimes("R1", "per-CPU mode is reached"),
    sometimes("R2", "a switch back to per-task mode is reached"),
    sometimes("R3", "a running task holds a TRANSIT CID"),
    sometimes("R4", "a CPU or task spins in get_cid"),
    sometimes("R5", "the deferred switch back to per-task is queued (irq_work)"),
];

/// The engine's view of [`PROPERTIES`].
pub fn property_infos() -> Vec<PropertyInfo> {
    PROPERTIES
        .iter()
        .map(|p| PropertyInfo {
            name: p.name,
            description: p.description,
            kind: p.kind,
        })
        .collect()
}

/// Index of the property named `name`.
pub fn index(name: &str) -> Option<usize> {
    PROPERTIES.iter().position(|p| p.name == name)
}

/// Appends the indices of the properties that fire in `s`.
pub fn check(p: &Params, s: &State, out: &mut Vec<usize>) {
    if p.family != Family::Rewrite {
        return check_legacy(s, out);
    }
    let np = s.np() as u32;
    let mut fired = [false; 15];
    for (mi, mm) in s.mms.iter().enumerate() {
        let m = mi as MmId;
        let c = &mm.cid;
        let users_of = || s.tasks.iter().enumerate().filter(move |(_, t)| t.mm == Some(m));
        // I1: unique among running tasks of the mm (switch complete, active, holding a CID).
        let mut seen = 0u64;
        for (i, t) in users_of() {
            if t.cid.active && s.on_cpu_settled(i as u8) && !t.cid.cid.is_unset() {
                let v = t.cid.cid.index();
                if v < 64 && seen & (1 << v) != 0 {
                    fired[0] = true;
                }
                if v < 64 {
                    seen |= 1 << v;
                }
            }
        }
        // I2: a task in user space holds a CID below np.
        for (i, t) in users_of() {
            if t.cid.active && s.on_cpu_settled(i as u8) && t.op == Op::User && t.cid_op.is_none() {
                let v = t.cid.cid;
                if v.is_unset() || v.user_value() >= np {
                    fired[1] = true;
                }
            }
        }
        // I5
        if c.pcpu
            .iter()
            .take(np as usize)
            .chain(users_of().map(|(_, t)| &t.cid.cid))
            .any(|x| x.on_cpu() && x.in_transit())
        {
            fired[3] = true;
        }
        // I8
        let active = users_of().filter(|(_, t)| t.cid.active).count();
        if c.users as usize != c.user_list.len() || active != c.users as usize {
            fired[6] = true;
        }
        // I8v
        if c.user_list.as_slice().iter().any(|&t| !s.published(t)) {
            fired[7] = true;
        }
        // D1, W
        if c.faults.out_of_range.is_some() || c.faults.already_clear.is_some() {
            fired[8] = true;
        }
        if c.faults.warn.is_some() {
            fired[9] = true;
        }
        if c.users == 0 {
            continue;
        }
        // I4: owners per bit: tasks holding a plain or TRANSIT value, CPUs holding an ONCPU value.
        let mut owners = [0u8; 64];
        let mut bad = false;
        for (_, t) in users_of() {
            let v = t.cid.cid;
            if !v.is_unset() && !v.on_cpu() {
                if !t.cid.active {
                    bad = true; // an exited or inactive task still owns a CID
                }
                if v.index() < 64 {
                    owners[v.index() as usize] += 1;
                } else {
                    bad = true;
                }
            }
        }
        for slot in c.pcpu.iter().take(np as usize) {
            if slot.on_cpu() {
                if slot.index() < 64 {
                    owners[slot.index() as usize] += 1;
                } else {
                    bad = true;
                }
            }
        }
        // 6.19-rc7: a schedin between get_cid and its second mode load holds the CID it just
        // took in its continuation; it owns that bit unless the CID is the task's own plain one or
        // its CPU's ONCPU one (those owners are counted above).
        for cpu in 0..s.np() {
            if let Some(mmcid_cid::SchedinSpin::TransitLoad { tc }) = s.cpus[cpu as usize].spin {
                let task_holds = s.curr(cpu).is_some_and(|t| s.task(t).cid.cid == tc);
                if s.curr(cpu).and_then(|t| s.task(t).mm) == Some(m)
                    && c.slot(cpu) != tc.add_cpu()
                    && !task_holds
                    && tc.index() < 64
                {
                    owners[tc.index() as usize] += 1;
                }
            }
        }
        for b in 0..64u32 {
            let set = c.bitmap.is_set(b);
            let o = owners[b as usize];
            if (set && o != 1) || (!set && o != 0) {
                bad = true;
            }
        }
        fired[2] |= bad;
        // I6 / I7
        let walking = s.walking(m);
        let walking_to_task = s
            .tasks
            .iter()
            .any(|t| s.op_mm(t) == Some(m) && matches!(t.cid_op, Some(CidOp::CpusToTasks { .. })));
        let transit_expected = if p.sw.one_word_mode {
            walking
        } else {
            walking_to_task
        };
        if c.mode.in_transit() != transit_expected {
            fired[5] = true;
        }
        if !walking && !c.mode.in_transit() {
            let cpu_owned = c.pcpu.iter().take(np as usize).any(|x| x.on_cpu());
            let task_owned = users_of().any(|(_, t)| t.cid.active && t.cid.cid.on_task());
            if (c.mode == Mode::PER_TASK && cpu_owned) || (c.mode == Mode::PER_CPU && task_owned) {
                fired[4] = true;
            }
        }
        // reachability
        fired[10] |= c.mode.percpu();
        fired[11] |= c.mode == Mode::TO_TASK;
        fired[12] |= users_of().any(|(i, t)| t.cid.cid.in_transit() && s.on_cpu_settled(i as u8));
        fired[14] |= mm.irq_work.is_some();
    }
    fired[13] |= s.cpus.iter().any(|c| c.spin.is_some_and(|x| x.spins()))
        || (0..s.tasks.len()).any(|t| s.task_spinning(t as u8));
    let _ = Cid::UNSET;
    out.extend(fired.iter().enumerate().filter(|(_, f)| **f).map(|(i, _)| i));
}

/// [`check`] for the pre-rewrite designs (see the module docs for what each id means there).
pub fn check_legacy(s: &State, out: &mut Vec<usize>) {
    let np = s.np() as i32;
    let mut fired = [false; 15];
    for (mi, mm) in s.mms.iter().enumerate() {
        let m = mi as MmId;
        let users_of = || {
            s.tasks
                .iter()
                .enumerate()
                .filter(move |(_, t)| t.mm == Some(m))
                .map(|(i, t)| (i as TaskId, t))
        };
        let running = || users_of().filter(|(i, t)| t.legacy.active() && s.on_cpu_settled(*i));
        let cid = |t: &Task| t.legacy.mm_cid().expect("a pre-rewrite task");
        // I1
        fired[0] |= lg::check_unique(running().map(|(_, t)| cid(t))).is_err();
        // I2: in user space (switch complete, no operation in progress).
        for (_, t) in running().filter(|(_, t)| t.op == Op::User && t.cid_op.is_none()) {
            let v = cid(t).user_value();
            let design_bound = match (&mm.legacy, &t.legacy) {
                (LegacyMm::V63(x), LegacyTask::V63(y)) => v6_3::check_bound(x, y).is_err(),
                (LegacyMm::V618(x), LegacyTask::V618(y)) => v6_18::check_bound(x, y).is_err(),
                _ => true,
            };
            fired[1] |= v < 0 || v >= np || design_bound;
        }
        // I4, D1
        let faults = match &mm.legacy {
            LegacyMm::V63(x) => {
                fired[2] |= v6_3::check_ownership(x, users_of().map(|(_, t)| cid(t))).is_err();
                x.faults
            }
            LegacyMm::V618(x) => {
                fired[2] |= v6_18::check_ownership(x, crate::legacy::in_flight(s, m)).is_err()
                    || running().any(|(_, t)| match &t.legacy {
                        LegacyTask::V618(y) => !v6_18::holds_slot_copy(x, t.cpu, y),
                        _ => true,
                    });
                x.faults
            }
            LegacyMm::None => continue,
        };
        fired[8] |= faults.out_of_range.is_some() || faults.already_clear.is_some();
    }
    // R4: a CPU busy-waits in 6.18's mm_cid_get.
    fired[13] |= s.cpus.iter().enumerate().any(|(c, cpu)| {
        cpu.legacy_spin.is_some_and(|k| {
            let mm = s.curr(c as u8).and_then(|t| s.task(t).mm);
            match mm.map(|m| &s.mms[m as usize].legacy) {
                Some(LegacyMm::V618(x)) => k.waits(x),
                _ => false,
            }
        })
    });
    out.extend(fired.iter().enumerate().filter(|(_, f)| **f).map(|(i, _)| i));
}
