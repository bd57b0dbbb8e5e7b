//! The JSON Schemas of `docs/schema/`: each is what `mmcid schema` generates from the Rust types
//! (regenerate with `cargo run -p mmcid -- schema --out docs/schema`, or run this test with
//! `MMCID_UPDATE_SCHEMAS=1`), and each command's `--json` output on a tiny configuration
//! validates against its schema.

use std::path::PathBuf;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema")
}

mod common;
use common::mmcid;

#[test]
fn committed_schemas_are_the_generated_ones() {
    let update = std::env::var_os("MMCID_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for name in mmcid::schema::NAMES {
        let generated = mmcid::schema::schema(name).expect("a known name");
        let path = schema_dir().join(format!("{name}.json"));
        if update {
            std::fs::create_dir_all(schema_dir()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale or missing: {stale:?}; the output types changed: bump their format_version if the \
         shape did, then regenerate with `cargo run -p mmcid -- schema --out docs/schema` (or \
         MMCID_UPDATE_SCHEMAS=1 cargo test -p mmcid --test schema)"
    );
}

#[test]
fn every_schema_file_is_named_and_a_valid_schema() {
    let mut files: Vec<String> = std::fs::read_dir(schema_dir())
        .expect("docs/schema exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    let mut names: Vec<String> = mmcid::schema::NAMES.iter().map(|n| format!("{n}.json")).collect();
    names.sort();
    assert_eq!(
        files, names,
        "docs/schema holds exactly one file per --json output"
    );
    for name in mmcid::schema::NAMES {
        let s: serde_json::Value = serde_json::from_str(&mmcid::schema::schema(name).unwrap()).unwrap();
        jsonschema::meta::validate(&s).unwrap_or_else(|e| panic!("{name}: not a valid schema: {e}"));
    }
}

/// Runs `args` (which include `--json`), expects exit status `code`, and validates the output
/// against the schema `name`; returns the output.
fn valid(name: &str, args: &[&str], code: i32) -> serde_json::Value {
    let (got, out, err) = mmcid(args);
    assert_eq!(got, code, "{args:?}: {err}");
    matches_schema(name, args, &out)
}

/// Validates the output `out` of `args` against the schema `name`; returns it.
fn matches_schema(name: &str, args: &[&str], out: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("{args:?}: not JSON: {e}\n{out}"));
    let schema: serde_json::Value = serde_json::from_str(&mmcid::schema::schema(name).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{args:?} does not match docs/schema/{name}.json:\n{}",
        errors.join("\n")
    );
    v
}

const TINY: [&str; 8] = ["--cpus", "2", "--threads", "2", "--forks", "1", "--exits", "0"];

#[test]
fn check_output_matches_its_schema_with_and_without_violations() {
    let with = |design: &'static str| {
        let mut a = vec!["check", "--json", "--design", design];
        a.extend(TINY);
        a
    };
    let v = valid("check", &with("6.19.1"), 1);
    assert_eq!(v["violations"][0]["kind"], "invariant");
    // no text in data fields: what went wrong, the bits' owners and every step's effects are
    // typed (format 4)
    let viol = &v["violations"][0];
    for gone in ["what", "state"] {
        assert!(viol.get(gone).is_none(), "{gone} is text");
    }
    assert!(viol["facts"].as_array().is_some_and(|f| !f.is_empty()), "{viol}");
    assert!(viol["facts"][0]["fact"].is_string(), "{viol}");
    assert!(
        viol["bits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["owners"].is_array())
    );
    let steps = viol["trace"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .all(|s| s.get("state").is_none() && s["snapshot"]["mms"].is_array())
    );
    assert!(
        steps
            .iter()
            .flat_map(|s| s["effect"].as_array().unwrap())
            .all(|e| e["kind"].is_string()),
        "{steps:?}"
    );
    assert_eq!(v["properties"][0]["kind"], "invariant");
    // the violating state, typed: T2 was forked and is not yet woken
    let tasks = v["violations"][0]["snapshot"]["tasks"].as_array().unwrap();
    assert!(
        tasks.iter().any(|t| t["task"] == 2 && t["state"] == "new"),
        "{tasks:?}"
    );
    valid("check", &with("7.0"), 0);
    // a cut search, and a stall
    let mut cut = with("7.0");
    cut.extend(["--max-depth", "2"]);
    let v = valid("check", &cut, 3);
    assert_eq!(v["cut"], "max_depth");
    let v = valid(
        "check",
        &[
            "check",
            "--json",
            "--design",
            "6.19.1",
            "--cpus",
            "3",
            "--threads",
            "2",
            "--forks",
            "2",
            "--exits",
            "0",
            "--liveness",
            "stalls",
            "--max-depth",
            "13",
        ],
        1,
    );
    assert!(
        v["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "stall")
    );
    let mut sr = vec!["check", "--json", "--engine", "stateright", "--design", "6.19.1"];
    sr.extend(TINY);
    let v = valid("check-stateright", &sr, 1);
    assert_eq!(v["engine"], "stateright");
    let mut dist = vec!["dist", "--json", "--design", "6.19.1"];
    dist.extend(TINY);
    dist.extend(["--", "-w", "2"]);
    let v = valid("dist", &dist, 1);
    assert_eq!(v["states_per_worker"].as_array().unwrap().len(), 2);
}

#[test]
fn replay_output_matches_its_schema() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kmodel/tests/scenarios/execveat-check-oob-clear-bit.scenario"
    );
    let v = valid("replay", &["replay", "--json", scenario], 1);
    assert!(!v["steps"].as_array().unwrap().is_empty());
}

#[test]
fn matrix_hunt_and_bench_outputs_match_their_schemas() {
    let v = valid(
        "matrix",
        &["matrix", "--json", "--designs", "6.3,7.0", "--max-states", "2000"],
        0,
    );
    assert_eq!(v["rows"].as_array().unwrap().len(), 2);
    // (property, cell) pairs are objects (format 4)
    assert_eq!(v["rows"][0]["cells"][0]["property"], "I1");
    assert_eq!(v["rows"][0]["cells"][0]["status"], "incomplete");
    let capped = &v["rows"][0]["capped"][0];
    assert!(
        capped["config"].is_string() && capped["states"].is_u64(),
        "{capped}"
    );
    let v = valid(
        "hunt",
        &[
            "hunt",
            "--json",
            "--design",
            "7.0",
            "--budget",
            "5m",
            "--max-configs",
            "40",
        ],
        1,
    );
    assert!(!v["findings"].as_array().unwrap().is_empty());
    let mut b = vec!["bench", "--json", "--workers", "1", "--design", "7.0"];
    b.extend(TINY);
    valid("bench", &b, 0);
    let v = valid("designs", &["designs", "--json"], 0);
    assert!(
        v["designs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "7.0")
    );
    let v = valid(
        "sim",
        &[
            "sim",
            "--json",
            "-q",
            "--cpus",
            "8",
            "--switches",
            "20000",
            "--design",
            "7.0,6.3",
        ],
        0,
    );
    assert_eq!(v["runs"].as_array().unwrap().len(), 2);
}

#[test]
fn sim_bench_output_matches_its_schema() {
    let v = valid(
        "sim-bench",
        &[
            "sim",
            "--bench",
            "--json",
            "-q",
            "--cpus",
            "4",
            "--switches",
            "20000",
            "--design",
            "7.0,6.3",
        ],
        0,
    );
    assert_eq!(v["runs"].as_array().unwrap().len(), 2);
    assert_eq!(v["loadavg"].as_array().unwrap().len(), 3);
}

/// `observe` and `sim --against-kernel` read the running kernel's `mm_cid` through rseq: where
/// the kernel or libc offers none (exit 2, saying so), there is nothing to validate and the test
/// says so on stderr; `bench-percid` runs on its thread-ID fallback everywhere.
#[test]
fn rseq_outputs_match_their_schemas_where_rseq_is_available() {
    let (code, _, err) = mmcid(&["observe", "--json", "--seconds", "0.1", "--threads", "2"]);
    if code == 2 && err.contains("rseq") {
        eprintln!("observe / sim --against-kernel: not validated, no rseq mm_cid here: {err}");
    } else {
        let v = valid(
            "observe",
            &["observe", "--json", "--seconds", "0.1", "--threads", "2"],
            0,
        );
        assert_eq!(v["threads"], 2);
        let args = [
            "sim",
            "--against-kernel",
            "--json",
            "--kernel-seconds",
            "0.2",
            "--kernel-threads",
            "2",
        ];
        let (code, out, err) = mmcid(&args);
        // 0: the distributions agree, 1: they do not (on a loaded machine they may not)
        assert!(code == 0 || code == 1, "{err}");
        let v = matches_schema("sim-against-kernel", &args, &out);
        assert_eq!(v["agree"], code == 0);
    }
    let v = valid(
        "bench-percid",
        &[
            "bench-percid",
            "--json",
            "--threads",
            "1",
            "--run-ms",
            "10",
            "--repeats",
            "1",
        ],
        0,
    );
    assert_eq!(v["threads"][0]["n"], 1);
}
