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
    /// The limit in bytes (`None`: no limit, or `MemAvailable` unreadable for a share).
    pub fn bytes(self) -> Option<u64> {
        match self {
            MemoryLimit::Off => None,
            MemoryLimit::Bytes(b) => Some(b),
            MemoryLimit::Share(f) => mem_available().map(|a| (a as f64 * f) as u64),
        }
    }
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
pub fn memory_note(limit: Option<u64>) -> String {
    format!(
        "stopped before passing --max-memory ({}): the result above is partial; raise --max-memory to go further",
        limit.map_or("unknown".into(), |b| format!(
            "{:.0} MiB",
            b as f64 / (1 << 20) as f64
        ))
    )
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
