//! mmcid-engine: generic explicit-state exploration (placeholder; being written).
pub mod model;
pub use model::{Agent, Model, PropertyInfo, PropertyKind};
