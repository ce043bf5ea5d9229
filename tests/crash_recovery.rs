//! Kill-and-recover: a child `leadflow import` is SIGKILLed at random moments,
//! many times, and the log is reopened after each kill. Every batch whose
//! append returned (acknowledged on the child's stdout) must be there, no
//! batch may be half there, and no event may be there twice. After the
//! last restart runs to the end, the log equals one built without crashes.
//! Then `leadflow replay` is SIGKILLed mid-replay, again and again: the log
//! never changes and the numbers `stats` reports equal a clean run's.
//!
//! The kill counts come from `LEADFLOW_TEST_KILLS` (import kills; default
//! 150, plus a third as many replay kills): `scripts/soak` runs this with
//! 1,000+ and prints the lost and duplicated counts it ends with.

use leadflow::codec::stream::{EventReader, EventWriter, Format};
use leadflow::config::LogConfig;
use leadflow::domain::LeadEvent;
use leadflow::log::{EventLog, LogOptions, StoredRejection};
use leadflow::sim::{SimConfig, Simulator};
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BATCH: usize = 100;
const SOURCE: &str = "crash-test";

/// How many kills must land mid-import (`LEADFLOW_TEST_KILLS`, default 150).
fn kills_min() -> usize {
    std::env::var("LEADFLOW_TEST_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

fn write_input(path: &std::path::Path) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = EventWriter::new(std::io::BufWriter::new(file), Format::Protobuf);
    let sim = Simulator::new(SimConfig {
        seed: 9,
        leads: 5_000,
        days: 20,
        bad_ratio: 0.02,
        ..SimConfig::default()
    });
    for item in sim {
        item.write_to(&mut w).unwrap();
    }
    w.into_inner().flush().unwrap();
}

fn contents(log: &EventLog) -> (Vec<(u64, LeadEvent)>, Vec<StoredRejection>) {
    let events = log.events_from(1).map(Result::unwrap).collect();
    let rejections = log.rejections().map(Result::unwrap).collect();
    (events, rejections)
}

fn reference(input: &std::path::Path) -> (Vec<(u64, LeadEvent)>, Vec<StoredRejection>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path(), &LogOptions::default()).unwrap();
    let mut reader = EventReader::new(
        BufReader::new(std::fs::File::open(input).unwrap()),
        Format::Protobuf,
    );
    let config = LogConfig {
        batch_events_max: 1_000,
        ..LogConfig::default()
    };
    leadflow::import::import(&mut log, &mut reader, SOURCE, &config, &mut |_, _| {}).unwrap();
    contents(&log)
}

#[test]
fn sigkill_mid_import_and_mid_replay_loses_and_duplicates_nothing() {
    let kills_min = kills_min();
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("events.pb");
    write_input(&input);
    let (ref_events, ref_rejections) = reference(&input);
    let total = (ref_events.len() + ref_rejections.len()) as u64;
    assert!(total > 10_000, "input of {total} records");

    let config = work.path().join("leadflow.toml");
    std::fs::write(&config, format!("[log]\nbatch_events_max = {BATCH}\n")).unwrap();
    let data = work.path().join("data");
    let mut rng = rand::rngs::StdRng::seed_from_u64(std::process::id() as u64);
    let mut kills = 0;
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 4 * kills_min + 50, "import never finished");
        let mut child = Command::new(env!("CARGO_BIN_EXE_leadflow"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .args(["import", "--print-acks", "--source", SOURCE])
            .arg(&input)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(0u64));
        let reader = {
            let acked = acked.clone();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut parts = line.split_whitespace();
                    if parts.next() == Some("ack") {
                        let offset: u64 = parts.next().unwrap().parse().unwrap();
                        *acked.lock().unwrap() = offset;
                    }
                }
            })
        };
        let finished = if kills < kills_min {
            std::thread::sleep(Duration::from_millis(rng.gen_range(10..200)));
            match child.try_wait().unwrap() {
                Some(status) => {
                    assert!(status.success(), "import failed on its own: {status}");
                    true
                }
                None => {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    kills += 1;
                    false
                }
            }
        } else {
            let status = child.wait().unwrap();
            assert!(status.success(), "final import failed: {status}");
            true
        };
        reader.join().unwrap();
        let acked = *acked.lock().unwrap();

        let log = EventLog::open(&data, &LogOptions::default()).unwrap();
        let position = log.position(SOURCE).unwrap().unwrap_or(0);
        let (events, rejections) = contents(&log);
        // Every acknowledged batch is there.
        assert!(
            position >= acked,
            "acked {acked} but only {position} durable"
        );
        // No batch half there: the records before the stored position are
        // all accounted for, and nothing after it is.
        assert_eq!(
            events.len() + rejections.len(),
            position as usize,
            "run {runs}"
        );
        // Nothing twice, nothing out of place: the log is a prefix of the
        // uninterrupted one.
        assert_eq!(events[..], ref_events[..events.len()], "run {runs}");
        let reasons =
            |r: &[StoredRejection]| r.iter().map(|x| x.reason.clone()).collect::<Vec<_>>();
        assert_eq!(
            reasons(&rejections),
            reasons(&ref_rejections[..rejections.len()])
        );
        if runs % 25 == 0 {
            eprintln!("run {runs}: acked {acked}, durable {position} of {total}");
        }
        drop(log);
        if finished {
            assert_eq!(position, total);
            if kills >= kills_min {
                break;
            }
            // The import outran the kills: check passed, start over on a
            // fresh data dir until enough kills have landed mid-import.
            std::fs::remove_dir_all(&data).unwrap();
        }
    }
    assert!(kills >= kills_min, "only {kills} kills landed mid-import");
    let log = EventLog::open(&data, &LogOptions::default()).unwrap();
    let (events, rejections) = contents(&log);
    // What a soak run reports: every record once, none lost.
    let lost = ref_events.len().saturating_sub(events.len());
    let duplicated = events.len().saturating_sub(ref_events.len());
    eprintln!("import: {kills} kills in {runs} runs; lost {lost}, duplicated {duplicated}");
    assert_eq!(events, ref_events);
    assert_eq!(rejections.len(), ref_rejections.len());
    drop(log);

    // Replay, killed mid-fold or mid-snapshot again and again: the log never
    // changes, and the numbers equal a clean import's.
    let replay_kills = kills_min / 3;
    for kill in 0..replay_kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_leadflow"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .arg("replay")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..400)));
        let _ = child.kill();
        child.wait().unwrap();
        if kill % 10 == 0 {
            let log = EventLog::open(&data, &LogOptions::default()).unwrap();
            assert_eq!(
                contents(&log).0.len(),
                ref_events.len(),
                "replay kill {kill}"
            );
        }
    }
    let clean = work.path().join("clean");
    let leadflow = |dir: &std::path::Path, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_leadflow"))
            .arg("--data-dir")
            .arg(dir)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    leadflow(
        &clean,
        &["import", "--source", SOURCE, input.to_str().unwrap()],
    );
    for dim in ["channel", "owner", "pools", "day"] {
        let args = ["stats", "--by", dim, "--json"];
        assert_eq!(
            leadflow(&data, &args),
            leadflow(&clean, &args),
            "stats --by {dim} after {replay_kills} replay kills"
        );
    }
    eprintln!("replay: {replay_kills} kills; numbers equal a clean run's");
}
