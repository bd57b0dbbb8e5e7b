//! `mmcid matrix`: every design over a grid of small configurations, one verdict per property.
//!
//! Each cell runs the checker with on-the-fly stall detection (memory stays small) and a cap on
//! the number of states; a capped run still reports every violation it met (BFS: shortest first),
//! but cannot claim that a property holds, so it is marked `incomplete`.

use std::time::Instant;

use serde::Serialize;

use crate::checker::{self, CheckOptions, Liveness, Status};
use crate::config::{Budgets, Config, DESIGNS};
use crate::invariants::Property;

/// One configuration of the grid.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct GridConfig {
    /// A short name (`c3t2f2`).
    pub name: String,
    /// What it exercises.
    pub about: &'static str,
    /// CPUs.
    pub cpus: u8,
    /// Initial threads.
    pub threads: u8,
    /// Initially allowed CPUs.
    pub allowed: Option<u8>,
    /// Budgets.
    pub budgets: Budgets,
}

fn g(about: &'static str, cpus: u8, threads: u8, allowed: Option<u8>, b: Budgets) -> GridConfig {
    // The name uses the same letters as `mmcid hunt`'s configurations (the design is not part of it).
    let mut cfg = Config::new("7.0", cpus, threads, b);
    cfg.allowed = allowed;
    let name = crate::hunt::space::short_name(&cfg);
    GridConfig {
        name,
        about,
        cpus,
        threads,
        allowed,
        budgets: b,
    }
}

/// The default grid: 2–4 CPUs, a few thread counts and operation mixes.
pub fn default_grid() -> Vec<GridConfig> {
    let b = Budgets::default();
    vec![
        g(
            "a fork and an exit",
            2,
            2,
            None,
            Budgets {
                forks: 1,
                exits: 1,
                ..b
            },
        ),
        g(
            "per-CPU mode with exits",
            2,
            3,
            None,
            Budgets {
                forks: 1,
                exits: 2,
                ..b
            },
        ),
        g(
            "the seed: two concurrent forks crossing max_cids",
            3,
            2,
            None,
            Budgets { forks: 2, ..b },
        ),
        g(
            "vfork + execve",
            2,
            2,
            None,
            Budgets {
                vforks: 1,
                execs: 1,
                exits: 1,
                ..b
            },
        ),
        g(
            "a failing fork",
            2,
            2,
            None,
            Budgets {
                forks: 1,
                fork_fails: 1,
                ..b
            },
        ),
        g(
            "a failing execve in per-CPU mode",
            2,
            3,
            None,
            Budgets {
                forks: 1,
                exits: 2,
                exec_fails: 1,
                ..b
            },
        ),
        g(
            "affinity growth",
            3,
            2,
            Some(1),
            Budgets {
                forks: 1,
                exits: 1,
                affinity: 1,
                ..b
            },
        ),
        g(
            "switch back to per-task (4 CPUs, 2 allowed)",
            4,
            3,
            Some(2),
            Budgets {
                forks: 1,
                exits: 2,
                ..b
            },
        ),
        g(
            "a vfork child in another group while a fork crosses max_cids",
            3,
            2,
            None,
            Budgets {
                forks: 1,
                vforks: 1,
                ..b
            },
        ),
        g(
            "a failing execve that flips the mm to per-CPU",
            2,
            2,
            None,
            Budgets {
                forks: 1,
                exec_fails: 1,
                ..b
            },
        ),
        g(
            "the same with a vfork child (F4 by posix_spawn)",
            2,
            2,
            None,
            Budgets {
                vforks: 1,
                exec_fails: 1,
                ..b
            },
        ),
        g(
            "AT_EXECVE_CHECK, then exits switch back (CVE-2026-63799)",
            4,
            3,
            Some(2),
            Budgets {
                exits: 2,
                exec_checks: 1,
                ..b
            },
        ),
        g(
            "one thread left per-CPU widens its affinity (F3)",
            4,
            2,
            Some(1),
            Budgets {
                exits: 1,
                affinity: 1,
                ..b
            },
        ),
    ]
}

/// A property's verdict over the whole grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    /// Every configuration was searched whole and none violates it.
    Holds,
    /// Some configuration violates it.
    Violated,
    /// Not violated, but some configuration's search was capped.
    Incomplete,
    /// A reachability goal some configuration reaches.
    Reached,
    /// A reachability goal no configuration reaches.
    NotReached,
}

/// The verdict of one property in one design, over the whole grid.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Cell {
    /// The property id (`I1`…, `R1`…), or `stall`.
    pub property: String,
    /// The verdict over the grid.
    pub status: CellStatus,
    /// The shortest violation (or witness): depth and the configuration.
    pub depth: Option<u32>,
    /// The configuration of that shortest witness.
    pub config: Option<String>,
}

