//! End to end on a real Kafka-protocol broker (tansu, started by
//! `./scripts/test`, address in `LEADFLOW_TEST_BROKERS`).
//!
//! A simulated workload with injected bad messages is published over four
//! partitions; `leadflow run` consumes it. The log must hold every valid
//! event exactly once, in each lead's order; projections must equal a full
//! replay; the dead-letter topic must hold exactly the injected bad messages
//! with their reasons and original bytes. A second run under a fresh
//! consumer group (which has no offsets of its own) resumes from the log's
//! positions and adds nothing.

use leadflow::codec::stream::{EventWriter, Format};
use leadflow::config::{Config, ProjectionConfig};
use leadflow::domain::LeadEvent;
use leadflow::log::{EventLog, LogOptions};
use leadflow::projector::Projections;
use leadflow::replay;
use leadflow::sim::{BadInput, SimConfig, SimItem, Simulator};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{brokers, leadflow, run_until_covered};

/// A config file with topics of their own for this test.
fn config(dir: &Path, name: &str) -> (std::path::PathBuf, Config) {
    let suffix = format!("{name}-{}", common::run_id());
    let text = format!(
        "[log]\nbatch_events_max = 500\nbatch_wait_ms_max = 20\n\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"g-{suffix}\"\n\
         events_topic = \"events-{suffix}\"\ncommands_topic = \"commands-{suffix}\"\ndlq_topic = \"dlq-{suffix}\"\npartitions = 4\n\
         [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n",
        brokers()
    );
    let policy = dir.join(format!("{name}-policy.toml"));
    std::fs::write(
        &policy,
        "version = 2\n[[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\n\
         members = [{ id = \"rep-a\", capacity = 100000 }, { id = \"rep-b\", capacity = 100000 }]\n",
    )
    .unwrap();
    // A shadow policy with deadline rules decides beside the live one.
    let shadow = dir.join(format!("{name}-shadow.toml"));
    std::fs::write(
        &shadow,
        "version = 3\n[rules]\nfirst_follow_up_sla_ms = 14400000\n[[pools]]\nname = \"smb\"\n\
         kind = \"auto_assign\"\nstrategy = \"least_loaded\"\n\
         members = [{ id = \"rep-a\", capacity = 100000 }, { id = \"rep-b\", capacity = 100000 }]\n",
    )
    .unwrap();
    let text = format!(
        "{text}\n[policy]\nfile = {:?}\nshadow_file = {:?}\n",
        policy.display().to_string(),
        shadow.display().to_string()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let config = Config::load(Some(&path)).unwrap();
    (path, config)
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Workload {
    valid: Vec<LeadEvent>,
    bad_by_reason: BTreeMap<String, u64>,
    bad_payloads: Vec<Vec<u8>>,
}

fn write_workload(path: &Path, leads: u64) -> Workload {
    let mut w = EventWriter::new(
        std::io::BufWriter::new(std::fs::File::create(path).unwrap()),
        Format::Protobuf,
    );
    let mut valid = Vec::new();
    let mut bad_by_reason = BTreeMap::new();
    let mut bad_payloads = Vec::new();
    for item in Simulator::new(SimConfig {
        seed: 5,
        leads,
        days: 20,
        bad_ratio: 0.01,
        ..SimConfig::default()
    }) {
        item.write_to(&mut w).unwrap();
        match item {
            SimItem::Event(e) => valid.push(e),
            SimItem::Bad {
                input,
                expected_reason,
            } => {
                *bad_by_reason
                    .entry(expected_reason.to_string())
                    .or_default() += 1;
                bad_payloads.push(match input {
                    BadInput::Garbage(b) => b,
                    BadInput::Invalid(e) => leadflow::codec::encode_event(&e),
                });
            }
        }
    }
    w.into_inner().flush().unwrap();
    Workload {
        valid,
        bad_by_reason,
        bad_payloads,
    }
}

fn by_lead(events: &[LeadEvent]) -> HashMap<String, Vec<LeadEvent>> {
    let mut m: HashMap<String, Vec<LeadEvent>> = HashMap::new();
    for e in events {
        m.entry(e.lead_id.clone()).or_default().push(e.clone());
    }
    m
}

/// SIGKILLs `leadflow run` at random moments while it consumes: each time
/// once it has appended its first batch (its `batch appended` debug line),
/// after a random 0-300 ms more.
fn kill_while_consuming(data: &Path, config: &Path, kills: usize) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(std::process::id()));
    for _ in 0..kills {
        let mut child = leadflow(data, config)
            .arg("run")
            .env("RUST_LOG", "leadflow::log=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("batch appended") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the engine appended nothing within 60 s");
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the engine exited on its own"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
    }
}

