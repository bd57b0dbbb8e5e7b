//! The CID code of each design family, driven through `mmcid-cid` with its [`Wide`] storage: the
//! same functions the model checker runs with the compact one. This module only decides *which*
//! function runs at each kernel event, as `crates/kmodel` does; fix-up walks and the multi-step
//! parts of fork, exit and execve are driven by [`crate::ops`].

use mmcid_cid::legacy::v6_3::{self, Mm63Of, SwitchMmsOf, Task63};
use mmcid_cid::legacy::v6_18::{self, GetContOf, LegacyAllocOf, MigrateOf, Mm618Of, RemoteClear, Task618Of};
use mmcid_cid::legacy::{LegacyCid, OwnershipError};
use mmcid_cid::storage::{Bitmap, Stats, Traffic, Users, WideBitmap};
use mmcid_cid::{MmCidOf, Mode, Schedin, SchedinSpin, Switches, TaskCid, Wide};
use mmcid_kmodel::Design;

use crate::machine::{Machine, NONE, TState, Work};
use crate::table::Table;

/// A user-visible CID.
pub type Cid = u32;

/// The 7.0 code with a design's switches.
pub struct Rw {
    /// The switches.
    pub sw: Switches,
    /// Per mm.
    pub mms: Table<MmCidOf<Wide>>,
    /// Per task.
    pub t: Table<TaskCid>,
    /// Per CPU: a schedin spinning in `get_cid`.
    pub spin: Vec<Option<SchedinSpin>>,
}

/// 6.14–6.18.
pub struct Lz {
    /// Per mm.
    pub mms: Table<Mm618Of<Wide>>,
    /// Per task.
    pub t: Table<Task618Of<Wide>>,
    /// Per CPU: an allocation in progress.
    pub spin: Vec<Option<GetContOf<Wide>>>,
}

/// 6.3.
pub struct Ps {
    /// Per mm.
    pub mms: Table<Mm63Of<Wide>>,
    /// Per task.
    pub t: Table<Task63>,
}

/// The design family's CID state.
pub enum K {
    /// The 7.0 family.
    Rw(Rw),
    /// 6.18.
    Lz(Lz),
    /// 6.3.
    Ps(Ps),
}

/// The CID state of every mm and task, plus the running-CID sets the I1 check keeps.
pub struct Fam {
    /// Per family.
    pub k: K,
    /// Per mm: CIDs of its tasks in user space now (I1), a bitmap of `stride` words per mm, all
    /// in one vector (one load less per look than a bitmap per mm).
    running: Vec<u64>,
    stride: usize,
    np: u32,
}

fn set<T: Clone>(v: &mut Table<T>, i: u32, x: T) {
    v.set(i as usize, x);
}

/// Two distinct elements of a slice, mutably.
pub(crate) fn two<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}

/// The traffic of mm `a` plus that of mm `b` if it is another one.
#[inline(always)]
fn sum_of(a: Option<u32>, b: Option<u32>, one: impl Fn(usize) -> Traffic) -> Traffic {
    match (a, b) {
        (Some(a), Some(b)) if a != b => {
            let mut t = one(a as usize);
            t += one(b as usize);
            t
        }
        (Some(m), _) | (None, Some(m)) => one(m as usize),
        (None, None) => Traffic::default(),
    }
}

fn own_err(e: OwnershipError) -> (&'static str, String) {
    let p = match e {
        OwnershipError::Duplicate(_) | OwnershipError::Leaked(_) | OwnershipError::Unbacked(_) => "I4",
        OwnershipError::OutOfBound(_) | OwnershipError::Negative => "I2",
    };
    (p, e.to_string())
}

