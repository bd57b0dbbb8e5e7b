//! The breadth-first search: [`check`].
//!
//! The search runs level by level, and each level in *batches* of frontier chunks, in four
//! phases (the crate doc's "Parallel levels" explains why this gives the sequential answer):
//!
//! 1. **expand** (parallel): every parent of the batch is expanded; each successor is encoded
//!    (or kept whole) and fingerprinted; with more than one worker, successors already in the
//!    visited set are recognised here, read-only, and dropped. What is left are *candidates*,
//!    in (parent, action) order.
//! 2. **number**: with workers, the batch's duplicates are found in parallel (each worker owns
//!    a slice of the fingerprints) and the first occurrences, which are new, are numbered in
//!    order by a sequential scan that appends their fingerprints to the visited set; with one
//!    worker, phase 1 inserted each successor as it found it (and, knowing it new, checked it
//!    and, under symmetry, only then wrote the state's own encoding in place of the canonical one
//!    it fingerprinted).
//! 3. **check** (parallel): the new states are placed in the visited set's table, checked
//!    (properties, on-the-fly stall search) unless phase 1 did, and packed into the next
//!    level's frontier chunk.
//! 4. **commit** (sequential): in index order, parent links, the liveness graph and the
//!    findings are recorded, and the stop conditions are tested state by state,
//!    so a search that stops stops at the very state the sequential search would stop at.
//!
//! This file is the exploration; `bfs/findings.rs` turns what it recorded (state indices and
//! depths) into findings with replayed traces and the report, once the search is over.

mod findings;

use crate::EngineError;
use crate::chunked;
use crate::fingerprint::Fingerprinter;
use crate::frontier::{CHUNK_BYTES, Chunk, Frontier};
use crate::liveness::{Graph, MAX_AGENTS};
use crate::model::{Agent, Model, PropertyInfo, PropertyKind};
use crate::observer::{Observer, Progress};
use crate::parents::Parents;
use crate::report::{Cancel, Cut, Options, Report};
use crate::seen::Seen;
use crate::stall::{self, Decision};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

/// New states between two progress reports inside a level.
const PROGRESS_EVERY: u64 = 100_000;
/// Parent states per batch and worker.
const BATCH_PER_WORKER: usize = 16384;
/// Marks a graph edge whose target is a candidate of the same batch (resolved in phase 2).
const CAND: u32 = 1 << 31;
/// Index not assigned (a candidate past a cut).
const NONE: u32 = u32::MAX;
/// How many candidates ahead the visited set's slots are prefetched.
const PREFETCH: usize = 12;

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
    if opts.workers == 0 {
        return Err(EngineError::InvalidOption("workers must be at least 1".into()));
    }
    let agents = model.agents();
    if opts.liveness && agents > MAX_AGENTS {
        return Err(EngineError::TooManyAgents {
            agents,
            limit: MAX_AGENTS,
        });
    }
    let rss_reset = chunked::reset_peak_rss();
    let start = Instant::now();
    // The calling thread is a worker too: the pool holds the others.
    let pool = if opts.workers > 1 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(opts.workers - 1)
            .thread_name(|i| format!("mmcid-engine-{}", i + 1))
            .build()
            .ok()
    } else {
        None
    };
    let workers = pool.as_ref().map_or(1, |p| p.current_num_threads() + 1);
    let fp = Fingerprinter::new(model, opts.symmetry, opts.fingerprint_bits);
    let mut s = Search {
        model,
        opts,
        props: model.properties(),
        agents,
        frontier: Frontier::new(fp.codec()),
        fp,
        seen: Seen::new(),
        parents: Parents::new(),
        graph: opts.liveness.then(|| Graph::new(agents)),
        first: Vec::new(),
        cut: None,
        transitions: 0,
        max_depth: 0,
        stalls: Vec::new(),
        stalls_undecided: 0,
        max_states: opts.max_states.unwrap_or(u64::MAX),
        left_in_batch: 0,
        start,
        pool,
        next_progress: PROGRESS_EVERY,
        cands_per_parent: 4.0,
        bytes_per_cand: 16.0,
    };
    s.first = vec![None; s.props.len()];
    s.roots()?;
    s.search(observer)?;
    s.progress(observer);
    observer.done();
    s.report(rss_reset, workers)
}

/// Everything the search keeps between batches.
struct Search<'m, M: Model> {
    model: &'m M,
    opts: &'m Options,
    props: Vec<PropertyInfo>,
    agents: usize,
    fp: Fingerprinter<'m, M>,
    seen: Seen,
    parents: Parents,
    frontier: Frontier<M::State>,
    graph: Option<Graph>,
    /// First (state index, depth) firing each property.
    first: Vec<Option<(u32, u32)>>,
    cut: Option<Cut>,
    transitions: u64,
    max_depth: u32,
    /// (agent, state index, depth) of each stall found on the fly.
    stalls: Vec<(Agent, u32, u32)>,
    stalls_undecided: u64,
    max_states: u64,
    /// Parents of the batch that was cut that were not expanded (they count as left on the
    /// frontier).
    left_in_batch: u64,
    start: Instant,
    pool: Option<rayon::ThreadPool>,
    next_progress: u64,
    /// Running averages, for the memory limit's worst case of a batch.
    cands_per_parent: f64,
    bytes_per_cand: f64,
}

