//! The breadth-first search: [`check`].

use crate::EngineError;
use crate::fingerprint::{collision_probability, fingerprint, mask};
use crate::frontier::Frontier;
use crate::liveness::{self, Graph, MAX_AGENTS};
use crate::model::{Agent, Model, PropertyInfo, PropertyKind};
use crate::observer::{Observer, Progress};
use crate::parents::{Parents, Step};
use crate::report::{Cut, Finding, FindingKind, Memory, Options, Report, Trace};
use crate::seen::Seen;
use crate::trace::Replayer;
use std::time::Instant;

/// New states between two progress reports inside a level.
const PROGRESS_EVERY: u64 = 100_000;

/// Explores every state of `model` reachable from its initial states, breadth first, checks
/// every property in every newly discovered (concrete) state, optionally looks for stalls and
/// live locks, and returns a report whose findings carry shortest traces.
///
/// Errors: invalid options, `symmetry` together with `liveness`, a model that breaks its
/// contract (agent or property index out of range, non-determinism detected while replaying a
/// trace), or more than `u32::MAX - 1` states.
pub fn check<M: Model>(
    model: &M,
    opts: &Options,
    observer: &mut dyn Observer,
) -> Result<Report<M::Action>, EngineError> {
    if opts.symmetry && opts.liveness && !model.symmetry_preserves_agents() {
        return Err(EngineError::SymmetryWithLiveness);
    }
    if !(1..=64).contains(&opts.fingerprint_bits) {
        return Err(EngineError::InvalidOption(format!(
            "fingerprint_bits must be in 1..=64, got {}",
            opts.fingerprint_bits
        )));
    }
    let agents = model.agents();
    if opts.liveness && agents > MAX_AGENTS {
        return Err(EngineError::TooManyAgents {
            agents,
            limit: MAX_AGENTS,
        });
    }
    let start = Instant::now();
    let props = model.properties();
    let fp_mask = mask(opts.fingerprint_bits);
    let symmetry = opts.symmetry;
    let fp_of = |s: &M::State| -> u64 {
        if symmetry {
            fingerprint(&model.representative(s)) & fp_mask
        } else {
            fingerprint(s) & fp_mask
        }
    };
    let max_states = opts.max_states.unwrap_or(u64::MAX);

    let mut seen = Seen::new();
    let mut parents = Parents::new();
    let mut graph = opts.liveness.then(|| Graph::new(agents));
    let mut first: Vec<Option<(u32, u32)>> = vec![None; props.len()];
    let mut scratch = Vec::new();
    let mut cut: Option<Cut> = None;
    let mut transitions = 0u64;
    let mut max_depth = 0u32;
    let mut stalls: Vec<(Agent, u32, u32)> = Vec::new();
    let mut stalls_undecided = 0u64;

    let mut roots = Vec::new();
    for (i, s) in model.init_states().into_iter().enumerate() {
        let (idx, new) = seen.insert(fp_of(&s))?;
        if !new {
            continue;
        }
        parents.push_root(i);
        if record(model, &s, idx, 0, &props, &mut first, &mut scratch)? && opts.stop_at_first_violation {
            cut = Some(Cut::FirstViolation);
        }
        roots.push((s, idx));
        if seen.len() as u64 >= max_states {
            cut = cut.or(Some(Cut::MaxStates));
        }
        if cut.is_some() {
            break;
        }
    }

    let mut frontier = Frontier::new(roots);
    let mut actions: Vec<M::Action> = Vec::new();
    let mut spinning = Vec::new();
    let mut next_progress = PROGRESS_EVERY;
    let memory_now = |seen: &Seen, parents: &Parents, f: &Frontier<M::State>, g: &Option<Graph>| {
        seen.bytes() + parents.bytes() + f.bytes() + g.as_ref().map_or(0, Graph::bytes)
    };
    let progress = |seen: &Seen, transitions, f: &Frontier<M::State>, memory_bytes| Progress {
        states: seen.len() as u64,
        transitions,
        depth: f.depth(),
        frontier: f.len() as u64,
        elapsed_secs: start.elapsed().as_secs_f64(),
        memory_bytes,
    };

    'levels: while cut.is_none() && frontier.current_len() > 0 {
        let depth = frontier.depth();
        if opts.max_depth.is_some_and(|m| depth >= m) {
            cut = Some(Cut::MaxDepth);
            break;
        }
        observer.progress(&progress(
            &seen,
            transitions,
            &frontier,
            memory_now(&seen, &parents, &frontier, &graph),
        ));
        while let Some((state, idx)) = frontier.pop() {
            debug_assert!(graph.as_ref().is_none_or(|g| g.states() == idx as usize));
            actions.clear();
            model.actions(&state, &mut actions);
            for (k, action) in actions.iter().enumerate() {
                let next = model.next_state(&state, action);
                let (child, new) = seen.insert(fp_of(&next))?;
                transitions += 1;
                if let Some(g) = graph.as_mut() {
                    let agent = model.agent(&state, action);
                    if agent as usize >= agents {
                        return Err(EngineError::InvalidAgent { agent, agents });
                    }
                    g.push_edge(child, agent, model.is_retry(&state, action));
                }
                if !new {
                    continue;
                }
                parents.push(idx, k as u32);
                max_depth = depth + 1;
                let mut violated = record(model, &next, child, depth + 1, &props, &mut first, &mut scratch)?;
                if let (Some(limit), None) = (opts.stall_search, graph.as_ref()) {
                    spinning.clear();
                    model.spinning(&next, &mut spinning);
                    spinning.retain(|a| !stalls.iter().any(|(b, _, _)| b == a));
                    if !spinning.is_empty() {
                        let d = crate::stall::decide(model, &next, &spinning, symmetry, limit);
                        stalls_undecided += d.undecided as u64;
                        for a in d.stalled {
                            stalls.push((a, child, depth + 1));
                            violated = true;
                        }
                    }
                }
                frontier.push(next, child);
                if violated && opts.stop_at_first_violation {
                    cut = Some(Cut::FirstViolation);
                } else if seen.len() as u64 >= max_states {
                    cut = Some(Cut::MaxStates);
                }
                if cut.is_some() {
                    break 'levels;
                }
                if seen.len() as u64 >= next_progress {
                    next_progress += PROGRESS_EVERY;
                    observer.progress(&progress(
                        &seen,
                        transitions,
                        &frontier,
                        memory_now(&seen, &parents, &frontier, &graph),
                    ));
                }
            }
            if let Some(g) = graph.as_mut() {
                spinning.clear();
                model.spinning(&state, &mut spinning);
                if let Some(&agent) = spinning.iter().find(|&&a| a as usize >= agents) {
                    return Err(EngineError::InvalidAgent { agent, agents });
                }
                g.end_state(&spinning);
            }
        }
        frontier.advance();
    }
    observer.progress(&progress(
        &seen,
        transitions,
        &frontier,
        memory_now(&seen, &parents, &frontier, &graph),
    ));
    observer.done();

    // Findings, each with a replayed shortest trace.
    let replayer = Replayer {
        model,
        seen: &seen,
        symmetry,
        mask: fp_mask,
    };
    let mut findings = Vec::new();
    for (p, hit) in first.iter().enumerate() {
        let Some((idx, depth)) = *hit else { continue };
        let (root, init, steps) = parents.path_to(idx);
        let (actions, _) = replayer.replay(root, init, &steps)?;
        findings.push(Finding {
            property: Some(p),
            kind: match props[p].kind {
                PropertyKind::Always => FindingKind::Invariant,
                PropertyKind::Sometimes => FindingKind::Sometimes,
            },
            agent: None,
            depth,
            trace: Trace {
                init,
                actions,
                cycle_start: None,
            },
        });
    }
    for &(agent, idx, depth) in &stalls {
        let (root, init, steps) = parents.path_to(idx);
        let (actions, _) = replayer.replay(root, init, &steps)?;
        findings.push(Finding {
            property: None,
            kind: FindingKind::Stall,
            agent: Some(agent),
            depth,
            trace: Trace {
                init,
                actions,
                cycle_start: None,
            },
        });
    }
    let complete = cut.is_none();
    let liveness_checked = complete && graph.is_some();
    if let (true, Some(g)) = (complete, graph.as_ref()) {
        let analysis = liveness::analyze(g, agents);
        for stall in &analysis.stalls {
            let (root, init, steps) = parents.path_to(stall.state);
            let (actions, _) = replayer.replay(root, init, &steps)?;
            findings.push(Finding {
                property: None,
                kind: FindingKind::Stall,
                agent: Some(stall.agent),
                depth: steps.len() as u32,
                trace: Trace {
                    init,
                    actions,
                    cycle_start: None,
                },
            });
        }
        for lasso in &analysis.livelocks {
            let (root, init, mut steps) = parents.path_to(lasso.entry);
            let prefix = steps.len();
            steps.extend(lasso.cycle.iter().map(|&(src, e)| Step {
                child: g.target(e),
                action: g.action_index(src, e),
            }));
            let (actions, _) = replayer.replay(root, init, &steps)?;
            findings.push(Finding {
                property: None,
                kind: FindingKind::Livelock,
                agent: Some(lasso.agent),
                depth: prefix as u32,
                trace: Trace {
                    init,
                    actions,
                    cycle_start: Some(prefix),
                },
            });
        }
    }

    let unique_states = seen.len() as u64;
    let memory = Memory {
        seen_bytes: seen.bytes(),
        parents_bytes: parents.bytes(),
        frontier_peak_bytes: frontier.peak_bytes(),
        graph_bytes: graph.as_ref().map_or(0, Graph::bytes),
    };
    let unreached_sometimes = props
        .iter()
        .enumerate()
        .filter(|(p, info)| info.kind == PropertyKind::Sometimes && first[*p].is_none())
        .map(|(p, _)| p)
        .collect();
    Ok(Report {
        unique_states,
        transitions,
        max_depth,
        seconds: start.elapsed().as_secs_f64(),
        complete,
        cut,
        states_left_on_frontier: frontier.len() as u64,
        symmetry,
        liveness_checked,
        stalls_undecided,
        fingerprint_bits: opts.fingerprint_bits,
        collision_probability: collision_probability(unique_states, opts.fingerprint_bits),
        bytes_per_state: if unique_states == 0 {
            0.0
        } else {
            (memory.seen_bytes + memory.parents_bytes) as f64 / unique_states as f64
        },
        memory,
        unreached_sometimes,
        findings,
    })
}

/// Runs `Model::check` on a new state and remembers the first state firing each property.
/// Returns whether an `Always` property fired here.
fn record<M: Model>(
    model: &M,
    state: &M::State,
    idx: u32,
    depth: u32,
    props: &[PropertyInfo],
    first: &mut [Option<(u32, u32)>],
    scratch: &mut Vec<usize>,
) -> Result<bool, EngineError> {
    scratch.clear();
    model.check(state, scratch);
    let mut violated = false;
    for &p in scratch.iter() {
        let info = props.get(p).ok_or(EngineError::InvalidProperty {
            index: p,
            properties: props.len(),
        })?;
        violated |= info.kind == PropertyKind::Always;
        if first[p].is_none() {
            first[p] = Some((idx, depth));
        }
    }
    Ok(violated)
}
