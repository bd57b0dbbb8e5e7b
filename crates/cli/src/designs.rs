//! `mmcid designs`: the designs the model knows.

use mmcid_kmodel::DESIGNS;

/// List the designs with a one-line description and the commits each stands for.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `mmcid designs`.
pub fn run(a: &Args) -> i32 {
    if a.json {
        let v: Vec<_> = DESIGNS
            .iter()
            .map(|d| {
                let family = format!("{:?}", d.family);
                let switches = (d.family == mmcid_kmodel::FamilyKind::Rewrite).then_some(d.switches);
                serde_json::json!({"name": d.name, "summary": d.summary, "commits": d.commits, "family": family, "switches": switches})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        let w = DESIGNS.iter().map(|d| d.name.len()).max().unwrap_or(0) + 1;
        for d in DESIGNS {
            println!("{:<w$} {}\n{:<w$} commits: {}", d.name, d.summary, "", d.commits);
        }
    }
    crate::exit::OK
}
