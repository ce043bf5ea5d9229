//! Fault injection with librdkafka's `MockCluster` (the one place, besides
//! the embedded demo, where a mock broker is the right tool: a real broker
//! cannot be told to fail requests on cue).
//!
//! The engine consumes half of a workload; then the broker goes down for
//! three seconds; when it is back, fetches, produces (commands, dead
//! letters) and offset commits fail for a while with retriable errors while
//! the second half arrives. The engine must retry, recover and lose or
//! duplicate nothing: the log holds every valid event exactly once, every
//! bad one is rejected once, and every command reaches the commands topic.

mod common;

use leadflow::config::Config;
use leadflow::domain::LeadEvent;
use leadflow::log::{EventLog, LogOptions};
use leadflow::policy::{Policies, PolicyFile};
use leadflow::shutdown::Shutdown;
use leadflow::sim::{SimConfig, SimItem, Simulator};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLICY: &str = "version = 1\n[[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\n\
    members = [{ id = \"rep-a\", capacity = 1000000 }, { id = \"rep-b\", capacity = 1000000 }]\n";

use common::{publish, wait_for, write};

#[test]
fn the_engine_retries_through_a_broker_outage_and_request_errors_and_loses_nothing() {
    let mock = MockCluster::new(1).unwrap();
    let mut config = Config::default();
    config.kafka.brokers = mock.bootstrap_servers();
    config.kafka.group_id = "fault-test".into();
    config.log.batch_events_max = 500;
    for topic in [
        &config.kafka.events_topic,
        &config.kafka.commands_topic,
        &config.kafka.dlq_topic,
    ] {
        mock.create_topic(topic, 4, 1).unwrap();
    }

    let items: Vec<SimItem> = Simulator::new(SimConfig {
        seed: 11,
        leads: 2_000,
        days: 10,
        bad_ratio: 0.01,
        ..SimConfig::default()
    })
    .collect();
    let valid: Vec<LeadEvent> = items
        .iter()
        .filter_map(|i| match i {
            SimItem::Event(e) => Some(e.clone()),
            SimItem::Bad { .. } => None,
        })
        .collect();
    let mut bad_by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for i in &items {
        if let SimItem::Bad {
            expected_reason, ..
        } = i
        {
            *bad_by_reason
                .entry(expected_reason.to_string())
                .or_default() += 1;
        }
    }
    let half = items.len() / 2;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first.pb"), dir.path().join("second.pb"));
    write(&first, &items[..half]);
    write(&second, &items[half..]);
    publish(&config, &first);

    // Fetches fail before the engine has read anything.
    mock.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 3],
    );
    let log = EventLog::open(
        &dir.path().join("data"),
        &LogOptions {
            dead_letter_outbox: true,
            ..LogOptions::default()
        },
    )
    .unwrap();
    let shutdown = Shutdown::new();
    let covered = Arc::new(AtomicU64::new(0));
    let (engine, handle) = common::spawn_engine(
        &config,
        log,
        Some(Policies::new(PolicyFile::parse(POLICY).unwrap())),
        &shutdown,
        covered.clone(),
    );
    wait_for(&covered, half as u64, "first half");

    // The second half starts to arrive, and the broker goes away for three
    // seconds while it does (the publisher's idempotent producer retries
    // too), ...
    let publisher = {
        let config = config.clone();
        std::thread::spawn(move || publish(&config, &second))
    };
    std::thread::sleep(Duration::from_millis(300));
    mock.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    mock.broker_up(1).unwrap();

    // ... and when it is back it is flaky: fetches, produces and commits
    // fail for a while.
    mock.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 5],
    );
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 5],
    );
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 5],
    );
    publisher.join().unwrap();
    wait_for(&covered, items.len() as u64, "second half");
    // Let the dispatchers publish every command decided (the outbox is
    // empty), then stop.
    wait_until_published(&handle);
    drop(handle);
    shutdown.trigger();
    let done = engine
        .join()
        .unwrap()
        .expect("the engine survives the faults");

    let stored: Vec<LeadEvent> = done
        .whole()
        .log
        .events_from(1)
        .map(|r| r.unwrap().1)
        .collect();
    assert_eq!(stored.len(), valid.len(), "nothing lost, nothing twice");
    let by_lead = |events: &[LeadEvent]| {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for e in events {
            m.entry(e.lead_id.clone())
                .or_default()
                .push(e.event_id.clone());
        }
        m
    };
    assert_eq!(by_lead(&stored), by_lead(&valid), "each lead in order");
    assert_eq!(
        done.whole().log.stats().unwrap().rejected_by_reason,
        bad_by_reason
    );
    assert!(done
        .whole()
        .log
        .pending_dead_letters(10)
        .unwrap()
        .is_empty());
    assert!(done.whole().log.pending_commands(10).unwrap().is_empty());
    let commands: Vec<String> = done
        .whole()
        .log
        .commands()
        .map(|c| c.unwrap().1.command_id)
        .collect();
    assert!(!commands.is_empty());
    assert_eq!(done.stats.commands_decided, commands.len() as u64);

    // The tail stops after 3 s without a message; right after the broker's
    // flap a fetch can stall that long, so a short read is read again (a
    // command really missing fails after every attempt).
    assert_every_command_on_the_topic(&config, &commands, 5);
}

