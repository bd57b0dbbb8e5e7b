//! Scenarios: a small, human-writable text format for an initial configuration and a list of
//! steps, and their replay.
//!
//! ```text
//! # the seed's interleaving (lines starting with '#' are comments)
//! design 6.19.1            # optional; the command line may override it
//! cpus 3
//! threads 2
//! allowed 3                # optional: CPUs the process may use at the start
//! budget forks=2 exits=0   # operations the steps (and any continuation) may start:
//!                          # forks vforks fork_fails exits execs exec_fails exec_checks
//!                          # affinity compactions
//! T0 clone                 # <actor> <kernel function> [<argument>]
//! T0 until sched_mm_cid_fork T2
//! CPU0 schedule idle
//! ```
//!
//! A step line names an enabled step as `trace::name` prints it (`CPU1 schedule T3`,
//! `T1 fixup_one T0`, `T0 wake_up_new_task CPU2`), argument included when the step has one. `<task> until <function> [<argument>]` takes the
//! task's own next steps (not choices such as wake-up CPUs or failures) up to and including the
//! first step with that name: it lets one file describe a *user-level* interleaving that each
//! design carries out with its own internal steps. Every error names the line and, for a step
//! that is not enabled, lists the steps that are.

use mmcid_cid::TaskId;

use crate::config::{Budgets, Config};
use crate::family::Family;
use crate::ops::{Params, Step, apply, enabled};
use crate::state::State;
use crate::trace::{StepName, name};

/// A parsed scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The design named in the file, if any.
    pub design: Option<String>,
    /// Possible CPUs.
    pub cpus: u8,
    /// Initial threads.
    pub threads: u8,
    /// Initially allowed CPUs.
    pub allowed: Option<u8>,
    /// Operation budgets.
    pub budgets: Budgets,
    /// The step lines, with their line numbers.
    pub steps: Vec<(usize, StepLine)>,
}

/// One step line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepLine {
    /// `T<n>` or `CPU<n>`.
    pub actor: String,
    /// `until`: run the task up to and including this function.
    pub until: bool,
    /// The function name.
    pub function: String,
    /// Its argument.
    pub arg: Option<String>,
}

/// A scenario error, with its line number (0: not tied to a line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// 1-based line number, 0 if none.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for ScenarioError {}

fn err(line: usize, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        line,
        message: message.into(),
    }
}

/// `text` as an error message quotes it: at most 60 characters (a 20 MB line is not echoed).
fn quote(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
    }
}