/// A batch's successors of one frontier chunk, with everything the later phases need.
struct Expanded<S> {
    /// State index of the chunk's first parent.
    first: u32,
    /// Actions enabled in each parent.
    nactions: Vec<u32>,
    /// Candidates: fingerprint, parent (offset in the chunk), action index.
    meta: Vec<(u64, u32, u32)>,
    cands: Cands<S>,
    /// With liveness: per action of each parent, the target (a state index, or
    /// `CAND | candidate`) and the label; per parent, the spinning agents (`spin_ends` delimits).
    edges: Vec<(u32, Agent, bool)>,
    spins: Vec<Agent>,
    spin_ends: Vec<u32>,
    /// With workers: the candidates of each slice of the fingerprints (phase 2's duplicate
    /// search), in order.
    buckets: Vec<Vec<u32>>,
    /// Phase 2: the candidates that are new states, in order; they are numbered
    /// `fresh_start`, `fresh_start + 1`, ….
    fresh: Vec<u32>,
    fresh_start: u32,
    /// How many of `fresh` are checked already: phase 1 checks a new state as it finds it when
    /// it numbers them (one worker), while the state is at hand, rather than phase 3 decoding
    /// it again.
    checked: usize,
    /// Each candidate's state index (needed for the graph's edges; filled when phase 1
    /// numbers, or in phase 3 with the graph).
    idx: Vec<u32>,
    /// Phase 3: the new states as a frontier chunk for the next level (and, when packed, where
    /// each entry ends), so that phase 4 only appends it.
    next: Vec<Chunk<S>>,
    /// For each new state, where its entry ends in its (packed) piece.
    next_ends: Vec<u32>,
    /// Phase 3: (candidate, property) fired; (candidate, agents asked, decision).
    fired: Vec<(u32, u32)>,
    decided: Vec<(u32, Vec<Agent>, Decision)>,
    err: Option<EngineError>,
    interrupted: bool,
}

/// Candidate states: whole, or encoded back to back. A candidate known to be old has no state
/// (an empty encoding, or no slot).
enum Cands<S> {
    /// The states, and per candidate its position in `states` ([`NONE`]: none kept).
    Plain {
        states: Vec<S>,
        slot: Vec<u32>,
    },
    Packed {
        bytes: Vec<u8>,
        ends: Vec<u32>,
    },
}

impl<S> Cands<S> {
    fn encoding(&self, j: usize) -> &[u8] {
        match self {
            Cands::Packed { bytes, ends } => {
                let from = if j == 0 { 0 } else { ends[j - 1] as usize };
                &bytes[from..ends[j] as usize]
            }
            Cands::Plain { .. } => &[],
        }
    }
    /// Bytes of state data held (encodings, or whole states).
    fn used(&self) -> usize {
        match self {
            Cands::Packed { bytes, .. } => bytes.len(),
            Cands::Plain { states, .. } => states.len() * std::mem::size_of::<S>(),
        }
    }
}

/// What phase 1 and 3 read, shared by the workers.
struct Ctx<'a, M: Model> {
    model: &'a M,
    fp: &'a Fingerprinter<'a, M>,
    /// With workers: the visited set, read-only (phase 1 drops the successors it has).
    seen: Option<&'a Seen>,
    /// Without: the visited set itself, so that phase 1 numbers successors as it finds them
    /// (phase 2 is then done) and keeps only the new states.
    number: Option<&'a Mutex<Numbering<'a>>>,
    agents: usize,
    graph: bool,
    props: usize,
    stall_search: Option<u64>,
    /// Agents already known to stall (not decided again).
    stalled: &'a [Agent],
    cancel: Option<&'a Cancel>,
    /// Threads.
    workers: usize,
    /// Successors per parent and bytes per encoded successor seen so far (for capacities).
    cands_per_parent: f64,
    bytes_per_cand: f64,
}

/// Phase 2 done inside phase 1, by the only worker.
struct Numbering<'a> {
    seen: &'a mut Seen,
    max_states: u64,
    /// `max_states` reached: later successors get no index.
    full: bool,
}

/// Where [`Ctx::check_one`] records what it finds: an [`Expanded`]'s `fired`, `decided` and
/// `err` (borrowed apart from its candidates, which may hold the state being checked).
struct Found<'a>(
    &'a mut Vec<(u32, u32)>,
    &'a mut Vec<(u32, Vec<Agent>, Decision)>,
    &'a mut Option<EngineError>,
);