/// Reads the commands topic back (up to `attempts` times) until it holds
/// every one of `commands`. On failure, says what was read of each
/// partition beside the partition's offsets on the broker, so that a
/// delivery that went missing can be told from a read-back that stopped
/// short.
fn assert_every_command_on_the_topic(config: &Config, commands: &[String], attempts: u32) {
    let mut read = Vec::new();
    for _ in 0..attempts {
        read = common::published_commands(&config.kafka);
        let published: std::collections::BTreeSet<&str> = read
            .iter()
            .map(|m| m.body["commandId"].as_str().unwrap())
            .collect();
        if commands.iter().all(|id| published.contains(id.as_str())) {
            return;
        }
    }
    let published: std::collections::BTreeSet<&str> = read
        .iter()
        .map(|m| m.body["commandId"].as_str().unwrap())
        .collect();
    let missing: Vec<&String> = commands
        .iter()
        .filter(|id| !published.contains(id.as_str()))
        .collect();
    let mut read_by_partition: BTreeMap<i32, (usize, i64)> = BTreeMap::new();
    for m in &read {
        let (n, last) = read_by_partition.entry(m.partition).or_insert((0, -1));
        *n += 1;
        *last = (*last).max(m.offset);
    }
    panic!(
        "{} of {} commands never reached the topic (first: {}); read back per \
         partition (messages, last offset): {read_by_partition:?}; on the broker \
         (low, high): {:?}",
        missing.len(),
        commands.len(),
        missing[0],
        watermarks(config),
    );
}

/// Each partition of the commands topic with its low and high offsets.
fn watermarks(config: &Config) -> BTreeMap<i32, Result<(i64, i64), String>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = match rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .create()
    {
        Ok(c) => c,
        Err(e) => return BTreeMap::from([(-1, Err(e.to_string()))]),
    };
    let topic = &config.kafka.commands_topic;
    let partitions = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .map(|m| {
            m.topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    partitions
        .into_iter()
        .map(|p| {
            let w = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .map_err(|e| e.to_string());
            (p, w)
        })
        .collect()
}

/// Waits until the engine's outbox is empty: every command decided was
/// acknowledged by the broker.
fn wait_until_published(handle: &leadflow::control::Handle) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, pending) = handle.with_log(|l| l.command_counts()).unwrap().unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} commands never published"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `command_id`s on the commands topic.
fn published_command_ids(config: &Config) -> std::collections::BTreeSet<String> {
    common::published_commands(&config.kafka)
        .into_iter()
        .map(|m| m.body["commandId"].as_str().unwrap().to_string())
        .collect()
}

