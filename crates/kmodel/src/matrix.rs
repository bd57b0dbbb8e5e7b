//! `mmcid matrix`: every design over a grid of small configurations, one verdict per property.
//!
//! Each cell runs the checker with on-the-fly stall detection (memory stays small) and a cap on
//! the number of states; a capped run still reports every violation it met (BFS: shortest first),
//! but cannot claim that a property holds, so it is marked `incomplete`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
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
    /// Seconds spent in this design's runs, added up (runs of different designs overlap, so the
    /// rows add up to more than [`Matrix::wall_seconds`]).
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
    /// Runs done at once (each on one thread).
    pub threads: usize,
    /// Wall-clock seconds for the whole matrix.
    pub wall_seconds: f64,
    /// One row per design.
    pub rows: Vec<Row>,
    /// Set when the matrix stopped before its last run: `interrupted` (Ctrl-C; the rows hold what
    /// was checked so far, the last one partial).
    pub cut: Option<mmcid_engine::Cut>,
}

/// What [`run`] reports while it works: a run started or finished.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// `design` at `config` started.
    Started {
        /// The design.
        design: &'a str,
        /// The configuration's name.
        config: &'a str,
    },
    /// A run finished: `done` of `total` runs are finished.
    Finished {
        /// The design.
        design: &'a str,
        /// The configuration's name.
        config: &'a str,
        /// Runs finished so far.
        done: usize,
        /// Runs in the whole matrix.
        total: usize,
    },
}

/// One (design, configuration) run of the matrix.
struct Job {
    design: &'static str,
    config: usize,
}

/// The outcome of one job: the checker's result or the design's refusal, and its time.
type JobResult = (Result<checker::CheckOutcome, String>, f64);

/// Runs every design (or the named ones) over `grid`, calling `progress` as runs start and finish.
///
/// The runs are independent, so they are spread over `base.workers` threads, one run per thread
/// with one exploring worker each: on two cores two independent searches gain nearly 2x, while one
/// search on two workers gains 1.2-1.9x (its levels synchronise). The largest-looking runs start
/// first (more CPUs and tasks), so the last ones to finish are short. Each run checks with
/// `base`'s reduction, cancel flag and memory limit (which is the whole process's: a run that
/// would pass it stops, capped), symmetry and on-the-fly stall detection, capped at
/// `max_states`. The table does not depend on the order in which runs finish: each design's
/// cells are merged in grid order once every run is done.
pub fn run(
    designs: &[&str],
    grid: &[GridConfig],
    max_states: u64,
    base: &CheckOptions,
    progress: &mut dyn FnMut(Event),
) -> Matrix {
    let start = Instant::now();
    let chosen: Vec<&'static str> = DESIGNS
        .iter()
        .filter(|d| designs.is_empty() || designs.contains(&d.name))
        .map(|d| d.name)
        .collect();
    let mut jobs: Vec<Job> = chosen
        .iter()
        .flat_map(|&design| (0..grid.len()).map(move |config| Job { design, config }))
        .collect();
    // Largest first: a rough size (allowed CPUs to the power of the tasks that will exist).
    let weight = |g: &GridConfig| {
        let cpus = g.allowed.unwrap_or(g.cpus) as u32;
        let b = &g.budgets;
        let tasks = g.threads as u32 + b.forks as u32 + b.vforks as u32 + b.fork_fails as u32;
        let ops = (b.exits + b.execs + b.exec_fails + b.exec_checks + b.affinity) as u32;
        (cpus.pow(tasks) as u64) << 8 | ops as u64
    };
    jobs.sort_by_key(|j| std::cmp::Reverse(weight(&grid[j.config])));
    let threads = base.workers.max(1).min(jobs.len().max(1));
    let opts = CheckOptions {
        symmetry: true,
        liveness: Liveness::Stalls,
        max_states: Some(max_states),
        max_depth: None,
        workers: if threads > 1 { 1 } else { base.workers.max(1) },
        ..base.clone()
    };
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut results: HashMap<(&'static str, usize), JobResult> = HashMap::new();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Option<JobResult>)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (jobs, next, stop, opts) = (&jobs, &next, &stop, &opts);
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let gc = &grid[job.config];
                    if tx.send((i, None)).is_err() {
                        break;
                    }
                    let cfg = Config {
                        design: job.design.to_string(),
                        cpus: gc.cpus,
                        threads: gc.threads,
                        allowed: gc.allowed,
                        budgets: gc.budgets,
                    };
                    let t0 = Instant::now();
                    let o = checker::run(&cfg, opts, &mut mmcid_engine::NoObserver);
                    if matches!(&o, Ok(o) if o.cut == Some(mmcid_engine::Cut::Interrupted)) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    if tx.send((i, Some((o, t0.elapsed().as_secs_f64())))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for (i, r) in rx {
            let job = &jobs[i];
            let config = grid[job.config].name.as_str();
            match r {
                None => progress(Event::Started {
                    design: job.design,
                    config,
                }),
                Some(r) => {
                    done += 1;
                    results.insert((job.design, job.config), r);
                    progress(Event::Finished {
                        design: job.design,
                        config,
                        done,
                        total: jobs.len(),
                    });
                }
            }
        }
    });

    let mut rows = Vec::new();
    let mut cut = stop
        .load(Ordering::Relaxed)
        .then_some(mmcid_engine::Cut::Interrupted);
    for &design in &chosen {
        let mut cells: Vec<Cell> = Property::ALL
            .iter()
            .map(|p| (p.id().to_string(), p.is_invariant()))
            .chain(std::iter::once(("stall".to_string(), true)))
            .map(|(property, invariant)| Cell {
                property,
                status: if invariant {
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
        let mut seconds = 0.0;
        let mut ran = 0;
        for (k, gc) in grid.iter().enumerate() {
            let Some((o, secs)) = results.remove(&(design, k)) else {
                continue;
            };
            ran += 1;
            seconds += secs;
            let o = match o {
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
        }
        if ran == 0 {
            continue;
        }
        if ran < grid.len() {
            // An interrupted matrix: some runs of this design never started, so nothing holds
            // for certain.
            for cell in &mut cells {
                merge(cell, Status::Unknown, None, "");
            }
        }
        rows.push(Row {
            design,
            cells,
            seconds,
            capped,
            errors,
        });
    }
    Matrix {
        format_version: checker::FORMAT_VERSION,
        grid: grid.to_vec(),
        max_states,
        threads,
        wall_seconds: start.elapsed().as_secs_f64(),
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