impl<M: Model> Ctx<'_, M> {
    /// Phase 1 for one chunk.
    fn expand(&self, first: u32, chunk: Chunk<M::State>) -> Expanded<M::State> {
        let packed = matches!(chunk, Chunk::Packed { .. });
        // Sized from what earlier batches produced: growing by doubling would copy.
        let cands = ((chunk.len() as f64 * self.cands_per_parent) as usize).min(1 << 20) + 16;
        let mut e = Expanded {
            first,
            nactions: Vec::with_capacity(chunk.len()),
            meta: Vec::with_capacity(cands),
            cands: if packed {
                Cands::Packed {
                    bytes: Vec::with_capacity(((cands as f64 * self.bytes_per_cand) as usize).min(64 << 20)),
                    ends: Vec::with_capacity(cands),
                }
            } else {
                // About one new state per parent; growing by doubling would copy them.
                Cands::Plain {
                    states: Vec::with_capacity(chunk.len() * 2),
                    slot: Vec::new(),
                }
            },
            edges: Vec::new(),
            spins: Vec::new(),
            spin_ends: Vec::new(),
            idx: Vec::new(),
            buckets: Vec::new(),
            fresh: Vec::new(),
            fresh_start: 0,
            checked: 0,
            next: Vec::new(),
            next_ends: Vec::new(),
            fired: Vec::new(),
            decided: Vec::new(),
            err: None,
            interrupted: false,
        };
        let mut actions = Vec::new();
        let mut scratch = Vec::new();
        let mut spinning = Vec::new();
        let (mut fired, mut stall_spinning) = (Vec::new(), Vec::new());
        let mut number = self.number.map(|n| n.lock().expect("no panic while held"));
        let mut one = |off: u32, state: &M::State, e: &mut Expanded<M::State>| -> bool {
            if self.cancel.is_some_and(Cancel::is_cancelled) {
                e.interrupted = true;
                return false;
            }
            actions.clear();
            self.model.actions(state, &mut actions);
            e.nactions.push(actions.len() as u32);
            for (k, action) in actions.iter().enumerate() {
                let next = self.model.next_state(state, action);
                let j = e.meta.len() as u32;
                // Under symmetry with one worker, only the canonical encoding is written now;
                // the state's own (what the frontier keeps) once it is known to be new.
                let mut own_later = false;
                let fp = match &mut e.cands {
                    Cands::Packed { bytes, .. } if number.is_some() && self.fp.symmetry() => {
                        let (fp, renamed) = self.fp.encode_representative(&next, bytes);
                        own_later = renamed;
                        fp
                    }
                    Cands::Packed { bytes, .. } => self.fp.encode(&next, bytes, &mut scratch),
                    Cands::Plain { .. } => self.fp.of(&next, &mut scratch),
                };
                // With workers, whole states already seen are recognised here, so that they
                // are never copied (encodings are filtered after the chunk, with prefetching).
                let known = match (&e.cands, self.seen) {
                    (Cands::Plain { .. }, Some(seen)) => seen.get(fp),
                    _ => None,
                };
                if known.is_none() {
                    let keep = match number.as_deref_mut() {
                        None => true,
                        Some(n) => {
                            let (idx, new) = if n.full {
                                (NONE, false)
                            } else {
                                match n.seen.insert(fp) {
                                    Ok(x) => x,
                                    Err(err) => {
                                        e.err = Some(err);
                                        return false;
                                    }
                                }
                            };
                            n.full |= new && n.seen.len() as u64 >= n.max_states;
                            if new {
                                if e.fresh.is_empty() {
                                    e.fresh_start = idx;
                                }
                                e.fresh.push(j);
                                let found = Found(&mut e.fired, &mut e.decided, &mut e.err);
                                if !self.check_one(j as usize, &next, found, &mut fired, &mut stall_spinning)
                                {
                                    return false;
                                }
                                e.checked = e.fresh.len();
                            }
                            e.idx.push(idx);
                            new
                        }
                    };
                    match &mut e.cands {
                        Cands::Packed { bytes, ends } => {
                            if !keep || own_later {
                                bytes.truncate(ends.last().map_or(0, |&x| x as usize));
                            }
                            if keep && own_later {
                                self.model.encode(&next, bytes);
                            }
                            ends.push(bytes.len() as u32);
                        }
                        Cands::Plain { states, slot } => {
                            if keep {
                                slot.push(states.len() as u32);
                                states.push(next);
                            } else {
                                slot.push(NONE);
                            }
                        }
                    }
                    e.meta.push((fp, off, k as u32));
                }
                if self.graph {
                    let agent = self.model.agent(state, action);
                    if agent as usize >= self.agents {
                        e.err = Some(EngineError::InvalidAgent {
                            agent,
                            agents: self.agents,
                        });
                        return false;
                    }
                    let retry = self.model.is_retry(state, action);
                    e.edges.push((known.unwrap_or(CAND | j), agent, retry));
                }
            }
            if self.graph {
                spinning.clear();
                self.model.spinning(state, &mut spinning);
                if let Some(&agent) = spinning.iter().find(|&&a| a as usize >= self.agents) {
                    e.err = Some(EngineError::InvalidAgent {
                        agent,
                        agents: self.agents,
                    });
                    return false;
                }
                e.spins.extend_from_slice(&spinning);
                e.spin_ends.push(e.spins.len() as u32);
            }
            true
        };
        match &chunk {
            Chunk::Plain(states) => {
                for (off, state) in states.iter().enumerate() {
                    if !one(off as u32, state, &mut e) {
                        break;
                    }
                }
            }
            Chunk::Packed { .. } => {
                for (off, bytes) in chunk.encodings().enumerate() {
                    let state = self.model.decode(bytes);
                    if !one(off as u32, &state, &mut e) {
                        break;
                    }
                }
            }
        }
        if let (Some(seen), None, false, true) = (self.seen, &e.err, e.interrupted, packed) {
            self.drop_known(&mut e, seen);
        }
        if self.seen.is_some() {
            let parts = dup_parts(self.workers);
            e.buckets = vec![Vec::new(); parts];
            for (j, &(fp, _, _)) in e.meta.iter().enumerate() {
                e.buckets[dup_part(fp, parts)].push(j as u32);
            }
        }
        e
    }

    /// Drops the candidates already in the visited set (pointing their graph edges at the
    /// known states), so that the sequential phase only sees new fingerprints. The probes are
    /// prefetched a few candidates ahead: they are cache misses in a large table.
    fn drop_known(&self, e: &mut Expanded<M::State>, seen: &Seen) {
        let n = e.meta.len();
        let mut keep = Vec::with_capacity(n); // new number, or the known state's index
        let mut kept = 0u32;
        for j in 0..n {
            if let Some(&(fp, _, _)) = e.meta.get(j + PREFETCH) {
                seen.prefetch(fp);
            }
            if let Some(&(fp, _, _)) = e.meta.get(j + PREFETCH / 2) {
                seen.prefetch_match(fp);
            }
            match seen.get(e.meta[j].0) {
                Some(idx) => keep.push(Err(idx)),
                None => {
                    keep.push(Ok(kept));
                    kept += 1;
                }
            }
        }
        if kept as usize == n {
            return;
        }
        let mut j = 0;
        e.meta.retain(|_| {
            j += 1;
            keep[j - 1].is_ok()
        });
        match &mut e.cands {
            Cands::Plain { states, slot } => {
                // Before filtering every candidate has its state, in order.
                let mut j = 0;
                states.retain(|_| {
                    j += 1;
                    keep[j - 1].is_ok()
                });
                slot.clear();
                slot.extend(0..states.len() as u32);
            }
            Cands::Packed { bytes, ends } => {
                let (mut from, mut to, mut w) = (0usize, 0usize, 0usize);
                for j in 0..n {
                    let end = ends[j] as usize;
                    if keep[j].is_ok() {
                        bytes.copy_within(from..end, to);
                        to += end - from;
                        ends[w] = to as u32;
                        w += 1;
                    }
                    from = end;
                }
                bytes.truncate(to);
                ends.truncate(w);
            }
        }
        for edge in &mut e.edges {
            edge.0 = match keep[(edge.0 & !CAND) as usize] {
                Ok(new) => CAND | new,
                Err(idx) => idx,
            };
        }
    }

    /// Checks new state `state` (candidate `j`): the properties it fires (appended to `out`'s
    /// `fired`) and, with stall search and no graph, the stalls of its spinning agents
    /// (`decided`). False on an error (left in `err`).
    fn check_one(
        &self,
        j: usize,
        state: &M::State,
        out: Found<'_>,
        fired: &mut Vec<usize>,
        spinning: &mut Vec<Agent>,
    ) -> bool {
        let Found(e_fired, e_decided, e_err) = out;
        fired.clear();
        self.model.check(state, fired);
        for &p in fired.iter() {
            if p >= self.props {
                *e_err = Some(EngineError::InvalidProperty {
                    index: p,
                    properties: self.props,
                });
                return false;
            }
            e_fired.push((j as u32, p as u32));
        }
        if let (Some(limit), false) = (self.stall_search, self.graph) {
            spinning.clear();
            self.model.spinning(state, spinning);
            spinning.retain(|a| !self.stalled.contains(a));
            if !spinning.is_empty() {
                let d = stall::decide(self.model, state, spinning, self.fp, limit, self.cancel);
                e_decided.push((j as u32, spinning.clone(), d));
            }
        }
        true
    }

    /// Phase 3 for one chunk's new states (those phase 1 did not check already).
    fn check(&self, e: &mut Expanded<M::State>) {
        let mut fired = Vec::new();
        let mut spinning = Vec::new();
        for f in e.checked..e.fresh.len() {
            let j = e.fresh[f] as usize;
            let decoded;
            let state = match &e.cands {
                Cands::Plain { states, slot } => &states[slot[j] as usize],
                Cands::Packed { .. } => {
                    decoded = self.model.decode(e.cands.encoding(j));
                    &decoded
                }
            };
            if !self.check_one(
                j,
                state,
                Found(&mut e.fired, &mut e.decided, &mut e.err),
                &mut fired,
                &mut spinning,
            ) {
                return;
            }
        }
        e.checked = e.fresh.len();
        // Pieces of at most a frontier chunk's size, so that the next level is split for the
        // workers as finely as this one.
        let mut pieces = Vec::new();
        match &mut e.cands {
            Cands::Packed { .. } => {
                let mut bytes: Vec<u8> = Vec::new();
                let mut len = 0;
                let mut rest: usize = e
                    .fresh
                    .iter()
                    .map(|&j| e.cands.encoding(j as usize).len() + 2)
                    .sum();
                for &j in &e.fresh {
                    let enc = e.cands.encoding(j as usize);
                    rest -= enc.len() + 2;
                    if len > 0 && bytes.len() + enc.len() + 10 > CHUNK_BYTES {
                        pieces.push(Chunk::Packed {
                            bytes: std::mem::take(&mut bytes),
                            len: std::mem::take(&mut len),
                        });
                    }
                    if bytes.capacity() == 0 {
                        bytes.reserve_exact(CHUNK_BYTES.min(rest + enc.len() + 2).max(enc.len() + 10));
                    }
                    crate::frontier::write_varint(&mut bytes, enc.len());
                    bytes.extend_from_slice(enc);
                    e.next_ends.push(bytes.len() as u32);
                    len += 1;
                }
                if len > 0 {
                    pieces.push(Chunk::Packed { bytes, len });
                }
            }
            Cands::Plain { states, slot } => {
                let most = (CHUNK_BYTES / std::mem::size_of::<M::State>().max(1)).max(256);
                // Moved out in order: each new candidate's slot is larger than the previous one's.
                let mut all = std::mem::take(states).into_iter().enumerate();
                let mut out = Vec::new();
                for (r, &j) in e.fresh.iter().enumerate() {
                    if out.len() == most {
                        pieces.push(Chunk::Plain(std::mem::take(&mut out)));
                    }
                    if out.capacity() == 0 {
                        out.reserve_exact(most.min(e.fresh.len() - r));
                    }
                    let want = slot[j as usize] as usize;
                    out.extend(all.find(|(i, _)| *i == want).map(|(_, s)| s));
                }
                if !out.is_empty() {
                    pieces.push(Chunk::Plain(out));
                }
            }
        }
        e.next = pieces;
    }
}