impl Scenario {
    /// Parses the text of a scenario file.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let mut sc = Scenario {
            design: None,
            cpus: 0,
            threads: 0,
            allowed: None,
            budgets: Budgets::default(),
            steps: vec![],
        };
        // The line each header was given on: a second one is an error, not a silent override.
        let mut given: Vec<(&str, usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let ln = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let num = |w: Option<&&str>, what: &str| -> Result<u8, ScenarioError> {
                let w = w.ok_or_else(|| err(ln, format!("`{what}` needs a number")))?;
                match w.parse::<u64>() {
                    Ok(n) => u8::try_from(n).map_err(|_| err(ln, format!("`{what}` {n} is out of range"))),
                    Err(_) => Err(err(ln, format!("`{what}` needs a number, got {}", quote(w)))),
                }
            };
            if matches!(words[0], "design" | "cpus" | "threads" | "allowed" | "budget") {
                if let Some((_, first)) = given.iter().find(|(k, _)| *k == words[0]) {
                    return Err(err(
                        ln,
                        format!("`{}` is given twice (first on line {first}); keep one", words[0]),
                    ));
                }
                given.push((words[0], ln));
            }
            if words[0] != "budget"
                && !(words[0].starts_with('T') || words[0].starts_with("CPU"))
                && words.len() > 2
            {
                return Err(err(ln, format!("too many words: {}", quote(line))));
            }
            match words[0] {
                "design" => {
                    sc.design = Some(
                        words
                            .get(1)
                            .ok_or_else(|| err(ln, "`design` needs a name"))?
                            .to_string(),
                    )
                }
                "cpus" => sc.cpus = num(words.get(1), "cpus")?,
                "threads" => sc.threads = num(words.get(1), "threads")?,
                "allowed" => sc.allowed = Some(num(words.get(1), "allowed")?),
                "budget" => {
                    for kv in &words[1..] {
                        let (k, v) = kv
                            .split_once('=')
                            .ok_or_else(|| err(ln, format!("expected key=value, got {kv:?}")))?;
                        let v: u8 = match v.parse::<u64>() {
                            Ok(n) if n <= crate::config::MAX_BUDGET as u64 => n as u8,
                            Ok(n) => {
                                return Err(err(
                                    ln,
                                    format!(
                                        "{k}={n} is out of range (at most {})",
                                        crate::config::MAX_BUDGET
                                    ),
                                ));
                            }
                            Err(_) => return Err(err(ln, format!("{k}: not a number: {}", quote(v)))),
                        };
                        let b = &mut sc.budgets;
                        match k {
                            "forks" => b.forks = v,
                            "vforks" => b.vforks = v,
                            "fork_fails" => b.fork_fails = v,
                            "exits" => b.exits = v,
                            "execs" => b.execs = v,
                            "exec_fails" => b.exec_fails = v,
                            "exec_checks" => b.exec_checks = v,
                            "affinity" => b.affinity = v,
                            "compactions" => b.compactions = v,
                            _ => {
                                return Err(err(
                                    ln,
                                    format!(
                                        "unknown budget {k:?} (forks, vforks, fork_fails, exits, execs, exec_fails, exec_checks, affinity, compactions)"
                                    ),
                                ));
                            }
                        }
                    }
                }
                a if a.starts_with('T') || a.starts_with("CPU") => {
                    let valid = a
                        .strip_prefix("CPU")
                        .or_else(|| a.strip_prefix('T'))
                        .is_some_and(|n| n.parse::<u8>().is_ok());
                    if !valid {
                        return Err(err(
                            ln,
                            format!("bad actor {}: expected T<n> or CPU<n>", quote(a)),
                        ));
                    }
                    let until = words.get(1) == Some(&"until");
                    let rest = if until { &words[2..] } else { &words[1..] };
                    let function = rest
                        .first()
                        .ok_or_else(|| err(ln, "a step needs a kernel function name"))?;
                    if rest.len() > 2 {
                        return Err(err(ln, format!("too many words: {}", quote(line))));
                    }
                    if until && !a.starts_with('T') {
                        return Err(err(ln, "`until` is for tasks: T<n> until <function>"));
                    }
                    sc.steps.push((
                        ln,
                        StepLine {
                            actor: a.to_string(),
                            until,
                            function: function.to_string(),
                            arg: rest.get(1).map(|s| s.to_string()),
                        },
                    ));
                }
                w => {
                    return Err(err(
                        ln,
                        format!(
                            "unknown line starting with {}: expected design, cpus, threads, allowed, budget, or a step (T<n> ... / CPU<n> ...)",
                            quote(w)
                        ),
                    ));
                }
            }
        }
        for (key, what) in [("cpus", "cpus N"), ("threads", "threads N")] {
            match given.iter().find(|(k, _)| *k == key) {
                None => return Err(err(0, format!("missing `{what}` line"))),
                Some(&(_, ln)) => {
                    let v = if key == "cpus" { sc.cpus } else { sc.threads };
                    if !(1..=8).contains(&v) {
                        return Err(err(ln, format!("`{key}` must be 1..=8, got {v}")));
                    }
                }
            }
        }
        Ok(sc)
    }

    /// The configuration for `design` (or the file's design, or 7.0).
    pub fn config(&self, design: Option<&str>) -> Config {
        let d = design.or(self.design.as_deref()).unwrap_or("7.0");
        Config {
            design: d.to_string(),
            cpus: self.cpus,
            threads: self.threads,
            allowed: self.allowed,
            budgets: self.budgets,
        }
    }
}

