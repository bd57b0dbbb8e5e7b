//! What to model: the design, the machine, the process, and the operation budgets.

use mmcid_cid::{ExitLocalSlot, MAX_CPUS, Registration, Switches, TaskWalk};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which CID code a design runs: the run-time tag of a [`crate::family::Family`] type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FamilyKind {
    /// The 7.0 rewrite and its predecessors back to 6.19-rc7, selected by [`Design::switches`].
    Rewrite,
    /// 6.14–6.18 "lazy per-CPU" (`mmcid_cid::legacy::v6_18`, designs.md E.2).
    Lazy618,
    /// 6.3: a CID per switched-in task (`mmcid_cid::legacy::v6_3`, designs.md E.1).
    PerSwitch63,
}

impl std::fmt::Display for FamilyKind {
    /// Which CID code, as the kernel history names it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FamilyKind::Rewrite => "the 7.0 rewrite (6.19-rc7 and later)",
            FamilyKind::Lazy618 => "6.14-6.18 lazy per-CPU CIDs",
            FamilyKind::PerSwitch63 => "6.3 per-switch CIDs",
        })
    }
}

/// A named design: the 7.0 code with the switches of designs.md set, or one of the two
/// pre-rewrite designs (then `switches` is unused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Design {
    /// The name used on the command line (`7.0`, `6.19.1`, ...).
    pub name: &'static str,
    /// One line: what it is.
    pub summary: &'static str,
    /// The commits it stands for.
    pub commits: &'static str,
    /// The switch settings (the [`FamilyKind::Rewrite`] designs only).
    pub switches: Switches,
    /// Which CID code runs.
    pub family: FamilyKind,
}

const A: Switches = Switches::V7_0;
const B: Switches = Switches {
    registration: Registration::CopyMm,
    failed_fork_exit_cid: true,
    task_walk: TaskWalk::Budgeted2,
    fixup_one_tests_active: true,
    ..A
};

/// 7.0 with every fix of `docs/findings/` and upstream's de3ab9bd3133.
const FIXES: Switches = Switches {
    fix_execve_cid: true,
    fix_execve_revive: true,
    fix_affinity_thrs: true,
    ..Switches::V7_1_3
};

