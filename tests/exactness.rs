//! Issue 9: the log's promise under repeated, late, oversized, truncated
//! and hostile input, tried as a user would, through the `leadflow` binary.

mod common;

use common::{leadflow_at as leadflow, ok};
use std::path::Path;
use std::process::{Command, Output};

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

/// Runs `leadflow` and returns its output with its peak resident memory
/// in KiB (from the kernel's accounting of that one child).
// The child is reaped by `wait4`, which also returns its own rusage.
#[allow(clippy::zombie_processes)]
fn leadflow_peak_kib(data: &Path, args: &[&str]) -> (Output, u64) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadflow"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("LEADFLOW_CONFIG")
        .env_remove("LEADFLOW_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    let mut status = 0;
    // SAFETY: wait4 on our own child's pid with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let output = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: out,
        stderr: err,
    };
    (output, usage.ru_maxrss as u64)
}

/// `(events, rejected)` from `inspect log`.
fn totals(data: &Path) -> (u64, u64) {
    let text = ok(leadflow(data, &["inspect", "log"]));
    let number = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    (number("events"), number("rejected"))
}

#[test]
fn a_protobuf_file_cut_short_appends_every_whole_record_and_fails_naming_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.pb");
    let data = dir.path().join("data");
    let file_arg = file.to_str().unwrap();
    let summary = ok(leadflow(
        &data,
        &[
            "simulate", "--out", file_arg, "--leads", "300", "--seed", "3",
        ],
    ));
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 7]).unwrap();
    let records = {
        // Count the whole records: everything but the cut last one.
        let mut r = leadflow::codec::stream::EventReader::new(
            &bytes[..],
            leadflow::codec::stream::Format::Protobuf,
        );
        let mut n = 0u64;
        while r.next_record().unwrap().is_some() {
            n += 1;
        }
        n
    };
    assert!(records > 1000, "{summary}");
    for run in 0..2 {
        let out = leadflow(&data, &["import", file_arg]);
        assert!(!out.status.success(), "run {run} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(file_arg), "names the file: {err}");
        assert!(err.contains("byte "), "names the offset: {err}");
        assert_eq!(
            err.matches("ends inside a record").count(),
            1,
            "the cause once: {err}"
        );
        // Every whole record is appended or rejected, the broken tail is
        // one undecodable rejection, and the rerun adds nothing.
        let (events, rejected) = totals(&data);
        assert_eq!(events + rejected, records, "run {run}");
    }
    let undecodable = ok(leadflow(
        &data,
        &["inspect", "rejections", "--reason", "undecodable"],
    ));
    assert_eq!(undecodable.lines().count(), 1, "{undecodable}");
}

