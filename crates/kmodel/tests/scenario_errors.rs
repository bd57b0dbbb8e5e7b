//! Bad scenario input gives a clear error with the line, never a panic.

fn run(text: &str) -> Result<(), String> {
    mmcid_kmodel::replay::replay(text, None, 1000).map(|_| ())
}

#[test]
fn a_known_step_that_is_not_enabled_names_the_line_and_what_is_enabled() {
    let e = run("cpus 2\nthreads 1\nbudget forks=1\nT0 do_exit\n").unwrap_err();
    assert!(
        e.starts_with("line 4: `T0 do_exit` is not enabled here; enabled: "),
        "{e}"
    );
    assert!(e.contains("T0 clone"), "{e}");
}

#[test]
fn step_not_enabled_in_that_state() {
    // no exit budget: exit is not enabled
    let e = run("cpus 2\nthreads 1\nT0 exit\n").unwrap_err();
    assert!(e.starts_with("line 3: `T0 exit` is not enabled here"), "{e}");
}

#[test]
fn malformed_lines() {
    for (text, want) in [
        ("cpus two\n", "line 1: `cpus` needs a number"),
        ("cpus 2\nthreads 1\nbudget forks\n", "line 3: expected key=value"),
        ("cpus 2\nthreads 1\nbudget spoons=1\n", "line 3: unknown budget"),
        ("cpus 2\nthreads 1\nhello\n", "line 3: unknown line"),
        ("cpus 2\nthreads 1\nTx clone\n", "line 3: bad actor"),
        ("threads 1\n", "missing `cpus N` line"),
        (
            "cpus 2\nthreads 1\nCPU0 until schedule\n",
            "line 3: `until` is for tasks",
        ),
        ("cpus 9\nthreads 1\n", "line 1: `cpus` must be 1..=8, got 9"),
        ("design 5.0\ncpus 2\nthreads 1\n", "unknown design \"5.0\""),
        (
            "cpus 2\nthreads 1\nbudget vforks=9\n",
            "--vforks must be at most 7",
        ),
    ] {
        let e = run(text).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn ambiguous_step_asks_which() {
    let e = run("cpus 2\nthreads 3\nCPU0 schedule\n").unwrap_err();
    assert!(
        e.contains("ambiguous") && e.contains("CPU0 schedule idle") && e.contains("CPU0 schedule T2"),
        "{e}"
    );
}

#[test]
fn until_that_never_comes_is_an_error() {
    let e = run("cpus 2\nthreads 1\nbudget forks=1\nT0 clone\nT0 until complete_transit\n").unwrap_err();
    assert!(e.starts_with("line 5: `T0 until complete_transit`"), "{e}");
}

#[test]
fn headers_given_twice_or_out_of_range_name_the_line() {
    let e = run("design 6.19.1\ncpus 2\nthreads 2\ndesign 7.0\n").unwrap_err();
    assert!(
        e.starts_with("line 4: `design` is given twice (first on line 1)"),
        "{e}"
    );
    let e = run("cpus 2\nthreads 0\n").unwrap_err();
    assert!(e.starts_with("line 2: `threads` must be 1..=8, got 0"), "{e}");
    let e = run("cpus 2\nthreads 2\nbudget forks=999\n").unwrap_err();
    assert!(e.starts_with("line 3: forks=999 is out of range"), "{e}");
    let e = run("cpus 300\nthreads 2\n").unwrap_err();
    assert!(e.starts_with("line 1: `cpus` 300 is out of range"), "{e}");
}

#[test]
fn unknown_tasks_cpus_and_functions_are_named_as_such() {
    let e = run("cpus 2\nthreads 2\nbudget forks=1\nT9 clone\n").unwrap_err();
    assert!(
        e.starts_with("line 4: there is no T9 here (tasks: T0..T1)"),
        "{e}"
    );
    let e = run("cpus 2\nthreads 2\nCPU5 schedule idle\n").unwrap_err();
    assert!(
        e.starts_with("line 3: there is no CPU5 here (CPUs: CPU0..CPU1)"),
        "{e}"
    );
    let e = run("cpus 2\nthreads 2\nT0 frobnicate\n").unwrap_err();
    assert!(
        e.starts_with("line 3: unknown kernel function \"frobnicate\""),
        "{e}"
    );
}

#[test]
fn a_step_with_an_argument_needs_it() {
    let e = run("cpus 3\nthreads 2\nbudget forks=1\nCPU0 schedule idle\nCPU2 migrate\n").unwrap_err();
    assert!(
        e.starts_with("line 5: `CPU2 migrate` needs its argument: `CPU2 migrate T0`"),
        "{e}"
    );
}

#[test]
fn a_huge_line_is_not_echoed_whole() {
    let text = format!("cpus 2\nthreads 2\nT0 {}\n", "x".repeat(1_000_000));
    let e = run(&text).unwrap_err();
    assert!(e.len() < 2000, "{} bytes", e.len());
    let text = format!("cpus 2\nthreads 2\n{}\n", "y".repeat(1_000_000));
    let e = run(&text).unwrap_err();
    assert!(e.len() < 2000, "{} bytes", e.len());
}