#[test]
fn sigkill_while_consuming_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (config_path, config) = config(dir.path(), "crash");
    let data = dir.path().join("data");
    let input = dir.path().join("events.pb");
    let workload = write_workload(&input, 5_000);
    let bad_total: u64 = workload.bad_by_reason.values().sum();
    let total = workload.valid.len() as u64 + bad_total;
    ok(leadflow(&data, &config_path).args(["topics", "create"]));
    ok(leadflow(&data, &config_path).arg("publish").arg(&input));

    kill_while_consuming(&data, &config_path, 6);
    {
        let log = EventLog::open(&data, &LogOptions::default()).unwrap();
        let durable = log.stats().unwrap();
        assert!(
            durable.events > 0,
            "the kills all landed before anything was durable"
        );
        assert!(
            durable.events + durable.rejected < total,
            "the kills all landed after the end"
        );
    }
    // The last run finishes the topic, resuming from the log's positions.
    run_until_covered(&data, &config_path, total, None);

    let log = EventLog::open(&data, &LogOptions::default()).unwrap();
    let stored: Vec<LeadEvent> = log.events_from(1).map(|r| r.unwrap().1).collect();
    assert_eq!(
        stored.len(),
        workload.valid.len(),
        "nothing lost, nothing twice"
    );
    assert_eq!(by_lead(&stored), by_lead(&workload.valid));
    assert_eq!(
        log.stats().unwrap().rejected_by_reason,
        workload.bad_by_reason
    );
    assert!(log.pending_dead_letters(10).unwrap().is_empty());
    drop(log);
    // Dead letters are at-least-once: every bad message is there, maybe twice.
    let dlq = leadflow::bus::tail::tail(
        &config.kafka,
        &config.kafka.dlq_topic,
        leadflow::bus::tail::Kind::Dlq,
        100_000,
        3_000,
    )
    .unwrap();
    let mut sources: Vec<(String, String)> = dlq
        .iter()
        .map(|m| {
            let h: HashMap<&str, &str> = m
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            (
                h["source_partition"].to_string(),
                h["source_offset"].to_string(),
            )
        })
        .collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len() as u64, bad_total);

    // Every command in the outbox reached the commands topic at least once,
    // with the id a replay of the log under the same policy gives it.
    let log = EventLog::open(&data, &LogOptions::default()).unwrap();
    let stored: Vec<leadflow::domain::LeadCommand> = log.commands().map(|c| c.unwrap().1).collect();
    assert!(!stored.is_empty(), "the policy decided nothing");
    assert!(log.pending_commands(10).unwrap().is_empty());
    let policy = leadflow::config::load_policy(config.policy.file.as_ref().unwrap()).unwrap();
    let mut again = leadflow::policy::Processor::new(policy);
    let replayed: Vec<leadflow::domain::LeadCommand> = log
        .events_from(1)
        .flat_map(|r| {
            let (seq, e) = r.unwrap();
            again.handle(seq, &e)
        })
        .collect();
    assert_eq!(
        stored, replayed,
        "the same log and policy decide the same commands"
    );
    drop(log);
    let topic = common::published_commands(&config.kafka);
    let published: std::collections::BTreeSet<String> = topic
        .iter()
        .map(|m| {
            let h: HashMap<&str, &str> = m
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(h["command_type"], "assign_lead");
            assert_eq!(m.body["commandId"].as_str(), Some(h["command_id"]));
            h["command_id"].to_string()
        })
        .collect();
    for c in &stored {
        assert!(
            published.contains(&c.command_id),
            "{} never published",
            c.command_id
        );
    }
    assert_eq!(
        published.len(),
        stored.len(),
        "nothing published that the log does not hold"
    );
}

