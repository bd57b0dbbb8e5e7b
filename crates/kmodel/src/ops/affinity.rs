//! `sched_setaffinity(0, old | {cpu})` on the caller itself, growing its mask by one CPU.
//!
//! One step under the caller's rq lock and `mm.lock` (`__do_set_cpus_allowed` →
//! `mm_update_cpus_allowed`). Growth is the only case the designs treat; a shrinking mask is not
//! modelled.

use mmcid_cid::{CpuId, TaskId};

use crate::family::Family;
use crate::ops::{Params, StartOp, Step};
use crate::state::*;

/// `sched_setaffinity` steps of a task in user space: one per CPU outside its mask.
pub fn steps<F: Family>(p: &Params, s: &State<F>, task: TaskId, out: &mut Vec<Step>) {
    let t = s.task(task);
    if s.left.affinity > 0 && t.mm.is_some() && F::affinity_allowed(p, s, task) {
        for cpu in 0..s.np() {
            if t.affinity & (1 << cpu) == 0 {
                out.push(Step::Start {
                    task,
                    op: StartOp::Affinity { cpu },
                });
            }
        }
    }
}

/// Adds `cpu` to the caller's mask, then lets the CID code see the new mask.
pub fn start<F: Family>(p: &Params, s: &mut State<F>, task: TaskId, cpu: CpuId) {
    s.left.affinity -= 1;
    s.task_mut(task).affinity |= 1 << cpu;
    F::affinity(p, s, task);
}
