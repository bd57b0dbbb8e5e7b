//! The traces in the finding reports (`docs/findings/*.md`) are the tool's own output, kept
//! current: every fenced block announced by a `<!-- mmcid ARGS -->` line is compared with what
//! `mmcid ARGS` prints now (run from the workspace root). When the model, a design or the
//! renderer changes a trace, this test fails with a diff and the command that refreshes the
//! reports:
//!
//! ```sh
//! MMCID_BLESS=1 cargo test -p mmcid --test findings_docs
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

const BLESS: &str = "MMCID_BLESS=1 cargo test -p mmcid --test findings_docs";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Trailing blanks stripped from every line (the CPU columns are padded; editors strip them),
/// trailing empty lines dropped.
fn normalise(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// What `mmcid ARGS` prints, from the workspace root.
fn run(args: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_mmcid"))
        .args(args.split_whitespace())
        .current_dir(root())
        .output()
        .expect("mmcid runs");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "`mmcid {args}` exited {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    normalise(&String::from_utf8_lossy(&out.stdout))
}

/// A line diff (longest common subsequence), `-` for the report, `+` for the tool.
fn diff(old: &[String], new: &[String]) -> String {
    let (n, m) = (old.len(), new.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+{}\n", new[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{}\n", old[i]));
            i += 1;
        }
    }
    out
}

/// One announced block: the command, and the line range of its body in the file.
struct Block {
    args: String,
    body: std::ops::Range<usize>,
}

fn blocks(lines: &[&str], file: &Path) -> Vec<Block> {
    let mut out = Vec::new();
    let mut k = 0;
    while k < lines.len() {
        let l = lines[k].trim();
        if let Some(args) = l.strip_prefix("<!-- mmcid ").and_then(|x| x.strip_suffix("-->")) {
            assert!(
                lines
                    .get(k + 1)
                    .is_some_and(|f| f.trim_start().starts_with("```")),
                "{}:{}: `<!-- mmcid ... -->` must be followed by a fenced block",
                file.display(),
                k + 1
            );
            let start = k + 2;
            let end = (start..lines.len())
                .find(|&e| lines[e].trim_start().starts_with("```"))
                .unwrap_or_else(|| panic!("{}:{}: unterminated block", file.display(), k + 2));
            out.push(Block {
                args: args.trim().to_string(),
                body: start..end,
            });
            k = end + 1;
        } else {
            k += 1;
        }
    }
    out
}

#[test]
fn every_report_trace_is_what_the_tool_prints_now() {
    let dir = root().join("docs/findings");
    let mut reports: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("docs/findings exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    reports.sort();
    assert!(reports.len() >= 5, "expected the five reports, found {reports:?}");
    let bless = std::env::var_os("MMCID_BLESS").is_some();
    let mut stale = Vec::new();
    for path in &reports {
        let text = std::fs::read_to_string(path).expect("readable");
        let lines: Vec<&str> = text.lines().collect();
        let found = blocks(&lines, path);
        assert!(
            !found.is_empty(),
            "{}: no `<!-- mmcid ... -->` trace block",
            path.display()
        );
        let mut rewritten: Vec<String> = Vec::new();
        let mut at = 0;
        for b in &found {
            let want = run(&b.args);
            let have = normalise(&lines[b.body.clone()].join("\n"));
            if have != want {
                stale.push(format!(
                    "{} (`mmcid {}`):\n{}",
                    path.display(),
                    b.args,
                    diff(&have, &want)
                ));
            }
            rewritten.extend(lines[at..b.body.start].iter().map(|l| l.to_string()));
            rewritten.extend(want);
            at = b.body.end;
        }
        rewritten.extend(lines[at..].iter().map(|l| l.to_string()));
        if bless {
            std::fs::write(path, rewritten.join("\n") + "\n").expect("writable");
        }
    }
    if !bless {
        assert!(
            stale.is_empty(),
            "report traces differ from the tool's output (- report, + tool):\n\n{}\nrefresh: {BLESS}",
            stale.join("\n")
        );
    }
}
