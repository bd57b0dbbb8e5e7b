//! The switches on which the historical designs differ from 7.0 (designs.md, "Variant switch
//! table"). The 7.0 code consults a switch only at the decision point it changes, so reading a
//! 7.0 function shows exactly where each earlier design differs.
//!
//! Switches S1–S4 concern the kernel around the algorithm (where fork registers, the failed-fork
//! cleanup, how the tasks→CPUs walk finds tasks); they live here too so that one value describes
//! a design, and the kernel model reads them.
//!
//! After S9 come the later changes: F1–F3 are the findings of `docs/findings/` against 7.0, each
//! with the fix proposed there (`docs/kernel-reading.md` section 10 has the kernel sketches), and
//! U1 is upstream's `de3ab9bd3133` (7.1.3). The 7.0 design has them all off.

/// S1: where `fork()` registers the child as a CID user.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum Registration {
    /// 7.0 (b2e48c429ec5): in `sched_post_fork`, after the child is published in the thread and
    /// task lists.
    PostFork,
    /// 6.19.1 and earlier: at the end of `copy_mm`, before the child is visible anywhere.
    CopyMm,
}

/// S3: how `fixup_tasks_to_cpus` finds the tasks to fix up.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum TaskWalk {
    /// 7.0 (192d852129b1): walk `mm.user_list`, exactly the active users.
    UserList,
    /// 6.19.1 (B.5): thread group then process list, budget `users - 2`, early returns.
    Budgeted2,
    /// B′ (b2e48c429ec5): budget `users - 1`, early return in pass 2.
    Budgeted1,
    /// B″ (28b5a1395036): budget `users - 1`, pass 2 always runs to its end once started.
    Budgeted1NoEarlyReturn,
}

/// S6: what an exit that switches the mm back to per-task does with its own CPU's slot.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum ExitLocalSlot {
    /// 6.19-rc8+ (007d84287c74): `drop_on_cpu(this CPU's slot)`.
    DropOnCpu,
    /// 6.19-rc7: `transit_to_task(current, this CPU's slot)`.
    TransitToTask,
}

/// One design as switches on the 7.0 code. See [`Switches::V7_0`] and the design table in the
/// kernel model for the named designs.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Switches {
    /// S1: registration point in fork.
    pub registration: Registration,
    /// S2: the cleanup of a failed fork calls `exit_cid(child)`.
    pub failed_fork_exit_cid: bool,
    /// S3: the tasks→CPUs walk.
    pub task_walk: TaskWalk,
    /// S4: the per-task visit (`fixup_one`) tests `active` and reports whether it counted the task.
    pub fixup_one_tests_active: bool,
    /// S5: `drop_on_cpu` acts only on ONCPU slots (1e83ccd5921a).
    pub drop_on_cpu_guarded: bool,
    /// S6: exit-initiated switch, local CPU slot handling.
    pub exit_local_slot: ExitLocalSlot,
    /// S7: mode kept in one word with fences (true) or in two words without fences (6.19-rc7).
    pub one_word_mode: bool,
    /// S8: the task→CPU direction uses TRANSIT (4327fb13fa47).
    pub transit_to_cpu: bool,
    /// S9: schedout keeps a TRANSIT CID once the mode is stable (4463c7aa11a6).
    pub schedout_keeps: bool,
    /// U1: `mm_cid_fixup_cpus_to_tasks` leaves a running task's `MM_CID_UNSET` alone instead of
    /// marking it TRANSIT (de3ab9bd3133, 7.2-rc1 and 7.1.3; CVE-2026-63799). Hides the
    /// out-of-bounds `clear_bit` of finding F1, not its cause.
    pub fixup_skips_unset: bool,
    /// F1 fix (`fix-execve-cid`, proposed): `sched_mm_cid_fork(current)` from
    /// `sched_mm_cid_after_execve` hides current from schedin while its own fix-up walk runs and
    /// ends by giving it a CID as a schedule-in would (rq lock and `mm.mutex` held). Fixes F1
    /// (return to user space with UNSET) and F4 (the walker stalls in its own schedin).
    pub fix_execve_cid: bool,
    /// F2 fix (`fix-execve-revive`, proposed): `sched_mm_cid_fork` on an mm without users whose
    /// mode is not per-task (the last user's exit ignored its switch back) first completes that
    /// switch with `mm_cid_fixup_cpus_to_tasks`.
    pub fix_execve_revive: bool,
    /// F3 fix (`fix-affinity-switchback`, proposed): `mm_update_cpus_allowed` computes
    /// `pcpu_thrs` from the widened CPU set alone, so the deferred switch back can be queued.
    pub fix_affinity_thrs: bool,
}

impl Switches {
    /// The 7.0 design (the spec's final design).
    pub const V7_0: Switches = Switches {
        registration: Registration::PostFork,
        failed_fork_exit_cid: false,
        task_walk: TaskWalk::UserList,
        fixup_one_tests_active: false,
        drop_on_cpu_guarded: true,
        exit_local_slot: ExitLocalSlot::DropOnCpu,
        one_word_mode: true,
        transit_to_cpu: true,
        schedout_keeps: true,
        fixup_skips_unset: false,
        fix_execve_cid: false,
        fix_execve_revive: false,
        fix_affinity_thrs: false,
    };

    /// 7.1.3: 7.0 with de3ab9bd3133's guard (U1).
    pub const V7_1_3: Switches = Switches {
        fixup_skips_unset: true,
        ..Switches::V7_0
    };
}

impl Default for Switches {
    fn default() -> Self {
        Switches::V7_0
    }
}
