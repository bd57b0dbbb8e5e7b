//! The CID word: a number plus the UNSET / ONCPU / TRANSIT flag bits (spec 1.1).

use std::fmt;

/// A concurrency ID as the kernel stores it: the numeric id in the low bits plus up to three flags.
///
/// Layout (spec 1.1): bit 31 `UNSET` (no CID), bit 30 `ONCPU` (the value is owned by a CPU; a task
/// holding it only borrows it), bit 29 `TRANSIT` (held temporarily during a mode transition).
/// A value with none of the three bits is a plain, task-owned number ([`Cid::on_task`]).
/// ONCPU and TRANSIT are never stored together (invariant I5).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct Cid(u32);

impl Cid {
    /// No CID (`MM_CID_UNSET`).
    pub const UNSET: Cid = Cid(1 << 31);
    /// Flag: owned by a CPU (`MM_CID_ONCPU`).
    pub const ONCPU_BIT: u32 = 1 << 30;
    /// Flag: temporary during a mode transition (`MM_CID_TRANSIT`).
    pub const TRANSIT_BIT: u32 = 1 << 29;
    const FLAGS: u32 = Self::ONCPU_BIT | Self::TRANSIT_BIT | (1 << 31);

    /// A plain, task-owned CID with number `n`.
    pub const fn new(n: u32) -> Cid {
        Cid(n & !Self::FLAGS)
    }
    /// The raw 32-bit word, flags included (for the rseq ABI and serialisation only).
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// Rebuilds a CID from its raw word.
    pub const fn from_raw(raw: u32) -> Cid {
        Cid(raw)
    }
    /// `cid_on_cpu()`: the ONCPU bit is set.
    pub const fn on_cpu(self) -> bool {
        self.0 & Self::ONCPU_BIT != 0
    }
    /// `cid_in_transit()`: the TRANSIT bit is set.
    pub const fn in_transit(self) -> bool {
        self.0 & Self::TRANSIT_BIT != 0
    }
    /// `cid_on_task()`: none of the three flag bits is set (`c < TRANSIT`): a plain number.
    pub const fn on_task(self) -> bool {
        self.0 < Self::TRANSIT_BIT
    }
    /// The value is `UNSET` (the UNSET bit is set).
    pub const fn is_unset(self) -> bool {
        self.0 & (1 << 31) != 0
    }
    /// The flags alone (UNSET, ONCPU, TRANSIT), number 0: what a reader that tests only the flags
    /// sees (the checker forgets numbers no step reads, see `mmcid_kmodel`'s `Family::forget_dead`).
    pub const fn flags(self) -> Cid {
        Cid(self.0 & Self::FLAGS)
    }
    /// `cpu_cid_to_cid()`: the value without ONCPU.
    pub const fn strip_cpu(self) -> Cid {
        Cid(self.0 & !Self::ONCPU_BIT)
    }
    /// `cid_to_cpu_cid()`: the value with ONCPU.
    pub const fn add_cpu(self) -> Cid {
        Cid(self.0 | Self::ONCPU_BIT)
    }
    /// `cid_to_transit_cid()`: the value with TRANSIT.
    pub const fn add_transit(self) -> Cid {
        Cid(self.0 | Self::TRANSIT_BIT)
    }
    /// `cid_from_transit_cid()`: the value without TRANSIT.
    pub const fn strip_transit(self) -> Cid {
        Cid(self.0 & !Self::TRANSIT_BIT)
    }
    /// The bitmap index this value names (ONCPU and TRANSIT stripped; UNSET kept, so an UNSET value
    /// names an index far outside any bitmap).
    pub const fn index(self) -> u32 {
        self.0 & !(Self::ONCPU_BIT | Self::TRANSIT_BIT)
    }
    /// `task_mm_cid()`: what user space sees in `rseq::mm_cid` (ONCPU and TRANSIT masked; an UNSET
    /// value surfaces as 0x8000_0000).
    pub const fn user_value(self) -> u32 {
        self.index()
    }
}

impl Default for Cid {
    /// The per-CPU allocator hands out zeroed memory, so a fresh slot holds plain 0 (spec 1.3); a
    /// fresh task holds UNSET. `Default` is the slot's: plain 0.
    fn default() -> Cid {
        Cid(0)
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Cid {
    /// `UNSET`, `3`, `3|ONCPU`, `3|TRANSIT` (and `3|ONCPU|TRANSIT`, which I5 forbids);
    /// `UNSET|TRANSIT` for the value 7.0's CPU→task walk makes of a running task's UNSET
    /// (CVE-2026-63799), `UNSET+0x...` for any other bits on UNSET.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unset() {
            write!(f, "UNSET")?;
            let rest = self.0 & !(1 << 31);
            if rest == Cid::TRANSIT_BIT {
                write!(f, "|TRANSIT")?;
            } else if rest != 0 {
                write!(f, "+{rest:#x}")?;
            }
            return Ok(());
        }
        write!(f, "{}", self.index())?;
        if self.on_cpu() {
            write!(f, "|ONCPU")?;
        }
        if self.in_transit() {
            write!(f, "|TRANSIT")?;
        }
        Ok(())
    }
}

/// Parses the [`fmt::Display`] form back (`UNSET`, `3`, `3|ONCPU`, `3|TRANSIT`).
impl std::str::FromStr for Cid {
    type Err = String;
    fn from_str(s: &str) -> Result<Cid, String> {
        let s = s.trim();
        if s == "UNSET" {
            return Ok(Cid::UNSET);
        }
        if s == "UNSET|TRANSIT" {
            return Ok(Cid::UNSET.add_transit());
        }
        let mut parts = s.split('|');
        let n: u32 = parts
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|_| format!("not a CID: {s:?} (expected UNSET, N, N|ONCPU or N|TRANSIT)"))?;
        let mut c = Cid::new(n);
        for p in parts {
            c = match p {
                "ONCPU" => c.add_cpu(),
                "TRANSIT" => c.add_transit(),
                _ => return Err(format!("unknown CID flag {p:?} in {s:?}")),
            };
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_with_transit_prints_as_the_kernel_names_it_and_parses_back() {
        let c = Cid::UNSET.add_transit();
        assert_eq!(c.to_string(), "UNSET|TRANSIT");
        assert_eq!("UNSET|TRANSIT".parse::<Cid>(), Ok(c));
        assert_eq!(Cid::UNSET.add_cpu().to_string(), "UNSET+0x40000000");
    }

    #[test]
    fn predicates_match_the_spec_table() {
        let c = Cid::new(3);
        assert!(c.on_task() && !c.on_cpu() && !c.in_transit() && !c.is_unset());
        assert!(c.add_cpu().on_cpu() && !c.add_cpu().on_task());
        assert!(c.add_transit().in_transit() && !c.add_transit().on_task());
        assert_eq!(c.add_cpu().strip_cpu(), c);
        assert_eq!(c.add_transit().strip_transit(), c);
        assert!(!Cid::UNSET.on_task() && Cid::UNSET.is_unset());
        assert_eq!(Cid::UNSET.user_value(), 0x8000_0000);
        assert_eq!(c.add_cpu().user_value(), 3);
        assert_eq!(c.add_transit().user_value(), 3);
    }

    #[test]
    fn display_round_trips() {
        for c in [
            Cid::UNSET,
            Cid::new(0),
            Cid::new(5).add_cpu(),
            Cid::new(2).add_transit(),
        ] {
            assert_eq!(c.to_string().parse::<Cid>().unwrap(), c);
        }
        assert!("7|BOGUS".parse::<Cid>().is_err());
        assert!("x".parse::<Cid>().is_err());
    }
}
