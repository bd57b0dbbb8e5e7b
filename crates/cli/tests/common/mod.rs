//! What the end-to-end tests share: running the `mmcid` binary.

use std::process::Command;

/// Runs `mmcid args`: its exit status (-1 if killed by a signal), stdout and stderr.
pub fn mmcid(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mmcid"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