#[test]
fn an_oversize_jsonl_line_is_rejected_with_a_prefix_and_memory_stays_flat() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let data = dir.path().join("data");
    let good = |id: &str, lead: &str| {
        format!(
            r#"{{"eventId":"{id}","leadId":"{lead}","occurredAtMs":"1793577600000","producer":"mkt","created":{{"channel":"web","campaign":"c","pool":"smb","acquisitionCost":{{"minorUnits":"1000","currency":"CNY"}}}}}}"#
        )
    };
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(f, "{}", good("e1", "L1")).unwrap();
        // A 200 MB line: a JSON string that never ends within the limit.
        f.write_all(b"{\"eventId\":\"huge\",\"producer\":\"")
            .unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..200 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\"}\n").unwrap();
        writeln!(f, "{}", good("e2", "L2")).unwrap();
    }
    let (out, peak_kib) = leadflow_peak_kib(&data, &["import", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(totals(&data), (2, 1));
    let rejected = ok(leadflow(
        &data,
        &["inspect", "rejections", "--reason", "record_too_large"],
    ));
    assert_eq!(rejected.lines().count(), 1, "{rejected}");
    assert!(rejected.contains("at byte "), "{rejected}");
    // The line was never held: the import's peak stays far below its size.
    assert!(
        peak_kib < 120 * 1024,
        "import peaked at {peak_kib} KiB for a 200 MB line"
    );
    let (out, inspect_kib) = leadflow_peak_kib(&data, &["inspect", "rejections", "--limit", "10"]);
    assert!(out.status.success());
    assert!(
        inspect_kib < 120 * 1024,
        "inspect peaked at {inspect_kib} KiB"
    );
}

/// A small imported log to read from.
fn small_log(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("events.pb");
    let data = dir.join("data");
    let file_arg = file.to_str().unwrap();
    ok(leadflow(
        &data,
        &[
            "simulate", "--out", file_arg, "--leads", "200", "--seed", "5",
        ],
    ));
    ok(leadflow(&data, &["import", file_arg]));
    data
}

#[test]
fn read_commands_on_a_missing_data_dir_fail_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for data in [dir.path().join("mistyped"), empty.clone()] {
        for args in [
            &["stats", "--by", "pool"][..],
            &["inspect", "log"],
            &["inspect", "lead", "L1"],
            &["replay"],
            &["export"],
        ] {
            let out = leadflow(&data, args);
            assert!(!out.status.success(), "{args:?} on {}", data.display());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!("no log at {}", data.display())),
                "{args:?}: {err}"
            );
            assert!(out.stdout.is_empty(), "{args:?} printed an answer");
        }
    }
    assert!(!dir.path().join("mistyped").exists(), "created a data dir");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn stats_refuses_a_time_of_day_instead_of_rounding_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_log(dir.path());
    let out = leadflow(
        &data,
        &["stats", "--by", "pools", "--from", "2026-11-20T09:00:00Z"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a UTC midnight"), "{err}");
    ok(leadflow(
        &data,
        &[
            "stats",
            "--by",
            "pools",
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-21T00:00:00Z",
        ],
    ));
}

#[test]
fn output_to_a_closed_pipe_ends_quietly_with_status_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_log(dir.path());
    for args in [
        &["stats", "--by", "owner", "--json"][..],
        &["stats", "--by", "day"],
        &["export"],
        &["inspect", "rejections"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_leadflow"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env_remove("LEADFLOW_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before a byte is read (as `| head -0` would).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {} {err}", out.status);
        assert!(err.is_empty(), "{args:?} printed: {err}");
    }
}

#[test]
fn logs_carry_no_colour_off_a_terminal_and_come_as_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_log(dir.path());
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_leadflow"))
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
            .args(["inspect", "log"])
            .env("RUST_LOG", "info")
            .env_remove("LEADFLOW_CONFIG")
            .env_remove("LEADFLOW_LOG_FORMAT")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let text = run(&[]);
    assert!(text.contains("event log opened"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes off a terminal: {text}"
    );
    let json = run(&["--log-format", "json"]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["fields"]["message"] == "event log opened"));
}

#[test]
fn the_demo_keeps_its_log_in_the_named_data_dir_and_refuses_a_used_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-log");
    ok(leadflow(&data, &["demo", "--offline", "--leads", "100"]));
    let (events, _) = totals(&data);
    assert!(events > 0);
    let again = leadflow(&data, &["demo", "--offline", "--leads", "100"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds one"));
}

#[test]
fn publish_and_topics_create_on_a_dead_broker_end_with_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dead.toml");
    // Port 1 on loopback: nothing listens there.
    std::fs::write(
        &config,
        "[kafka]\nbrokers = \"127.0.0.1:1\"\nstartup_timeout_ms = 2000\n",
    )
    .unwrap();
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, "{}\n").unwrap();
    for args in [
        vec!["publish", file.to_str().unwrap()],
        vec!["topics", "create"],
    ] {
        let started = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_leadflow"))
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env_remove("LEADFLOW_DATA_DIR")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert!(
            err.contains("no Kafka broker reachable at 127.0.0.1:1"),
            "{args:?}: {err}"
        );
        assert!(err.lines().count() <= 3, "{args:?} repeated itself: {err}");
    }
}

/// One bad-input case: a file the test writes, and what importing it must
/// give.
struct BadCase {
    name: &'static str,
    file_name: &'static str,
    bytes: Vec<u8>,
    /// Whether the import ends with status 0 (a file cut short does not).
    succeeds: bool,
    /// A rejection reason that must be among the rejections, if any.
    reason: Option<&'static str>,
}

const CREATED: &str = r#""created":{"channel":"web","campaign":"c","pool":"smb","acquisitionCost":{"minorUnits":"1000","currency":"CNY"}}"#;

fn created_line(id: &str, lead: &str, at: &str) -> String {
    format!(
        r#"{{"eventId":"{id}","leadId":"{lead}","occurredAtMs":"{at}","producer":"t",{CREATED}}}"#
    )
}