/// Every design the model knows: the fixes proposed against 7.0 first, then the releases, newest
/// first.
pub const DESIGNS: &[Design] = &[
    Design {
        name: "7.0+fixes",
        summary: "7.0 with fix-execve-cid, fix-execve-revive, fix-affinity-switchback and de3ab9bd3133's guard",
        commits: "proposed: docs/findings/01..04 (+ de3ab9bd3133 from 7.1.3)",
        switches: FIXES,
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "7.0+fix-execve-cid",
        summary: "F1/F4 fix: after execve current is hidden from schedin during its own walk, then gets a CID as a schedule-in would",
        commits: "proposed: docs/findings/01-execve-returns-without-cid.md, 04-execve-walker-stall.md",
        switches: Switches {
            fix_execve_cid: true,
            ..A
        },
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "7.0+fix-execve-revive",
        summary: "F2 fix: a user coming back to an mm without users first completes the ignored switch back",
        commits: "proposed: docs/findings/02-execve-revives-dead-mm.md",
        switches: Switches {
            fix_execve_revive: true,
            ..A
        },
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "7.0+fix-affinity-switchback",
        summary: "F3 fix: mm_update_cpus_allowed computes pcpu_thrs from the widened CPU set, so the deferred switch back runs",
        commits: "proposed: docs/findings/03-affinity-switchback-dead.md",
        switches: Switches {
            fix_affinity_thrs: true,
            ..A
        },
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "7.1.3",
        summary: "7.0 + de3ab9bd3133: the CPU->task walk no longer marks a running task's UNSET as TRANSIT (hides F1's clear_bit)",
        commits: "de3ab9bd3133 (7.2-rc1; 7.1.3 as 8d32856fb72b), CVE-2026-63799",
        switches: Switches::V7_1_3,
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "7.0",
        summary: "final design: fork registers after publication; tasks->CPUs walk over mm.user_list",
        commits: "sched-urgent-2026-03-15 (b2e48c429ec5, 28b5a1395036, 7574ac6e4978, 192d852129b1)",
        switches: A,
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "6.19.1+vfork",
        summary: "B'': registration after publication, budget users-1, pass 2 always completes",
        commits: "6.19.1 + b2e48c429ec5 + 28b5a1395036",
        switches: Switches {
            task_walk: TaskWalk::Budgeted1NoEarlyReturn,
            ..B_PRIME
        },
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "6.19.1+fork",
        summary: "B': registration after publication, budget users-1, early return in pass 2",
        commits: "6.19.1 + b2e48c429ec5",
        switches: B_PRIME,
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "6.19.1",
        summary: "fork registers in copy_mm before the child is visible; budgeted two-pass walk (users-2)",
        commits: "v6.19 + 1e83ccd5921a (the seed's bug: fixed by b2e48c429ec5)",
        switches: B,
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "6.19",
        summary: "6.19.1 with an unguarded drop_on_cpu (clears whatever the slot names)",
        commits: "v6.19 (before 1e83ccd5921a)",
        switches: Switches {
            drop_on_cpu_guarded: false,
            ..B
        },
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "6.19-rc7",
        summary: "6.19 with a two-word mode, no TRANSIT towards per-CPU, schedout always drops, exit transits",
        commits: "v6.19-rc7 (before 4327fb13fa47, 47ee94efccf6, 007d84287c74, 4463c7aa11a6)",
        switches: Switches {
            drop_on_cpu_guarded: false,
            exit_local_slot: ExitLocalSlot::TransitToTask,
            one_word_mode: false,
            transit_to_cpu: false,
            schedout_keeps: false,
            ..B
        },
        family: FamilyKind::Rewrite,
    },
    Design {
        name: "6.18",
        summary: "pre-rewrite lazy per-CPU CIDs (6.14-6.18): CPUs keep CIDs, remote clear/steal with LAZY, compaction scan",
        commits: "6.4 \"sched: Fix performance regression introduced by mm_cid\" + 7e019dcc470f (6.13) + 02d954c0fdf9 (6.14) + Mar 2024 barrier fix; removed Nov 2025",
        switches: A,
        family: FamilyKind::Lazy618,
    },
    Design {
        name: "6.3",
        summary: "original mm_cid: per-mm bitmap under cid_lock, a CID per switched-in task, -1 when full",
        commits: "af7f588d8f73 + bbd0b031509b",
        switches: A,
        family: FamilyKind::PerSwitch63,
    },
];

const B_PRIME: Switches = Switches {
    registration: Registration::PostFork,
    failed_fork_exit_cid: false,
    task_walk: TaskWalk::Budgeted1,
    ..B
};

/// Looks a design up by name; the error lists the known names.
pub fn design(name: &str) -> Result<&'static Design, String> {
    DESIGNS.iter().find(|d| d.name == name).ok_or_else(|| {
        let names: Vec<_> = DESIGNS.iter().map(|d| d.name).collect();
        format!("unknown design {name:?}; known designs: {}", names.join(", "))
    })
}

/// How many operations of each kind the model may start, summed over all tasks. Each started
/// operation consumes one unit; the model's choice is which running task starts it and when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Budgets {
    /// `pthread_create`: clone(CLONE_VM|CLONE_THREAD).
    pub forks: u8,
    /// `vfork`/`posix_spawn`: clone(CLONE_VM|CLONE_VFORK), a child in a new thread group.
    pub vforks: u8,
    /// Forks that fail after `copy_mm` (cleanup path; the child is never published).
    pub fork_fails: u8,
    /// `exit` of a thread.
    pub exits: u8,
    /// Successful `execve` (kills the other threads, switches to a new mm).
    pub execs: u8,
    /// Failed `execve` (after `before_execve`: re-registers on the old mm).
    pub exec_fails: u8,
    /// `execveat(..., AT_EXECVE_CHECK)` (Linux 6.14+): the same window as a failed `execve`
    /// (`before_execve`, then `after_execve` on the old mm), returning 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exec_checks: u8,
    /// `sched_setaffinity` growing a task's allowed set by one CPU.
    pub affinity: u8,
    /// 6.18 only: runs of the compaction scan (`task_work mm_cid_work`), each remote-clearing at
    /// most one CPU's CID.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub compactions: u8,
}

