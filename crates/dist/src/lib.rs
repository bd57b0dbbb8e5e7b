//! mmcid-dist: the engine's breadth-first exploration on [timely-dataflow], across threads,
//! processes and hosts.
//!
//! When a configuration outgrows one machine's memory, the same exploration runs on several:
//! every state belongs to one *worker* (a thread of one process on one host), chosen by its
//! fingerprint; each worker stores only its own states (their fingerprints, parent links and,
//! for the level being expanded, their encodings). It explores exactly what
//! [`mmcid_engine::check`] explores, so it counts exactly the same unique states and
//! transitions (with the same fingerprints: XXH3 of the model's encoding, of the canonical
//! encoding under symmetry).
//!
//! # How it runs
//!
//! Level by level (level-synchronous BFS), two timely rounds per level:
//!
//! 1. Every worker expands the states of its current level: for each successor it sends the
//!    successor's encoding (a `Vec<u8>`, [`mmcid_engine::Model::encode`]), its fingerprint, and
//!    its parent's fingerprint and action index, to the successor's owner. Timely's `exchange`
//!    routes each message to its worker, in this process or over TCP to another. As messages
//!    arrive, the owner drops the fingerprints it already has and keeps, per new fingerprint,
//!    the candidate with the smallest (parent fingerprint, action), so the choice does not
//!    depend on arrival order.
//! 2. When timely's progress tracking says the round is complete (a probe), each owner stores
//!    its new states, checks every property on them, and broadcasts its counts and findings;
//!    once that round completes too, every worker knows the level's global count and the
//!    shallowest witness of each property, and stops when a level brought nothing new.
//!
//! **Traces.** Each owner keeps, per state, the parent's fingerprint and the action index (12
//! bytes). After the search, the trace of each finding is rebuilt by asking owners: one timely
//! round per step, the owner of the current fingerprint broadcasts its link, until a root. The
//! resulting path of action indices is replayed on the model from the initial state (checking
//! every fingerprint), so a finding comes with a shortest trace (its depth is the BFS level,
//! the same as the single-process engine's; the state may be another one of that depth).
//!
//! **Not here (yet):** liveness (stalls and live locks need the graph or sub-searches across
//! partitions; run them with the single-process engine), `max_states`, and
//! `stop_at_first_violation`. The model must implement the codec
//! ([`mmcid_engine::Model::codec`]): states travel as bytes.
//!
//! # Running on N hosts
//!
//! [`check_from_args`] takes timely's own arguments: `-w W` worker threads per process,
//! `-n N` processes, `-p P` this process's index, `-h FILE` a host file with one `host:port`
//! line per process (process `P` listens on line `P`'s port). Start the same program on every
//! host, with the same model arguments and the same host file, varying only `-p`:
//!
//! ```text
//! # hosts.txt on every host:
//! node0.example:2101
//! node1.example:2101
//! node2.example:2101
//!
//! node0$ mmcid-dist-example cube 7 -- -w 2 -n 3 -p 0 -h hosts.txt
//! node1$ mmcid-dist-example cube 7 -- -w 2 -n 3 -p 1 -h hosts.txt
//! node2$ mmcid-dist-example cube 7 -- -w 2 -n 3 -p 2 -h hosts.txt
//! ```
//!
//! (`cargo run --release -p mmcid-dist --example dist_cube -- ...` is that program for a toy
//! model.) The processes connect to each other, explore, and each prints the same report.
//! Without `-n` it runs `-w` threads in one process.
//!
//! # Why timely
//!
//! Partitioning a BFS across machines needs routing of messages by key, flow control, and a
//! way to know when a round is over everywhere (no message for this level still in flight).
//! That last part is the hard one to get right by hand; timely's progress tracking is exactly
//! that, and its `exchange` is the routing. It is the Rust-native distributed dataflow
//! engine, maintained, and uses plain TCP between processes: no cluster manager to install.
//!
//! [timely-dataflow]: https://github.com/TimelyDataflow/timely-dataflow

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use mmcid_engine::fingerprint::{Fingerprinter, collision_probability};
use mmcid_engine::seen::Seen;
use mmcid_engine::{Finding, FindingKind, Model, PropertyKind, Trace};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