impl<M: Model> Search<'_, M> {
    fn roots(&mut self) -> Result<(), EngineError> {
        let mut scratch = Vec::new();
        let mut encoded = Vec::new();
        for (i, s) in self.model.init_states().into_iter().enumerate() {
            let fp = if self.fp.codec() {
                encoded.clear();
                self.fp.encode(&s, &mut encoded, &mut scratch)
            } else {
                self.fp.of(&s, &mut scratch)
            };
            let (idx, new) = self.seen.insert(fp)?;
            if !new {
                continue;
            }
            self.parents.push_root(i);
            let mut fired = Vec::new();
            self.model.check(&s, &mut fired);
            let fired: Vec<u32> = fired.into_iter().map(|p| p as u32).collect();
            if self.record(idx, 0, &fired)? && self.opts.stop_at_first_violation {
                self.cut = Some(Cut::FirstViolation);
            }
            if self.fp.codec() {
                self.frontier.push_encoded(&encoded);
            } else {
                self.frontier.push(s);
            }
            if self.seen.len() as u64 >= self.max_states {
                self.cut = self.cut.or(Some(Cut::MaxStates));
            }
            if self.cut.is_some() {
                break;
            }
        }
        self.frontier.start();
        Ok(())
    }

    fn memory_now(&self) -> u64 {
        self.seen.bytes()
            + self.parents.bytes()
            + self.frontier.bytes()
            + self.graph.as_ref().map_or(0, Graph::bytes)
    }

    fn progress(&self, observer: &mut dyn Observer) {
        observer.progress(&Progress {
            states: self.seen.len() as u64,
            transitions: self.transitions,
            depth: self.frontier.depth(),
            frontier: self.frontier.len() as u64,
            elapsed_secs: self.start.elapsed().as_secs_f64(),
            memory_bytes: self.memory_now(),
        });
    }

    /// True if the next batch of `parents` states might pass the memory limit.
    fn over_memory_limit(&self, parents: usize) -> bool {
        let Some(limit) = self.opts.memory_limit else {
            return false;
        };
        let accounted = self.memory_now();
        let rss = chunked::rss().map_or(0, |r| r.current);
        // Worst case of the batch: twice the average successors, all new.
        let cands = (parents as f64 * self.cands_per_parent * 2.0) as usize + 64;
        let growth = self.seen.growth_within(cands)
            + (cands as f64 * (self.bytes_per_cand + 16.0)) as u64 * 2
            + if self.graph.is_some() {
                cands as u64 * 12
            } else {
                0
            }
            + (256 << 10);
        accounted.max(rss) + growth > limit
    }

    fn search(&mut self, observer: &mut dyn Observer) -> Result<(), EngineError> {
        // Whole states may be large: a batch's candidates stay within some 32 MiB.
        let per_worker = if self.fp.codec() {
            BATCH_PER_WORKER
        } else {
            ((32 << 20) / (8 * std::mem::size_of::<M::State>().max(1))).clamp(256, BATCH_PER_WORKER)
        };
        let batch_parents = per_worker * self.workers();
        while self.cut.is_none() && self.frontier.current_len() > 0 {
            let depth = self.frontier.depth();
            if self.opts.max_depth.is_some_and(|m| depth >= m) {
                self.cut = Some(Cut::MaxDepth);
                break;
            }
            self.progress(observer);
            while self.frontier.current_len() > 0 {
                if self.opts.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
                    self.cut = Some(Cut::Interrupted);
                    return Ok(());
                }
                if self.over_memory_limit(batch_parents.min(self.frontier.current_len())) {
                    self.cut = Some(Cut::MemoryLimit);
                    return Ok(());
                }
                self.batch(batch_parents)?;
                self.frontier.note_peak();
                if self.cut.is_some() {
                    return Ok(());
                }
                if self.seen.len() as u64 >= self.next_progress {
                    self.next_progress = (self.seen.len() as u64 / PROGRESS_EVERY + 1) * PROGRESS_EVERY;
                    self.progress(observer);
                }
            }
            self.frontier.advance();
        }
        Ok(())
    }

    /// Expands one batch of the current level (phases 1 to 4).
    fn batch(&mut self, batch_parents: usize) -> Result<(), EngineError> {
        let depth = self.frontier.depth();
        let (first, chunks) = self.frontier.take_chunks(batch_parents);
        let parents_in_batch: usize = chunks.iter().map(Chunk::len).sum();
        // Phase 1: expand.
        let mut firsts = Vec::with_capacity(chunks.len());
        let mut at = first;
        for c in &chunks {
            firsts.push(at);
            at += c.len() as u32;
        }
        let stalled: Vec<Agent> = self.stalls.iter().map(|&(a, _, _)| a).collect();
        let workers = self.workers();
        let numbering;
        let (seen, number) = if self.pool.is_none() {
            numbering = Mutex::new(Numbering {
                seen: &mut self.seen,
                max_states: self.max_states,
                full: false,
            });
            (None, Some(&numbering))
        } else {
            (Some(&self.seen), None)
        };
        let ctx = Ctx {
            model: self.model,
            fp: &self.fp,
            seen,
            number,
            agents: self.agents,
            graph: self.graph.is_some(),
            props: self.props.len(),
            stall_search: self.opts.stall_search,
            stalled: &stalled,
            cancel: self.opts.cancel.as_ref(),
            workers,
            cands_per_parent: self.cands_per_parent,
            bytes_per_cand: self.bytes_per_cand,
        };
        let work: Vec<_> = chunks.into_iter().zip(firsts).collect();
        let mut batch: Vec<Expanded<M::State>> =
            parallel(self.pool.as_ref(), work, &|(c, f)| ctx.expand(f, c));
        if let Some(e) = batch.iter_mut().find_map(|e| e.err.take()) {
            return Err(e);
        }
        if batch.iter().any(|e| e.interrupted) {
            self.cut = Some(Cut::Interrupted);
            self.left_in_batch = parents_in_batch as u64;
            return Ok(());
        }
        let cands: usize = batch
            .iter()
            .map(|e| e.nactions.iter().sum::<u32>() as usize)
            .sum();
        let cand_bytes: usize = batch.iter().map(|e| e.cands.used()).sum();
        if parents_in_batch > 0 {
            // A running average (a few parents may have many successors: the root of a
            // wide model); the memory limit's worst case doubles it.
            self.cands_per_parent =
                0.5 * self.cands_per_parent + 0.5 * (cands as f64 / parents_in_batch as f64);
        }
        if cands > 0 {
            self.bytes_per_cand = 0.5 * self.bytes_per_cand + 0.5 * (cand_bytes as f64 / cands as f64);
        }

        // Phase 2: number the new states in (parent, action) order (phase 1 did it if it
        // had the visited set to itself). With workers: their duplicates within the batch are
        // found in parallel (each worker owns a slice of the fingerprints); the first
        // occurrences are new, so the k-th of them is state `len() + k`; the main thread
        // appends their fingerprints, and the workers place them in the table.
        let idx_of_cand = if self.pool.is_some() {
            self.number_in_parallel(&mut batch)?
        } else {
            Vec::new()
        };

        // Phase 3: place the new states in the visited set's table (with workers) and check
        // them.
        let graph = self.graph.is_some();
        let place = self.pool.is_some();
        let seen = &self.seen;
        let ctx = self.ctx(&stalled);
        let offsets = cand_offsets(&batch);
        let work: Vec<_> = batch.iter_mut().zip(offsets).collect();
        parallel(self.pool.as_ref(), work, &|(e, c0)| {
            if place {
                for (r, &j) in e.fresh.iter().enumerate() {
                    seen.place(e.meta[j as usize].0, e.fresh_start + r as u32);
                }
                if graph {
                    e.idx = idx_of_cand[c0..c0 + e.meta.len()].to_vec();
                }
            }
            ctx.check(e)
        });
        if let Some(e) = batch.iter_mut().find_map(|e| e.err.take()) {
            return Err(e);
        }

        // Phase 4: commit in index order, testing the stop conditions state by state.
        let mut expanded_before = 0u64; // parents of earlier chunks in this batch
        let mut transitions_before = self.transitions;
        for e in batch.iter_mut() {
            if let Some(g) = self.graph.as_mut() {
                let mut edge = 0usize;
                for (off, &nactions) in e.nactions.iter().enumerate() {
                    debug_assert_eq!(g.states(), (e.first as usize) + off);
                    for &(target, agent, retry) in &e.edges[edge..edge + nactions as usize] {
                        let target = if target & CAND != 0 {
                            e.idx[(target & !CAND) as usize]
                        } else {
                            target
                        };
                        g.push_edge(target, agent, retry);
                    }
                    edge += nactions as usize;
                    let from = if off == 0 {
                        0
                    } else {
                        e.spin_ends[off - 1] as usize
                    };
                    g.end_state(&e.spins[from..e.spin_ends[off] as usize]);
                }
            }
            let mut fired = e.fired.iter().peekable();
            let mut decided = e.decided.iter_mut().peekable();
            let mut next = std::mem::take(&mut e.next);
            for (r, &cj) in e.fresh.iter().enumerate() {
                let cj = cj as usize;
                let (_, off, action) = e.meta[cj];
                let idx = e.fresh_start + r as u32;
                let parent = e.first + off;
                self.parents.push(parent, action);
                self.max_depth = depth + 1;
                let mut props = Vec::new();
                while let Some(&&(c, p)) = fired.peek() {
                    if c as usize != cj {
                        break;
                    }
                    props.push(p);
                    fired.next();
                }
                let mut violated = self.record(idx, depth + 1, &props)?;
                if let Some((_, asked, d)) = decided.next_if(|(c, _, _)| *c as usize == cj) {
                    // Agents found stalled earlier in this batch are not decided again,
                    // as the sequential search would not have asked.
                    let now: Vec<Agent> = asked
                        .iter()
                        .copied()
                        .filter(|a| !self.stalls.iter().any(|(b, _, _)| b == a))
                        .collect();
                    let none = Decision {
                        stalled: vec![],
                        undecided: false,
                    };
                    let d = if now.len() == asked.len() {
                        std::mem::replace(d, none)
                    } else if now.is_empty() {
                        none
                    } else {
                        let decoded;
                        let state = match piece_at(&next, r) {
                            (_, k, Chunk::Plain(states)) => &states[k],
                            (_, _, Chunk::Packed { .. }) => {
                                decoded = self.model.decode(e.cands.encoding(cj));
                                &decoded
                            }
                        };
                        let limit = self.opts.stall_search.expect("decided only with stall search");
                        stall::decide(
                            self.model,
                            state,
                            &now,
                            &self.fp,
                            limit,
                            self.opts.cancel.as_ref(),
                        )
                    };
                    self.stalls_undecided += d.undecided as u64;
                    for a in d.stalled {
                        self.stalls.push((a, idx, depth + 1));
                        violated = true;
                    }
                }
                let cut = if violated && self.opts.stop_at_first_violation {
                    Some(Cut::FirstViolation)
                } else if idx as u64 + 1 >= self.max_states {
                    Some(Cut::MaxStates)
                } else {
                    None
                };
                if cut.is_some() {
                    // The next level keeps the new states up to this one.
                    let (p, k, _) = piece_at(&next, r);
                    next.truncate(p + 1);
                    match &mut next[p] {
                        Chunk::Plain(states) => states.truncate(k + 1),
                        Chunk::Packed { bytes, len } => {
                            bytes.truncate(e.next_ends[r] as usize);
                            *len = k + 1;
                        }
                    }
                    next.into_iter().for_each(|c| self.frontier.push_chunk(c));
                    let actions_before: u64 = e.nactions[..off as usize].iter().map(|&a| a as u64).sum();
                    self.cut = cut;
                    self.transitions = transitions_before + actions_before + action as u64 + 1;
                    self.left_in_batch = parents_in_batch as u64 - (expanded_before + off as u64 + 1);
                    self.seen.truncate(idx as usize + 1);
                    return Ok(());
                }
            }
            next.into_iter().for_each(|c| self.frontier.push_chunk(c));
            expanded_before += e.nactions.len() as u64;
            transitions_before += e.nactions.iter().map(|&a| a as u64).sum::<u64>();
        }
        self.transitions = transitions_before;
        Ok(())
    }

    /// Phase 2 with workers (see [`Search::batch`]): finds each candidate's first occurrence
    /// in the batch (in parallel), then lists the new states of each chunk, numbers them and
    /// appends their fingerprints (a sequential scan). Placing them in the table is left to
    /// phase 3's workers. Returns, with the graph, each candidate's state index by batch-wide
    /// candidate number (empty without the graph).
    fn number_in_parallel(&mut self, batch: &mut [Expanded<M::State>]) -> Result<Vec<u32>, EngineError> {
        let first = self.batch_duplicates(batch);
        let graph = self.graph.is_some();
        let mut idx_of_cand: Vec<u32> = Vec::new();
        let mut room = self.max_states.saturating_sub(self.seen.len() as u64) as usize;
        let mut c = 0usize;
        for e in batch.iter_mut() {
            e.fresh.clear();
            e.fresh_start = self.seen.len() as u32;
            for (j, &(fp, _, _)) in e.meta.iter().enumerate() {
                let f = first[c].load(Ordering::Relaxed) as usize;
                let idx = if f != c {
                    idx_of_cand.get(f).copied().unwrap_or(NONE)
                } else if room > 0 {
                    room -= 1;
                    e.fresh.push(j as u32);
                    self.seen.push_new(fp)?
                } else {
                    NONE
                };
                if graph {
                    idx_of_cand.push(idx);
                }
                c += 1;
            }
        }
        // Room in the table for the states just appended (placed in phase 3).
        self.seen.reserve(0);
        Ok(idx_of_cand)
    }

    fn workers(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.current_num_threads() + 1)
    }

    /// For each candidate of the batch (numbered in order across its chunks), the number of
    /// the first candidate with the same fingerprint (itself if it is the first). `None`
    /// without workers: the sequential pass then finds duplicates in the visited set itself.
    fn batch_duplicates(&self, batch: &[Expanded<M::State>]) -> Vec<AtomicU32> {
        let pool = self.pool.as_ref();
        let total: usize = batch.iter().map(|e| e.meta.len()).sum();
        let first: Vec<AtomicU32> = (0..total as u32).map(AtomicU32::new).collect();
        let parts = dup_parts(self.workers());
        let offsets = cand_offsets(batch);
        parallel(pool, (0..parts).collect(), &|p| {
            let mine: usize = batch.iter().map(|e| e.buckets.get(p).map_or(0, Vec::len)).sum();
            let mut map: HashMap<u64, u32, BuildHasherDefault<PassThrough>> =
                HashMap::with_capacity_and_hasher(mine, Default::default());
            for (e, &c0) in batch.iter().zip(&offsets) {
                for &j in e.buckets.get(p).into_iter().flatten() {
                    let c = (c0 + j as usize) as u32;
                    match map.entry(e.meta[j as usize].0) {
                        Entry::Occupied(o) => first[c as usize].store(*o.get(), Ordering::Relaxed),
                        Entry::Vacant(v) => {
                            v.insert(c);
                        }
                    }
                }
            }
        });
        first
    }

    fn ctx<'a>(&'a self, stalled: &'a [Agent]) -> Ctx<'a, M> {
        Ctx {
            model: self.model,
            fp: &self.fp,
            seen: None,
            number: None,
            agents: self.agents,
            graph: self.graph.is_some(),
            props: self.props.len(),
            stall_search: self.opts.stall_search,
            stalled,
            cancel: self.opts.cancel.as_ref(),
            workers: self.workers(),
            cands_per_parent: self.cands_per_parent,
            bytes_per_cand: self.bytes_per_cand,
        }
    }

    /// Records the properties `fired` in state `idx` (remembering the first state firing each).
    /// Returns whether an `Always` property fired.
    fn record(&mut self, idx: u32, depth: u32, fired: &[u32]) -> Result<bool, EngineError> {
        let mut violated = false;
        for &p in fired {
            let info = self.props.get(p as usize).ok_or(EngineError::InvalidProperty {
                index: p as usize,
                properties: self.props.len(),
            })?;
            violated |= info.kind == PropertyKind::Always;
            if self.first[p as usize].is_none() {
                self.first[p as usize] = Some((idx, depth));
            }
        }
        Ok(violated)
    }
}