/// Most tasks a state can hold (initial threads, forked children and the kworker).
pub const MAX_TASKS: usize = 14;
/// Most mms a state can hold (the process's, plus one per successful execve).
pub const MAX_MMS: usize = 3;
/// Most thread groups a state can hold (the process's, plus one per vfork).
pub const MAX_GROUPS: usize = 8;

/// The largest budget of any one operation the model accepts (its state spaces are long out of
/// reach well before).
pub const MAX_BUDGET: u8 = 15;

impl Budgets {
    /// Each budget with the name of its command-line flag (`fork-fails`, ...).
    pub fn named(&self) -> [(&'static str, u8); 8] {
        [
            ("forks", self.forks),
            ("vforks", self.vforks),
            ("fork-fails", self.fork_fails),
            ("exits", self.exits),
            ("execs", self.execs),
            ("exec-fails", self.exec_fails),
            ("affinity", self.affinity),
            ("compactions", self.compactions),
        ]
    }
}

fn is_zero(x: &u8) -> bool {
    *x == 0
}

/// A model configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Config {
    /// Design name (see [`DESIGNS`]).
    pub design: String,
    /// Possible CPUs (`np`), 1..=8.
    pub cpus: u8,
    /// Threads of the process at the start (set up by the model's own fork steps).
    pub threads: u8,
    /// CPUs the process may use at the start (the first `allowed` CPUs); defaults to all.
    pub allowed: Option<u8>,
    /// Operation budgets.
    pub budgets: Budgets,
}

impl Config {
    /// A configuration of the named design.
    pub fn new(design: &str, cpus: u8, threads: u8, budgets: Budgets) -> Config {
        Config {
            design: design.to_string(),
            cpus,
            threads,
            allowed: None,
            budgets,
        }
    }

    /// Checks the bounds the model supports; the error says which value is off.
    pub fn validate(&self) -> Result<&'static Design, String> {
        let d = design(&self.design)?;
        if !(1..=MAX_CPUS as u8).contains(&self.cpus) {
            return Err(format!("--cpus must be 1..={MAX_CPUS}, got {}", self.cpus));
        }
        if !(1..=8).contains(&self.threads) {
            return Err(format!("--threads must be 1..=8, got {}", self.threads));
        }
        if let Some(a) = self.allowed
            && (a == 0 || a > self.cpus)
        {
            return Err(format!(
                "--allowed must be 1..={} (the CPU count), got {a}",
                self.cpus
            ));
        }
        let b = &self.budgets;
        for (flag, v) in b.named() {
            if v > MAX_BUDGET {
                return Err(format!("--{flag} must be at most {MAX_BUDGET}, got {v}"));
            }
        }
        if b.affinity > 0 && self.allowed.is_none_or(|a| a >= self.cpus) {
            return Err(format!(
                "--affinity grows a task's CPU mask by a CPU outside it, but the process may already use \
                 all {} CPUs: give --allowed N with N < --cpus",
                self.cpus
            ));
        }
        let new_tasks = self.threads as u32 + b.forks as u32 + b.vforks as u32 + b.fork_fails as u32;
        if new_tasks + 1 > MAX_TASKS as u32 {
            return Err(format!(
                "threads + forks + vforks + fork-fails must stay below {}, got {new_tasks}",
                MAX_TASKS
            ));
        }
        if b.vforks as usize >= MAX_GROUPS {
            return Err(format!(
                "--vforks must be at most {}, got {}",
                MAX_GROUPS - 1,
                b.vforks
            ));
        }
        if b.exec_checks as u32 + b.exec_fails as u32 > 4 {
            return Err("--exec-fails + --exec-checks must be at most 4".into());
        }
        if b.execs > 2 {
            return Err("--execs must be at most 2".into());
        }
        if b.compactions > 0 && d.family != FamilyKind::Lazy618 {
            return Err(format!(
                "--compactions is for design 6.18 (the compaction scan), not {}",
                d.name
            ));
        }
        Ok(d)
    }

    /// The initial allowed-CPU mask of the process.
    pub fn allowed_mask(&self) -> u8 {
        let n = self.allowed.unwrap_or(self.cpus);
        ((1u16 << n) - 1) as u8
    }

    /// A short, stable hash of the configuration (for replay files).
    pub fn hash(&self) -> u32 {
        let s = serde_json::to_string(self).unwrap_or_default();
        s.bytes()
            .fold(0x811c9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x01000193))
    }
}