fn assign_command(id: &str) -> leadflow::domain::LeadCommand {
    leadflow::domain::LeadCommand {
        command_id: id.to_string(),
        lead_id: format!("lead-{id}"),
        issued_at_ms: 1,
        causation_event_id: String::new(),
        rule_id: "rr".into(),
        rule_version: 1,
        explanation: String::new(),
        facts: Default::default(),
        tenant_id: String::new(),
        body: leadflow::domain::CommandBody::AssignLead {
            owner_id: "rep-1".into(),
            pool: "general".into(),
        },
    }
}

/// The dispatcher does not wait for acks in the ingest loop, so a failed
/// delivery must come back by itself: with the broker down past the
/// producer's message timeout every delivery fails, the outbox keeps all of
/// them, and once the broker is back the dispatcher sends them again.
#[test]
fn commands_whose_delivery_failed_are_sent_again_when_the_broker_is_back() {
    use leadflow::bus::outbox::Dispatcher;

    let mock = MockCluster::new(1).unwrap();
    let mut config = Config::default();
    config.kafka.brokers = mock.bootstrap_servers();
    config
        .kafka
        .properties
        .insert("message.timeout.ms".into(), "1500".into());
    mock.create_topic(&config.kafka.commands_topic, 2, 1)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(&dir.path().join("data"), &LogOptions::default()).unwrap();
    let ids: Vec<String> = (0..50).map(|i| format!("cmd-{i}")).collect();
    let commands = ids.iter().map(|id| assign_command(id)).collect();
    assert_eq!(log.append_commands(commands).unwrap().len(), ids.len());
    let producer = leadflow::bus::publish::command_producer(&config.kafka).unwrap();
    let mut dispatcher = Dispatcher::new(&config.kafka.commands_topic);

    // Given the broker is down, when the dispatcher sends and the
    // deliveries time out ...
    mock.broker_down(1).unwrap();
    let (handed, more) = dispatcher.pump(&log, &producer).unwrap();
    assert_eq!((handed, more), (ids.len(), false));
    let failed = dispatcher.collect(&log, true).unwrap();
    // ... then nothing is marked sent and everything stays in the outbox.
    assert_eq!((failed.sent, failed.failed), (0, ids.len()));
    assert_eq!(log.pending_commands(1_000).unwrap().len(), ids.len());

    // When the broker is back, the dispatcher starts over from the oldest
    // pending command and every one is acknowledged.
    mock.broker_up(1).unwrap();
    let done = dispatcher.drain(&log, &producer, 5).unwrap();
    assert_eq!(done.sent, ids.len(), "{done:?}");
    assert!(log.pending_commands(1_000).unwrap().is_empty());
    let published = published_command_ids(&config);
    assert_eq!(published, ids.iter().cloned().collect());
}

/// While the commands topic does not acknowledge, the dispatcher holds at
/// most its bound in flight (the ingest loop then waits for acks before it
/// takes more events); the rest waits in the outbox and goes out later.
#[test]
fn the_dispatcher_keeps_its_in_flight_bound_while_the_broker_is_away() {
    use leadflow::bus::outbox::{Dispatcher, COMMANDS_IN_FLIGHT_MAX};

    let mock = MockCluster::new(1).unwrap();
    let mut config = Config::default();
    config.kafka.brokers = mock.bootstrap_servers();
    mock.create_topic(&config.kafka.commands_topic, 2, 1)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(&dir.path().join("data"), &LogOptions::default()).unwrap();
    let total = COMMANDS_IN_FLIGHT_MAX + 500;
    let commands = (0..total)
        .map(|i| assign_command(&format!("c{i}")))
        .collect();
    assert_eq!(log.append_commands(commands).unwrap().len(), total);
    let producer = leadflow::bus::publish::command_producer(&config.kafka).unwrap();
    let mut dispatcher = Dispatcher::new(&config.kafka.commands_topic);

    mock.broker_down(1).unwrap();
    let mut handed = 0;
    while !dispatcher.is_saturated() {
        let (n, more) = dispatcher.pump(&log, &producer).unwrap();
        assert!(
            more && n > 0,
            "room left, so every pass hands commands over"
        );
        handed += n;
    }
    assert_eq!(handed, COMMANDS_IN_FLIGHT_MAX);
    assert_eq!(dispatcher.pump(&log, &producer).unwrap(), (0, true));
    assert_eq!(dispatcher.in_flight(), COMMANDS_IN_FLIGHT_MAX);

    mock.broker_up(1).unwrap();
    let done = dispatcher.drain(&log, &producer, 5).unwrap();
    assert_eq!(done.sent, total, "{done:?}");
    assert!(log.pending_commands(10).unwrap().is_empty());
}

