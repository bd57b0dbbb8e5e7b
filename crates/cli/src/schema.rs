//! `mmcid schema`: the JSON Schema of every command's `--json` output, generated from the Rust
//! types the commands serialise (with `schemars`, so a schema cannot drift from the output).
//! The committed copies live in `docs/schema/`; `crates/cli/tests/schema.rs` fails when they
//! differ from what this module generates, and validates each command's output against its
//! schema.

use std::path::PathBuf;

use schemars::{JsonSchema, Schema, generate::SchemaSettings};

/// Print the JSON Schema (draft 2020-12) of a command's `--json` output, or write them all.
///
/// The schemas are generated from the types the commands serialise; `docs/schema/` holds the
/// committed copies (regenerate them with `mmcid schema --out docs/schema`). Every output carries
/// a `format_version` that changes whenever its shape does.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The command whose schema to print (`check`, `check-stateright`, `replay`, `matrix`,
    /// `hunt`, `bench`, `designs`, `sim`, `sim-bench`, `sim-against-kernel`, `dist`, `observe`,
    /// `bench-percid`); omit it with --out.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(NAMES))]
    pub command: Option<String>,
    /// Write every schema as `<command>.json` into this directory instead.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub out: Option<PathBuf>,
}

/// The schemas' names: one per `--json` output (`check-stateright` is `check --engine
/// stateright`).
pub const NAMES: [&str; 13] = [
    "check",
    "check-stateright",
    "replay",
    "matrix",
    "hunt",
    "bench",
    "designs",
    "sim",
    "sim-bench",
    "sim-against-kernel",
    "dist",
    "observe",
    "bench-percid",
];

fn schema_of<T: JsonSchema>(title: &str) -> Schema {
    let mut s = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    s.insert("title".into(), title.into());
    s
}

/// The schema named `name` (one of [`NAMES`]) as pretty JSON with a final newline.
pub fn schema(name: &str) -> Option<String> {
    use mmcid_kmodel::{checker, hunt, matrix, replay};
    let s = match name {
        "check" => schema_of::<checker::CheckOutcome>("mmcid check --json"),
        "check-stateright" => {
            schema_of::<crate::oracle::StaterightCheck>("mmcid check --engine stateright --json")
        }
        "replay" => schema_of::<replay::ReplayOutcome>("mmcid replay --json"),
        "matrix" => schema_of::<matrix::Matrix>("mmcid matrix --json"),
        "hunt" => schema_of::<hunt::HuntReport>("mmcid hunt --json"),
        "bench" => schema_of::<crate::oracle::Bench>("mmcid bench --json"),
        "designs" => schema_of::<crate::designs::DesignList>("mmcid designs --json"),
        "sim" => schema_of::<crate::sim::SimReport>("mmcid sim --json"),
        "sim-bench" => schema_of::<crate::sim::SimBench>("mmcid sim --bench --json"),
        "sim-against-kernel" => {
            schema_of::<crate::sim_kernel::AgainstKernel>("mmcid sim --against-kernel --json")
        }
        "dist" => schema_of::<crate::dist::DistJson<'static>>("mmcid dist --json"),
        "observe" => schema_of::<crate::observe::ObserveJson<'static>>("mmcid observe --json"),
        "bench-percid" => {
            schema_of::<crate::bench_percid::BenchPercidJson<'static>>("mmcid bench-percid --json")
        }
        _ => return None,
    };
    let mut text = serde_json::to_string_pretty(&s).expect("a schema is JSON");
    text.push('\n');
    Some(text)
}

/// Runs `mmcid schema`.
pub fn run(a: &Args) -> i32 {
    match (&a.command, &a.out) {
        (Some(name), None) => {
            out!("{}", schema(name).expect("the parser admits only known names"));
            crate::exit::OK
        }
        (None, Some(dir)) => {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("mmcid schema: --out {}: {e}", dir.display());
                return crate::exit::USAGE;
            }
            for name in NAMES {
                let path = dir.join(format!("{name}.json"));
                if let Err(e) = std::fs::write(&path, schema(name).expect("a known name")) {
                    eprintln!("mmcid schema: {}: {e}", path.display());
                    return crate::exit::USAGE;
                }
                outln!("{}", path.display());
            }
            crate::exit::OK
        }
        _ => {
            eprintln!(
                "mmcid schema: name a command ({}) or give --out DIR",
                NAMES.join(", ")
            );
            crate::exit::USAGE
        }
    }
}
