//! Issue 9 §5 on the real broker (`./scripts/test` starts it): a stored
//! position beyond a partition's end (the events topic was recreated) is a
//! loud stop with the way out, never a silent skip; `run --reset-positions`
//! reads the topic from its start, and events the log already holds come
//! back as duplicates, so nothing is counted twice.

mod common;

use std::path::{Path, PathBuf};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scenario.jsonl");

/// A config for a one-partition events topic of this run's own, and where
/// its data dir goes.
fn setup(dir: &Path, name: &str) -> (String, PathBuf, PathBuf) {
    let brokers = common::brokers();
    let run = common::run_id();
    let topic = format!("{name}-events-{run}");
    let config = dir.join("leadflow.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{name}-{run}\"\nevents_topic = \"{topic}\"\n\
             commands_topic = \"{name}-commands-{run}\"\ndlq_topic = \"{name}-dlq-{run}\"\npartitions = 1\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n"
        ),
    )
    .unwrap();
    (topic, config, dir.join("data"))
}

/// The line of `inspect log` that starts with `name`.
fn line(inspected: &str, name: &str) -> String {
    inspected
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .map(str::to_string)
        .unwrap_or_default()
}

#[test]
fn a_position_beyond_the_topic_end_stops_the_engine_until_positions_are_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (topic, config, data) = setup(dir.path(), "pos");
    let leadflow = || common::leadflow(&data, &config);
    // Given a log that already holds the fixture, read (as far as the log
    // knows) from partition 0 of the events topic up to offset 19: what a
    // log looks like after its Kafka lost the topic.
    let imported = leadflow()
        .args(["import", FIXTURE, "--source"])
        .arg(format!("kafka:{topic}/0"))
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    // And the topic, recreated, holds fewer messages than that.
    assert!(leadflow()
        .args(["topics", "create"])
        .status()
        .unwrap()
        .success());
    let head = dir.path().join("head.jsonl");
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    let first_five: String = fixture.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::write(&head, first_five).unwrap();
    assert!(leadflow()
        .arg("publish")
        .arg(&head)
        .status()
        .unwrap()
        .success());

    // When the engine starts, then it stops with the way out.
    let (mut engine, log) = common::spawn_logged(leadflow().args(["run", "--duration-s", "60"]));
    let status = engine.wait().unwrap();
    let log = log.join().unwrap();
    assert!(!status.success(), "the engine ran on: {log}");
    assert!(
        log.contains("starts over below the log's position"),
        "{log}"
    );
    assert!(log.contains("--reset-positions"), "{log}");
    let before =
        String::from_utf8(leadflow().args(["inspect", "log"]).output().unwrap().stdout).unwrap();

    // When it is run with --reset-positions, then it reads the topic from
    // the start: the five events are duplicates, nothing new is appended.
    let (mut engine, log) =
        common::spawn_logged(leadflow().args(["run", "--reset-positions", "--duration-s", "15"]));
    let status = engine.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("forgot 1 stored positions"), "{log}");
    let after =
        String::from_utf8(leadflow().args(["inspect", "log"]).output().unwrap().stdout).unwrap();
    assert_eq!(line(&before, "events"), line(&after, "events"), "{after}");
    let dupes = |s: &str| -> u64 {
        line(s, "duplicate")
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(dupes(&after), dupes(&before) + 5, "{before}\n{after}");
    assert!(
        line(&after, &format!("kafka:{topic}/0")).ends_with(" 5"),
        "{after}"
    );
}

/// tansu 0.6 answers a fetch from inside a record batch with the batches
/// that start after it, so from inside a partition's last batch with
/// nothing: an engine killed there waited for ever at its restart, short
/// of the topic's end (seen as a flaky SIGKILL test). It must rewind and
/// read the rest, each event once.
#[test]
fn a_log_that_stopped_inside_the_last_record_batch_reads_the_rest_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let (topic, config, data) = setup(dir.path(), "inbatch");
    let leadflow = || common::leadflow(&data, &config);
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    let total = fixture.lines().count();
    assert!(total > 3, "the fixture has {total} events");
    let held = total - 2;
    // Given the fixture published in one go (one record batch: a few
    // small messages within the producer's linger), nothing before it.
    common::ok(leadflow().args(["topics", "create"]).output().unwrap());
    common::ok(leadflow().args(["publish", FIXTURE]).output().unwrap());
    // And a log that holds all but its last two, read from partition 0:
    // its position is inside the batch.
    let head = dir.path().join("head.jsonl");
    let first: String = fixture
        .lines()
        .take(held)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&head, first).unwrap();
    let imported = leadflow()
        .arg("import")
        .arg(&head)
        .arg("--source")
        .arg(format!("kafka:{topic}/0"))
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");

    // When the engine runs, then it covers the topic's end.
    let log = common::run_until_covered(&data, &config, total as u64, None);
    assert!(log.contains("rewinding"), "{log}");

    // And the log holds what importing the whole fixture gives, with no
    // duplicate: the events it held were skipped, the last two appended.
    let inspected =
        String::from_utf8(leadflow().args(["inspect", "log"]).output().unwrap().stdout).unwrap();
    let whole = dir.path().join("whole");
    let imported = common::leadflow(&whole, &config)
        .arg("import")
        .arg(FIXTURE)
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let expected = String::from_utf8(
        common::leadflow(&whole, &config)
            .args(["inspect", "log"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for name in ["events", "rejected", "duplicate"] {
        assert_eq!(line(&inspected, name), line(&expected, name), "{inspected}");
    }
    assert!(
        line(&inspected, &format!("kafka:{topic}/0")).ends_with(&format!(" {total}")),
        "{inspected}"
    );
}
