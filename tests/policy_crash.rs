//! The policy under kill -9, on the real broker (`./scripts/test` starts
//! it; address in `LEADFLOW_TEST_BROKERS`), with `leadflow run` as a
//! process:
//!
//! - A kill between two policy versions leaves every running deadline
//!   where it was: the lead assigned under v1 is recalled at v1's deadline
//!   after a restart with v2 in the file, and v2 applies to what comes
//!   after.
//! - A kill loop (40 kills: half with events and bad messages coming in
//!   bursts, half idle) re-sends only commands and dead letters of the
//!   in-flight window: every repeat on its topic repeats a copy sent
//!   shortly before the kill that preceded it, never seconds before (the
//!   "sent" marks are durable within 100 ms, README "Redelivery bound"),
//!   and none is lost.
//! - A run catching up on an hours-old backlog fires deadlines on the
//!   events' own times, as a replay does (the wall clock moves the policy
//!   only once the engine is caught up).

mod common;

use leadflow::codec;
use leadflow::config::Config;
use leadflow::domain::*;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn created(lead: &str) -> LeadEvent {
    common::created(&format!("{lead}-created"), lead, "inbound", now_ms())
}

fn assigned(lead: &str, owner: &str, command_id: &str) -> LeadEvent {
    let id = format!("{lead}-assigned-{command_id}");
    common::assigned(&id, lead, owner, command_id, now_ms())
}

struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    config_path: PathBuf,
    policy: PathBuf,
    config: Config,
}

fn setup(name: &str) -> Setup {
    setup_with(name, "")
}

/// [`setup`] with more `[kafka.properties]` lines.
fn setup_with(name: &str, properties: &str) -> Setup {
    let brokers = common::brokers();
    let dir = tempfile::tempdir().unwrap();
    let run = common::run_id();
    let policy = dir.path().join("policy.toml");
    let config_path = dir.path().join("leadflow.toml");
    std::fs::write(
        &config_path,
        format!(
            "[log]\nbatch_wait_ms_max = 5\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{name}-{run}\"\n\
             events_topic = \"{name}-events-{run}\"\ncommands_topic = \"{name}-commands-{run}\"\n\
             dlq_topic = \"{name}-dlq-{run}\"\npartitions = 2\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n{properties}\
             [policy]\nfile = {:?}\n",
            policy.display().to_string()
        ),
    )
    .unwrap();
    let config = Config::load(Some(&config_path)).unwrap();
    let data = dir.path().join("data");
    let s = Setup {
        _dir: dir,
        data,
        config_path,
        policy,
        config,
    };
    assert!(s
        .leadflow()
        .args(["topics", "create"])
        .status()
        .unwrap()
        .success());
    s
}

impl Setup {
    fn leadflow(&self) -> Command {
        common::leadflow(&self.data, &self.config_path)
    }

    /// `leadflow run` with a consumer group of its own: the log, not the
    /// group, holds the positions, and a fresh group is assigned its
    /// partitions at once (a killed member would hold them until its
    /// session times out).
    fn spawn_run(&self, n: usize) -> (Child, std::thread::JoinHandle<String>) {
        let group = format!("{}-{n}", self.config.kafka.group_id);
        common::spawn_logged(
            self.leadflow()
                .arg("run")
                .env("LEADFLOW_KAFKA_GROUP_ID", group)
                .env("RUST_LOG", "leadflow=info"),
        )
    }

    fn send(&self, producer: &rdkafka::producer::FutureProducer, e: &LeadEvent) {
        let payload = codec::encode_event(e);
        futures::executor::block_on(
            producer.send(
                FutureRecord::to(&self.config.kafka.events_topic)
                    .key(&e.lead_id)
                    .payload(&payload),
                Duration::from_secs(10),
            ),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    }

    /// A consumer of the commands topic from its beginning.
    fn commands_consumer(&self) -> BaseConsumer {
        self.consumer_of(&self.config.kafka.commands_topic)
    }

    /// A consumer of the dead-letter topic from its beginning.
    fn dead_letter_consumer(&self) -> BaseConsumer {
        self.consumer_of(&self.config.kafka.dlq_topic)
    }

    fn consumer_of(&self, topic: &str) -> BaseConsumer {
        let k = &self.config.kafka;
        common::reader_from_start(k, topic, 2, &format!("{}-reader-{topic}", k.group_id))
    }
}

fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
}

