//! Kill-and-recover: a child `leadflow import` is SIGKILLed at random moments,
//! many times, and the log is reopened after each kill. Every batch whose
//! append returned (acknowledged on the child's stdout) must be there, no
//! batch may be half there, and no event may be there twice. After the
//! last restart runs to the end, the log equals one built without crashes.

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
const KILLS_MIN: usize = 12;
const SOURCE: &str = "crash-test";

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
fn sigkill_mid_append_loses_and_duplicates_nothing() {
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
        assert!(runs < 200, "import never finished");
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
        let finished = if kills < KILLS_MIN {
            std::thread::sleep(Duration::from_millis(rng.gen_range(20..250)));
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
        eprintln!("run {runs}: acked {acked}, durable {position} of {total}");
        drop(log);
        if finished {
            assert_eq!(position, total);
            if kills >= KILLS_MIN {
                break;
            }
            // The import outran the kills: check passed, start over on a
            // fresh data dir until enough kills have landed mid-import.
            std::fs::remove_dir_all(&data).unwrap();
        }
    }
    assert!(kills >= KILLS_MIN, "only {kills} kills landed mid-import");
    let log = EventLog::open(&data, &LogOptions::default()).unwrap();
    let (events, rejections) = contents(&log);
    assert_eq!(events, ref_events);
    assert_eq!(rejections.len(), ref_rejections.len());
}
