//! `mmcid designs`: the designs the model knows.

use mmcid_cid::Switches;
use mmcid_kmodel::{DESIGNS, FamilyKind};
use serde::Serialize;

/// List the designs with a one-line description and the commits each stands for.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Version of `mmcid designs --json` (2: an object with a version around the list).
pub const FORMAT_VERSION: u32 = 2;

/// `mmcid designs --json` (schema: `docs/schema/designs.json`).
#[derive(Serialize, schemars::JsonSchema)]
pub struct DesignList {
    /// JSON format version.
    pub format_version: u32,
    /// Every design, in the order `--design` lists them.
    pub designs: Vec<DesignEntry>,
}

/// One design.
#[derive(Serialize, schemars::JsonSchema)]
pub struct DesignEntry {
    /// The name `--design` takes.
    pub name: &'static str,
    /// One line: what it is.
    pub summary: &'static str,
    /// The commits it stands for.
    pub commits: &'static str,
    /// Which CID code runs.
    pub family: FamilyKind,
    /// The switch settings on the 7.0 code (the `Rewrite` family only).
    pub switches: Option<Switches>,
}

/// The designs as `--json` prints them.
pub fn list() -> DesignList {
    DesignList {
        format_version: FORMAT_VERSION,
        designs: DESIGNS
            .iter()
            .map(|d| DesignEntry {
                name: d.name,
                summary: d.summary,
                commits: d.commits,
                family: d.family,
                switches: (d.family == FamilyKind::Rewrite).then_some(d.switches),
            })
            .collect(),
    }
}

/// Runs `mmcid designs`.
pub fn run(a: &Args) -> i32 {
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&list()).expect("json"));
    } else {
        let w = DESIGNS.iter().map(|d| d.name.len()).max().unwrap_or(0) + 1;
        for d in DESIGNS {
            outln!("{:<w$} {}\n{:<w$} commits: {}", d.name, d.summary, "", d.commits);
        }
    }
    crate::exit::OK
}
