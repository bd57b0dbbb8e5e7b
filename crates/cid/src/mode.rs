//! The ownership mode word and the hysteresis formulas (spec 2).

use crate::Cid;

/// The mm's ownership mode (`mm_cid.mode`): 0 (per task), `ONCPU|TRANSIT` (task→CPU transition),
/// `ONCPU` (per CPU), `TRANSIT` (CPU→task transition). One word, flipped with a single store
/// (spec 2, step 6) and completed with [`crate::complete_transit`].
///
/// The same bit values as in [`Cid`], as in the kernel.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Mode(u32);

impl Mode {
    /// Steady per-task mode (0).
    pub const PER_TASK: Mode = Mode(0);
    /// Steady per-CPU mode (`ONCPU`).
    pub const PER_CPU: Mode = Mode(Cid::ONCPU_BIT);
    /// Task→CPU transition (`ONCPU|TRANSIT`).
    pub const TO_CPU: Mode = Mode(Cid::ONCPU_BIT | Cid::TRANSIT_BIT);
    /// CPU→task transition (`TRANSIT`).
    pub const TO_TASK: Mode = Mode(Cid::TRANSIT_BIT);

    /// "mode has ONCPU": per-CPU ownership (steady or the task→CPU transition).
    pub const fn percpu(self) -> bool {
        self.0 & Cid::ONCPU_BIT != 0
    }
    /// "mode has TRANSIT": a transition (and its fix-up walk) is in progress.
    pub const fn in_transit(self) -> bool {
        self.0 & Cid::TRANSIT_BIT != 0
    }
    /// The TRANSIT bit of the mode as a CID flag word (`m & TRANSIT`), for OR-ing into a CID.
    pub const fn transit_bits(self) -> u32 {
        self.0 & Cid::TRANSIT_BIT
    }
    /// The flip of `update_max_cids`: `mode ^ (TRANSIT|ONCPU)`.
    pub const fn flipped(self) -> Mode {
        Mode(self.0 ^ (Cid::TRANSIT_BIT | Cid::ONCPU_BIT))
    }
    /// Builds the mode from its two components (used by the two-word 6.19-rc7 representation).
    pub const fn from_parts(percpu: bool, transit: bool) -> Mode {
        Mode((if percpu { Cid::ONCPU_BIT } else { 0 }) | (if transit { Cid::TRANSIT_BIT } else { 0 }))
    }
    /// The raw word.
    pub const fn raw(self) -> u32 {
        self.0
    }
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Mode {
    /// `0`, `ONCPU|TRANSIT`, `ONCPU`, `TRANSIT`, as the kernel mails write them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match (self.percpu(), self.in_transit()) {
            (false, false) => "0",
            (true, true) => "ONCPU|TRANSIT",
            (true, false) => "ONCPU",
            (false, true) => "TRANSIT",
        })
    }
}

/// `opt_cids = min(nr_cpus_allowed, users)` (spec 2).
pub const fn opt_cids(nr_cpus_allowed: u32, users: u32) -> u32 {
    if nr_cpus_allowed < users {
        nr_cpus_allowed
    } else {
        users
    }
}

/// `max_cids = min(opt + opt/4, np)`: the exclusive allocation bound, with 25% slack (spec 2).
pub const fn max_cids(nr_cpus_allowed: u32, users: u32, np: u32) -> u32 {
    let opt = opt_cids(nr_cpus_allowed, users);
    let m = opt + opt / 4;
    if m < np { m } else { np }
}

/// `calc_thrs = max(min(opt - opt/4, np/2), 1)`: the user count below which a per-CPU mm switches
/// back to per-task; never 0, since 0 means "not per-CPU" (spec 2).
pub const fn calc_thrs(nr_cpus_allowed: u32, users: u32, np: u32) -> u32 {
    let opt = opt_cids(nr_cpus_allowed, users);
    let a = opt - opt / 4;
    let b = np / 2;
    let m = if a < b { a } else { b };
    if m > 1 { m } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_flip_cycles_through_the_state_machine() {
        assert_eq!(Mode::PER_TASK.flipped(), Mode::TO_CPU);
        assert_eq!(Mode::PER_CPU.flipped(), Mode::TO_TASK);
        assert!(Mode::TO_CPU.percpu() && Mode::TO_CPU.in_transit());
        assert!(!Mode::TO_TASK.percpu() && Mode::TO_TASK.in_transit());
        assert_eq!(Mode::from_parts(true, false), Mode::PER_CPU);
        assert_eq!(Mode::TO_CPU.to_string(), "ONCPU|TRANSIT");
    }

    /// The worked table of spec section 2: (np, nr_cpus_allowed) -> users at which the mm goes
    /// per-CPU, the pcpu_thrs it then gets, and the user count at which it goes back (None: never
    /// while at least one user remains).
    #[test]
    fn spec_section_2_worked_table() {
        let rows: [(u32, u32, u32, u32, Option<u32>); 6] = [
            (2, 2, 3, 1, None),
            (3, 3, 4, 1, None),
            (4, 4, 5, 2, Some(1)),
            (8, 8, 9, 4, Some(3)),
            (64, 4, 6, 3, Some(2)),
            (64, 2, 3, 2, Some(1)),
        ];
        for (np, nr, up, thrs, back) in rows {
            let first = (1..100).find(|&u| u > max_cids(nr, u, np)).unwrap();
            assert_eq!(first, up, "np {np} nr {nr}: per-CPU at");
            assert_eq!(calc_thrs(nr, first, np), thrs, "np {np} nr {nr}: pcpu_thrs");
            let down = (1..first).rev().find(|&u| u < thrs);
            assert_eq!(down, back, "np {np} nr {nr}: back to per-task at");
        }
        assert_eq!(max_cids(4, 5, 64), 5);
        assert_eq!(calc_thrs(1, 1, 1), 1, "never 0: 0 means off");
    }
}
