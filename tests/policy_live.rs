//! The policy processor live, on the real broker (`./scripts/test` starts
//! it; address in `LEADFLOW_TEST_BROKERS`): `leadflow run` with a 2-second
//! first-follow-up SLA and a reminder 1 second before it. This test plays
//! the marketing system and the CRM: it creates two leads, carries out the
//! engine's assignments, follows one lead up at once and neglects the
//! other. The neglected lead must get a reminder and then a recall, each
//! within 1 s of its moment, on the wall clock (no events arrive meanwhile);
//! once the CRM carries the recall out, the engine must reassign the lead
//! to the other rep. The followed-up lead must never be recalled.

mod common;

use leadflow::codec;
use leadflow::config::Config;
use leadflow::domain::*;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn event(id: &str, lead: &str, body: EventBody) -> LeadEvent {
    leadflow::domain::build::event(id, lead, body)
        .at(now_ms())
        .producer("policy-live-test")
        .event()
}

fn send(producer: &FutureProducer, topic: &str, e: &LeadEvent) {
    let payload = codec::encode_event(e);
    futures::executor::block_on(producer.send(
        FutureRecord::to(topic).key(&e.lead_id).payload(&payload),
        Duration::from_secs(10),
    ))
    .map_err(|(e, _)| e)
    .unwrap();
}

/// `leadflow run` on topics of its own (`<name>-events-<run>`, ...) of
/// `partitions` partitions, under `policy`, with `config_tables` (TOML
/// tables besides `[kafka]` and `[policy]`) in its config file.
struct LiveEngine {
    _dir: tempfile::TempDir,
    config: Config,
    run: String,
    process: std::process::Child,
    log: std::thread::JoinHandle<String>,
}

impl LiveEngine {
    fn start(name: &str, partitions: i32, policy: &str, config_tables: &str) -> LiveEngine {
        let brokers = common::brokers();
        let dir = tempfile::tempdir().unwrap();
        let run = common::run_id();
        let policy_path = dir.path().join("policy.toml");
        std::fs::write(&policy_path, policy).unwrap();
        let config_path = dir.path().join("leadflow.toml");
        std::fs::write(
            &config_path,
            format!(
                "{config_tables}\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{name}-{run}\"\n\
                 events_topic = \"{name}-events-{run}\"\ncommands_topic = \"{name}-commands-{run}\"\n\
                 dlq_topic = \"{name}-dlq-{run}\"\npartitions = {partitions}\n\
                 [policy]\nfile = {:?}\n",
                policy_path.display().to_string()
            ),
        )
        .unwrap();
        let config = Config::load(Some(&config_path)).unwrap();
        let data = dir.path().join("data");
        let leadflow = || common::leadflow(&data, &config_path);
        assert!(leadflow()
            .args(["topics", "create"])
            .status()
            .unwrap()
            .success());
        let (process, log) =
            common::spawn_logged(leadflow().arg("run").env("RUST_LOG", "leadflow=info"));
        LiveEngine {
            _dir: dir,
            config,
            run,
            process,
            log,
        }
    }

    /// Stops it with SIGTERM; whether it exited cleanly, and what it
    /// logged.
    fn stop(mut self) -> (bool, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status();
        let status = self.process.wait().unwrap();
        (status.success(), self.log.join().unwrap())
    }
}