impl Fam {
    /// The state for a design on `np` CPUs.
    ///
    /// The family is read from the design table by its tag's variant name (`Rewrite`, `Lazy618`,
    /// `PerSwitch63`), so that this crate does not depend on what the kernel model calls the tag's
    /// type; an unknown family is an error.
    pub fn new(d: &Design, np: u32) -> Result<Fam, String> {
        let k = match format!("{:?}", d.family).as_str() {
            "Rewrite" => K::Rw(Rw {
                sw: d.switches,
                mms: Table::new(MmCidOf::<Wide>::new(
                    np,
                    <WideBitmap as mmcid_cid::storage::CpuSet>::full(np),
                )),
                t: Table::new(TaskCid::default()),
                spin: vec![None; np as usize],
            }),
            "Lazy618" => K::Lz(Lz {
                mms: Table::new(Mm618Of::<Wide>::new(
                    np,
                    <WideBitmap as mmcid_cid::storage::CpuSet>::full(np),
                )),
                t: Table::new(Task618Of::<Wide>::default()),
                spin: vec![None; np as usize],
            }),
            "PerSwitch63" => K::Ps(Ps {
                mms: Table::new(Mm63Of::<Wide>::new(np)),
                t: Table::new(Task63::default()),
            }),
            other => {
                return Err(format!(
                    "design {}: the simulator does not know family {other}",
                    d.name
                ));
            }
        };
        Ok(Fam {
            k,
            running: Vec::new(),
            stride: np.div_ceil(64) as usize,
            np,
        })
    }

    /// `mm_init_cid` for mm slot `i`.
    pub fn new_mm(&mut self, i: u32, np: u32, mask: WideBitmap) {
        match &mut self.k {
            K::Rw(r) => set(&mut r.mms, i, MmCidOf::<Wide>::new(np, mask)),
            K::Lz(l) => set(&mut l.mms, i, Mm618Of::<Wide>::new(np, mask)),
            K::Ps(p) => set(&mut p.mms, i, Mm63Of::<Wide>::new(np)),
        }
        let (a, b) = (i as usize * self.stride, (i as usize + 1) * self.stride);
        if self.running.len() < b {
            self.running.resize(b, 0);
        }
        self.running[a..b].fill(0);
    }

    /// `dup_task_struct` for task slot `i`.
    pub fn new_task(&mut self, i: u32) {
        match &mut self.k {
            K::Rw(r) => set(&mut r.t, i, TaskCid::default()),
            K::Lz(l) => set(&mut l.t, i, Task618Of::<Wide>::default()),
            K::Ps(p) => set(&mut p.t, i, Task63::default()),
        }
    }

    /// May mm slot `m` be reused (no users, nothing left in its bitmap)? A dead mm with a leaked
    /// bit is kept as it is.
    pub fn mm_free(&self, m: u32) -> bool {
        let m = m as usize;
        match &self.k {
            K::Rw(r) => r.mms[m].users == 0 && r.mms[m].bitmap.weight() == 0,
            K::Lz(_) => true, // the lazy design leaves CIDs in slots of a dead mm; they die with it
            K::Ps(p) => p.mms[m].cidmask.weight() == 0,
        }
    }

    /// Registers an initial thread (the workload's start, not measured): the first becomes the
    /// mm's first user, the others as if the first had created them, with any walk run at once.
    pub fn init_register(&mut self, m: u32, t: u32, first: u32, cpu: u32) -> Result<(), String> {
        let (mi, ti) = (m as usize, t as usize);
        match &mut self.k {
            K::Rw(r) => {
                let sw = r.sw;
                let mm = &mut r.mms[mi];
                let res = if first == NONE {
                    mmcid_cid::fork_cid_locked(mm, &mut r.t[ti], t, None, cpu, &sw)
                } else {
                    let (c, cur) = two(r.t.as_mut_slice(), ti, first as usize);
                    mmcid_cid::fork_cid_locked(mm, c, t, Some(cur), cpu, &sw)
                };
                match res {
                    mmcid_cid::ForkCid::Done => {}
                    mmcid_cid::ForkCid::FixupTasksToCpus => {
                        let users: Vec<u32> = mm.user_list.each().collect();
                        for u in users {
                            if u != first {
                                mmcid_cid::fixup_tasks_to_cpus_visit(mm, &mut r.t[u as usize], None, &sw);
                            }
                        }
                        mmcid_cid::complete_transit(mm, Mode::PER_CPU, &sw);
                    }
                    other => return Err(format!("unexpected {other:?} while starting the workload")),
                }
            }
            K::Lz(l) => {
                v6_18::fork(&mut l.t[ti]);
                if first != NONE {
                    l.mms[mi].mm_users += 1;
                }
            }
            K::Ps(p) => v6_3::fork(&mut p.t[ti]),
        }
        Ok(())
    }