fn bad_cases() -> Vec<BadCase> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let random: Vec<u8> = (0..256 * 1024).map(|_| rng.gen()).collect();
    let good = created_line("g1", "G", "1793577600000");
    let jsonl = |lines: &[String]| -> Vec<u8> { lines.join("\n").into_bytes() };
    let mut invalid_utf8 = format!("{good}\n").into_bytes();
    invalid_utf8.extend_from_slice(b"{\"eventId\":\"\xff\xfe\"}\n");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut one_lead = vec![created_line("c0", "HOT", "1793577600000")];
    for i in 0..200_000u64 {
        one_lead.push(format!(
            r#"{{"eventId":"s{i}","leadId":"HOT","occurredAtMs":"{}","producer":"t","scored":{{"score":50,"modelVersion":"m"}}}}"#,
            1_793_577_600_000u64 + i
        ));
    }
    vec![
        BadCase {
            name: "random bytes read as protobuf",
            file_name: "random.pb",
            bytes: random.clone(),
            succeeds: false,
            reason: Some("undecodable"),
        },
        BadCase {
            name: "random bytes read as JSONL",
            file_name: "random.jsonl",
            bytes: random,
            succeeds: true,
            reason: Some("undecodable"),
        },
        BadCase {
            name: "invalid UTF-8",
            file_name: "utf8.jsonl",
            bytes: invalid_utf8,
            succeeds: true,
            reason: Some("undecodable"),
        },
        BadCase {
            name: "deep JSON",
            file_name: "deep.jsonl",
            bytes: jsonl(&[good.clone(), deep]),
            succeeds: true,
            reason: Some("undecodable"),
        },
        BadCase {
            name: "extreme numbers and times",
            file_name: "extreme.jsonl",
            bytes: jsonl(&[
                created_line("t1", "A", "9223372036854775807"),
                created_line("t2", "B", "-9223372036854775808"),
                created_line("t3", "C", "-1"),
                created_line("t4", "D", "1e400"),
                created_line("t5", "E", "99999999999999999999999"),
                good.replace("\"1000\"", "\"9223372036854775807\"").replace("g1", "m1"),
            ]),
            succeeds: true,
            reason: Some("invalid_field"),
        },
        BadCase {
            name: "unknown enum values",
            file_name: "enum.jsonl",
            bytes: jsonl(&[
                good.clone(),
                r#"{"eventId":"u1","leadId":"G","occurredAtMs":"1793577700000","producer":"t","assigned":{"ownerId":"r","method":"ASSIGNMENT_METHOD_TELEPATHY"}}"#.to_string(),
                r#"{"eventId":"u2","leadId":"G","occurredAtMs":"1793577700000","producer":"t","assigned":{"ownerId":"r","method":99}}"#.to_string(),
            ]),
            succeeds: true,
            reason: None,
        },
        BadCase {
            name: "two oneof members",
            file_name: "oneof.jsonl",
            bytes: jsonl(&[format!(
                r#"{{"eventId":"o1","leadId":"O","occurredAtMs":"1793577600000","producer":"t",{CREATED},"scored":{{"score":5}}}}"#
            )]),
            succeeds: true,
            reason: Some("undecodable"),
        },
        BadCase {
            name: "one lead with 200k events",
            file_name: "one-lead.jsonl",
            bytes: jsonl(&one_lead),
            succeeds: true,
            reason: None,
        },
    ]
}

#[test]
fn bad_input_is_accounted_for_without_panics_in_bounded_memory() {
    for case in bad_cases() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(case.file_name);
        std::fs::write(&file, &case.bytes).unwrap();
        let data = dir.path().join("data");
        let (out, peak_kib) = leadflow_peak_kib(&data, &["import", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        let name = case.name;
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(out.status.success(), case.succeeds, "{name}: {err}");
        if !case.succeeds {
            assert!(
                err.contains(case.file_name) && err.contains("byte "),
                "{name}: {err}"
            );
        }
        assert!(
            peak_kib < 400 * 1024,
            "{name}: import peaked at {peak_kib} KiB"
        );
        // Every record read is accounted for: the stored position counts
        // the records read, and each is an event or a rejection.
        let text = ok(leadflow(&data, &["inspect", "log"]));
        let (events, rejected) = totals(&data);
        let read: u64 = text
            .lines()
            .find(|l| l.trim_start().starts_with("file:"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no position in {text}"));
        assert_eq!(events + rejected, read, "{name}: {text}");
        if let Some(reason) = case.reason {
            let rejections = ok(leadflow(
                &data,
                &["inspect", "rejections", "--reason", reason, "--limit", "3"],
            ));
            // What (the reason) and where (source@record).
            assert!(rejections.contains(reason), "{name}: {rejections}");
            assert!(
                rejections.contains(&format!("{}@", case.file_name)),
                "{name}: {rejections}"
            );
        }
    }
}

#[test]
fn an_error_prints_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[log]\nbatch_events_max = \"x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_leadflow"))
        .arg("--config")
        .arg(&config)
        .args(["inspect", "log"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.toml"), "{err}");
    assert_eq!(err.matches("expected usize").count(), 1, "{err}");
}
