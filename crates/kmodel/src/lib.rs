//! placeholder
pub mod checker;
pub mod config;
pub mod fixed;
pub mod init;
pub mod invariants;
pub mod legacy;
pub mod matrix;
pub mod model;
pub mod scenario;
pub mod state;
pub mod step;
pub mod symmetry;
pub mod trace;
pub use config::{Budgets, Config, DESIGNS, Design, Family};
pub use model::KernelModel;
