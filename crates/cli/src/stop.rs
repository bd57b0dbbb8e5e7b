//! Clean stops: Ctrl-C and `--max-memory`.
//!
//! The first Ctrl-C sets a [`Cancel`] flag: the engine (and `hunt`, `sim`) stop at their next
//! check point and hand back what they found so far, which the command prints with its partial
//! summary before exiting with [`crate::exit::INTERRUPTED`]. A second Ctrl-C exits at once.
//!
//! `--max-memory` bounds a search: before a batch of states would take the process past the
//! limit, the engine stops with the partial report ([`mmcid_engine::Cut::MemoryLimit`]) instead
//! of letting an allocation fail (which aborts the process with nothing printed).

use std::sync::OnceLock;

use mmcid_engine::Cancel;

/// The process's Ctrl-C flag, installed on first use.
static CTRL_C: OnceLock<Cancel> = OnceLock::new();

/// The flag the first Ctrl-C sets (the handler is installed on the first call). A second Ctrl-C
/// exits with status 130 at once.
pub fn ctrl_c() -> Cancel {
    CTRL_C
        .get_or_init(|| {
            let flag = Cancel::new();
            let f = flag.clone();
            // A handler cannot be installed twice in a process; if that fails, Ctrl-C keeps its
            // default action (the process ends at once), which is what the user asked for anyway.
            let _ = ctrlc::set_handler(move || {
                if f.is_cancelled() {
                    std::process::exit(crate::exit::INTERRUPTED);
                }
                f.cancel();
                eprintln!(
                    "\ninterrupted: stopping; what was found so far follows (Ctrl-C again to quit at once)"
                );
            });
            flag
        })
        .clone()
}

/// Has Ctrl-C been pressed?
pub fn interrupted() -> bool {
    CTRL_C.get().is_some_and(Cancel::is_cancelled)
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A memory limit as given to `--max-memory`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemoryLimit {
    /// No limit.
    Off,
    /// This many bytes.
    Bytes(u64),
    /// This share of `MemAvailable` when the command starts.
    Share(f64),
}

impl MemoryLimit {
    /// The limit in bytes (`None`: no limit, or `MemAvailable` unreadable for a share), at most
    /// what an address-space limit leaves ([`address_space_room`]): under `ulimit -v` an
    /// allocation that fails aborts the process with nothing printed, a limit stops it cleanly.
    pub fn bytes(self) -> Option<u64> {
        self.resolve().bytes
    }
    /// [`MemoryLimit::bytes`], and whether the address-space limit set it. Resolved once, when the
    /// command starts: both `MemAvailable` and what `ulimit -v` leaves change as the search runs.
    pub fn resolve(self) -> Resolved {
        let asked = match self {
            MemoryLimit::Off => return Resolved::default(),
            MemoryLimit::Bytes(b) => Some(b),
            MemoryLimit::Share(f) => mem_available().map(|a| (a as f64 * f) as u64),
        };
        let room = address_space_room();
        let bytes = match (asked, room) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        };
        Resolved {
            bytes,
            by_address_space: bytes.is_some() && bytes == room,
        }
    }
}

/// A [`MemoryLimit`] resolved to bytes when the command starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The limit on resident memory (`None`: none).
    pub bytes: Option<u64>,
    /// The limit is what `ulimit -v` leaves (lower than what was asked).
    pub by_address_space: bool,
}

/// `VmSize` and `VmRSS` of `/proc/self/status`, in bytes.
fn vm_size_and_rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some((field("VmSize:")?, field("VmRSS:")?))
}

/// What an address-space limit (`ulimit -v`, `RLIMIT_AS`) leaves for the resident memory a search
/// may grow to, or `None` without such a limit. The search's limit is on resident memory, the
/// kernel's on mappings: take away what is mapped but not resident now (the binary, libraries,
/// reserved stacks) and, for each thread a search may start, glibc's per-thread malloc arena
/// reservation (64 MiB) and a thread stack (2 MiB), then keep a tenth in hand.
pub fn address_space_room() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into `r`, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } != 0 || r.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    let (size, rss) = vm_size_and_rss()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64 + 1;
    let reserve = size.saturating_sub(rss) + threads * (66 << 20);
    Some(r.rlim_cur.saturating_sub(reserve) / 10 * 9)
}

/// Parses `--max-memory`: `off`, a size with a unit (`512M`, `4G`, `1.5GiB`; K, M, G, T are
/// powers of 1024), or a share of the memory available at start (`80%`).
pub fn parse_memory(s: &str) -> Result<MemoryLimit, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") {
        return Ok(MemoryLimit::Off);
    }
    if let Some(p) = t.strip_suffix('%') {
        return match p.trim().parse::<f64>() {
            Ok(x) if x > 0.0 && x <= 100.0 => Ok(MemoryLimit::Share(x / 100.0)),
            _ => Err(format!(
                "{s:?}: a share must be a percentage in (0, 100], such as 80%"
            )),
        };
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let x: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 512M, 4G or 80%, or `off`"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches('B')
        .trim_end_matches('I')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit (K, M, G, T, or a percentage)")),
    };
    let bytes = x * mult as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(MemoryLimit::Bytes(bytes as u64))
}

/// The default `--max-memory`: a safe share of what the machine has free at start.
pub const DEFAULT_MEMORY: &str = "80%";

/// What a memory-limited stop prints (stderr), naming the limit and how to raise it.
pub fn memory_note(limit: Resolved) -> String {
    let size = limit.bytes.map_or("unknown".into(), |b| {
        if b < 1 << 20 {
            format!("{b} bytes")
        } else {
            format!("{:.0} MiB", b as f64 / (1 << 20) as f64)
        }
    });
    if limit.by_address_space {
        format!(
            "stopped before passing {size}, what `ulimit -v` leaves this process: the result above is partial; raise the address-space limit to go further"
        )
    } else {
        format!(
            "stopped before passing --max-memory ({size}): the result above is partial; raise --max-memory to go further"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_shares_and_off_parse_and_nonsense_does_not() {
        assert_eq!(parse_memory("512M"), Ok(MemoryLimit::Bytes(512 << 20)));
        assert_eq!(parse_memory("4G"), Ok(MemoryLimit::Bytes(4 << 30)));
        assert_eq!(parse_memory("1.5GiB"), Ok(MemoryLimit::Bytes(3 << 29)));
        assert_eq!(parse_memory("2048"), Ok(MemoryLimit::Bytes(2048)));
        assert_eq!(parse_memory("80%"), Ok(MemoryLimit::Share(0.8)));
        assert_eq!(parse_memory("off"), Ok(MemoryLimit::Off));
        for bad in ["", "G", "12Q", "0", "-1G", "150%", "0%", "x%", "1e400G"] {
            assert!(parse_memory(bad).is_err(), "{bad:?} accepted");
        }
        assert!(MemoryLimit::Share(0.5).bytes().is_some_and(|b| b > 0));
    }
}