fn write_policy(path: &Path, version: u32, sla_ms: i64) {
    std::fs::write(
        path,
        format!(
            "version = {version}\n[rules]\nfirst_follow_up_sla_ms = {sla_ms}\n\
             [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
             members = [{{ id = \"rep-a\", capacity = 100000 }}, {{ id = \"rep-b\", capacity = 100000 }}]\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_kill_between_two_policy_versions_moves_no_running_deadline() {
    let s = setup("versions");
    write_policy(&s.policy, 1, 5_000);
    let producer = leadflow::bus::publish::producer(&s.config.kafka).unwrap();
    let consumer = s.commands_consumer();
    let mut seen: Vec<String> = Vec::new();
    let next_command = |seen: &mut Vec<String>, until: Instant| -> Option<LeadCommand> {
        while Instant::now() < until {
            if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                let c = codec::decode_command(m.unwrap().payload().unwrap()).unwrap();
                seen.push(format!(
                    "{} {} v{} issued {}: {}",
                    c.lead_id,
                    c.body.type_name(),
                    c.rule_version,
                    c.issued_at_ms,
                    c.explanation
                ));
                return Some(c);
            }
        }
        None
    };

    // Given an engine under v1 (first follow-up within 5 s) that assigned
    // lead "held", which the CRM carried out at t1.
    let (mut engine, first_log) = s.spawn_run(1);
    s.send(&producer, &created("held"));
    let assign = next_command(&mut seen, Instant::now() + Duration::from_secs(60))
        .expect("the assignment of held");
    let CommandBody::AssignLead { owner_id, .. } = &assign.body else {
        panic!("{seen:#?}");
    };
    let carried_out = assigned("held", owner_id, &assign.command_id);
    let t1 = carried_out.occurred_at_ms;
    s.send(&producer, &carried_out);
    // When it is killed (the assignment in its log, no clean stop), the
    // policy file changes to v2 (5 s becomes 60 s) and it starts again.
    std::thread::sleep(Duration::from_millis(1_000));
    kill9(&mut engine);
    let first_log = first_log.join().unwrap();
    write_policy(&s.policy, 2, 60_000);
    let (mut engine, second_log) = s.spawn_run(2);
    s.send(&producer, &created("fresh"));

    // Then held is recalled at v1's deadline, under v1, and the lead that
    // came after the restart is assigned under v2.
    let mut recall = None;
    let mut fresh_version = None;
    let until = Instant::now() + Duration::from_secs(30);
    while recall.is_none() || fresh_version.is_none() {
        let Some(c) = next_command(&mut seen, until) else {
            break;
        };
        match (&c.body, c.lead_id.as_str()) {
            (CommandBody::RecallLead { .. }, "held") => recall = Some(c),
            (CommandBody::AssignLead { .. }, "fresh") => fresh_version = Some(c.rule_version),
            _ => {}
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &engine.id().to_string()])
        .status();
    let _ = engine.wait();
    let context = format!(
        "commands seen:\n{}\nfirst engine:\n{first_log}\nsecond engine:\n{}",
        seen.join("\n"),
        second_log.join().unwrap()
    );
    let recall = recall.unwrap_or_else(|| panic!("held was never recalled\n{context}"));
    assert_eq!(recall.issued_at_ms, t1 + 5_000, "{context}");
    assert_eq!(recall.rule_version, 1, "{context}");
    assert_eq!(fresh_version, Some(2), "{context}");
}

/// The messages of a topic read so far: identity -> the broker timestamps
/// of its copies (commands by id, dead letters by their payload).
fn copies_on_topic(
    consumer: &BaseConsumer,
    identity: impl Fn(&[u8]) -> String,
) -> HashMap<String, Vec<i64>> {
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(3) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let ts = m.timestamp().to_millis().unwrap_or(-1);
            out.entry(identity(m.payload().unwrap_or_default()))
                .or_default()
                .push(ts);
            quiet_since = Instant::now();
        }
    }
    out
}

/// The messages sent again although the copy before them had been sent
/// more than `window_ms` before the kill that preceded the repeat: a copy
/// acknowledged well before the crash, whose "sent" mark was not durable.
/// Returns identity -> (that earlier copy, the kill).
fn outside_window(
    copies: &HashMap<String, Vec<i64>>,
    kills_ms: &[i64],
    window_ms: i64,
) -> BTreeMap<String, (i64, i64)> {
    let mut outside = BTreeMap::new();
    for (id, ts) in copies {
        let mut ts = ts.clone();
        ts.sort_unstable();
        for pair in ts.windows(2) {
            let (earlier, repeat) = (pair[0], pair[1]);
            // A repeat with no kill before it is the producer's own retry:
            // in flight by definition.
            let Some(kill) = kills_ms.iter().rev().find(|k| **k <= repeat) else {
                continue;
            };
            if earlier < *kill - window_ms {
                outside.insert(id.clone(), (earlier, *kill));
            }
        }
    }
    outside
}

#[test]
fn a_kill_loop_resends_only_commands_and_dead_letters_of_the_in_flight_window() {
    const KILLS: usize = 40;
    // A copy is within the window if its first copy was sent at most this
    // long before the kill: the flush bound (100 ms), one turn of the loop
    // (100 ms), and what was in flight, which on a busy 2-core machine
    // may have waited in the producer's queue for a while. Without the
    // bound, an idle engine sends the same commands again at every start,
    // seconds after the copy before (the idle runs last 4-7 s).
    const WINDOW_MS: i64 = 2_000;
    let s = setup("redelivery");
    write_policy(&s.policy, 1, 3_600_000);
    // Events come in bursts while the engine is killed and restarted: a
    // marketing system creating 100 leads a second for 1 s, then quiet
    // for 4 s (the kills land in both, and a quiet engine must make its
    // marks durable without an append to ride on).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let leads = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let garbage = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let publisher = {
        let (stop, leads, garbage) = (stop.clone(), leads.clone(), garbage.clone());
        let config = s.config.clone();
        std::thread::spawn(move || {
            let producer = leadflow::bus::publish::producer(&config.kafka).unwrap();
            let started = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if started.elapsed().as_millis() % 5_000 >= 1_000 {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let n = leads.load(std::sync::atomic::Ordering::Relaxed);
                let e = created(&format!("lead-{n:06}"));
                let payload = codec::encode_event(&e);
                futures::executor::block_on(
                    producer.send(
                        FutureRecord::to(&config.kafka.events_topic)
                            .key(&e.lead_id)
                            .payload(&payload),
                        Duration::from_secs(10),
                    ),
                )
                .map_err(|(e, _)| e)
                .unwrap();
                leads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n % 10 == 0 {
                    // One bad message in ten: a dead letter each.
                    let g = garbage.load(std::sync::atomic::Ordering::Relaxed);
                    let payload = format!("\u{1}not a lead event #{g}");
                    futures::executor::block_on(
                        producer.send(
                            FutureRecord::to(&config.kafka.events_topic)
                                .key("garbage")
                                .payload(payload.as_bytes()),
                            Duration::from_secs(10),
                        ),
                    )
                    .map_err(|(e, _)| e)
                    .unwrap();
                    garbage.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // Kill at moments spread over start-up, catch-up and quiet stretches;
    // for the second half no events come at all (an idle engine in a crash
    // loop, where no append flushes the marks for it).
    let mut kills_ms = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..KILLS {
        if n == KILLS / 2 {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let (mut engine, _log) = s.spawn_run(n);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let run_ms = if n < KILLS / 2 {
            1_000 + rng % 3_000
        } else {
            4_000 + rng % 3_000
        };
        std::thread::sleep(Duration::from_millis(run_ms));
        kills_ms.push(now_ms());
        kill9(&mut engine);
    }
    publisher.join().unwrap();
    let leads = leads.load(std::sync::atomic::Ordering::Relaxed);
    let garbage = garbage.load(std::sync::atomic::Ordering::Relaxed);
    // A last run publishes everything left and stops cleanly.
    let (mut engine, last_log) = s.spawn_run(KILLS);
    let consumer = s.commands_consumer();
    let dlq = s.dead_letter_consumer();
    let mut copies: HashMap<String, Vec<i64>> = HashMap::new();
    let mut dead: HashMap<String, Vec<i64>> = HashMap::new();
    let until = Instant::now() + Duration::from_secs(120);
    while ((copies.len() as u64) < leads || (dead.len() as u64) < garbage) && Instant::now() < until
    {
        let by_id = |p: &[u8]| codec::decode_command(p).unwrap().command_id;
        for (id, ts) in copies_on_topic(&consumer, by_id) {
            copies.entry(id).or_default().extend(ts);
        }
        let by_payload = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        for (id, ts) in copies_on_topic(&dlq, by_payload) {
            dead.entry(id).or_default().extend(ts);
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &engine.id().to_string()])
        .status();
    let _ = engine.wait();
    let last_log = last_log.join().unwrap();

    // Nothing lost: one assignment per lead, one dead letter per bad
    // message.
    assert_eq!(copies.len() as u64, leads, "{last_log}");
    assert_eq!(dead.len() as u64, garbage, "{last_log}");
    let again = |c: &HashMap<String, Vec<i64>>| c.values().map(|t| t.len() - 1).sum::<usize>();
    eprintln!(
        "{KILLS} kills: {leads} commands sent {} times over, {garbage} dead letters {} times over",
        again(&copies),
        again(&dead)
    );
    // Every repeat repeats a copy sent within the window before the kill
    // that preceded it.
    for (what, c) in [("commands", &copies), ("dead letters", &dead)] {
        let outside = outside_window(c, &kills_ms, WINDOW_MS);
        assert!(
            outside.is_empty(),
            "{} {what} sent again long after the copy before (that copy, the kill before the repeat): {:?}",
            outside.len(),
            outside.iter().take(20).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_run_catching_up_on_a_backlog_fires_deadlines_on_event_time() {
    const MIN: i64 = 60_000;
    // Small fetches, so that the engine is often idle between batches
    // while far behind (where a wall-clock tick used to jump ahead).
    let s = setup_with(
        "catchup",
        "\"queued.min.messages\" = \"1\"\n\"fetch.message.max.bytes\" = \"1024\"\n",
    );
    std::fs::write(
        &s.policy,
        "version = 1\n[rules]\nfirst_follow_up_sla_ms = 3600000\nreminder_lead_ms = 1200000\n\
         [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
         members = [{ id = \"rep-a\", capacity = 100 }, { id = \"rep-b\", capacity = 100 }]\n\
         [[pools]]\nname = \"sea\"\nkind = \"claimable\"\n",
    )
    .unwrap();
    // Given a backlog on the topic, all of it hours old: 20,000 leads in
    // the claimable pool (nothing to decide), then lead b created into the
    // auto-assign pool at T-3h, assigned to rep-a by the CRM a second
    // later, and followed up only at T-1h, after its 1 h SLA ran out.
    let t = now_ms();
    let at = |ms: i64| {
        move |mut e: LeadEvent| {
            e.occurred_at_ms = ms;
            e
        }
    };
    let mut items = Vec::new();
    for i in 0..20_000i64 {
        let mut e = created(&format!("filler-{i:05}"));
        if let EventBody::Created(c) = &mut e.body {
            c.pool = "sea".into();
        }
        items.push(leadflow::sim::SimItem::Event(at(t - 4 * 60 * MIN + i)(e)));
    }
    let assign_b = at(t - 3 * 60 * MIN + 1_000)(assigned("b", "rep-a", "crm-1"));
    items.push(leadflow::sim::SimItem::Event(at(t - 3 * 60 * MIN)(
        created("b"),
    )));
    items.push(leadflow::sim::SimItem::Event(assign_b));
    items.push(leadflow::sim::SimItem::Event(at(t - 60 * MIN)(LeadEvent {
        event_id: "b-followed".into(),
        lead_id: "b".into(),
        occurred_at_ms: 0,
        producer: "policy-crash-test".into(),
        tenant_id: String::new(),
        body: EventBody::FollowedUp(LeadFollowedUp {
            owner_id: "rep-a".into(),
            kind: FollowUpKind::Call,
            outcome: "late".into(),
        }),
    })));
    let file = s.data.with_extension("pb");
    common::write(&file, &items);
    common::publish(&s.config, &file);

    // When the engine reads it, with the wall clock at T.
    let (mut engine, log) = s.spawn_run(0);
    let consumer = s.commands_consumer();
    let mut got: Vec<LeadCommand> = Vec::new();
    let until = Instant::now() + Duration::from_secs(90);
    let mut quiet_since = Instant::now();
    while Instant::now() < until
        && (got.len() < 3 || quiet_since.elapsed() < Duration::from_secs(3))
    {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            got.push(codec::decode_command(m.unwrap().payload().unwrap()).unwrap());
            quiet_since = Instant::now();
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &engine.id().to_string()])
        .status();
    let _ = engine.wait();
    let context = format!("{got:#?}\nengine:\n{}", log.join().unwrap());

    // Then the commands are those of event time, derived by hand: b goes
    // to rep-a at T-3h; the reminder 20 min before the deadline T-2h+1s;
    // the recall at the deadline, before the late follow-up counts.
    let brief: Vec<(&str, &str, i64)> = got
        .iter()
        .map(|c| (c.body.type_name(), c.rule_id.as_str(), c.issued_at_ms - t))
        .collect();
    assert_eq!(
        brief,
        vec![
            ("assign_lead", "auto-assign", -180 * MIN),
            (
                "remind_follow_up",
                "first-follow-up-sla",
                -140 * MIN + 1_000
            ),
            ("recall_lead", "first-follow-up-sla", -120 * MIN + 1_000),
        ],
        "{context}"
    );
}