#[test]
fn events_land_exactly_once_and_bad_ones_become_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let (config_path, config) = config(dir.path(), "e2e");
    let data = dir.path().join("data");
    let input = dir.path().join("events.pb");
    let workload = write_workload(&input, 9_000);
    let bad_total: u64 = workload.bad_by_reason.values().sum();
    let total = workload.valid.len() as u64 + bad_total;
    assert!(
        workload.valid.len() >= 100_000,
        "{} valid events",
        workload.valid.len()
    );
    assert!(bad_total >= 500);

    let topics = ok(leadflow(&data, &config_path).args(["topics", "create"]));
    assert_eq!(topics.matches("created").count(), 3, "{topics}");
    ok(leadflow(&data, &config_path).arg("publish").arg(&input));

    run_until_covered(&data, &config_path, total, None);

    let log = EventLog::open(&data, &LogOptions::default()).unwrap();
    let stored: Vec<LeadEvent> = log.events_from(1).map(|r| r.unwrap().1).collect();
    assert_eq!(
        stored.len(),
        workload.valid.len(),
        "every valid event exactly once"
    );
    // Kafka keeps order within a partition, and a lead's events share one.
    assert_eq!(by_lead(&stored), by_lead(&workload.valid));
    let stats = log.stats().unwrap();
    assert_eq!(stats.rejected_by_reason, workload.bad_by_reason);

    // The projections `run` saved equal a full replay.
    let (_, bytes) = log
        .load_snapshot(leadflow::projector::SNAPSHOT_NAME)
        .unwrap()
        .expect("run saves a snapshot");
    let saved = Projections::from_bytes(&bytes).unwrap();
    let rebuilt = replay::rebuild(&log, &ProjectionConfig::default(), None, &mut |_| {}).unwrap();
    assert_eq!(saved, rebuilt);
    drop(log);

    // The dead-letter topic holds exactly the bad messages, with reasons.
    let dlq = leadflow::bus::tail::tail(
        &config.kafka,
        &config.kafka.dlq_topic,
        leadflow::bus::tail::Kind::Dlq,
        100_000,
        3_000,
    )
    .unwrap();
    assert_eq!(dlq.len() as u64, bad_total);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for m in &dlq {
        let h: HashMap<&str, &str> = m
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        *reasons
            .entry(h["rejection_reason"].to_string())
            .or_default() += 1;
        assert_eq!(h["source_topic"], config.kafka.events_topic);
        assert!(h.contains_key("source_partition") && h.contains_key("source_offset"));
        assert!(!h["rejection_message"].is_empty());
    }
    assert_eq!(reasons, workload.bad_by_reason);
    let tail_json =
        ok(leadflow(&data, &config_path)
            .args(["tail", "--topic", "dlq", "--limit", "1", "--json"]));
    assert!(tail_json.contains("rejection_reason"), "{tail_json}");
    // Each dead letter carries the original bytes.
    let mut expected_payloads = workload.bad_payloads.clone();
    expected_payloads.sort();
    let mut got_payloads: Vec<Vec<u8>> = dlq.iter().map(|m| m.payload.clone()).collect();
    got_payloads.sort();
    assert_eq!(got_payloads, expected_payloads);

    // The shadow policy decided recalls that the live one (no deadline
    // rules) did not, and none of them was published.
    let log = EventLog::open(&data, &LogOptions::default()).unwrap();
    let shadow_recalls = log
        .shadow_commands()
        .filter(|c| c.as_ref().unwrap().body.type_name() == "recall_lead")
        .count();
    assert!(shadow_recalls > 0, "the shadow decided no recalls");
    assert!(log
        .commands()
        .all(|c| c.unwrap().1.body.type_name() == "assign_lead"));
    drop(log);
    let shadow_table = ok(leadflow(&data, &config_path).args(["inspect", "shadow"]));
    assert!(
        shadow_table.contains("recall_lead first-follow-up-sla"),
        "{shadow_table}"
    );
    let published = common::published_commands(&config.kafka);
    assert!(!published.is_empty());
    assert!(
        published.iter().all(|m| m.body.get("assign").is_some()),
        "only live commands are published"
    );

    // A fresh group has no committed offsets, but the log's positions say
    // where each partition resumes: nothing is consumed, appended or
    // dead-lettered twice.
    let fresh = format!("{}-fresh", config.kafka.group_id);
    let second = run_until_covered(&data, &config_path, total, Some(&fresh));
    assert!(
        second.contains("consumed 0, skipped 0 redelivered, accepted 0, rejected 0"),
        "{second}"
    );
    let log = EventLog::open(&data, &LogOptions::default()).unwrap();
    assert_eq!(log.stats().unwrap().events, workload.valid.len() as u64);
}
