//! `mmcid sim --against-kernel`.

/// Runs the comparison; returns the exit code.
pub fn run(_args: &crate::sim::Args) -> i32 {
    eprintln!("mmcid sim --against-kernel: not built yet");
    2
}
