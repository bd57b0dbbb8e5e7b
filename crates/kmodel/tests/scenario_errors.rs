//! Bad scenario input gives a clear error with the line, never a panic.

fn run(text: &str) -> Result<(), String> {
    mmcid_kmodel::replay::replay(text, None, 1000).map(|_| ())
}

#[test]
fn unknown_step_names_the_line_and_what_is_enabled() {
    let e = run("cpus 2\nthreads 1\nbudget forks=1\nT0 frobnicate\n").unwrap_err();
    assert!(
        e.starts_with("line 4: `T0 frobnicate` is not enabled here; enabled: "),
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
        ("cpus 9\nthreads 1\n", "--cpus must be 1..=8"),
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
