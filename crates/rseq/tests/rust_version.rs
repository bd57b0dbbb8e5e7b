//! The workspace's declared `rust-version` is the real minimum: at least what
//! our own code needs and at least the `rust-version` of every dependency in
//! the lock file (as `cargo metadata` reports them). Clippy's
//! `incompatible_msrv` lint (on in CI with `-D warnings`) separately flags
//! standard-library APIs newer than the declared version.

use std::process::Command;

/// Language features the workspace's own code relies on, with the release
/// that stabilised them.
const OWN_NEEDS: &[(&str, &str)] = &[
    ("asm! `label` operands (mmcid-rseq's critical sections)", "1.87"),
    ("`if let` chains (edition 2024)", "1.88"),
];

fn parse(v: &str) -> (u32, u32, u32) {
    let mut it = v
        .split('.')
        .map(|x| x.parse::<u32>().unwrap_or_else(|_| panic!("bad version {v:?}")));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// This platform's target triple, for `cargo metadata --filter-platform`
/// (other platforms' dependencies are not downloaded when offline).
fn host_triple() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let env = if cfg!(target_env = "musl") { "musl" } else { "gnu" };
    Some(format!("{}-unknown-linux-{env}", std::env::consts::ARCH))
}

#[test]
fn declared_rust_version_is_the_real_minimum() {
    let Some(triple) = host_triple() else {
        eprintln!("SKIP: only checked on Linux");
        return;
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--offline",
            "--filter-platform",
            &triple,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = meta["packages"].as_array().expect("packages");
    let declared = packages
        .iter()
        .find(|p| p["name"] == env!("CARGO_PKG_NAME"))
        .and_then(|p| p["rust_version"].as_str())
        .expect("mmcid-rseq declares a rust-version");
    assert_eq!(declared, env!("CARGO_PKG_RUST_VERSION"));
    for p in packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap_or("")))
    {
        assert_eq!(
            p["rust_version"].as_str(),
            Some(declared),
            "{} does not use the workspace rust-version",
            p["name"]
        );
    }
    let mut needs: Vec<(String, String)> = OWN_NEEDS
        .iter()
        .map(|(w, v)| (w.to_string(), v.to_string()))
        .collect();
    needs.extend(
        packages
            .iter()
            .filter(|p| !members.contains(&p["id"].as_str().unwrap_or("")))
            .filter_map(|p| {
                Some((
                    format!("{} {}", p["name"].as_str()?, p["version"].as_str()?),
                    p["rust_version"].as_str()?.to_string(),
                ))
            }),
    );
    let (why, max) = needs
        .iter()
        .max_by_key(|(_, v)| parse(v))
        .expect("at least our own needs");
    eprintln!("declared rust-version {declared}; the highest need is {max} ({why})");
    let too_new: Vec<&(String, String)> = needs.iter().filter(|(_, v)| parse(v) > parse(declared)).collect();
    assert!(
        too_new.is_empty(),
        "rust-version {declared} is below what these need: {too_new:?}"
    );
    assert_eq!(
        parse(declared),
        parse(max),
        "rust-version {declared} is above every need (highest: {max}, {why}): declare the real minimum"
    );
}