/// Resolves a step line against state `s` into the steps it stands for.
pub fn resolve<F: Family>(
    p: &Params,
    s: &State<F>,
    ln: usize,
    l: &StepLine,
) -> Result<Vec<Step>, ScenarioError> {
    // Say "no such task / CPU / function" rather than "not enabled".
    let (kind, n) = match l.actor.strip_prefix("CPU") {
        Some(n) => ("CPU", n),
        None => ("T", &l.actor[1..]),
    };
    let n: usize = n.parse().map_err(|_| err(ln, "bad actor"))?;
    let count = if kind == "CPU" {
        s.cpus.len()
    } else {
        s.tasks.len()
    };
    if n >= count {
        return Err(err(
            ln,
            format!(
                "there is no {kind}{n} here ({}: {kind}0..{kind}{})",
                if kind == "CPU" { "CPUs" } else { "tasks" },
                count.saturating_sub(1)
            ),
        ));
    }
    if !crate::trace::FUNCTIONS.contains(&l.function.as_str()) {
        return Err(err(
            ln,
            format!(
                "unknown kernel function {}; the model's steps are named: {}",
                quote(&l.function),
                crate::trace::FUNCTIONS.join(", ")
            ),
        ));
    }
    let mut steps = Vec::new();
    enabled(p, s, &mut steps);
    let names: Vec<StepName> = steps.iter().map(|&st| name(p, s, st)).collect();
    if !l.until {
        let hits: Vec<usize> = (0..steps.len())
            .filter(|&i| {
                let n = &names[i];
                n.actor == l.actor && n.function == l.function && (l.arg.is_none() || n.arg == l.arg)
            })
            .collect();
        return match hits.as_slice() {
            [one] if l.arg.is_none() && names[*one].arg.is_some() => Err(err(
                ln,
                format!("`{}` needs its argument: `{}`", show(l), names[*one]),
            )),
            [one] => Ok(vec![steps[*one]]),
            [] => Err(not_enabled(ln, l, &names)),
            many => Err(err(
                ln,
                format!(
                    "`{}` is ambiguous here; say which: {}",
                    show(l),
                    many.iter()
                        .map(|&i| names[i].to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        };
    }
    let task: TaskId = l.actor[1..].parse().map_err(|_| err(ln, "bad task"))?;
    let mut cur = *s;
    let mut out = Vec::new();
    for _ in 0..500 {
        let mut en = Vec::new();
        enabled(p, &cur, &mut en);
        let own: Vec<Step> = en
            .into_iter()
            .filter(|st| matches!(st, Step::Next { task: t } | Step::Retry { task: t } if *t == task))
            .collect();
        let Some(&st) = own.first() else {
            let mut all = Vec::new();
            enabled(p, &cur, &mut all);
            let names: Vec<StepName> = all.iter().map(|&st| name(p, &cur, st)).collect();
            return Err(err(
                ln,
                format!(
                    "`{}`: T{task} has no step of its own to take after {} step(s); enabled: {}",
                    show(l),
                    out.len(),
                    names.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let n = name(p, &cur, st);
        out.push(st);
        cur = apply(p, &cur, st);
        if n.function == l.function && (l.arg.is_none() || n.arg == l.arg) {
            return Ok(out);
        }
    }
    Err(err(ln, format!("`{}`: not reached within 500 steps", show(l))))
}

fn show(l: &StepLine) -> String {
    let mut s = format!(
        "{} {}{}",
        l.actor,
        if l.until { "until " } else { "" },
        l.function
    );
    if let Some(a) = &l.arg {
        s.push(' ');
        s.push_str(a);
    }
    s
}

fn not_enabled(ln: usize, l: &StepLine, names: &[StepName]) -> ScenarioError {
    let list: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    err(
        ln,
        format!(
            "`{}` is not enabled here; enabled: {}",
            show(l),
            if list.is_empty() {
                "nothing".into()
            } else {
                list.join(", ")
            }
        ),
    )
}

/// Runs every line of `sc` from `init`, returning the steps taken (in order) and the final state.
pub fn run<F: Family>(
    p: &Params,
    init: &State<F>,
    sc: &Scenario,
) -> Result<(Vec<Step>, State<F>), ScenarioError> {
    let mut s = *init;
    let mut taken = Vec::new();
    for (ln, l) in &sc.steps {
        for st in resolve(p, &s, *ln, l)? {
            s = apply(p, &s, st);
            taken.push(st);
        }
    }
    Ok((taken, s))
}

/// Writes a scenario that replays `steps` from the initial state of `cfg` (the format of
/// `--save-trace`).
pub fn write<F: Family>(cfg: &Config, p: &Params, init: &State<F>, steps: &[Step], comment: &str) -> String {
    let mut out = String::new();
    for l in comment.lines() {
        out.push_str(&format!("# {l}\n"));
    }
    out.push_str(&format!(
        "design {}\ncpus {}\nthreads {}\n",
        cfg.design, cfg.cpus, cfg.threads
    ));
    if let Some(a) = cfg.allowed {
        out.push_str(&format!("allowed {a}\n"));
    }
    let b = &cfg.budgets;
    out.push_str(&format!(
        "budget forks={} vforks={} fork_fails={} exits={} execs={} exec_fails={} affinity={}\n",
        b.forks, b.vforks, b.fork_fails, b.exits, b.execs, b.exec_fails, b.affinity
    ));
    // Appended to the budget line only when used, so older files stay byte-identical.
    for (k, v) in [("exec_checks", b.exec_checks), ("compactions", b.compactions)] {
        if v > 0 {
            out.pop();
            out.push_str(&format!(" {k}={v}\n"));
        }
    }
    let mut s = *init;
    for &st in steps {
        out.push_str(&name(p, &s, st).to_string());
        out.push('\n');
        s = apply(p, &s, st);
    }
    out
}

/// [`write()`] for a configuration whose family is known only at run time.
pub fn write_for(cfg: &Config, steps: &[Step], comment: &str) -> Result<String, String> {
    struct Write<'a> {
        steps: &'a [Step],
        comment: &'a str,
    }
    impl crate::family::ModelVisitor for Write<'_> {
        type Out = String;
        fn visit<F: Family>(self, m: crate::model::KernelModel<F>) -> String {
            write(&m.config, &m.params, m.initial_state(), self.steps, self.comment)
        }
    }
    crate::family::with_model(cfg, Write { steps, comment })
}
