//! The discrete-event kernel: CPUs with run queues, tasks alternating bursts and sleeps, processes
//! with one mm each, and the kernel operations the workloads use. The CID code is called through
//! [`crate::cid`], which drives the very `mmcid-cid` functions the model checker drives.
//!
//! ## Time and events
//! One priority queue of `(time, payload)` events, popped in time order (ties in payload order, so a
//! run is a pure function of its configuration). A CPU has one pending event at a time: the end of
//! its current burst or time slice, the next step of the kernel operation it executes (a fork's
//! stages, a fix-up walk's visits), or the next lap of a busy-wait. A sleeping task has one pending
//! wake-up. Stale events carry an old generation number and are dropped.
//!
//! ## Scheduling
//! A waking task goes to an idle CPU of its cpuset (its previous CPU first), else to the least
//! loaded of its previous CPU and two random allowed ones; a CPU that goes idle pulls the last
//! queued task of one of two random CPUs, if its cpuset allows. A task runs for its burst or until
//! its time slice ends with others waiting (preemption: back to the tail of the run queue).
//!
//! ## Simplifications (documented, deliberate)
//! - A lock or mutex wait is a busy-wait of the waiting CPU (the kernel's mutex would sleep).
//! - A running task whose affinity changes finishes its burst where it is; queued ones move at once.
//! - Wake-ups do not wait for a spinning CPU's rq lock (walk visits do: that is the stall).

use std::collections::VecDeque;

use mmcid_cid::storage::{CpuSet, WideBitmap};

use crate::cid::Fam;
use crate::config::{Checking, SimConfig};
use crate::metrics::Metrics;
use crate::rng::{Exp, Rng};
use crate::table::Table;
use crate::trace::{Kind, Rec, Ring};
use crate::workload::Workload;

/// No task / no CPU.
pub const NONE: u32 = u32::MAX;

/// A task's scheduler state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TState {
    /// Created, not yet woken.
    New,
    /// Sleeping between bursts (a wake-up is pending), or waiting for a vfork child.
    Sleeping,
    /// On a run queue.
    Runnable,
    /// `curr` of its CPU.
    Running,
    /// Exited.
    Dead,
}

/// A task.
#[derive(Clone, Debug)]
pub struct Task {
    /// Its process (thread group).
    pub proc: u32,
    /// Its mm.
    pub mm: u32,
    /// Its CPU (current or last).
    pub cpu: u32,
    /// Scheduler state.
    pub state: TState,
    /// Remaining ns of the current burst.
    pub burst_left: u64,
    /// Bursts left before it exits (u32::MAX: forever).
    pub bursts_left: u32,
    /// Workload group.
    pub group: u16,
    /// Its cpuset.
    pub cpuset: u32,
    /// Generation of its pending wake-up.
    pub epoch: u32,
    /// A vfork child that will execve at the end of its first burst (Some(success)).
    pub exec_pending: Option<bool>,
    /// A vfork parent waiting for this child.
    pub vfork_parent: u32,
}

impl Task {
    /// A new task (not yet woken) of process `proc` with mm `mm`.
    fn new(proc: u32, mm: u32, group: u16, cpuset: u32, bursts: u32) -> Task {
        Task {
            proc,
            mm,
            cpu: 0,
            state: TState::New,
            burst_left: 0,
            bursts_left: bursts,
            group,
            cpuset,
            epoch: 0,
            exec_pending: None,
            vfork_parent: NONE,
        }
    }
}

/// A process (thread group).
#[derive(Clone, Debug, Default)]
pub struct Proc {
    /// Its mm.
    pub mm: u32,
    /// Live threads, in creation order (the kernel's thread list).
    pub threads: Vec<u32>,
    /// Workload group.
    pub group: u16,
    /// Its base cpuset and the doubled one it may grow to (same when it has none).
    pub cpusets: (u32, u32),
    /// Whether it is on the doubled cpuset now.
    pub grown: bool,
}

/// An mm (address space), with the kernel-side bookkeeping the CID code does not own.
#[derive(Clone, Debug, Default)]
pub struct Mm {
    /// Thread groups using it (the process list entries of `for_each_process_thread`).
    pub procs: Vec<u32>,
    /// Tasks using it (alive).
    pub tasks: u32,
    /// CPU holding `mm.mutex` (NONE: free).
    pub mutex: u32,
    /// A fix-up walk is in progress.
    pub walking: bool,
    /// A per-mm lock of the CID code is free from this time on (6.3's `cid_lock`).
    pub lock_free_at: u64,
    /// 6.18: the next compaction scan is due at.
    pub next_scan: u64,
    /// Operations since the last full check.
    pub ops: u32,
    /// The mm's cpuset union (for the "allowed CPUs" optimum).
    pub allowed: u32,
    /// Sampling scratch: (max CID + 1, running tasks) and the time it first ran a high CID.
    pub sample: (u32, u32),
    /// See `sample`.
    pub high_since: Option<u64>,
}

/// A workload group's parameters, evaluated for the machine (ns, probabilities).
#[derive(Clone, Copy, Debug)]
pub struct GroupRt {
    /// Mean burst.
    pub burst: u64,
    /// Mean sleep (0: CPU bound).
    pub sleep: u64,
    /// Probabilities at a burst end: pthread_create, exit, spawn, setaffinity (cumulative).
    pub p: [f64; 4],
    /// Most threads per process.
    pub max_threads: u64,
    /// Mean bursts of a created or spawned task (×1000, for the exponential).
    pub child_bursts: u64,
    /// Probability that a spawn's execve fails.
    pub exec_fail: f64,
}

/// A cpuset.
#[derive(Clone, Debug)]
pub struct CpuSetDef {
    /// The CPUs.
    pub mask: WideBitmap,
    /// The CPUs as a list.
    pub list: Vec<u32>,
}