/// How to run a distributed check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DistOptions {
    /// Fingerprint symmetry representatives ([`mmcid_engine::Model::encode_canonical`]).
    pub symmetry: bool,
    /// Do not expand states at this depth or deeper.
    pub max_depth: Option<u32>,
}

/// The outcome of a distributed check (the same on every worker).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DistReport<A> {
    /// Distinct states, over all workers.
    pub unique_states: u64,
    /// Edges explored, over all workers.
    pub transitions: u64,
    /// Depth of the deepest state.
    pub max_depth: u32,
    /// True if every reachable state was expanded.
    pub complete: bool,
    /// Wall-clock seconds (on this worker).
    pub seconds: f64,
    /// Workers, over all processes.
    pub workers: usize,
    /// Distinct states stored by each worker (how even the partition is).
    pub states_per_worker: Vec<u64>,
    /// Estimated probability of a fingerprint collision.
    pub collision_probability: f64,
    /// Per property that fired: its shallowest witness, with a shortest trace.
    pub findings: Vec<DistFinding<A>>,
}

/// A property that fired, its witness state and its trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DistFinding<A> {
    /// The finding as the engine reports it (property, kind, depth, trace).
    pub finding: Finding<A>,
    /// Fingerprint of the witness state.
    pub fingerprint: u64,
}

/// What workers send each other.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Msg {
    /// A successor, for its owner.
    Cand {
        dest: u32,
        fp: u64,
        parent: u64,
        action: u32,
        state: Vec<u8>,
    },
    /// A worker's results for a level, to everyone.
    Stats {
        dest: u32,
        /// The level it reports on (a faster worker may already report the next one).
        level: u32,
        from: u32,
        new: u64,
        transitions: u64,
        stored: u64,
        /// (property, fingerprint) of the smallest-fingerprint state firing it at this level.
        fired: Vec<(u32, u64)>,
        error: Option<String>,
    },
    /// The link of a finding's current state, to everyone.
    Link {
        dest: u32,
        /// The round it answers (a faster worker may already answer the next one).
        round: u32,
        finding: u32,
        /// `None` for a root (then `action` is the index in `init_states()`).
        parent: Option<u64>,
        action: u32,
    },
}

impl Msg {
    fn dest(&self) -> u64 {
        match self {
            Msg::Cand { dest, .. } | Msg::Stats { dest, .. } | Msg::Link { dest, .. } => *dest as u64,
        }
    }
}

/// A candidate for the next level: parent fingerprint, action index, encoding.
type Candidate = (u64, u32, Vec<u8>);

/// A worker's share of the state space.
#[derive(Default)]
struct Part {
    seen: Seen,
    /// Per local state: parent fingerprint (`u64::MAX` for a root) and action (or init index).
    parent: Vec<u64>,
    action: Vec<u32>,
    /// Candidates of the level being received, by fingerprint.
    pending: HashMap<u64, Candidate>,
    stats: Vec<Msg>,
    links: Vec<Msg>,
}

/// The owner of a fingerprint among `peers` workers.
fn owner(fp: u64, peers: usize) -> u32 {
    // Fingerprints are uniform: a multiply-shift spreads them evenly over any worker count.
    ((fp as u128 * peers as u128) >> 64) as u32
}

/// Runs the exploration of `model` on timely workers configured by `args` (timely's own
/// arguments: `-w`, `-n`, `-p`, `-h`; see the crate doc). Returns this process's workers'
/// reports (all equal), or an error (bad arguments, a connection failure, a model without
/// codec, or a worker that failed).
pub fn check_from_args<M, I>(
    args: I,
    model: Arc<M>,
    opts: DistOptions,
) -> Result<DistReport<M::Action>, String>
where
    M: Model + Send + Sync + 'static,
    M::Action: 'static,
    I: Iterator<Item = String>,
{
    let config = timely::Config::from_args(args)?;
    check(config, model, opts)
}

