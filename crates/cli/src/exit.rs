//! Exit codes, in one place (listed in `mmcid --help`).

/// No violation found (or the command succeeded).
pub const OK: i32 = 0;
/// A violation was found (a broken invariant, a stall or a live lock; for `observe`, a broken
/// promise).
pub const VIOLATION: i32 = 1;
/// Usage or input error: bad flags, a malformed scenario, a step that is not enabled.
pub const USAGE: i32 = 2;
/// No violation found, but the search was cut (`--max-states`, `--max-depth`): nothing can be
/// claimed to hold.
pub const INCOMPLETE: i32 = 3;