/// What a CPU is doing. `Copy`, so that the event loop's many writes of a CPU's work carry no
/// drop glue (a kernel operation's state, which owns heap data, is in [`Machine::ops`]).
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// Nothing.
    Idle,
    /// `curr` runs in user space until `end`.
    User {
        /// End of the burst.
        end: u64,
    },
    /// `curr` is in a kernel operation, kept in [`Machine::ops`].
    Kernel,
    /// The switch to `curr` spins in the CID code with the rq lock held, since `since`.
    SpinSwitch {
        /// Spin start.
        since: u64,
    },
}

/// A CPU.
#[derive(Clone, Debug)]
pub struct Cpu {
    /// `rq->curr` (NONE: idle).
    pub curr: u32,
    /// Run queue.
    pub rq: VecDeque<u32>,
    /// What it does.
    pub work: Work,
    /// Generation of its pending event.
    pub epoch: u32,
    /// When `curr`'s time slice started.
    pub slice_start: u64,
    /// The user-visible CID `curr` runs with, as recorded for I1 (NONE: none recorded).
    pub run_cid: u32,
    /// The mm `run_cid` was recorded for (valid while `run_cid` is not NONE).
    pub run_mm: u32,
}

impl Cpu {
    /// An idle CPU.
    fn idle() -> Cpu {
        Cpu {
            curr: NONE,
            rq: VecDeque::new(),
            work: Work::Idle,
            epoch: 0,
            slice_start: 0,
            run_cid: NONE,
            run_mm: NONE,
        }
    }
}

/// Why a run stopped early.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Violation {
    /// Property id (I1, I2, I4, ..., stall).
    pub property: String,
    /// What went wrong.
    pub message: String,
    /// Simulated time.
    pub time_ns: u64,
    /// The last events in CPU columns.
    pub trace: String,
}

/// The simulated machine.
pub struct Machine {
    /// The configuration.
    pub cfg: SimConfig,
    /// Design family and CID state.
    pub fam: Fam,
    /// Now (ns).
    pub now: u64,
    /// CPUs.
    pub cpus: Table<Cpu>,
    /// Per CPU: the kernel operation under way while its work is [`Work::Kernel`].
    pub ops: Vec<Option<crate::ops::Op>>,
    /// Tasks (dead ones are reused).
    pub tasks: Table<Task>,
    free_tasks: Vec<u32>,
    /// Processes.
    pub procs: Table<Proc>,
    free_procs: Vec<u32>,
    /// mms.
    pub mms: Table<Mm>,
    free_mms: Vec<u32>,
    /// cpusets (0 = all CPUs).
    pub cpusets: Table<CpuSetDef>,
    /// Workload groups, evaluated.
    pub grt: Table<GroupRt>,
    /// Per workload group: the burst and sleep distributions, tabulated.
    dists: Table<(Exp, Exp)>,
    idle: WideBitmap,
    events: crate::queue::Calendar,
    /// Random choices.
    pub rng: Rng,
    /// Metrics.
    pub m: Metrics,
    /// The last events, while [`Machine::recording`].
    pub ring: Ring,
    /// Records events in [`Machine::ring`]. Off in a run: a violation's trace comes from a replay
    /// of the run (see [`Machine::run_until`]), so that the event loop does not write a record
    /// per event that is almost never read.
    pub recording: bool,
    /// Wall-clock seconds spent replaying the run for its violation's trace (not simulation
    /// speed: [`crate::Outcome`]'s switches per second leaves them out).
    pub replay_s: f64,
    /// First violation.
    pub violation: Option<Violation>,
    /// The run was stopped early by [`Machine::run_until`]'s flag (Ctrl-C).
    pub interrupted: bool,
    /// Largest number of tasks alive at once.
    pub peak_tasks: u32,
    alive: u32,
    next_sample: u64,
    last_sweep: u64,
}

const EV_CPU: u64 = 0;
const EV_WAKE: u64 = 1;
const EV_SAMPLE: u64 = 2;

/// Moves a CPU's or task's event generation on (30 bits, as [`ev`] encodes it), so that its
/// pending event, if any, is skipped when popped; returns the new one.
#[inline(always)]
pub(crate) fn next_epoch(epoch: &mut u32) -> u32 {
    *epoch = epoch.wrapping_add(1) & ((1 << 30) - 1);
    *epoch
}

fn ev(kind: u64, id: u32, epoch: u32) -> u64 {
    (kind << 62) | ((id as u64) << 30) | (epoch as u64 & ((1 << 30) - 1))
}

/// The first bit `< np` set in `words` at or after bit `start`, wrapping around (word `start / 64`
/// is looked at twice: from `start` on first, whole last).
#[inline(always)]
fn first_set_from(words: &[u64], start: u32, np: u32) -> Option<u32> {
    let n = words.len();
    let i0 = start as usize / 64;
    let bits = words[i0] & (!0u64 << (start % 64));
    if bits != 0 {
        let c = i0 as u32 * 64 + bits.trailing_zeros();
        if c < np {
            return Some(c);
        }
    }
    let mut i = i0;
    for _ in 0..n {
        i = if i + 1 == n { 0 } else { i + 1 };
        let bits = words[i];
        if bits != 0 {
            let c = i as u32 * 64 + bits.trailing_zeros();
            if c < np {
                return Some(c);
            }
        }
    }
    None
}

/// Can the simulator run `d`? Not the designs with the proposed execve fixes (`docs/findings/`):
/// their extra steps (the schedin that ends `sched_mm_cid_fork` after execve, the walk before a
/// revived mm's first user) exist only in the checker's kernel model so far.
pub fn simulated(d: &mmcid_kmodel::Design) -> Result<(), String> {
    if d.switches.fix_execve_cid || d.switches.fix_execve_revive {
        return Err(format!(
            "design {} is not simulated yet: the execve fixes run in `mmcid check`; \
             7.0+fix-affinity-switchback and 7.1.3 run here",
            d.name
        ));
    }
    Ok(())
}