/// [`check_from_args`] with a ready timely configuration.
pub fn check<M>(
    config: timely::Config,
    model: Arc<M>,
    opts: DistOptions,
) -> Result<DistReport<M::Action>, String>
where
    M: Model + Send + Sync + 'static,
    M::Action: 'static,
{
    if !model.codec() {
        return Err(
            "the distributed checker ships states as bytes: the model must implement \
                    Model::codec/encode/decode"
                .into(),
        );
    }
    let guards = timely::execute(config, move |worker| run_worker(worker, &*model, &opts))?;
    let mut reports = Vec::new();
    for r in guards.join() {
        reports.push(r.map_err(|e| format!("a worker panicked: {e}"))??);
    }
    reports
        .into_iter()
        .next()
        .ok_or_else(|| "no worker ran".to_string())
}

fn run_worker<M: Model>(
    worker: &mut timely::worker::Worker,
    model: &M,
    opts: &DistOptions,
) -> Result<DistReport<M::Action>, String> {
    let start = Instant::now();
    let me = worker.index();
    let peers = worker.peers();
    let part = Rc::new(RefCell::new(Part::default()));
    let mut input = InputHandle::new();
    let probe = ProbeHandle::new();
    {
        let part = Rc::clone(&part);
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .container::<Vec<Msg>>()
                .unary::<timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _>(
                    Exchange::new(|m: &Msg| m.dest()),
                    "Receive",
                    move |capability, _info| {
                        drop(capability);
                        move |received, _output| {
                            received.for_each(|_time, data| {
                                let mut p = part.borrow_mut();
                                for m in data.drain(..) {
                                    p.receive(m);
                                }
                            })
                        }
                    },
                )
                .probe_with(&probe);
        });
    }
    let mut time = 0u64;
    // One round: everything sent at `time` is received once this returns.
    let mut round = |worker: &mut timely::worker::Worker, input: &mut InputHandle<u64, _>| {
        time += 1;
        input.advance_to(time);
        while probe.less_than(&time) {
            worker.step();
        }
    };

    let fp = Fingerprinter::new(model, opts.symmetry, 64);
    let props = model.properties();
    let mut scratch = Vec::new();
    // The current level: this worker's states, encoded back to back, and their fingerprints.
    let mut level: Vec<(u64, Vec<u8>)> = Vec::new();
    for (i, s) in model.init_states().into_iter().enumerate() {
        let mut bytes = Vec::new();
        let f = fp.encode(&s, &mut bytes, &mut scratch);
        if owner(f, peers) as usize == me {
            part.borrow_mut().offer(f, u64::MAX, i as u32, bytes);
        }
    }
    // Transitions: this worker's since the last count, and everyone's.
    let (mut expanded, mut transitions, mut depth, mut unique) = (0u64, 0u64, 0u32, 0u64);
    let mut first: Vec<Option<(u32, u64)>> = vec![None; props.len()];
    let mut complete = true;
    let mut stored = vec![0; peers];
    let mut actions = Vec::new();
    loop {
        // Store this level's new states (received in the previous round) and check them.
        // (An error is reported to everyone, so that all workers stop at the same round.)
        let (new, fired, error) = match part.borrow_mut().store_level(model, &mut level) {
            Ok((new, fired)) => (new, fired, None),
            Err(e) => (0, Vec::new(), Some(e)),
        };
        let level_transitions = std::mem::take(&mut expanded);
        for p in 0..peers {
            input.send(Msg::Stats {
                dest: p as u32,
                level: depth,
                from: me as u32,
                new,
                transitions: level_transitions,
                stored: part.borrow().parent.len() as u64,
                fired: fired.clone(),
                error: error.clone(),
            });
        }
        round(worker, &mut input);
        let (stats, later): (Vec<Msg>, Vec<Msg>) = std::mem::take(&mut part.borrow_mut().stats)
            .into_iter()
            .partition(|m| matches!(m, Msg::Stats { level, .. } if *level == depth));
        part.borrow_mut().stats = later;
        let mut level_new = 0;
        let mut fired_now: Vec<Option<u64>> = vec![None; props.len()];
        for m in stats {
            if let Msg::Stats {
                new,
                transitions: t,
                stored: s,
                fired,
                error,
                from,
                ..
            } = m
            {
                if let Some(e) = error {
                    return Err(format!("worker {from}: {e}"));
                }
                level_new += new;
                transitions += t;
                stored[from as usize] = s;
                for (p, f) in fired {
                    let slot = &mut fired_now[p as usize];
                    *slot = Some(slot.map_or(f, |g: u64| g.min(f)));
                }
            }
        }
        unique += level_new;
        for (p, f) in fired_now.iter().enumerate() {
            if let (None, Some(f)) = (first[p], f) {
                first[p] = Some((depth, *f));
            }
        }
        if level_new == 0 {
            depth = depth.saturating_sub(1);
            break;
        }
        if opts.max_depth.is_some_and(|m| depth >= m) {
            complete = false;
            break;
        }
        // Expand this worker's level.
        let mut sent = 0usize;
        for (parent, bytes) in level.drain(..) {
            let state = model.decode(&bytes);
            actions.clear();
            model.actions(&state, &mut actions);
            expanded += actions.len() as u64;
            for (k, a) in actions.iter().enumerate() {
                let next = model.next_state(&state, a);
                let mut enc = Vec::new();
                let f = fp.encode(&next, &mut enc, &mut scratch);
                input.send(Msg::Cand {
                    dest: owner(f, peers),
                    fp: f,
                    parent,
                    action: k as u32,
                    state: enc,
                });
                sent += 1;
                if sent.is_multiple_of(4096) {
                    worker.step();
                }
            }
        }
        round(worker, &mut input);
        depth += 1;
    }

    // Traces: walk each finding back to a root, one round per step, asking the owners.
    let findings_at: Vec<(usize, u32, u64)> = first
        .iter()
        .enumerate()
        .filter_map(|(p, f)| f.map(|(d, fp)| (p, d, fp)))
        .collect();
    let mut chains: Vec<Vec<(Option<u64>, u32)>> = vec![Vec::new(); findings_at.len()];
    let mut current: Vec<Option<u64>> = findings_at.iter().map(|&(_, _, fp)| Some(fp)).collect();
    let mut step = 0u32;
    while current.iter().any(Option::is_some) {
        for (i, c) in current.iter().enumerate() {
            let Some(c) = *c else { continue };
            if owner(c, peers) as usize != me {
                continue;
            }
            let (parent, action) = part
                .borrow()
                .link(c)
                .ok_or("a finding's state has no owner record")?;
            for p in 0..peers {
                input.send(Msg::Link {
                    dest: p as u32,
                    round: step,
                    finding: i as u32,
                    parent,
                    action,
                });
            }
        }
        round(worker, &mut input);
        let links = std::mem::take(&mut part.borrow_mut().links);
        for m in links {
            if let Msg::Link {
                finding,
                parent,
                action,
                round,
                ..
            } = m
            {
                if round != step {
                    part.borrow_mut().links.push(m);
                    continue;
                }
                chains[finding as usize].push((parent, action));
                current[finding as usize] = parent;
            }
        }
        step += 1;
    }
    let mut findings = Vec::new();
    for ((p, d, f), mut chain) in findings_at.into_iter().zip(chains) {
        chain.reverse();
        let trace = replay(model, &fp, &chain, f)?;
        findings.push(DistFinding {
            finding: Finding {
                property: Some(p),
                kind: match props[p].kind {
                    PropertyKind::Always => FindingKind::Invariant,
                    PropertyKind::Sometimes => FindingKind::Sometimes,
                },
                agent: None,
                depth: d,
                trace,
            },
            fingerprint: f,
        });
    }
    Ok(DistReport {
        unique_states: unique,
        transitions,
        max_depth: depth,
        complete,
        seconds: start.elapsed().as_secs_f64(),
        workers: peers,
        states_per_worker: stored,
        collision_probability: collision_probability(unique, 64),
        findings,
    })
}

