//! Issue 9 §4: a full disk is an error, not a hang. On a small tmpfs the
//! test mounts itself: import and replay stop within seconds with "disk
//! full" and a non-zero status, read commands still work (export is the
//! backup route), and once space is freed the import resumes exactly: the
//! final export is byte-identical to a clean run's. Skipped, with the
//! reason printed, where the machine cannot mount a tmpfs (not root).

mod common;

use common::Tmpfs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `leadflow` and fails the test if it has not ended within `limit`
/// (a hang is the defect this file is about). The log's free-space floor
/// is lowered to 1 MiB (the default, 64 MiB, is more than these small
/// disks hold), through a config file off the small disk.
fn leadflow_within(limit: Duration, data: &Path, args: &[&str]) -> Output {
    let config =
        std::env::temp_dir().join(format!("leadflow-disk-full-{}.toml", std::process::id()));
    std::fs::write(&config, "[log]\ndisk_free_bytes_min = 1048576\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadflow"))
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(&config)
        .args(args)
        .env_remove("LEADFLOW_CONFIG")
        .env_remove("LEADFLOW_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            let _ = std::fs::remove_file(&config);
            panic!(
                "leadflow {args:?} hung for {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    // The config file lives in the machine's temporary dir (off the small
    // disk): nothing of the test stays behind there.
    let _ = std::fs::remove_file(&config);
    out
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed_with_disk_full(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} succeeded on a full disk");
    assert!(err.contains("disk full"), "{what}: {err}");
}

#[test]
fn a_full_disk_stops_import_and_replay_clearly_reads_still_work_and_import_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let limit = Duration::from_secs(60);
    let events = dir.path().join("events.pb");
    let events_arg = events.to_str().unwrap();
    let scratch = dir.path().join("scratch");
    ok(
        leadflow_within(
            limit,
            &scratch,
            &[
                "simulate", "--out", events_arg, "--leads", "3000", "--seed", "4",
            ],
        ),
        "simulate",
    );
    let small = match Tmpfs::mount(&dir.path().join("small"), "4m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs here ({})", why.trim());
            return;
        }
    };
    let data = small.0.join("data");

    // Import: stops within the limit, says "disk full", non-zero status.
    let out = leadflow_within(limit, &data, &["import", events_arg]);
    failed_with_disk_full(&out, "import");

    // Read commands still work; what they see is what was acknowledged.
    let totals = ok(
        leadflow_within(limit, &data, &["inspect", "log"]),
        "inspect",
    );
    let events_line = totals.lines().find(|l| l.starts_with("events")).unwrap();
    let durable: u64 = events_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(durable > 0, "{totals}");
    let backup = dir.path().join("backup.jsonl");
    ok(
        leadflow_within(limit, &data, &["export", "--out", backup.to_str().unwrap()]),
        "export on a full disk",
    );
    let backed_up = std::fs::read_to_string(&backup).unwrap().lines().count() as u64;
    assert_eq!(backed_up, durable);
    ok(
        leadflow_within(limit, &data, &["stats", "--by", "pool", "--json"]),
        "stats on a full disk",
    );

    // Replay writes a snapshot: it stops clearly too.
    let out = leadflow_within(limit, &data, &["replay"]);
    failed_with_disk_full(&out, "replay");

    // Space is freed: the import resumes after the last durable batch, and
    // the result is the clean run's, byte for byte.
    small.resize("300m");
    ok(
        leadflow_within(limit, &data, &["import", events_arg]),
        "resumed import",
    );
    let resumed = dir.path().join("resumed.jsonl");
    ok(
        leadflow_within(
            limit,
            &data,
            &["export", "--out", resumed.to_str().unwrap()],
        ),
        "export",
    );
    let clean_data = dir.path().join("clean");
    ok(
        leadflow_within(limit, &clean_data, &["import", events_arg]),
        "clean import",
    );
    let clean = dir.path().join("clean.jsonl");
    ok(
        leadflow_within(
            limit,
            &clean_data,
            &["export", "--out", clean.to_str().unwrap()],
        ),
        "clean export",
    );
    assert!(
        std::fs::read(&resumed).unwrap() == std::fs::read(&clean).unwrap(),
        "the resumed log differs from a clean run's"
    );
}