    /// After the initial threads of mm `m` are registered by `first` (which, in the kernel, was
    /// running the forks): `first`'s switch-out on `cpu`, so that a CID handed over in transit
    /// during a mode switch settles with its final owner as it would when `first` next leaves
    /// its CPU.
    pub fn init_done(&mut self, m: u32, first: u32, cpu: u32) {
        if let K::Rw(r) = &mut self.k {
            let sw = r.sw;
            mmcid_cid::schedout(&mut r.mms[m as usize], &mut r.t[first as usize], cpu, &sw);
        }
    }

    /// What user space reads in `rseq::mm_cid`, if it is a CID (None: UNSET / -1).
    #[inline]
    pub fn user_cid(&self, t: u32) -> Option<Cid> {
        let t = t as usize;
        match &self.k {
            K::Rw(r) => {
                let c = r.t[t].cid;
                (!c.is_unset()).then(|| c.user_value())
            }
            K::Lz(l) => l.t[t].mm_cid.valid_index(),
            K::Ps(p) => {
                let v = p.t[t].mm_cid.user_value();
                (v >= 0).then_some(v as u32)
            }
        }
    }

    /// Is the task a CID user of its mm (`mm_cid_active`)?
    pub fn active(&self, t: u32) -> bool {
        let t = t as usize;
        match &self.k {
            K::Rw(r) => r.t[t].active,
            K::Lz(l) => l.t[t].active,
            K::Ps(p) => p.t[t].active,
        }
    }

    /// I1 bookkeeping: records `c` as used by a running task of `m`; false if it already was.
    #[inline]
    pub fn running_set(&mut self, m: u32, c: Cid) -> bool {
        if c >= self.np {
            return true; // I2 reports it
        }
        let w = &mut self.running[m as usize * self.stride + c as usize / 64];
        let bit = 1 << (c % 64);
        let was = *w & bit != 0;
        *w |= bit;
        !was
    }

    /// I1 bookkeeping: `c` is no longer used by a running task of `m`.
    #[inline]
    pub fn running_clear(&mut self, m: u32, c: Cid) {
        if c < self.np {
            self.running[m as usize * self.stride + c as usize / 64] &= !(1 << (c % 64));
        }
    }

    /// I2 for a task returning to user space.
    pub fn check_bound(&self, m: u32, t: u32) -> Result<(), String> {
        self.checked_user_cid(m, t).map(|_| ())
    }

    /// I2 and [`Fam::user_cid`] in one look at the task, for a return to user space: the CID user
    /// space reads, or the I2 violation.
    #[inline(always)]
    pub fn checked_user_cid(&self, m: u32, t: u32) -> Result<Option<Cid>, String> {
        if let K::Rw(r) = &self.k {
            let c = r.t[t as usize];
            let unset = c.cid.is_unset();
            if !c.active || (!unset && c.cid.user_value() < r.mms[m as usize].np) {
                return Ok((!unset).then(|| c.cid.user_value()));
            }
        }
        self.check_bound_slow(m, t)?;
        Ok(self.user_cid(t))
    }

    #[inline(never)]
    fn check_bound_slow(&self, m: u32, t: u32) -> Result<(), String> {
        let (mi, ti) = (m as usize, t as usize);
        match &self.k {
            K::Rw(r) => {
                let c = r.t[ti];
                if !c.active {
                    return Ok(());
                }
                if c.cid.is_unset() {
                    return Err("no CID (mm_cid reads 0x80000000)".into());
                }
                if c.cid.user_value() >= r.mms[mi].np {
                    return Err(format!(
                        "CID {} >= num_possible_cpus {}",
                        c.cid.user_value(),
                        r.mms[mi].np
                    ));
                }
                Ok(())
            }
            K::Lz(l) => v6_18::check_bound(&l.mms[mi], &l.t[ti]).map_err(|e| e.to_string()),
            // 6.3 hands out -1 when the bitmap is full: user space sees it
            K::Ps(p) => v6_3::check_bound(&p.mms[mi], &p.t[ti]).map_err(|e| e.to_string()),
        }
    }