/// Replays a chain of links, root first (`(None, init)`, then `(Some(parent), action)` …),
/// checking that it ends at fingerprint `last`.
fn replay<M: Model>(
    model: &M,
    fp: &Fingerprinter<'_, M>,
    chain: &[(Option<u64>, u32)],
    last: u64,
) -> Result<Trace<M::Action>, String> {
    let Some(&(None, init)) = chain.first() else {
        return Err("a trace does not start at a root".into());
    };
    let mut state = model
        .init_states()
        .into_iter()
        .nth(init as usize)
        .ok_or("an initial state disappeared")?;
    let mut scratch = Vec::new();
    let mut taken = Vec::new();
    let mut actions = Vec::new();
    for (i, &(parent, action)) in chain.iter().enumerate().skip(1) {
        if parent != Some(fp.of(&state, &mut scratch)) {
            return Err(format!(
                "trace replay: step {i} does not start where the search stored it"
            ));
        }
        actions.clear();
        model.actions(&state, &mut actions);
        let a = actions
            .get(action as usize)
            .ok_or_else(|| format!("trace replay: step {i}: action {action} is not enabled"))?
            .clone();
        state = model.next_state(&state, &a);
        taken.push(a);
    }
    if fp.of(&state, &mut scratch) != last {
        return Err("trace replay does not end at the reported state".into());
    }
    Ok(Trace {
        init: init as usize,
        actions: taken,
        cycle_start: None,
    })
}