impl Machine {
    /// Builds the machine and starts the workload (every initial thread asleep for a random part
    /// of its sleep time, so that the start is staggered).
    pub fn new(cfg: SimConfig) -> Result<Machine, String> {
        let d = mmcid_kmodel::config::design(&cfg.design)?;
        simulated(d)?;
        if !(1..=4096).contains(&cfg.cpus) {
            return Err(format!("--cpus must be 1..=4096, got {}", cfg.cpus));
        }
        cfg.workload.validate()?;
        let np = cfg.cpus;
        let mut mm = Machine {
            fam: Fam::new(d, np)?,
            now: 0,
            cpus: Table::from_vec((0..np).map(|_| Cpu::idle()).collect(), Cpu::idle()),
            ops: (0..np).map(|_| None).collect(),
            tasks: Table::new(Task::new(NONE, NONE, 0, 0, 0)),
            free_tasks: Vec::new(),
            procs: Table::new(Proc::default()),
            free_procs: Vec::new(),
            mms: Table::new(Mm::default()),
            free_mms: Vec::new(),
            cpusets: {
                let all = CpuSetDef {
                    mask: WideBitmap::full(np),
                    list: (0..np).collect(),
                };
                Table::from_vec(vec![all.clone()], all)
            },
            grt: Table::new(GroupRt {
                burst: 1,
                sleep: 0,
                p: [0.0; 4],
                max_threads: 1,
                child_bursts: 0,
                exec_fail: 0.0,
            }),
            dists: Table::new((Exp::new(1), Exp::new(1))),
            idle: WideBitmap::full(np),
            events: crate::queue::Calendar::new(),
            rng: Rng::new(cfg.seed),
            m: Metrics::default(),
            ring: Ring::new(48),
            recording: false,
            replay_s: 0.0,
            violation: None,
            interrupted: false,
            peak_tasks: 0,
            alive: 0,
            next_sample: 0,
            last_sweep: 0,
            cfg,
        };
        mm.m.cid_hist = vec![0; np as usize];
        if np <= 64 {
            mm.m.cpu_cid = vec![0; (np * np) as usize];
        }
        mm.start_workload()?;
        mm.push(mm.cfg.costs.sample_ns, ev(EV_SAMPLE, 0, 0));
        Ok(mm)
    }

    fn workload(&self) -> &Workload {
        &self.cfg.workload
    }

    /// The cpuset of `size` CPUs starting at `first` (wrapping), created on first use.
    fn cpuset(&mut self, first: u32, size: u32) -> u32 {
        let np = self.cfg.cpus;
        let size = size.min(np);
        if size == np {
            return 0;
        }
        let list: Vec<u32> = (0..size).map(|i| (first + i) % np).collect();
        if let Some(i) = self.cpusets.iter().position(|c| c.list == list) {
            return i as u32;
        }
        self.cpusets.push(CpuSetDef {
            mask: WideBitmap::from_iter_np(np, list.iter().copied()),
            list,
        }) as u32
    }

    fn start_workload(&mut self) -> Result<(), String> {
        let np = self.cfg.cpus;
        let groups = self.workload().groups.clone();
        for g in &groups {
            self.dists.push((
                Exp::new((g.burst_us * 1000.0) as u64),
                Exp::new((g.sleep_us * 1000.0) as u64),
            ));
            self.grt.push(GroupRt {
                burst: (g.burst_us * 1000.0) as u64,
                sleep: (g.sleep_us * 1000.0) as u64,
                p: [
                    g.pthread_create,
                    g.pthread_create + g.exit,
                    g.pthread_create + g.exit + g.spawn,
                    g.pthread_create + g.exit + g.spawn + g.setaffinity,
                ],
                max_threads: g.max_threads.eval(np)?,
                child_bursts: (g.child_bursts * 1000.0) as u64,
                exec_fail: g.exec_fail,
            });
        }
        let mut next_first = 0u32;
        for (gi, g) in groups.iter().enumerate() {
            let procs = g.processes.eval(np)?;
            let threads = g.threads.eval(np)?.max(1);
            let size = g.cpuset.eval(np)? as u32;
            for _ in 0..procs {
                let (base, grown) = if size == 0 || size >= np {
                    (0, 0)
                } else {
                    let b = self.cpuset(next_first, size);
                    let gr = self.cpuset(next_first, size * 2);
                    next_first = (next_first + size) % np;
                    (b, gr)
                };
                let p = self.new_proc(gi as u16, (base, grown));
                let m = self.new_mm(base);
                self.procs[p as usize].mm = m;
                self.mms[m as usize].procs.push(p);
                let mut first = NONE;
                for i in 0..threads {
                    let t = self.new_task(p, m, gi as u16, base, u32::MAX);
                    let set = &self.cpusets[base as usize].list;
                    let cpu = set[(i as usize + t as usize) % set.len()];
                    self.tasks[t as usize].cpu = cpu;
                    self.procs[p as usize].threads.push(t);
                    let reg_cpu = if first == NONE {
                        cpu
                    } else {
                        self.tasks[first as usize].cpu
                    };
                    self.fam.init_register(m, t, first, reg_cpu)?;
                    if first == NONE {
                        first = t;
                    }
                    let sleep = (g.sleep_us * 1000.0) as u64;
                    let delay = self.rng.below(sleep.clamp(1, u32::MAX as u64) as u32) as u64;
                    self.sleep_until(t, delay);
                }
                let t0 = self.procs[p as usize].threads[0];
                let cpu0 = self.tasks[t0 as usize].cpu;
                self.fam.init_done(m, t0, cpu0);
            }
        }
        Ok(())
    }