    /// D1 and W: drops the kernel would not notice, WARNs.
    pub fn check_faults(&self, m: u32) -> Result<(), (&'static str, String)> {
        let m = m as usize;
        let (oor, clear) = match &self.k {
            K::Rw(r) => {
                let f = r.mms[m].faults;
                if let Some(w) = f.warn {
                    return Err(("W", format!("WARN_ON_ONCE fired: {w:?}")));
                }
                (f.out_of_range, f.already_clear)
            }
            K::Lz(l) => (l.mms[m].faults.out_of_range, l.mms[m].faults.already_clear),
            K::Ps(p) => (p.mms[m].faults.out_of_range, p.mms[m].faults.already_clear),
        };
        if let Some(i) = oor {
            return Err(("D1", format!("clear_bit({i:#x}) outside the bitmap")));
        }
        if let Some(i) = clear {
            return Err((
                "D1",
                format!("clear_bit({i}) of a bit that was clear (a CID dropped twice)"),
            ));
        }
        Ok(())
    }

    /// Traffic counters of the mms involved (each once).
    #[inline(always)]
    pub fn traffic(&self, a: Option<u32>, b: Option<u32>) -> Traffic {
        match &self.k {
            K::Rw(r) => sum_of(a, b, |m| r.mms[m].stats.totals()),
            K::Lz(l) => sum_of(a, b, |m| l.mms[m].stats.totals()),
            K::Ps(p) => sum_of(a, b, |m| p.mms[m].stats.totals()),
        }
    }

    /// One line on an mm's CID state, for messages.
    pub fn describe(&self, m: u32) -> String {
        let m = m as usize;
        match &self.k {
            K::Rw(r) => {
                let x = &r.mms[m];
                format!(
                    "mm{m}: mode {}, users {}, max_cids {}, {} of {} bits set",
                    x.mode,
                    x.users,
                    x.max_cids,
                    x.bitmap.weight(),
                    x.np
                )
            }
            K::Lz(l) => {
                let x = &l.mms[m];
                format!(
                    "mm{m}: {} of {} bits set, max_nr_cid {}, mm_users {}, nr_cpus_allowed {}",
                    x.cidmask.weight(),
                    x.np,
                    x.max_nr_cid,
                    x.mm_users,
                    x.nr_cpus_allowed
                )
            }
            K::Ps(p) => format!("mm{m}: {} of {} bits set", p.mms[m].cidmask.weight(), p.mms[m].np),
        }
    }

    /// Bytes of CID state per task.
    pub fn task_bytes(&self) -> usize {
        match &self.k {
            K::Rw(_) => std::mem::size_of::<TaskCid>(),
            K::Lz(_) => std::mem::size_of::<Task618Of<Wide>>(),
            K::Ps(_) => std::mem::size_of::<Task63>(),
        }
    }

    /// Bytes of CID state per mm on `np` CPUs (struct, bitmap, slots, I1 set; the user list's
    /// entries count per task).
    pub fn mm_bytes(&self, np: u32) -> usize {
        let bits = np.div_ceil(64) as usize * 8;
        bits + match &self.k {
            K::Rw(_) => std::mem::size_of::<MmCidOf<Wide>>() + 2 * bits + np as usize * 4,
            K::Lz(_) => std::mem::size_of::<Mm618Of<Wide>>() + 2 * bits + np as usize * 24,
            K::Ps(_) => std::mem::size_of::<Mm63Of<Wide>>() + bits,
        }
    }

    /// The mode word of a 7.0-family mm (for traces).
    pub fn mode(&self, m: u32) -> Option<Mode> {
        match &self.k {
            K::Rw(r) => Some(r.mms[m as usize].mode),
            _ => None,
        }
    }
}

impl Machine {
    /// `switch_mm_cid` / `mm_cid_schedout` + `mm_cid_schedin` on `cpu`: false if the switch spins,
    /// and the traffic it caused on the mms involved. One family dispatch per switch: the
    /// counters are read before and after inside the family's arm.
    #[inline(always)]
    pub(crate) fn cid_switch(
        &mut self,
        cpu: u32,
        prev: u32,
        pm: Option<u32>,
        next: u32,
        nm: Option<u32>,
    ) -> (bool, Traffic) {
        let now = self.now;
        match &mut self.fam.k {
            K::Rw(r) => rw_switch(r, cpu, prev, pm, next, nm),
            K::Lz(l) => measured(
                l,
                pm,
                nm,
                |l, m| l.mms[m].stats.totals(),
                |l| lz_switch(l, cpu, prev, pm, next, nm, now),
            ),
            K::Ps(p) => measured(
                p,
                pm,
                nm,
                |p, m| p.mms[m].stats.totals(),
                |p| ps_switch(p, prev, pm, next, nm),
            ),
        }
    }