impl Part {
    fn receive(&mut self, m: Msg) {
        match m {
            Msg::Cand {
                fp,
                parent,
                action,
                state,
                ..
            } => self.offer(fp, parent, action, state),
            m @ Msg::Stats { .. } => self.stats.push(m),
            m @ Msg::Link { .. } => self.links.push(m),
        }
    }

    /// A candidate for the next level: kept if new, and if its (parent, action) is the
    /// smallest seen for its fingerprint.
    fn offer(&mut self, fp: u64, parent: u64, action: u32, state: Vec<u8>) {
        if self.seen.get(fp).is_some() {
            return;
        }
        match self.pending.entry(fp) {
            Entry::Occupied(mut o) => {
                let (p, a, _) = o.get();
                if (parent, action) < (*p, *a) {
                    o.insert((parent, action, state));
                }
            }
            Entry::Vacant(v) => {
                v.insert((parent, action, state));
            }
        }
    }

    /// Stores the pending candidates as this worker's next level (in fingerprint order, so
    /// runs are reproducible) and checks them. Returns the number of new states and, per
    /// property fired, the smallest fingerprint firing it.
    fn store_level<M: Model>(
        &mut self,
        model: &M,
        level: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(u64, Vec<(u32, u64)>), String> {
        let mut pending: Vec<(u64, Candidate)> = self.pending.drain().collect();
        pending.sort_unstable_by_key(|(fp, _)| *fp);
        let mut fired: Vec<(u32, u64)> = Vec::new();
        let mut out = Vec::new();
        let props = model.properties().len();
        for (fp, (parent, action, bytes)) in pending {
            self.seen.insert(fp).map_err(|e| e.to_string())?;
            self.parent.push(parent);
            self.action.push(action);
            out.clear();
            model.check(&model.decode(&bytes), &mut out);
            for &p in &out {
                if p >= props {
                    return Err(format!("model reported property {p} of {props}"));
                }
                if !fired.iter().any(|&(q, _)| q as usize == p) {
                    fired.push((p as u32, fp));
                }
            }
            level.push((fp, bytes));
        }
        Ok((level.len() as u64, fired))
    }

    /// The link of the state with fingerprint `fp`: `(Some(parent), action)` or
    /// `(None, init index)`.
    fn link(&self, fp: u64) -> Option<(Option<u64>, u32)> {
        let i = self.seen.get(fp)? as usize;
        let parent = self.parent[i];
        Some(((parent != u64::MAX).then_some(parent), self.action[i]))
    }
}
