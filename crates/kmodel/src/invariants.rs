//! The promises of spec section 6 as named properties, plus reachability ("sometimes")
//! properties that tell a too-small configuration apart from a verified one. Each family checks
//! them over its own state ([`crate::family::Family::check`]; the 7.0 family in
//! `crate::rewrite::check`, the older designs in `crate::legacy`).
//!
//! When each one must hold (7.0 family):
//! - I1, I4, I5, I8, I8v, D1, W: at every step (each step is a whole critical section).
//! - I2: for every task that is in user space (running, switch complete, no operation in progress);
//!   a task inside the kernel may transiently hold UNSET.
//! - I6: only while the mm is quiescent in a steady mode (no walk in progress, no TRANSIT).
//! - I7: while the mm has users (the last-user exit deliberately ignores the flip it causes).
//! - I4, I6, I7 are checked only while the mm has users: a dead mm's leftovers harm nobody, unless it
//!   comes back to life (a failed execve), which makes users non-zero again.
//!
//! The pre-rewrite designs (6.3, 6.18; designs.md E) keep the ids where the promise is the same:
//! - I1: the running active tasks of an mm (switch complete) hold distinct CIDs.
//! - I2: a task in user space holds a CID in `0..num_possible_cpus`; 6.3's −1 (the allocator found
//!   no free bit) is a violation, since user space reads it. For 6.18 the bound is the tighter
//!   derived one of designs.md E.0.8, the mm's current `nr_cpus_allowed`.
//! - I4: bit ownership, at every step and whether or not the mm has users: 6.3, the tasks of the
//!   mm own the bits their `mm_cid` names; 6.18, the per-CPU slots (valid or LAZY) plus the CIDs
//!   in flight in a remote clear or a migration own them, and a running active task's `mm_cid` is
//!   a copy of its CPU's slot (the slot was not taken away under a running user).
//! - D1: no `clear_bit` outside the bitmap or of a clear bit (the designs' recorded faults).
//! - I5, I6, I7, I8, I8v and W are about the rewrite's ONCPU/TRANSIT encoding, modes, user
//!   lists and WARN sites; they do not apply and hold vacuously. R1–R3 and R5 do not apply;
//!   R4 is reached when a 6.18 CPU busy-waits in `mm_cid_get` (a fallback lap with no free bit
//!   below `nr_cpus_allowed`, or `cid_lock` held by another CPU).

use mmcid_engine::{PropertyInfo, PropertyKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A property of the kernel model. The discriminant is its index in the engine's property list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum Property {
    /// No two running tasks of an mm hold the same CID.
    I1,
    /// Every task of an mm in user space holds a CID below `num_possible_cpus`.
    I2,
    /// Every set bitmap bit has exactly one owner, and every owned CID's bit is set.
    I4,
    /// No stored CID carries ONCPU and TRANSIT together.
    I5,
    /// Steady per-task: no CPU owns a CID; steady per-CPU: no task owns a plain CID.
    I6,
    /// The mode carries TRANSIT exactly while a fix-up walk runs.
    I7,
    /// `users == |user_list| ==` the number of active tasks.
    I8,
    /// Every CID user is visible in the thread and task lists.
    I8v,
    /// `drop()` clears only set bits inside the bitmap.
    D1,
    /// No `WARN_ON` in the CID code fires.
    W,
    /// Per-CPU mode is reached.
    R1,
    /// A switch back to per-task mode is reached.
    R2,
    /// A running task holds a TRANSIT CID.
    R3,
    /// A CPU or task spins in `get_cid`.
    R4,
    /// The deferred switch back to per-task is queued (irq_work).
    R5,
}

impl Property {
    /// Every property, in report order (the engine's indices).
    pub const ALL: [Property; 15] = [
        Property::I1,
        Property::I2,
        Property::I4,
        Property::I5,
        Property::I6,
        Property::I7,
        Property::I8,
        Property::I8v,
        Property::D1,
        Property::W,
        Property::R1,
        Property::R2,
        Property::R3,
        Property::R4,
        Property::R5,
    ];

