//! Issue 9 §5 on the real broker (`./scripts/test` starts it): a stored
//! position beyond a partition's end (the events topic was recreated) is a
//! loud stop with the way out, never a silent skip; `run --reset-positions`
//! reads the topic from its start, and events the log already holds come
//! back as duplicates, so nothing is counted twice.

mod common;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scenario.jsonl");

#[test]
fn a_position_beyond_the_topic_end_stops_the_engine_until_positions_are_reset() {
    let brokers = common::brokers();
    let run = common::run_id();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("pos-events-{run}");
    let config = dir.path().join("leadflow.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"pos-{run}\"\nevents_topic = \"{topic}\"\n\
             commands_topic = \"pos-commands-{run}\"\ndlq_topic = \"pos-dlq-{run}\"\npartitions = 1\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
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
    let line = |s: &str, name: &str| {
        s.lines()
            .find(|l| l.trim_start().starts_with(name))
            .map(str::to_string)
            .unwrap_or_default()
    };
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