/// An engine owning its partitions statically heartbeats its claims on the
/// owners topic. Those heartbeats must not make a broker outage fatal (a
/// blocking flush gave up after 10 s and stopped the engine), nor hold the
/// engine's lock while the broker is away; and once its lease has lapsed
/// the engine publishes again only after confirming that nobody took its
/// partitions meanwhile.
#[test]
fn a_static_owner_rides_out_a_broker_outage_longer_than_its_lease() {
    let mock = MockCluster::new(1).unwrap();
    let mut config = Config::default();
    config.kafka.brokers = mock.bootstrap_servers();
    config.kafka.group_id = "static-outage".into();
    config.kafka.own_partitions = "0-3".into();
    config.kafka.owner_lease_ms = 2_000;
    config.log.batch_events_max = 500;
    for topic in [
        &config.kafka.events_topic,
        &config.kafka.commands_topic,
        &config.kafka.dlq_topic,
        &config.kafka.owners_topic,
    ] {
        mock.create_topic(topic, 4, 1).unwrap();
    }
    let items: Vec<SimItem> = Simulator::new(SimConfig {
        seed: 17,
        leads: 1_000,
        days: 10,
        ..SimConfig::default()
    })
    .collect();
    let half = items.len() / 2;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first.pb"), dir.path().join("second.pb"));
    write(&first, &items[..half]);
    write(&second, &items[half..]);
    publish(&config, &first);
    let log = EventLog::open(&dir.path().join("data"), &LogOptions::default()).unwrap();
    let shutdown = Shutdown::new();
    let covered = Arc::new(AtomicU64::new(0));
    let (engine, handle) = common::spawn_engine(
        &config,
        log,
        Some(Policies::new(PolicyFile::parse(POLICY).unwrap())),
        &shutdown,
        covered.clone(),
    );
    // Given an owner that consumed the first half ...
    wait_for(&covered, half as u64, "first half");
    // ... when the broker is away for 12 s (past the lease, and past the
    // 10 s a blocking flush would wait) ...
    mock.broker_down(1).unwrap();
    let away = Instant::now();
    while away.elapsed() < Duration::from_secs(12) {
        // ... the engine keeps answering (its lock is not held by a
        // heartbeat waiting for the broker) ...
        let asked = Instant::now();
        if handle.with_log(|l| l.last_seq()).is_err() {
            panic!(
                "the engine stopped during the outage: {:?}",
                engine.join().unwrap().err()
            );
        }
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "the engine's lock was held for {:?} during the outage",
            asked.elapsed()
        );
        assert!(
            !engine.is_finished(),
            "the engine stopped during the outage"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    mock.broker_up(1).unwrap();
    // Then, with the broker back, it takes the second half, publishes every
    // command and stops cleanly.
    publish(&config, &second);
    wait_for(&covered, items.len() as u64, "second half");
    wait_until_published(&handle);
    drop(handle);
    shutdown.trigger();
    let done = engine
        .join()
        .unwrap()
        .expect("the owner survives the outage");
    let commands: Vec<String> = done
        .whole()
        .log
        .commands()
        .map(|c| c.unwrap().1.command_id)
        .collect();
    assert!(!commands.is_empty());
    assert_every_command_on_the_topic(&config, &commands, 1);
}