    pub(crate) fn new_proc(&mut self, group: u16, cpusets: (u32, u32)) -> u32 {
        let p = Proc {
            mm: NONE,
            threads: Vec::new(),
            group,
            cpusets,
            grown: false,
        };
        match self.free_procs.pop() {
            Some(i) => {
                self.procs[i as usize] = p;
                i
            }
            None => self.procs.push(p) as u32,
        }
    }

    /// A new mm whose first user will have cpuset `cs`.
    pub(crate) fn new_mm(&mut self, cs: u32) -> u32 {
        let mask = self.cpusets[cs as usize].mask.clone();
        let mm = Mm {
            procs: Vec::new(),
            tasks: 0,
            mutex: NONE,
            walking: false,
            lock_free_at: 0,
            next_scan: self.now + self.cfg.costs.scan_period_ns,
            ops: 0,
            allowed: self.cpusets[cs as usize].list.len() as u32,
            sample: (0, 0),
            high_since: None,
        };
        let i = match self.free_mms.pop() {
            Some(i) => {
                self.mms[i as usize] = mm;
                i
            }
            None => self.mms.push(mm) as u32,
        };
        self.fam.new_mm(i, self.cfg.cpus, mask);
        i
    }

    pub(crate) fn new_task(&mut self, proc: u32, mm: u32, group: u16, cpuset: u32, bursts: u32) -> u32 {
        let t = Task::new(proc, mm, group, cpuset, bursts);
        let i = match self.free_tasks.pop() {
            Some(i) => {
                let epoch = next_epoch(&mut self.tasks[i as usize].epoch);
                self.tasks[i as usize] = Task { epoch, ..t };
                i
            }
            None => self.tasks.push(t) as u32,
        };
        self.fam.new_task(i);
        self.mms[mm as usize].tasks += 1;
        self.alive += 1;
        self.peak_tasks = self.peak_tasks.max(self.alive);
        i
    }

    /// Frees a dead task's id (and its process and mm when they are gone).
    pub(crate) fn reap(&mut self, t: u32) {
        let tk = &self.tasks[t as usize];
        let (p, m) = (tk.proc, tk.mm);
        self.alive -= 1;
        let pr = &mut self.procs[p as usize];
        pr.threads.retain(|&x| x != t);
        if pr.threads.is_empty() {
            let mmr = &mut self.mms[pr.mm as usize];
            mmr.procs.retain(|&x| x != p);
            self.free_procs.push(p);
        }
        let mmr = &mut self.mms[m as usize];
        mmr.tasks -= 1;
        if mmr.tasks == 0 && mmr.procs.is_empty() && self.fam.mm_free(m) {
            self.free_mms.push(m);
        }
        self.free_tasks.push(t);
    }

    #[inline]
    fn push(&mut self, t: u64, payload: u64) {
        self.events.push(t, payload);
    }

    /// Schedules the CPU's next event at `t` (replacing any pending one).
    #[inline(always)]
    pub(crate) fn cpu_at(&mut self, cpu: u32, t: u64) {
        let g = next_epoch(&mut self.cpus[cpu as usize].epoch);
        self.push(t, ev(EV_CPU, cpu, g));
    }

    #[inline(always)]
    pub(crate) fn sleep_until(&mut self, t: u32, delay: u64) {
        let tk = &mut self.tasks[t as usize];
        tk.state = TState::Sleeping;
        let g = next_epoch(&mut tk.epoch);
        self.push(self.now + delay, ev(EV_WAKE, t, g));
    }

    /// Records an event in the ring, if [`Machine::recording`].
    #[inline(always)]
    pub(crate) fn rec(&mut self, cpu: u32, kind: Kind, task: u32, arg: u64) {
        if self.recording {
            self.rec_now(cpu, kind, task, arg);
        }
    }

    #[cold]
    #[inline(never)]
    fn rec_now(&mut self, cpu: u32, kind: Kind, task: u32, arg: u64) {
        let (mm, cid) = if task == NONE {
            (NONE, -1)
        } else {
            let m = self.tasks[task as usize].mm;
            (m, self.fam.user_cid(task).map_or(-1, |c| c as i64))
        };
        self.ring.push(Rec {
            t: self.now,
            cpu,
            kind,
            task,
            mm,
            arg,
            cid,
        });
    }

    /// Stops the run with a violation of `property`.
    pub(crate) fn violate(&mut self, property: &str, message: String) {
        if self.violation.is_some() {
            return;
        }
        let trace = if self.recording {
            crate::trace::render(&self.ring.records(), 24)
        } else {
            String::new() // filled in by the replay
        };
        self.violation = Some(Violation {
            property: property.to_string(),
            message,
            time_ns: self.now,
            trace,
        });
    }

    /// Runs until the configured number of switches, a violation, or no events are left.
    /// `progress` is called every 2^16 switches with the switch count.
    pub fn run(&mut self, progress: impl FnMut(u64)) {
        self.run_until(progress, &|| false);
    }