    /// Another lap of a spinning switch; true when it completed.
    pub(crate) fn cid_switch_retry(&mut self, cpu: u32, t: u32) -> bool {
        let now = self.now;
        let m = self.tasks[t as usize].mm as usize;
        match &mut self.fam.k {
            K::Rw(r) => {
                let sw = r.sw;
                let Some(sp) = r.spin[cpu as usize] else {
                    return true;
                };
                match mmcid_cid::schedin_retry(&mut r.mms[m], &mut r.t[t as usize], cpu, sp, &sw) {
                    Schedin::Done => {
                        r.spin[cpu as usize] = None;
                        true
                    }
                    Schedin::Spin(sp) => {
                        r.spin[cpu as usize] = Some(sp);
                        false
                    }
                }
            }
            K::Lz(l) => {
                let Some(k) = l.spin[cpu as usize].take() else {
                    return true;
                };
                let mm = &mut l.mms[m];
                let tk = &mut l.t[t as usize];
                match v6_18::get_retry(mm, cpu, tk, k, now) {
                    LegacyAllocOf::Got(_) => true,
                    LegacyAllocOf::Spin(k) => lz_continue(mm, cpu, tk, k, now, &mut l.spin[cpu as usize]),
                }
            }
            K::Ps(_) => true,
        }
    }

    /// `set_task_cpu` + 6.18's `sched_mm_cid_migrate_to` (its three steps in one go).
    #[inline(always)]
    pub(crate) fn cid_migrate(&mut self, t: u32, from: u32, to: u32) {
        if matches!(self.fam.k, K::Lz(_)) {
            self.cid_migrate_618(t, from, to);
        }
    }

    #[inline(never)]
    fn cid_migrate_618(&mut self, t: u32, from: u32, to: u32) {
        let K::Lz(l) = &mut self.fam.k else { return };
        let m = self.tasks[t as usize].mm;
        let src_busy = {
            let c = self.cpus[from as usize].curr;
            c != NONE && self.tasks[c as usize].mm == m && l.t[c as usize].active
        };
        let mm = &mut l.mms[m as usize];
        let tk = &mut l.t[t as usize];
        v6_18::set_task_cpu(tk, from, to);
        if !tk.active {
            return;
        }
        let mut r = v6_18::migrate_to(mm, to, tk, src_busy);
        loop {
            r = match r {
                MigrateOf::Fetched(mc) => v6_18::migrate_steal(mm, mc),
                MigrateOf::Stolen(mc) => v6_18::migrate_complete(mm, to, tk, mc, src_busy, self.now),
                MigrateOf::InFlight(mc) => v6_18::migrate_place(mm, to, mc, self.now),
                MigrateOf::Done(_) => break,
            };
        }
    }

    /// Work done on a return to user space before the burst: 6.18's compaction scan
    /// (`task_work mm_cid_work`), when due. Returns the time it took.
    #[inline(always)]
    pub(crate) fn cid_tick(&mut self, cpu: u32, m: u32) -> u64 {
        if matches!(self.fam.k, K::Lz(_)) {
            self.cid_tick_618(cpu, m)
        } else {
            0
        }
    }