/// How many slices of the fingerprints the duplicate search splits a batch into.
fn dup_parts(workers: usize) -> usize {
    workers * 2
}

/// The slice of the fingerprints `fp` falls in.
#[inline]
fn dup_part(fp: u64, parts: usize) -> usize {
    (((fp.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) * parts as u64) >> 32) as usize
}

/// The piece holding the `r`-th state of a list of chunks: (piece, position in it, piece).
fn piece_at<S>(pieces: &[Chunk<S>], mut r: usize) -> (usize, usize, &Chunk<S>) {
    for (p, c) in pieces.iter().enumerate() {
        if r < c.len() {
            return (p, r, c);
        }
        r -= c.len();
    }
    panic!("state {r} is past the pieces built for it")
}

/// Batch-wide number of each chunk's first candidate.
fn cand_offsets<S>(batch: &[Expanded<S>]) -> Vec<usize> {
    let mut at = 0;
    batch
        .iter()
        .map(|e| {
            let c0 = at;
            at += e.meta.len();
            c0
        })
        .collect()
}

/// `items.map(f)` in order, on the calling thread and the pool's threads (each takes the next
/// item until none is left), or on the calling thread alone.
fn parallel<T: Send, R: Send>(
    pool: Option<&rayon::ThreadPool>,
    items: Vec<T>,
    f: &(dyn Fn(T) -> R + Sync),
) -> Vec<R> {
    let Some(pool) = pool.filter(|_| items.len() > 1) else {
        return items.into_iter().map(f).collect();
    };
    let n = items.len();
    let todo: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let done: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let item = todo[i]
                .lock()
                .expect("no panic while held")
                .take()
                .expect("taken once");
            let r = f(item);
            *done[i].lock().expect("no panic while held") = Some(r);
        }
    };
    pool.in_place_scope(|scope| {
        for _ in 0..pool.current_num_threads().min(n - 1) {
            scope.spawn(|_| work());
        }
        work();
    });
    done.into_iter()
        .map(|r| {
            r.into_inner()
                .expect("no panic while held")
                .expect("every item done")
        })
        .collect()
}

/// A hasher for fingerprints, which are hashes already: mixes the value once.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01B3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