    /// [`Machine::run`] that also stops, at its next progress point (every 2^16 switches), once
    /// `stop()` says so (Ctrl-C); [`Machine::interrupted`] then says so.
    ///
    /// A violation's trace of the last events comes from a replay: a run is a pure function of
    /// its configuration, so a second machine built from the same one, recording, stops at the
    /// same violation with the events that led to it (a run with a violation takes up to twice
    /// as long; a run without pays nothing for its trace).
    pub fn run_until(&mut self, mut progress: impl FnMut(u64), stop: &dyn Fn() -> bool) {
        let target = self.cfg.switches;
        let end = (self.cfg.max_sim_ms * 1e6) as u64;
        'run: while self.m.switches < target && self.violation.is_none() && self.now < end {
            // up to the next progress point (a multiple of 2^16 switches), without looking at it
            // after every event
            let mark = ((self.m.switches | 0xffff) + 1).min(target);
            while self.m.switches < mark && self.violation.is_none() && self.now < end {
                let Some((t, p)) = self.events.pop() else {
                    break 'run;
                };
                self.event(t, p);
            }
            if self.m.switches & 0xffff == 0 && self.m.switches != 0 {
                progress(self.m.switches);
                if stop() {
                    self.interrupted = true;
                    break;
                }
            }
        }
        if self.violation.is_none() {
            self.full_check_all();
        }
        // (also after a violation the final full checks found)
        if self.violation.is_some() && !self.recording {
            self.replay_for_trace();
        }
    }

    /// Fills in the violation's trace by a recording replay of the run up to it.
    #[cold]
    fn replay_for_trace(&mut self) {
        let t0 = std::time::Instant::now();
        let twin = Machine::new(self.cfg.clone()).map(|mut twin| {
            twin.recording = true;
            twin.run(|_| {});
            twin.violation
        });
        let Some(v) = self.violation.as_mut() else { return };
        match twin {
            Ok(Some(w)) if (&w.property, &w.message, w.time_ns) == (&v.property, &v.message, v.time_ns) => {
                v.trace = w.trace;
            }
            other => {
                debug_assert!(false, "the replay of a run diverged: {other:?}");
                v.trace = "(no trace: the recording replay of this run did not reach the same violation, \
                           which is a bug of the simulator's determinism)"
                    .to_string();
            }
        }
        self.replay_s = t0.elapsed().as_secs_f64();
    }

    /// Handles the event `p` popped at time `t`.
    #[inline(always)]
    fn event(&mut self, t: u64, p: u64) {
        self.now = t;
        let kind = p >> 62;
        let id = ((p >> 30) & 0xffff_ffff) as u32;
        let epoch = (p & ((1 << 30) - 1)) as u32;
        match kind {
            EV_CPU => {
                if self.cpus[id as usize].epoch == epoch {
                    self.cpu_step(id);
                }
            }
            EV_WAKE => {
                let tk = &self.tasks[id as usize];
                if tk.epoch == epoch && tk.state == TState::Sleeping {
                    self.wake(id);
                }
            }
            _ => {
                self.sample();
                let next = self.now + self.cfg.costs.sample_ns;
                self.push(next, ev(EV_SAMPLE, 0, 0));
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Scheduling.

    fn load(&self, cpu: u32) -> usize {
        let c = &self.cpus[cpu as usize];
        c.rq.len() + (c.curr != NONE) as usize
    }

    /// Nothing runs or waits on the CPU and it does no kernel work: its bit in the idle bitmap,
    /// which the switch and the enqueue keep (debug builds check it against the CPU's state).
    fn is_idle(&self, cpu: u32) -> bool {
        let c = &self.cpus[cpu as usize];
        debug_assert_eq!(
            self.idle.has(cpu),
            c.curr == NONE && c.rq.is_empty() && matches!(c.work, Work::Idle),
            "CPU{cpu}: the idle bitmap says what the CPU does"
        );
        self.idle.has(cpu)
    }

    /// The wake-up balancer.
    fn place(&mut self, t: u32) -> u32 {
        let tk = &self.tasks[t as usize];
        let (prev, cs) = (tk.cpu, tk.cpuset);
        let set = &self.cpusets[cs as usize];
        // (cpuset 0 is every CPU: no look at its mask)
        let prev_allowed = cs == 0 || set.mask.has(prev);
        if prev_allowed && self.is_idle(prev) {
            return prev;
        }
        if cs == 0 {
            // the first idle CPU at or after a random one, wrapping around
            let start = self.rng.below(self.cfg.cpus);
            if let Some(c) = first_set_from(self.idle.words(), start, self.cfg.cpus) {
                return c;
            }
        } else if set.list.len() <= 16
            && let Some(&c) = set.list.iter().find(|&&c| self.is_idle(c))
        {
            return c;
        }
        let set = &self.cpusets[cs as usize];
        let n = set.list.len() as u32;
        let (a, b) = self.rng.below2(n);
        let (a, b) = (set.list[a as usize], set.list[b as usize]);
        let mut best = if prev_allowed { prev } else { a };
        let mut least = self.load(best);
        for c in [a, b] {
            let l = self.load(c);
            if l < least {
                (best, least) = (c, l);
            }
        }
        best
    }

    #[inline(always)]
    fn set_idle(&mut self, cpu: u32, idle: bool) {
        if idle {
            self.idle.insert(cpu);
        } else {
            self.idle.remove(cpu);
        }
    }

    /// A sleeping (or new) task wakes: placed, maybe migrated, queued; an idle CPU switches to it.
    pub(crate) fn wake(&mut self, t: u32) {
        let cpu = self.place(t);
        self.enqueue(t, cpu);
    }

    fn enqueue(&mut self, t: u32, cpu: u32) {
        let from = self.tasks[t as usize].cpu;
        if from != cpu {
            self.m.migrations += 1;
            self.cid_migrate(t, from, cpu);
            self.tasks[t as usize].cpu = cpu;
        }
        let tk = &mut self.tasks[t as usize];
        tk.state = TState::Runnable;
        if tk.burst_left == 0 {
            tk.burst_left = self.rng.exp_of(&self.dists[tk.group as usize].0);
        }
        if self.is_idle(cpu) {
            self.set_idle(cpu, false);
            return self.switch_or_run(cpu, t);
        }
        self.cpus[cpu as usize].rq.push_back(t);
        self.set_idle(cpu, false);
        let c = &self.cpus[cpu as usize];
        match c.work {
            Work::Idle if c.curr == NONE => {
                self.switch(cpu);
            }
            Work::User { end } => {
                // a waiter: the running task's slice may now end before its burst
                let slice_end = c.slice_start + self.cfg.costs.slice_ns;
                if slice_end < end && c.rq.len() == 1 {
                    self.cpu_at(cpu, slice_end.max(self.now));
                }
            }
            _ => {}
        }
    }

    /// A CPU with nothing queued looks at two random CPUs and pulls a waiting task it may run.
    fn pull(&mut self, cpu: u32) {
        let (a, b) = self.rng.below2(self.cfg.cpus);
        for src in [a, b] {
            if src == cpu || matches!(self.cpus[src as usize].work, Work::SpinSwitch { .. }) {
                continue;
            }
            let Some(&t) = self.cpus[src as usize].rq.back() else {
                continue;
            };
            let cs = self.tasks[t as usize].cpuset;
            if cs == 0 || self.cpusets[cs as usize].mask.has(cpu) {
                self.cpus[src as usize].rq.pop_back();
                self.enqueue_pulled(t, cpu);
                return;
            }
        }
    }

    fn enqueue_pulled(&mut self, t: u32, cpu: u32) {
        let from = self.tasks[t as usize].cpu;
        self.m.migrations += 1;
        self.cid_migrate(t, from, cpu);
        self.tasks[t as usize].cpu = cpu;
        self.rec(cpu, Kind::Migrate, t, from as u64);
        self.cpus[cpu as usize].rq.push_back(t);
    }

    /// `schedule()` on `cpu`: `curr` (already taken off the CPU by the caller if it sleeps, exits
    /// or is preempted) is replaced by the head of the run queue, or the CPU goes idle.
    #[inline(always)]
    pub(crate) fn switch(&mut self, cpu: u32) {
        self.switch_or_run(cpu, NONE);
    }

    /// [`Machine::switch`], or with `direct` a task that the idle `cpu` (empty run queue) runs
    /// at once: the same as queueing it and switching, without the run queue's push and pop.
    fn switch_or_run(&mut self, cpu: u32, direct: u32) {
        let (prev, next) = if direct != NONE {
            (NONE, direct)
        } else {
            if self.cpus[cpu as usize].rq.is_empty() {
                self.pull(cpu);
            }
            let prev = self.cpus[cpu as usize].curr;
            (prev, self.cpus[cpu as usize].rq.pop_front().unwrap_or(NONE))
        };
        if prev == NONE && next == NONE {
            self.cpus[cpu as usize].work = Work::Idle;
            self.set_idle(cpu, true);
            return;
        }
        self.m.switches += 1;
        // I1 bookkeeping: prev leaves the CPU.
        self.clear_run_cid(cpu);
        let c = &mut self.cpus[cpu as usize];
        c.curr = next;
        c.slice_start = self.now;
        if next != NONE {
            self.tasks[next as usize].state = TState::Running;
        }
        let pm = (prev != NONE).then(|| self.tasks[prev as usize].mm);
        let nm = (next != NONE).then(|| self.tasks[next as usize].mm);
        if pm.is_some() && pm == nm {
            self.m.same_mm_switches += 1;
        }
        let (done, d) = self.cid_switch(cpu, prev, pm, next, nm);
        self.m.switch_bit_ops += d.bit_ops;
        self.m.switch_slot_writes += d.slot_writes;
        self.m.switch_locks += d.locks;
        let mut cost = self.cfg.costs.switch_ns;
        if d.bit_ops | d.slot_writes != 0 {
            // most 7.0 switches touch no shared CID state: no products (which LLVM vectorises
            // into a dozen SSE2 instructions) on them
            cost += d.bit_ops * self.cfg.costs.bit_op_ns + d.slot_writes * self.cfg.costs.slot_write_ns;
        }
        if d.locks > 0 {
            cost += self.lock_waits(pm.or(nm).unwrap_or(0), d.locks as u32, cost);
        }
        if self.cfg.checking == Checking::Every {
            if let Some(m) = pm {
                self.full_check(m);
            }
            if let Some(m) = nm {
                self.full_check(m);
            }
        }
        if next == NONE {
            self.cpus[cpu as usize].work = Work::Idle;
            self.set_idle(cpu, true);
            self.rec(cpu, Kind::Switch, NONE, 0);
            return;
        }
        if done {
            self.rec(cpu, Kind::Switch, next, 0);
            self.start_user(cpu, cost);
        } else {
            self.rec(cpu, Kind::Spin, next, 0);
            self.cpus[cpu as usize].work = Work::SpinSwitch { since: self.now };
            self.m.spin_laps += 1;
            let lap = self.cfg.costs.lap_ns;
            self.cpu_at(cpu, self.now + lap);
        }
    }

    /// `n` acquisitions of a CID lock of mm `m` starting `offset` ns from now: the waits they incur
    /// (6.3's per-mm `cid_lock`; 6.18's global one is rare and counted the same way on its mm).
    fn lock_waits(&mut self, m: u32, n: u32, offset: u64) -> u64 {
        let hold = self.cfg.costs.lock_hold_ns;
        let mut t = self.now + offset;
        let mut waited = 0;
        for _ in 0..n {
            let free = self.mms[m as usize].lock_free_at;
            let w = free.saturating_sub(t);
            self.m.lock_wait.add(w);
            waited += w + hold;
            t += w + hold;
            self.mms[m as usize].lock_free_at = t;
        }
        waited
    }

    #[inline(always)]
    fn clear_run_cid(&mut self, cpu: u32) {
        let cp = &mut self.cpus[cpu as usize];
        let (c, m) = (cp.run_cid, cp.run_mm);
        if c == NONE {
            return;
        }
        cp.run_cid = NONE;
        self.fam.running_clear(m, c);
    }

    /// `curr` returns to user space on `cpu` after `delay` ns: checks I1 and I2, then runs its
    /// burst (or until its slice ends with others waiting).
    pub(crate) fn start_user(&mut self, cpu: u32, delay: u64) {
        let t = self.cpus[cpu as usize].curr;
        let m = self.tasks[t as usize].mm;
        self.return_to_user(cpu, t, m);
        if self.violation.is_some() {
            return;
        }
        let start = self.now + delay;
        let extra = self.cid_tick(cpu, m);
        let start = start + extra;
        let tk = &self.tasks[t as usize];
        let end = start + tk.burst_left.max(1);
        let slice_ns = self.cfg.costs.slice_ns;
        let c = &mut self.cpus[cpu as usize];
        c.work = Work::User { end };
        let slice_end = c.slice_start + slice_ns;
        let at = if !c.rq.is_empty() && slice_end < end {
            slice_end.max(start)
        } else {
            end
        };
        // `cpu_at` without looking the CPU up again
        let g = next_epoch(&mut c.epoch);
        self.push(at, ev(EV_CPU, cpu, g));
    }

    /// The cheap checks at a return to user space: I1 (no other running task of the mm holds the
    /// same CID) and I2 (the CID is within bounds).
    pub(crate) fn return_to_user(&mut self, cpu: u32, t: u32, m: u32) {
        self.m.checks_cheap += 1;
        let cid = match self.fam.checked_user_cid(m, t) {
            Ok(c) => c,
            Err(e) => {
                return self.violate("I2", format!("T{t} returns to user space on CPU{cpu} with {e}"));
            }
        };
        self.clear_run_cid(cpu);
        if let Some(c) = cid {
            if self
                .cfg
                .hist_group
                .is_none_or(|g| g == self.tasks[t as usize].group)
            {
                if let Some(h) = self.m.cid_hist.get_mut(c as usize) {
                    *h += 1;
                }
                if let Some(h) = self.m.cpu_cid.get_mut((cpu * self.cfg.cpus + c) as usize) {
                    *h += 1;
                }
            }
            if !self.fam.running_set(m, c) {
                let other = (0..self.cfg.cpus)
                    .find(|&o| {
                        o != cpu && self.cpus[o as usize].run_cid == c && {
                            let x = self.cpus[o as usize].curr;
                            x != NONE && self.tasks[x as usize].mm == m
                        }
                    })
                    .map_or("another CPU".to_string(), |o| {
                        format!("CPU{o} (T{})", self.cpus[o as usize].curr)
                    });
                return self.violate(
                    "I1",
                    format!("T{t} runs on CPU{cpu} with CID {c}, which {other} of the same mm{m} runs with"),
                );
            }
            let cp = &mut self.cpus[cpu as usize];
            (cp.run_cid, cp.run_mm) = (c, m);
        }
    }

    /// The CPU's pending event fired.
    fn cpu_step(&mut self, cpu: u32) {
        let work = std::mem::replace(&mut self.cpus[cpu as usize].work, Work::Idle);
        match work {
            Work::Idle => {}
            Work::User { end } => {
                let t = self.cpus[cpu as usize].curr;
                if self.now >= end {
                    self.tasks[t as usize].burst_left = 0;
                    self.burst_end(cpu, t);
                } else {
                    // slice end with waiters: preempt
                    let left = end - self.now;
                    let tk = &mut self.tasks[t as usize];
                    tk.burst_left = left;
                    tk.state = TState::Runnable;
                    self.cpus[cpu as usize].rq.push_back(t);
                    self.switch(cpu);
                }
            }
            Work::SpinSwitch { since } => {
                let t = self.cpus[cpu as usize].curr;
                if self.cid_switch_retry(cpu, t) {
                    let spun = self.now - since;
                    self.m.spin_time.add(spun);
                    self.rec(cpu, Kind::Switch, t, 0);
                    self.start_user(cpu, self.cfg.costs.switch_ns);
                } else {
                    self.m.spin_laps += 1;
                    self.cpus[cpu as usize].work = Work::SpinSwitch { since };
                    if self.now - since > self.cfg.costs.stall_ns {
                        let msg = format!(
                            "CPU{cpu} has spun in get_cid for T{t} with its rq lock held for {} ms: {}",
                            (self.now - since) / 1_000_000,
                            self.fam.describe(self.tasks[t as usize].mm)
                        );
                        return self.violate("stall", msg);
                    }
                    let lap = self.cfg.costs.lap_ns;
                    self.cpu_at(cpu, self.now + lap);
                }
            }
            Work::Kernel => {
                let op = self.ops[cpu as usize]
                    .take()
                    .expect("a CPU in the kernel has its operation");
                crate::ops::step(self, cpu, op)
            }
        }
    }

    /// `curr` finished its burst: it exits, starts an operation, or sleeps.
    fn burst_end(&mut self, cpu: u32, t: u32) {
        let tk = &mut self.tasks[t as usize];
        if let Some(ok) = tk.exec_pending.take() {
            return crate::ops::begin(self, cpu, crate::ops::Op::exec(t, ok));
        }
        if tk.bursts_left != u32::MAX {
            tk.bursts_left -= 1;
            if tk.bursts_left == 0 {
                return crate::ops::begin(self, cpu, crate::ops::Op::exit(t));
            }
        }
        let group = tk.group as usize;
        let g = &self.grt[group];
        let p = tk.proc;
        // a group without kernel operations (the thread pool) draws nothing here
        let r = if g.p[3] > 0.0 {
            (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
        } else {
            1.0
        };
        if r < g.p[3] {
            let nthreads = self.procs[p as usize].threads.len() as u64;
            if r < g.p[0] {
                if nthreads < g.max_threads {
                    return crate::ops::begin(self, cpu, crate::ops::Op::fork(t));
                }
            } else if r < g.p[1] {
                if nthreads > 1 {
                    return crate::ops::begin(self, cpu, crate::ops::Op::exit(t));
                }
            } else if r < g.p[2] {
                return crate::ops::begin(self, cpu, crate::ops::Op::spawn(t));
            } else {
                return crate::ops::begin(self, cpu, crate::ops::Op::affinity(t));
            }
        }
        let sleep_mean = g.sleep;
        if sleep_mean == 0 {
            // CPU bound: another burst right away
            self.tasks[t as usize].burst_left = self.rng.exp_of(&self.dists[group].0);
            return self.start_user(cpu, 0);
        }
        let d = self.rng.exp_of(&self.dists[group].1);
        self.sleep_until(t, d);
        self.switch(cpu);
    }

    // ------------------------------------------------------------------------------------------
    // Metrics and checks.

    /// The ID range in use per mm, sampled.
    fn sample(&mut self) {
        let mut touched: Vec<u32> = Vec::new();
        for c in 0..self.cfg.cpus as usize {
            let t = self.cpus[c].curr;
            if t == NONE || !matches!(self.cpus[c].work, Work::User { .. }) {
                continue;
            }
            let Some(cid) = self.fam.user_cid(t) else { continue };
            let m = self.tasks[t as usize].mm as usize;
            let s = &mut self.mms[m].sample;
            if s.1 == 0 {
                touched.push(m as u32);
            }
            s.0 = s.0.max(cid + 1);
            s.1 += 1;
        }
        let (mut sum_range, mut sum_run) = (0u32, 0u32);
        for &m in &touched {
            let (range, run) = self.mms[m as usize].sample;
            self.mms[m as usize].sample = (0, 0);
            self.m.range.add(range as u64);
            self.m.excess.add((range - run.min(range)) as u64);
            sum_range += range;
            sum_run += run;
            let opt = self.mms[m as usize].allowed.min(self.mms[m as usize].tasks);
            let high = range > opt + opt / 4 && range > 1;
            let mm = &mut self.mms[m as usize];
            match (high, mm.high_since) {
                (true, None) => mm.high_since = Some(self.now),
                (false, Some(s)) => {
                    self.m.high_lag.add(self.now - s);
                    mm.high_since = None;
                }
                _ => {}
            }
        }
        if self.cfg.series {
            self.m.series.push((self.now, sum_range, sum_run));
        }
        if self.m.switches - self.last_sweep >= 1 << 20 {
            self.last_sweep = self.m.switches;
            self.full_check_all();
        }
        self.next_sample = self.now + self.cfg.costs.sample_ns;
    }

    /// The full invariant checks of mm `m` (I4 bit ownership, I5–I8, D1, W).
    pub(crate) fn full_check(&mut self, m: u32) {
        self.m.checks_full += 1;
        if let Err((p, e)) = self.cid_check_mm(m) {
            self.violate(p, format!("mm{m}: {e}"));
        }
    }

    /// After a CID operation on `m`: D1/W at once, the full checks as [`Checking`] says.
    pub(crate) fn after_op(&mut self, m: u32) {
        self.m.checks_cheap += 1;
        if let Err((p, e)) = self.fam.check_faults(m) {
            return self.violate(p, format!("mm{m}: {e}"));
        }
        let mm = &mut self.mms[m as usize];
        mm.ops += 1;
        let size = self.cfg.cpus + mm.tasks;
        if self.cfg.checking == Checking::Every || mm.ops >= size / 64 {
            mm.ops = 0;
            self.full_check(m);
        }
    }

    fn full_check_all(&mut self) {
        for m in 0..self.mms.len() as u32 {
            if self.violation.is_some() {
                return;
            }
            if self.mms[m as usize].tasks > 0 {
                self.full_check(m);
            }
        }
    }

    /// Closes open high-ID episodes at the end of a run.
    pub fn finish(&mut self) {
        for m in 0..self.mms.len() {
            if let Some(s) = self.mms[m].high_since.take() {
                self.m.high_lag.add(self.now - s);
            }
        }
    }

    /// Bytes of simulator state per task slot and per mm (measured from the containers' sizes).
    pub fn footprint(&self) -> (usize, usize) {
        let per_task = std::mem::size_of::<Task>() + self.fam.task_bytes();
        let per_mm = std::mem::size_of::<Mm>() + self.fam.mm_bytes(self.cfg.cpus);
        (per_task, per_mm)
    }

    /// Tasks alive now.
    pub fn alive(&self) -> u32 {
        self.alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::K;

    /// Two CPU-bound threads of one process on two CPUs, run until both are in user space.
    fn both_running() -> Machine {
        let w =
            Workload::from_toml("name='two'\n[[group]]\nprocesses=1\nthreads=2\nburst_us=1000\nsleep_us=0\n")
                .unwrap();
        let mut mc = Machine::new(SimConfig::new("7.0", 2, w, 1, 1000)).unwrap();
        while !(0..2).all(|c| mc.cpus[c].run_cid != NONE) {
            let (t, p) = mc.events.pop().expect("the threads start");
            mc.event(t, p);
        }
        mc
    }

    /// I1 is checked at the return to user space: the bug put back (a task given the CID another
    /// running task of its mm holds) stops the run; the same return without it does not.
    #[test]
    fn i1_fires_when_two_running_tasks_share_a_cid() {
        let mut mc = both_running();
        let (a, b) = (mc.cpus[0].curr, mc.cpus[1].curr);
        let m = mc.tasks[a as usize].mm;
        mc.return_to_user(0, a, m);
        assert!(mc.violation.is_none(), "{:?}", mc.violation);

        let K::Rw(r) = &mut mc.fam.k else { unreachable!() };
        r.t[a as usize].cid = r.t[b as usize].cid;
        mc.return_to_user(0, a, m);
        let v = mc.violation.expect("I1 is violated");
        assert_eq!(v.property, "I1", "{v:?}");
        assert!(v.message.contains("CPU1"), "names the other CPU: {}", v.message);
    }
}