    #[inline(never)]
    fn cid_tick_618(&mut self, cpu: u32, m: u32) -> u64 {
        let now = self.now;
        let period = self.cfg.costs.scan_period_ns;
        let K::Lz(l) = &mut self.fam.k else { return 0 };
        let mmk = &mut self.mms[m as usize];
        if now < mmk.next_scan {
            return 0;
        }
        mmk.next_scan = now + period;
        let _ = cpu;
        let np = self.cfg.cpus;
        let mm = &mut l.mms[m as usize];
        let before = mm.stats.totals();
        let cpus = &self.cpus;
        let tasks = &self.tasks;
        let lt = &l.t;
        let curr_user = |c: u32| {
            let x = cpus[c as usize].curr;
            x != NONE && tasks[x as usize].mm == m && lt[x as usize].active
        };
        let mut reclaimed = 0u64;
        // first loop: clear old
        for c in 0..np {
            let busy = curr_user(c);
            if busy {
                v6_18::compaction_refresh(mm, c, now);
                continue;
            }
            let s = *mm.slot(c);
            if v6_18::clear_old_candidate(mm, c, busy)
                && now.saturating_sub(s.time) >= period
                && let Some(cid) = v6_18::remote_clear_mark(mm, c)
                && v6_18::remote_clear_finish(mm, c, cid, curr_user(c)) == RemoteClear::Cleared
            {
                reclaimed += 1;
                self.m.reclaim_age.add(now - s.time);
            }
        }
        // second loop: clear high
        let w = v6_18::clear_high_weight(mm);
        for c in 0..np {
            if v6_18::clear_high_candidate(mm, c, w) {
                let s = *mm.slot(c);
                if let Some(cid) = v6_18::remote_clear_mark(mm, c)
                    && v6_18::remote_clear_finish(mm, c, cid, curr_user(c)) == RemoteClear::Cleared
                {
                    reclaimed += 1;
                    self.m.reclaim_age.add(now.saturating_sub(s.time));
                }
            }
        }
        let d = mm.stats.totals().since(&before);
        self.m.other_bit_ops += d.bit_ops;
        self.m.other_slot_writes += d.slot_writes;
        self.m.scans += 1;
        self.m.scan_visits += 2 * np as u64;
        self.rec(
            cpu,
            crate::trace::Kind::Scan,
            self.cpus[cpu as usize].curr,
            reclaimed,
        );
        self.after_op(m);
        2 * np as u64 * self.cfg.costs.scan_visit_ns
    }

    /// The full per-mm checks: I4 (bit ownership), I5, I6, I7, I8 (7.0 family); bit ownership,
    /// bound and slot copies (6.18); bit ownership (6.3); D1 and W.
    pub(crate) fn cid_check_mm(&self, m: u32) -> Result<(), (&'static str, String)> {
        self.fam.check_faults(m)?;
        let mi = m as usize;
        let np = self.cfg.cpus;
        let walking = self.mms[mi].walking;
        let locked = self.mms[mi].mutex != NONE;
        match &self.fam.k {
            K::Rw(r) => {
                let x = &r.mms[mi];
                if x.users as usize != x.user_list.count() {
                    return Err((
                        "I8",
                        format!("users {} but {} on user_list", x.users, x.user_list.count()),
                    ));
                }
                let mut owners = vec![0u8; np as usize];
                let mut bad: Option<String> = None;
                for u in x.user_list.each() {
                    let c = r.t[u as usize];
                    if !c.active {
                        bad.get_or_insert(format!("T{u} is on user_list but not active"));
                    }
                    if c.cid.on_cpu() && c.cid.in_transit() {
                        return Err(("I5", format!("T{u} holds {}", c.cid)));
                    }
                    if !c.cid.is_unset() && !c.cid.on_cpu() {
                        let i = c.cid.index();
                        if i >= np {
                            return Err(("I4", format!("T{u} owns CID {} outside the bitmap", c.cid)));
                        }
                        owners[i as usize] += 1;
                    }
                }
                for cpu in 0..np {
                    let s = x.slot(cpu);
                    if s.on_cpu() && s.in_transit() {
                        return Err(("I5", format!("slot{cpu} holds {s}")));
                    }
                    if s.on_cpu() {
                        let i = s.index();
                        if i >= np {
                            return Err(("I4", format!("slot{cpu} owns CID {s} outside the bitmap")));
                        }
                        owners[i as usize] += 1;
                    }
                }
                if x.users > 0 {
                    if let Some(b) = bad {
                        return Err(("I8", b));
                    }
                    for b in 0..np {
                        let (s, o) = (x.bitmap.is_set(b), owners[b as usize]);
                        if (s && o != 1) || (!s && o != 0) {
                            return Err((
                                "I4",
                                format!("bit {b} is {} with {o} owners", if s { "set" } else { "clear" }),
                            ));
                        }
                    }
                    if r.sw.one_word_mode && x.mode.in_transit() != walking {
                        return Err((
                            "I7",
                            format!(
                                "mode {} while a fix-up walk is {}running",
                                x.mode,
                                if walking { "" } else { "not " }
                            ),
                        ));
                    }
                    if !walking && !locked && !x.mode.in_transit() {
                        let cpu_owned = (0..np).any(|c| x.slot(c).on_cpu());
                        let task_owned = x.user_list.each().any(|u| r.t[u as usize].cid.on_task());
                        if x.mode == Mode::PER_TASK && cpu_owned {
                            return Err(("I6", "steady per-task mode, but a CPU owns a CID".into()));
                        }
                        if x.mode == Mode::PER_CPU && task_owned {
                            return Err(("I6", "steady per-CPU mode, but a task owns a plain CID".into()));
                        }
                    }
                }
                Ok(())
            }
            K::Lz(l) => {
                let x = &l.mms[mi];
                v6_18::check_ownership(x, []).map_err(own_err)?;
                for c in 0..np {
                    let t = self.cpus[c as usize].curr;
                    if t == NONE
                        || self.tasks[t as usize].mm != m
                        || self.tasks[t as usize].state != TState::Running
                    {
                        continue;
                    }
                    if matches!(self.cpus[c as usize].work, Work::SpinSwitch { .. }) {
                        continue;
                    }
                    let y = &l.t[t as usize];
                    if y.active && !y.mm_cid.is_unset() && !v6_18::holds_slot_copy(x, c, y) {
                        return Err((
                            "I4",
                            format!("T{t} runs with {} but slot{c} holds {}", y.mm_cid, x.slot(c).cid),
                        ));
                    }
                }
                Ok(())
            }
            K::Ps(p) => {
                let x = &p.mms[mi];
                let holders = self.mms[mi]
                    .procs
                    .iter()
                    .flat_map(|&pr| self.procs[pr as usize].threads.iter())
                    .filter(|&&t| self.tasks[t as usize].mm == m)
                    .map(|&t| p.t[t as usize].mm_cid);
                // tasks still in the middle of a fork are not on a thread list yet and hold no CID
                v6_3::check_ownership(x, holders.chain(std::iter::once(LegacyCid::UNSET))).map_err(own_err)
            }
        }
    }
}

