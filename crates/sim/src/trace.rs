//! The last events of a run, kept in a ring of fixed-size records and rendered, when an invariant
//! fails, in the checker's CPU-column style. A run does not record: when it stops at a violation, a
//! replay of it that records up to the same violation gives the trace
//! ([`crate::Machine::run_until`]).

use std::fmt::Write;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `schedule`: `curr` becomes `task` (or idle); `cid` is what the task holds after schedin.
    Switch,
    /// A `get_cid` spin lap (the switch is not complete).
    Spin,
    /// `pthread_create` of `arg` (CID code: `sched_mm_cid_fork`).
    Fork,
    /// `do_exit` (`sched_mm_cid_exit`).
    Exit,
    /// `execve` (arg 1 = succeeded, 0 = failed).
    Exec,
    /// posix_spawn: vfork child `arg`.
    Spawn,
    /// A fix-up walk visit of task `arg` (or CPU `arg` for CPU→task walks).
    Visit,
    /// Mode flip (arg = new mode word).
    Mode,
    /// Migration from CPU `arg`.
    Migrate,
    /// sched_setaffinity (arg = new cpuset size).
    Affinity,
    /// 6.18 compaction scan (arg = CIDs reclaimed).
    Scan,
    /// The task wakes on CPU `cpu` (queued).
    Wake,
}

/// One event.
#[derive(Clone, Copy, Debug)]
pub struct Rec {
    /// Simulated ns.
    pub t: u64,
    /// CPU it happened on.
    pub cpu: u32,
    /// What.
    pub kind: Kind,
    /// Task (u32::MAX: none/idle).
    pub task: u32,
    /// The task's mm.
    pub mm: u32,
    /// Kind-specific.
    pub arg: u64,
    /// The task's user-visible CID after the event (-1: none), or a raw word for Mode.
    pub cid: i64,
}

/// Slots of a [`Ring`]: a fixed power of two, so that a push's slot index is masked in range at
/// compile time (no bounds check).
const SLOTS: usize = 64;

/// A ring of the last `cap` (at most 64) events, stored in a power-of-two number of slots so that
/// a push is one store and an increment (no "full yet?" branch): it is written on every event.
#[derive(Clone, Debug)]
pub struct Ring {
    buf: Box<[Rec; SLOTS]>,
    cap: usize,
    /// Records pushed so far; the next goes to slot `next % SLOTS`.
    next: usize,
}

const EMPTY: Rec = Rec {
    t: 0,
    cpu: 0,
    kind: Kind::Switch,
    task: u32::MAX,
    mm: u32::MAX,
    arg: 0,
    cid: -1,
};

impl Ring {
    /// A ring of `cap` records (at most 64).
    pub fn new(cap: usize) -> Ring {
        assert!(cap <= SLOTS, "a ring keeps at most {SLOTS} records");
        Ring {
            buf: Box::new([EMPTY; SLOTS]),
            cap,
            next: 0,
        }
    }
    /// Appends a record.
    #[inline(always)]
    pub fn push(&mut self, r: Rec) {
        self.buf[self.next % SLOTS] = r;
        self.next = self.next.wrapping_add(1);
    }
    /// The last `cap` records, oldest first.
    pub fn records(&self) -> Vec<Rec> {
        let n = self.next.min(self.cap);
        (self.next - n..self.next).map(|i| self.buf[i % SLOTS]).collect()
    }
}

fn name(t: u32) -> String {
    if t == u32::MAX {
        "idle".into()
    } else {
        format!("T{t}")
    }
}

fn cid(c: i64) -> String {
    if c < 0 {
        "no CID".into()
    } else {
        format!("cid {c}")
    }
}

/// Renders the last `n` records in CPU columns, as `mmcid check` prints traces: one column per
/// CPU, for the (at most five) CPUs most recently active; events on other CPUs are left out and
/// counted.
pub fn render(recs: &[Rec], n: usize) -> String {
    let mut cpus: Vec<u32> = Vec::new();
    for r in recs.iter().rev() {
        if !cpus.contains(&r.cpu) {
            cpus.push(r.cpu);
        }
        if cpus.len() == 5 {
            break;
        }
    }
    cpus.sort_unstable();
    let kept: Vec<&Rec> = recs.iter().filter(|r| cpus.contains(&r.cpu)).collect();
    let omitted = recs.len() - kept.len();
    let recs = &kept[kept.len().saturating_sub(n)..];
    const W: usize = 34;
    let mut out = String::new();
    let _ = write!(out, "{:>12} ", "time (ns)");
    for c in &cpus {
        let _ = write!(out, "{:<W$}", format!("CPU{c}"));
    }
    out.push('\n');
    for r in recs {
        let col = cpus.iter().position(|&c| c == r.cpu).unwrap_or(0);
        let text = match r.kind {
            Kind::Switch => format!("schedule {} ({})", name(r.task), cid(r.cid)),
            Kind::Spin => format!("{} get_cid spins", name(r.task)),
            Kind::Fork => format!("{} clone T{} ({})", name(r.task), r.arg, cid(r.cid)),
            Kind::Exit => format!("{} exit", name(r.task)),
            Kind::Exec => format!(
                "{} execve {}",
                name(r.task),
                if r.arg == 1 { "ok" } else { "fails" }
            ),
            Kind::Spawn => format!("{} vfork T{}", name(r.task), r.arg),
            Kind::Visit => format!("{} fixup visit {}", name(r.task), r.arg),
            Kind::Mode => format!(
                "mm{} mode -> {}",
                r.mm,
                mmcid_cid::Mode::from_parts(r.arg & 1 != 0, r.arg & 2 != 0)
            ),
            Kind::Migrate => format!("{} migrated from CPU{}", name(r.task), r.arg),
            Kind::Affinity => format!("{} setaffinity ({} CPUs)", name(r.task), r.arg),
            Kind::Scan => format!("mm{} compaction scan: {} reclaimed", r.mm, r.arg),
            Kind::Wake => format!("{} wakes", name(r.task)),
        };
        let _ = write!(out, "{:>12} {}{}", r.t, " ".repeat(col * W), text);
        out.push('\n');
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "({omitted} events of the same window on other CPUs not shown)"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: u64) -> Rec {
        Rec {
            t,
            cpu: 0,
            kind: Kind::Wake,
            task: 1,
            mm: 0,
            arg: 0,
            cid: -1,
        }
    }

    #[test]
    fn the_ring_keeps_the_last_records_oldest_first() {
        for cap in [0, 1, 3, 48, 64] {
            let mut r = Ring::new(cap);
            for n in 0..200u64 {
                let got: Vec<u64> = r.records().iter().map(|x| x.t).collect();
                let want: Vec<u64> = (n.saturating_sub(cap as u64)..n).collect();
                assert_eq!(got, want, "cap {cap} after {n}");
                r.push(rec(n));
            }
        }
    }
}