/// One design's row.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Row {
    /// Design name.
    pub design: &'static str,
    /// One cell per property, in [`Property::ALL`] order, then `stall`.
    pub cells: Vec<Cell>,
    /// Seconds for the whole row.
    pub seconds: f64,
    /// Configurations whose search was capped.
    pub capped: Vec<Capped>,
    /// Configurations the design rejected.
    pub errors: Vec<Rejected>,
}

/// A configuration whose search hit the state cap.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Capped {
    /// The configuration's short name.
    pub config: String,
    /// Distinct states reached when the cap stopped it.
    pub states: u64,
}

/// A configuration a design rejected.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Rejected {
    /// The configuration's short name.
    pub config: String,
    /// The configuration error (the message `mmcid check` prints for it).
    pub error: String,
}

/// The whole matrix.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Matrix {
    /// JSON format version.
    pub format_version: u32,
    /// The grid.
    pub grid: Vec<GridConfig>,
    /// Cap on distinct states per run.
    pub max_states: u64,
    /// One row per design.
    pub rows: Vec<Row>,
    /// Set when the matrix stopped before its last run: `interrupted` (Ctrl-C; the rows hold what
    /// was checked so far, the last one partial).
    pub cut: Option<mmcid_engine::Cut>,
}

/// Runs every design (or the named ones) over `grid`, calling `progress(design, config)` before
/// each run. Each run checks with `base`'s workers, reduction, cancel flag and memory limit,
/// symmetry and on-the-fly stall detection, capped at `max_states`.
pub fn run(
    designs: &[&str],
    grid: &[GridConfig],
    max_states: u64,
    base: &CheckOptions,
    progress: &mut dyn FnMut(&str, &str),
) -> Matrix {
    let mut rows = Vec::new();
    let mut cut = None;
    for d in DESIGNS
        .iter()
        .filter(|d| designs.is_empty() || designs.contains(&d.name))
    {
        let start = Instant::now();
        let mut names: Vec<(String, bool)> = Property::ALL
            .iter()
            .map(|p| (p.id().to_string(), p.is_invariant()))
            .collect();
        names.push(("stall".into(), true));
        let mut cells: Vec<Cell> = names
            .iter()
            .map(|(n, invariant)| Cell {
                property: n.clone(),
                status: if *invariant {
                    CellStatus::Holds
                } else {
                    CellStatus::NotReached
                },
                depth: None,
                config: None,
            })
            .collect();
        let mut capped = Vec::new();
        let mut errors = Vec::new();
        for gc in grid {
            progress(d.name, &gc.name);
            let cfg = Config {
                design: d.name.to_string(),
                cpus: gc.cpus,
                threads: gc.threads,
                allowed: gc.allowed,
                budgets: gc.budgets,
            };
            let opts = CheckOptions {
                symmetry: true,
                liveness: Liveness::Stalls,
                max_states: Some(max_states),
                max_depth: None,
                ..base.clone()
            };
            let o = match checker::run(&cfg, &opts, &mut mmcid_engine::NoObserver) {
                Ok(o) => o,
                Err(e) => {
                    errors.push(Rejected {
                        config: gc.name.clone(),
                        error: e,
                    });
                    continue;
                }
            };
            if !o.complete {
                capped.push(Capped {
                    config: gc.name.clone(),
                    states: o.unique_states,
                });
            }
            if o.cut == Some(mmcid_engine::Cut::Interrupted) {
                cut = o.cut;
            }
            for p in &o.properties {
                let cell = cells
                    .iter_mut()
                    .find(|c| c.property == p.property.id())
                    .expect("property");
                merge(cell, p.status, p.depth, &gc.name);
            }
            let stall = o
                .violations
                .iter()
                .filter(|v| v.kind != "invariant")
                .min_by_key(|v| v.depth);
            let cell = cells.last_mut().expect("stall cell");
            match stall {
                Some(v) => merge(cell, Status::Violated, Some(v.depth), &gc.name),
                None if o.no_stall == Some(true) => {}
                None => merge(cell, Status::Unknown, None, &gc.name),
            }
            if cut.is_some() {
                break;
            }
        }
        rows.push(Row {
            design: d.name,
            cells,
            seconds: start.elapsed().as_secs_f64(),
            capped,
            errors,
        });
        if cut.is_some() {
            break;
        }
    }
    Matrix {
        format_version: checker::FORMAT_VERSION,
        grid: grid.to_vec(),
        max_states,
        rows,
        cut,
    }
}

fn merge(cell: &mut Cell, status: Status, depth: Option<u32>, config: &str) {
    let better = |cell: &Cell| cell.depth.is_none_or(|d| depth.is_some_and(|x| x < d));
    match status {
        Status::Violated | Status::Reached => {
            let st = if status == Status::Violated {
                CellStatus::Violated
            } else {
                CellStatus::Reached
            };
            if cell.status != st || better(cell) {
                cell.status = st;
                cell.depth = depth;
                cell.config = Some(config.to_string());
            }
        }
        Status::Unknown if cell.status == CellStatus::Holds => cell.status = CellStatus::Incomplete,
        _ => {}
    }
}