/// Runs `switch` on a family's state and returns its result with the traffic it caused on mm `a`
/// and mm `b` (each counted once).
#[inline(always)]
fn measured<R>(
    r: &mut R,
    a: Option<u32>,
    b: Option<u32>,
    totals: impl Fn(&R, usize) -> Traffic,
    switch: impl FnOnce(&mut R) -> bool,
) -> (bool, Traffic) {
    let before = sum_of(a, b, |m| totals(r, m));
    let done = switch(r);
    (done, sum_of(a, b, |m| totals(r, m)).since(&before))
}

/// The 7.0 family's switch: `mm_cid_schedout` of `prev`, `mm_cid_schedin` of `next`, and the
/// traffic each caused. Measured per half (schedout touches only prev's mm, schedin only next's),
/// which sums to what [`measured`] finds over both and is cheaper: no pair of mms to sort out.
#[inline(always)]
fn rw_switch(
    r: &mut Rw,
    cpu: u32,
    prev: u32,
    pm: Option<u32>,
    next: u32,
    nm: Option<u32>,
) -> (bool, Traffic) {
    let sw = r.sw;
    let mut d = Traffic::default();
    if let Some(pm) = pm {
        let mm = &mut r.mms[pm as usize];
        let before = mm.stats.totals();
        mmcid_cid::schedout(mm, &mut r.t[prev as usize], cpu, &sw);
        d = mm.stats.totals().since(&before);
    }
    let Some(nm) = nm else { return (true, d) };
    let mm = &mut r.mms[nm as usize];
    let t = &mut r.t[next as usize];
    let before = mm.stats.totals();
    let done = match mmcid_cid::schedin(mm, t, cpu, &sw) {
        Schedin::Done => true,
        Schedin::Spin(sp) if !sp.spins() => {
            // 6.19-rc7's second mode load: taken at once (no window for other CPUs)
            mmcid_cid::schedin_retry(mm, t, cpu, sp, &sw) == Schedin::Done
        }
        Schedin::Spin(sp) => {
            r.spin[cpu as usize] = Some(sp);
            false
        }
    };
    d += mm.stats.totals().since(&before);
    (done, d)
}

