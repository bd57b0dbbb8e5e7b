//! The exec window as the kernel has it (`docs/kernel-reading.md` sections 1–4, the rules in
//! `mmcid_kmodel::ops::exec`): one exec per thread group (`cred_guard_mutex`), `fs->in_exec`
//! refusing pthread clones that start inside the window but not vfork children nor clones already
//! past `copy_fs`, and `execveat(AT_EXECVE_CHECK)`.

use mmcid_kmodel::scenario::{self, Scenario};
use mmcid_kmodel::state::{ExecAt, ExecKind, Op, State};
use mmcid_kmodel::{KernelModel, Rewrite};

/// Runs a scenario under 7.0 and returns its final state, or the error of the first line that
/// cannot be taken.
fn run(text: &str) -> Result<State<Rewrite>, String> {
    let sc = Scenario::parse(text).map_err(|e| e.to_string())?;
    let model = KernelModel::<Rewrite>::new(sc.config(None))?;
    scenario::run(&model.params, model.initial_state(), &sc)
        .map(|(_, s)| s)
        .map_err(|e| e.to_string())
}

const TWO: &str = "design 7.0\ncpus 2\nthreads 2\nbudget forks=1 vforks=1 exec_fails=2\n";

#[test]
fn a_pthread_clone_started_after_the_exec_start_is_refused() {
    // T1's check_unsafe_exec set fs->in_exec: T0's clone(CLONE_FS) would get EAGAIN in copy_fs.
    let e = run(&format!("{TWO}T1 execve_fail\nT0 clone\n")).unwrap_err();
    assert!(e.starts_with("line 6: `T0 clone` is not enabled here"), "{e}");
    assert!(
        e.contains("T0 vfork"),
        "a vfork child copies fs and may start: {e}"
    );
    // Not before the exec started, and again once free_bprm cleared in_exec.
    run(&format!("{TWO}T0 clone\nT1 execve_fail\n")).unwrap();
    let s = run(&format!(
        "{TWO}T1 execve_fail\nT1 until sched_mm_cid_fork T1\nT0 clone\n"
    ))
    .unwrap();
    assert!(matches!(s.task(0).op, Op::Fork { vfork: false, .. }));
}

#[test]
fn the_exec_sets_in_exec_only_when_no_clone_is_in_flight() {
    let s = run(&format!("{TWO}T1 execve_fail\n")).unwrap();
    assert!(matches!(s.task(1).op, Op::Exec { in_exec: true, .. }) && s.in_exec(0));
    // T0's clone is past copy_fs (its child counts in fs->users, not in the thread list):
    // LSM_UNSAFE_SHARE instead of in_exec.
    let s = run(&format!("{TWO}T0 clone\nT1 execve_fail\n")).unwrap();
    assert!(matches!(s.task(1).op, Op::Exec { in_exec: false, .. }) && !s.in_exec(0));
    // Once the clone is published its child is counted: in_exec again.
    let s = run(&format!("{TWO}T0 clone\nT0 until publish T2\nT1 execve_fail\n")).unwrap();
    assert!(s.in_exec(0));
}

#[test]
fn one_exec_at_a_time_per_thread_group_but_a_vfork_child_is_its_own_group() {
    let e = run(&format!("{TWO}T1 execve_fail\nT0 execve_fail\n")).unwrap_err();
    assert!(e.contains("`T0 execve_fail` is not enabled here"), "{e}");
    // The vfork child (T2, its own thread group) execs while its parent's group is in one.
    // (3 CPUs: the third user does not flip the mm to per-CPU.)
    let three = TWO.replace("cpus 2", "cpus 3");
    let s = run(&format!(
        "{three}T0 vfork\nT0 until sched_mm_cid_fork T2\nT0 wake_up_new_task CPU0\n\
         T1 execve_fail\nCPU0 schedule T2\nT2 execve_fail\n"
    ))
    .unwrap();
    assert!(matches!(s.task(1).op, Op::Exec { .. }) && matches!(s.task(2).op, Op::Exec { .. }));
}

#[test]
fn execveat_check_runs_the_window_and_returns_to_user_space() {
    let text = "design 7.0\ncpus 2\nthreads 2\nbudget exec_checks=1\n\
                T0 execveat_check\nT0 bprm_execve\nT0 sched_mm_cid_before_execve T0\n\
                T0 exec_check_returns\nT0 sched_mm_cid_after_execve\n";
    let s = run(text).unwrap();
    assert!(matches!(
        s.task(0).op,
        Op::Exec {
            at: ExecAt::Return,
            kind: ExecKind::Check,
            in_exec: true
        }
    ));
    let s = run(&format!("{text}T0 sched_mm_cid_fork T0\n")).unwrap();
    assert!(s.in_user(0) && !s.in_exec(0) && s.exec_of_group(0).is_none());
    assert_eq!(s.left.exec_checks, 0);
}
