//! Rendering the model's typed results for people. `--json` needs no renderer of its own: it
//! is the serde form of the same types (schemas in `docs/schema/`, from [`crate::schema`]).

pub mod observe;
pub mod state;
pub mod text;