/// 6.18's switch: `switch_mm_cid`'s switch-out and switch-in halves.
fn lz_switch(l: &mut Lz, cpu: u32, prev: u32, pm: Option<u32>, next: u32, nm: Option<u32>, now: u64) -> bool {
    if let Some(pm) = pm {
        v6_18::switch_out(&mut l.mms[pm as usize], cpu, &mut l.t[prev as usize], now);
    }
    let Some(nm) = nm else { return true };
    let mm = &mut l.mms[nm as usize];
    let t = &mut l.t[next as usize];
    match v6_18::switch_in(mm, cpu, t, now) {
        None | Some(LegacyAllocOf::Got(_)) => true,
        Some(LegacyAllocOf::Spin(k)) => lz_continue(mm, cpu, t, k, now, &mut l.spin[cpu as usize]),
    }
}

/// 6.3's switch: `switch_mm_cid` under the mms' `cid_lock`s.
fn ps_switch(p: &mut Ps, prev: u32, pm: Option<u32>, next: u32, nm: Option<u32>) -> bool {
    let mut idle = Task63::default();
    let (pt, nt): (&mut Task63, &mut Task63) = match (prev != NONE, next != NONE) {
        (true, true) => two(p.t.as_mut_slice(), prev as usize, next as usize),
        (true, false) => (&mut p.t[prev as usize], &mut idle),
        (false, true) => {
            let n = &mut p.t[next as usize];
            // borrow juggling: idle as prev
            let mut idle_prev = Task63::default();
            let mms = match nm {
                Some(b) => SwitchMmsOf::Distinct {
                    prev: None,
                    next: Some(&mut p.mms[b as usize]),
                },
                None => return true,
            };
            v6_3::switch(mms, &mut idle_prev, n);
            return true;
        }
        (false, false) => return true,
    };
    let mms = match (pm, nm) {
        (Some(a), Some(b)) if a == b => SwitchMmsOf::Same(&mut p.mms[a as usize]),
        (Some(a), Some(b)) => {
            let (x, y) = two(p.mms.as_mut_slice(), a as usize, b as usize);
            SwitchMmsOf::Distinct {
                prev: Some(x),
                next: Some(y),
            }
        }
        (Some(a), None) => SwitchMmsOf::Distinct {
            prev: Some(&mut p.mms[a as usize]),
            next: None,
        },
        (None, Some(b)) => SwitchMmsOf::Distinct {
            prev: None,
            next: Some(&mut p.mms[b as usize]),
        },
        (None, None) => return true,
    };
    v6_3::switch(mms, pt, nt);
    true
}

/// Runs the cuts of a 6.18 allocation (they make progress or fail) until it completes or really
/// busy-waits; a wait is left in `slot` for the next lap. True when the task has its CID.
fn lz_continue(
    mm: &mut Mm618Of<Wide>,
    cpu: u32,
    t: &mut Task618Of<Wide>,
    mut k: GetContOf<Wide>,
    now: u64,
    slot: &mut Option<GetContOf<Wide>>,
) -> bool {
    loop {
        if k.waits(mm) {
            *slot = Some(k);
            return false;
        }
        match v6_18::get_retry(mm, cpu, t, k, now) {
            LegacyAllocOf::Got(_) => {
                *slot = None;
                return true;
            }
            LegacyAllocOf::Spin(n) => k = n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmcid_cid::storage::CpuSet;

    /// The I1 sets of all mms share one vector: each mm's words are its own (70 CPUs: two words
    /// an mm, CIDs on both sides of a word's end), and a reused mm slot starts empty.
    #[test]
    fn running_sets_are_per_mm_and_start_empty() {
        let np = 70;
        let mut f = Fam::new(mmcid_kmodel::config::design("7.0").unwrap(), np).unwrap();
        for m in 0..3 {
            f.new_mm(m, np, WideBitmap::full(np));
        }
        for c in [0, 63, 64, 69] {
            assert!(f.running_set(1, c), "mm1 CID {c} is free");
            assert!(!f.running_set(1, c), "mm1 CID {c} is taken");
            assert!(
                f.running_set(0, c) && f.running_set(2, c),
                "other mms' CID {c} are their own"
            );
        }
        assert!(f.running_set(1, 70), "out of bounds: left to I2");
        f.running_clear(1, 64);
        assert!(f.running_set(1, 64), "cleared");
        f.new_mm(1, np, WideBitmap::full(np));
        assert!(f.running_set(1, 69), "a reused slot starts empty");
        assert!(!f.running_set(2, 69), "and leaves the next mm alone");
    }
}