    /// The property with engine index `i`.
    pub fn from_index(i: usize) -> Option<Property> {
        Property::ALL.get(i).copied()
    }
    /// Its engine index.
    pub fn index(self) -> usize {
        self as usize
    }
    /// Its short id (`I1`, `R4`, ...).
    pub fn id(self) -> &'static str {
        match self {
            Property::I1 => "I1",
            Property::I2 => "I2",
            Property::I4 => "I4",
            Property::I5 => "I5",
            Property::I6 => "I6",
            Property::I7 => "I7",
            Property::I8 => "I8",
            Property::I8v => "I8v",
            Property::D1 => "D1",
            Property::W => "W",
            Property::R1 => "R1",
            Property::R2 => "R2",
            Property::R3 => "R3",
            Property::R4 => "R4",
            Property::R5 => "R5",
        }
    }
    /// Looks a property up by its id.
    pub fn from_id(id: &str) -> Option<Property> {
        Property::ALL.iter().copied().find(|p| p.id() == id)
    }
    /// Its one-line promise, in the kernel's terms.
    pub fn promise(self) -> &'static str {
        match self {
            Property::I1 => "no two running tasks of an mm hold the same CID",
            Property::I2 => "every task of an mm in user space holds a CID below num_possible_cpus",
            Property::I4 => "every set bitmap bit has exactly one owner, and every owned CID's bit is set",
            Property::I5 => "no stored CID carries ONCPU and TRANSIT together",
            Property::I6 => "steady per-task: no CPU owns a CID; steady per-CPU: no task owns a plain CID",
            Property::I7 => "the mode carries TRANSIT exactly while a fix-up walk runs",
            Property::I8 => "users == length of user_list == number of active tasks",
            Property::I8v => "every CID user is visible in the thread and task lists",
            Property::D1 => "drop() clears only set bits inside the bitmap",
            Property::W => "no WARN_ON in the CID code fires",
            Property::R1 => "per-CPU mode is reached",
            Property::R2 => "a switch back to per-task mode is reached",
            Property::R3 => "a running task holds a TRANSIT CID",
            Property::R4 => "a CPU or task spins in get_cid",
            Property::R5 => "the deferred switch back to per-task is queued (irq_work)",
        }
    }
    /// Invariant (must always hold) or reachability (should be reached at least once).
    pub fn kind(self) -> PropertyKind {
        match self {
            Property::R1 | Property::R2 | Property::R3 | Property::R4 | Property::R5 => {
                PropertyKind::Sometimes
            }
            _ => PropertyKind::Always,
        }
    }
    /// Is it an invariant?
    pub fn is_invariant(self) -> bool {
        self.kind() == PropertyKind::Always
    }
    /// Its kind as reports name it: an invariant or a reachability goal.
    pub fn class(self) -> Class {
        match self.kind() {
            PropertyKind::Always => Class::Invariant,
            PropertyKind::Sometimes => Class::Reachability,
        }
    }
    /// Does it describe the 7.0 family's modes (so it does not apply to the designs without
    /// modes, 6.3 and 6.18)? R4, a spin, applies to every design.
    pub fn about_modes(self) -> bool {
        matches!(self, Property::R1 | Property::R2 | Property::R3 | Property::R5)
    }
}

impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// The sentence for a finding on `property` (an id, or `stall` / `livelock`) when no specific
/// fact of the state explains it: the property's promise, stated as broken.
pub fn broken_promise(property: &str) -> String {
    match Property::from_id(property) {
        Some(p) => format!("{p} is broken: it promises that {}", p.promise()),
        None => format!("{property} (no single task, CPU or bit explains it)"),
    }
}

/// What a property promises, as reports (and their JSON) name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// It must hold in every reachable state; a state where it does not is a violation.
    Invariant,
    /// Some reachable state should show it; reaching it shows the bounds exercise that behaviour.
    Reachability,
}

impl Class {
    /// Its name in reports (`invariant`, `reachability`).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Invariant => "invariant",
            Class::Reachability => "reachability",
        }
    }
}

/// A set of properties that fired, filled by a family's check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fired(u16);

impl Fired {
    /// Marks `p` as fired when `cond` holds.
    pub fn set(&mut self, p: Property, cond: bool) {
        if cond {
            self.0 |= 1 << p.index();
        }
    }
    /// Has `p` fired?
    pub fn has(self, p: Property) -> bool {
        self.0 & (1 << p.index()) != 0
    }
    /// Appends the engine indices of the fired properties.
    pub fn push_to(self, out: &mut Vec<usize>) {
        out.extend(Property::ALL.iter().filter(|p| self.has(**p)).map(|p| p.index()));
    }
}

/// The engine's view of [`Property::ALL`].
pub fn property_infos() -> Vec<PropertyInfo> {
    Property::ALL
        .iter()
        .map(|p| PropertyInfo {
            name: p.id(),
            description: p.promise(),
            kind: p.kind(),
        })
        .collect()
}