#[test]
fn a_neglected_lead_is_reminded_recalled_on_time_and_reassigned_to_someone_else() {
    let engine = LiveEngine::start(
        "live",
        2,
        "version = 9\n[rules]\nfirst_follow_up_sla_ms = 2000\nreminder_lead_ms = 1000\n\
         stale_after_ms = 600000\n\
         [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
         members = [{ id = \"rep-a\", capacity = 10 }, { id = \"rep-b\", capacity = 10 }]\n",
        "[log]\nbatch_wait_ms_max = 5\n\
         [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"",
    );
    let (k, run) = (&engine.config.kafka, &engine.run);

    let producer = leadflow::bus::publish::producer(k).unwrap();
    let consumer = common::reader_from_start(k, &k.commands_topic, 2, &format!("crm-{run}"));
    let created =
        |lead: &str| common::created(&format!("{lead}-created"), lead, "inbound", now_ms());
    send(&producer, &k.events_topic, &created("slow"));
    send(&producer, &k.events_topic, &created("fast"));

    // The CRM's view: who got what, and when the engine's commands came.
    let mut first_owner: Option<(String, i64)> = None; // slow's owner, assigned at
    let mut reminder_at: Option<i64> = None;
    let mut reminder_deadline_off_ms: Option<i64> = None;
    let mut recall_at: Option<i64> = None;
    let mut second_owner: Option<String> = None;
    let mut fast_recalled = false;
    let mut fast_done_at: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = Vec::new();
    let mut carried_out = std::collections::HashSet::new();
    let started_ms = now_ms();
    while Instant::now() < deadline {
        // Done when slow went round, and fast was left alone for well past
        // its SLA.
        if second_owner.is_some()
            && fast_done_at.is_some_and(|t| t.elapsed() > Duration::from_millis(3500))
        {
            break;
        }
        let Some(m) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let m = m.unwrap();
        let arrived = now_ms();
        let c = codec::decode_command(m.payload().unwrap()).unwrap();
        // Everything about each command, for the failure messages: a
        // redelivery shows as the same id at another offset.
        seen.push(format!(
            "+{}ms p{}@{} {} {} {} issued {} facts {:?}: {}",
            arrived - started_ms,
            m.partition(),
            m.offset(),
            c.command_id,
            c.lead_id,
            c.body.type_name(),
            c.issued_at_ms - started_ms,
            c.facts,
            c.explanation
        ));
        // A CRM carries each command out once, whatever the broker
        // redelivers (the contract: deduplicate by command id).
        if !carried_out.insert(c.command_id.clone()) {
            continue;
        }
        match (&c.body, c.lead_id.as_str()) {
            (CommandBody::AssignLead { owner_id, .. }, lead) => {
                let assigned = event(
                    &format!("{lead}-assigned-{}", c.command_id),
                    lead,
                    EventBody::Assigned(LeadAssigned {
                        owner_id: owner_id.clone(),
                        pool: "inbound".into(),
                        method: AssignmentMethod::Rule,
                        command_id: c.command_id.clone(),
                    }),
                );
                send(&producer, &k.events_topic, &assigned);
                if lead == "fast" {
                    let followed = event(
                        "fast-followed",
                        lead,
                        EventBody::FollowedUp(LeadFollowedUp {
                            owner_id: owner_id.clone(),
                            kind: FollowUpKind::Call,
                            outcome: "interested".into(),
                        }),
                    );
                    send(&producer, &k.events_topic, &followed);
                    fast_done_at = Some(Instant::now());
                } else if first_owner.is_none() {
                    first_owner = Some((owner_id.clone(), assigned.occurred_at_ms));
                } else {
                    second_owner = Some(owner_id.clone());
                }
            }
            (CommandBody::RemindFollowUp { deadline_ms, .. }, "slow") => {
                let (_, assigned_at) = first_owner.clone().expect("reminded after assignment");
                // The first reminder is checked after the engine stopped,
                // with its log.
                if reminder_deadline_off_ms.is_none() {
                    reminder_deadline_off_ms = Some(*deadline_ms - (assigned_at + 2000));
                    reminder_at = Some(arrived - (assigned_at + 1000));
                }
            }
            (
                CommandBody::RecallLead {
                    owner_id,
                    reason,
                    to_pool,
                },
                "slow",
            ) => {
                let (owner, assigned_at) = first_owner.clone().expect("recalled after assignment");
                assert_eq!(owner_id, &owner);
                assert_eq!(*reason, RecallReason::NoFirstFollowUp);
                assert_eq!(c.rule_id, "first-follow-up-sla");
                assert_eq!(c.rule_version, 9);
                assert!(c.explanation.contains(&owner), "{}", c.explanation);
                recall_at.get_or_insert(arrived - (assigned_at + 2000));
                // The CRM carries the recall out.
                send(
                    &producer,
                    &k.events_topic,
                    &event(
                        "slow-recalled",
                        "slow",
                        EventBody::Recalled(LeadRecalled {
                            previous_owner_id: owner,
                            reason: *reason,
                            to_pool: to_pool.clone(),
                            command_id: c.command_id.clone(),
                            rule_id: c.rule_id.clone(),
                        }),
                    ),
                );
            }
            (CommandBody::RecallLead { .. }, "fast") => fast_recalled = true,
            _ => {}
        }
    }
    let (clean, log) = engine.stop();
    let context = format!("commands seen:\n{}\nengine:\n{log}", seen.join("\n"));
    assert!(clean, "{context}");

    assert_eq!(
        reminder_deadline_off_ms,
        Some(0),
        "the reminder's deadline is the SLA after the assignment carried out\n{context}"
    );
    let reminder_late_ms = reminder_at.unwrap_or_else(|| panic!("no reminder\n{context}"));
    let recall_late_ms = recall_at.unwrap_or_else(|| panic!("no recall\n{context}"));
    eprintln!("reminder {reminder_late_ms} ms and recall {recall_late_ms} ms after their moments");
    assert!(
        (0..=1000).contains(&reminder_late_ms),
        "reminder {reminder_late_ms} ms after its moment\n{context}"
    );
    assert!(
        (0..=1000).contains(&recall_late_ms),
        "recall {recall_late_ms} ms after its deadline\n{context}"
    );
    let (first, _) = first_owner.unwrap();
    let second = second_owner.unwrap_or_else(|| panic!("not reassigned\n{context}"));
    assert_ne!(first, second, "reassigned to someone else\n{context}");
    assert!(
        !fast_recalled,
        "the followed-up lead was recalled\n{context}"
    );
}

#[test]
fn an_event_is_appended_and_its_command_published_without_waiting_out_the_batch_timer() {
    // Given an engine whose batches may wait a minute for more inputs, and
    // whose consumer settings are its own (`kafka.consumer_properties`).
    let engine = LiveEngine::start(
        "quick",
        1,
        "version = 1\n[[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
         members = [{ id = \"rep-a\", capacity = 10 }]\n",
        "[log]\nbatch_wait_ms_max = 60000\n\
         [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"10\"",
    );
    let (k, run) = (&engine.config.kafka, &engine.run);
    let producer = leadflow::bus::publish::producer(k).unwrap();
    let consumer = common::reader_from_start(k, &k.commands_topic, 1, &format!("crm-{run}"));
    // When one lead is created, and nothing else arrives.
    let sent = Instant::now();
    send(
        &producer,
        &k.events_topic,
        &common::created("only-created", "only", "inbound", now_ms()),
    );
    // Then its assignment is on the commands topic long before the batch
    // timer (a minute) would have appended it: nothing more was buffered.
    let mut assigned_after = None;
    while sent.elapsed() < Duration::from_secs(45) {
        let Some(m) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let c = codec::decode_command(m.unwrap().payload().unwrap()).unwrap();
        if c.lead_id == "only" && matches!(c.body, CommandBody::AssignLead { .. }) {
            assigned_after = Some(sent.elapsed());
            break;
        }
    }
    let (clean, log) = engine.stop();
    assert!(clean, "{log}");
    let after = assigned_after.unwrap_or_else(|| panic!("no assignment within 45 s\n{log}"));
    // The engine's start (joining the group) is in it too.
    assert!(
        after < Duration::from_secs(30),
        "assigned after {after:?}\n{log}"
    );
}
