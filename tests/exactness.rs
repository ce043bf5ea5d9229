//! Issue 9: the log's promise under repeated, late, oversized, truncated
//! and hostile input, tried as a user would, through the `leadflow` binary.

use std::path::Path;
use std::process::{Command, Output};

fn leadflow(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leadflow"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("LEADFLOW_CONFIG")
        .env_remove("LEADFLOW_DATA_DIR")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every `stats --json` table, by dimension.
fn all_stats(data: &Path) -> Vec<(String, serde_json::Value)> {
    [
        "channel",
        "campaign",
        "pool",
        "region",
        "industry",
        "company-size",
        "day",
        "owner",
        "pools",
    ]
    .iter()
    .map(|dim| {
        let out = ok(leadflow(data, &["stats", "--by", dim, "--json"]));
        (dim.to_string(), serde_json::from_str(&out).unwrap())
    })
    .collect()
}

#[test]
fn importing_a_realistic_file_twice_changes_no_number() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let data = dir.path().join("data");
    let file_arg = file.to_str().unwrap();
    ok(leadflow(
        &data,
        &[
            "simulate",
            "--out",
            file_arg,
            "--leads",
            "3000",
            "--seed",
            "9",
            "--bad-ratio",
            "0.05",
        ],
    ));
    ok(leadflow(&data, &["import", file_arg]));
    let before = all_stats(&data);
    let log_before = ok(leadflow(&data, &["inspect", "log"]));
    // The same file again, as a new source (as if re-published): every
    // record must now be a duplicate, whatever became of its first copy.
    ok(leadflow(&data, &["import", file_arg, "--source", "again"]));
    let after = all_stats(&data);
    for ((dim, b), (_, a)) in before.iter().zip(&after) {
        let rows = |v: &serde_json::Value| v["rows"].as_object().cloned().unwrap_or_default();
        let (b, a) = (rows(b), rows(a));
        let changed: Vec<String> = b
            .keys()
            .chain(a.keys())
            .filter(|k| b.get(*k) != a.get(*k))
            .map(|k| format!("{k}: {:?} -> {:?}", b.get(k), a.get(k)))
            .collect();
        assert!(
            changed.is_empty(),
            "stats --by {dim} changed after a second import:\n{}",
            changed.join("\n")
        );
    }
    let log_after = ok(leadflow(&data, &["inspect", "log"]));
    let events = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("events"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    assert_eq!(events(&log_before), events(&log_after), "{log_after}");
    assert!(log_after.contains("duplicate"), "{log_after}");
}
