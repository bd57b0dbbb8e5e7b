//! Exit codes, in one place (listed in `mmcid --help`).

/// No violation found (or the command succeeded).
pub const OK: i32 = 0;
/// A violation was found (a broken invariant, a stall or a live lock; for `observe`, a broken
/// promise).
pub const VIOLATION: i32 = 1;
/// Usage or input error: bad flags, a malformed scenario, a step that is not enabled.
pub const USAGE: i32 = 2;
