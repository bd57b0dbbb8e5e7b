//! mmcid-engine: generic explicit-state exploration (essay to come).
pub mod bfs;
pub mod error;
pub mod fingerprint;
pub mod frontier;
pub mod liveness;
pub mod model;
pub mod observer;
pub mod parents;
pub mod report;
pub mod seen;
pub mod trace;

pub use bfs::check;
pub use error::EngineError;
pub use model::{Agent, Model, PropertyInfo, PropertyKind};
pub use observer::{NoObserver, Observer, Progress};
pub use report::{Cut, Finding, FindingKind, Memory, Options, Report, Trace};
pub use trace::trace_states;
