//! `--engine stateright` and `mmcid explore`: the independent oracle.

use mmcid_kmodel::Config;

/// Checks `cfg` with stateright's BFS (placeholder until the oracle crate lands).
pub fn check(_cfg: &Config, _json: bool) -> i32 {
    eprintln!("mmcid check: --engine stateright is not available in this build");
    crate::exit::USAGE
}
