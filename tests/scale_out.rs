//! Issue 13 (scale out on Kafka's partitions), on the real test broker
//! (tansu, started by `./scripts/test`): tenants keyed onto their
//! partitions, engines owning partitions statically (no group protocol,
//! which tansu 0.6 gets wrong with two members), and a mis-keyed producer
//! refused as `wrong_partition`.

use leadflow::codec::stream::{EventReader, Format};
use leadflow::config::Config;
use leadflow::domain::tenant;
use leadflow::sim::{SimConfig, SimItem, Simulator};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{brokers, leadflow, run_until_covered};

const PARTITIONS: i32 = 4;

/// The HTTP ingest token of the test engines.
const INGEST_TOKEN: &str = "scale-out-token";

/// The owners' lease in these tests (10 s by default): how long a
/// replacement for a killed engine waits.
const LEASE_MS: u64 = 2_000;

/// A config file for one engine: the test's topics, its own group, and
/// the partitions it owns (empty: the group decides).
fn config(dir: &Path, suffix: &str, name: &str, own: &str) -> (PathBuf, Config) {
    // Engine "c" is compared with the others: it reads the events topic
    // itself rather than load the stores they publish when they stop.
    let snapshots = match name {
        "c" => String::new(),
        _ => format!("snapshots-{suffix}"),
    };
    let text = format!(
        "[log]\nbatch_events_max = 500\n\n[api]\ningest_token = \"{INGEST_TOKEN}\"\n\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"g-{suffix}-{name}\"\n\
         events_topic = \"events-{suffix}\"\ncommands_topic = \"commands-{suffix}\"\n\
         dlq_topic = \"dlq-{suffix}\"\nowners_topic = \"owners-{suffix}\"\nowner_lease_ms = {LEASE_MS}\nsnapshots_topic = \"{snapshots}\"\n\
         partitions = {PARTITIONS}\nown_partitions = \"{own}\"\n\
         [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n",
        brokers()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let config = Config::load(Some(&path)).unwrap();
    (path, config)
}

/// `leadflow topics create` for the test's topics.
fn create_topics(dir: &Path, toml: &Path) {
    common::ok(
        leadflow(&dir.join("scratch"), toml)
            .args(["topics", "create"])
            .output()
            .unwrap(),
    );
}

/// A simulated workload of `leads` leads over `tenants` tenants.
fn workload(seed: u64, leads: u64, tenants: u32) -> Vec<SimItem> {
    Simulator::new(SimConfig {
        seed,
        leads,
        days: 10,
        tenants,
        ..SimConfig::default()
    })
    .collect()
}

/// Writes `items` to a file and publishes it with `leadflow publish`
/// (keyed by tenant, murmur2).
fn publish(dir: &Path, toml: &Path, items: &[SimItem], name: &str) {
    let file = dir.join(name);
    common::write(&file, items);
    common::ok(
        leadflow(&dir.join("scratch"), toml)
            .args(["publish", file.to_str().unwrap()])
            .output()
            .unwrap(),
    );
}

/// The events of `items` on the partitions (of `partitions`) that `owns`
/// accepts.
fn events_on(items: &[SimItem], partitions: i32, owns: impl Fn(i32) -> bool) -> u64 {
    items
        .iter()
        .filter(|i| match i {
            SimItem::Event(e) => owns(tenant::partition_of(
                tenant::message_key(e).as_bytes(),
                partitions,
            )),
            _ => false,
        })
        .count() as u64
}

/// The command ids on the commands topic, and those published more than
/// once.
fn published_ids(k: &leadflow::config::KafkaConfig) -> (BTreeSet<String>, Vec<(String, u32)>) {
    let mut ids = BTreeMap::new();
    for c in common::published_commands(k) {
        *ids.entry(c.body["commandId"].as_str().unwrap().to_string())
            .or_insert(0u32) += 1;
    }
    let twice = ids
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (id.clone(), *n))
        .collect();
    (ids.into_keys().collect(), twice)
}

/// Event ids in a data dir, and its rejections by reason.
fn contents(data: &Path, config: &Path) -> (Vec<String>, BTreeMap<String, u64>) {
    let out = data.with_extension("jsonl");
    common::ok(
        leadflow(data, config)
            .args(["export", "--out", out.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    let mut ids = Vec::new();
    let mut reader = EventReader::new(
        std::io::BufReader::new(std::fs::File::open(&out).unwrap()),
        Format::Jsonl,
    );
    while let Some(record) = reader.next_record().unwrap() {
        ids.push(record.unwrap().event_id);
    }
    let totals = common::ok(
        leadflow(data, config)
            .args(["inspect", "log"])
            .output()
            .unwrap(),
    );
    let rejected = totals
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .filter(|(code, _): &(String, u64)| !code.contains(':'))
        .collect();
    (ids, rejected)
}

#[test]
fn engines_owning_partitions_statically_hold_each_tenants_events_once_and_refuse_mis_keyed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let suffix = format!("scale-{}", common::run_id());
    let (a_toml, a_config) = config(dir.path(), &suffix, "a", "0-1");
    let (b_toml, _) = config(dir.path(), &suffix, "b", "2-3");
    let (c_toml, _) = config(dir.path(), &suffix, "c", "0-3");
    create_topics(dir.path(), &a_toml);

    // Given 400 leads over 6 tenants, published keyed by tenant with the
    // murmur2 partitioner (`leadflow publish`) ...
    let items = workload(13, 400, 6);
    let events: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            SimItem::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    publish(dir.path(), &a_toml, &items, "events.pb");
    let mut per_partition = [0u64; PARTITIONS as usize];
    for e in &events {
        per_partition
            [tenant::partition_of(tenant::message_key(e).as_bytes(), PARTITIONS) as usize] += 1;
    }
    // ... and three events of tenant-00 sent to a partition it does not
    // belong to, as a producer keying by lead would.
    let home = tenant::home_partition("tenant-00", PARTITIONS).unwrap();
    let wrong = (home + 1) % PARTITIONS;
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let mut mis_keyed = Vec::new();
    for n in 0..3 {
        let e = leadflow::domain::build::created(&format!("mis-{n}"), &format!("mis-lead-{n}"))
            .tenant("tenant-00")
            .at(1_793_491_200_000)
            .event();
        mis_keyed.push(e.event_id.clone());
        let bytes = leadflow::codec::encode_event(&e);
        producer
            .send(
                BaseRecord::to(&a_config.kafka.events_topic)
                    .partition(wrong)
                    .key(e.lead_id.as_str())
                    .payload(&bytes),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        per_partition[wrong as usize] += 1;
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    // When engine A owns partitions 0-1 and engine B 2-3 (each its own
    // data dir), and engine C, for comparison, all four ...
    let a_data = dir.path().join("a");
    let b_data = dir.path().join("b");
    let c_data = dir.path().join("c");
    let a_log = run_until_covered(&a_data, &a_toml, per_partition[0] + per_partition[1], None);
    run_until_covered(&b_data, &b_toml, per_partition[2] + per_partition[3], None);
    run_until_covered(&c_data, &c_toml, per_partition.iter().sum(), None);
    assert!(
        a_log.contains("owning partitions statically"),
        "A says what it owns: {a_log}"
    );

    // Then A and B hold every event once between them, the same events as
    // C, and no event of a tenant outside its partition ...
    let (a_ids, a_rejected) = contents(&a_data, &a_toml);
    let (b_ids, b_rejected) = contents(&b_data, &b_toml);
    let (c_ids, c_rejected) = contents(&c_data, &c_toml);
    let a_set: BTreeSet<_> = a_ids.iter().collect();
    let b_set: BTreeSet<_> = b_ids.iter().collect();
    assert!(a_set.is_disjoint(&b_set), "an event in two engines");
    assert_eq!(a_ids.len() + b_ids.len(), events.len(), "every event once");
    let union: BTreeSet<_> = a_set.union(&b_set).cloned().collect();
    let c_set: BTreeSet<_> = c_ids.iter().collect();
    assert_eq!(union, c_set);
    assert!(
        !a_ids.is_empty() && !b_ids.is_empty(),
        "both engines had work"
    );
    // ... and the mis-keyed events are refused as wrong_partition by the
    // engine that owns the partition they came on (and by C), never taken.
    let owner_rejected = if wrong <= 1 { &a_rejected } else { &b_rejected };
    assert_eq!(
        owner_rejected.get("wrong_partition"),
        Some(&3),
        "{owner_rejected:?}"
    );
    assert_eq!(
        c_rejected.get("wrong_partition"),
        Some(&3),
        "{c_rejected:?}"
    );
    for id in &mis_keyed {
        assert!(!c_set.contains(id));
    }
    // The numbers over both engines, merged from their APIs, are the
    // numbers of the one engine that owns every partition.
    let (mut a, a_url, a_rest) =
        common::run_with_api(leadflow(&a_data, &a_toml).env("LEADFLOW_API_LISTEN", "127.0.0.1:0"));
    let (mut b, b_url, b_rest) =
        common::run_with_api(leadflow(&b_data, &b_toml).env("LEADFLOW_API_LISTEN", "127.0.0.1:0"));
    assert_merged_is_one(
        &dir.path().join("scratch"),
        &a_toml,
        &format!("{a_url},{b_url}"),
        &c_data,
        &c_toml,
    );
    // Over HTTP, A takes an event of a tenant living on its partitions and
    // refuses one whose tenant lives on B's, instead of splitting it.
    let tenant_on = |wanted: &dyn Fn(i32) -> bool| {
        (0..)
            .map(|n| format!("http-tenant-{n}"))
            .find(|t| wanted(tenant::home_partition(t, PARTITIONS).unwrap()))
            .unwrap()
    };
    let (ours, theirs) = (tenant_on(&|p| p <= 1), tenant_on(&|p| p >= 2));
    let body: Vec<String> = [&ours, &theirs]
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let e =
                leadflow::domain::build::created(&format!("http-{n}"), &format!("http-lead-{n}"))
                    .tenant(t)
                    .at(1_793_491_200_000)
                    .event();
            leadflow::codec::event_to_json(&e)
        })
        .collect();
    let answer: serde_json::Value = ureq::post(&format!("{a_url}/api/v1/events"))
        .set("Authorization", &format!("Bearer {INGEST_TOKEN}"))
        .set("Content-Type", "application/json")
        .send_string(&format!("[{}]", body.join(",")))
        .unwrap()
        .into_json()
        .unwrap();
    let outcomes: Vec<&str> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["accepted", "rejected"], "{answer}");
    assert_eq!(answer["items"][1]["code"], "wrong_partition", "{answer}");
    for (engine, rest) in [(&mut a, a_rest), (&mut b, b_rest)] {
        common::unsafe_sigterm(engine.id());
        assert!(engine.wait().unwrap().success(), "{}", rest.join().unwrap());
    }
    // A hand-off: A restarted owning 1-2 (B stopped and released 2) keeps
    // partition 1's store as it was, moves partition 0's aside (its new
    // owner's numbers must not be counted twice), and takes 2 into a store
    // of its own (the one B published when it stopped, then the events
    // after it).
    let a_stores = |data: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(data.join("partitions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(a_stores(&a_data), vec!["0", "1"]);
    let mut again = leadflow(&a_data, &a_toml);
    again.env("LEADFLOW_KAFKA_OWN_PARTITIONS", "1-2");
    let said = run_until_covered_with(again, per_partition[1] + per_partition[2]);
    assert!(
        said.contains("partition 0 is not this engine's any more"),
        "{said}"
    );
    assert_eq!(a_stores(&a_data), vec!["1", "2", "retired"]);
    let retired: Vec<_> = std::fs::read_dir(a_data.join("partitions/retired"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        retired.len() == 1 && retired[0].starts_with("0-"),
        "{retired:?}"
    );
    // Then A now holds exactly the events of partitions 1 and 2, once,
    // and partition 1's were not read again (its store kept its position).
    let (handed_ids, _) = contents(&a_data, &a_toml);
    let on = |id: &String, wanted: &[i32]| {
        let e = events.iter().find(|e| e.event_id == *id).unwrap();
        wanted.contains(&tenant::partition_of(
            tenant::message_key(e).as_bytes(),
            PARTITIONS,
        ))
    };
    let mut expected: BTreeSet<&String> = c_ids.iter().filter(|id| on(id, &[1, 2])).collect();
    // The event A took over HTTP is in its tenant's store: kept when that
    // is partition 1's, moved aside with partition 0's.
    let http_0 = "http-0".to_string();
    if tenant::home_partition(&ours, PARTITIONS) == Some(1) {
        expected.insert(&http_0);
    }
    let handed: BTreeSet<&String> = handed_ids.iter().collect();
    assert_eq!(handed_ids.len(), handed.len(), "an event twice");
    assert!(
        handed == expected,
        "A holds {} events, {} expected",
        handed.len(),
        expected.len()
    );
    let p1_held = a_ids.iter().filter(|id| on(id, &[1])).count()
        + usize::from(tenant::home_partition(&ours, PARTITIONS) == Some(1));
    assert!(p1_held > 0);
    assert!(
        said.contains(&format!(
            "partition 1 at sequence {p1_held}, partition 2 at sequence 0"
        )),
        "A starts from partition 1's store as it was, and partition 2 from nothing: {said}"
    );
}

/// `stats --peers` over the engines at `peers` equals `stats` of the one
/// engine at `one_data` that owns every partition, for every table.
fn assert_merged_is_one(
    scratch: &Path,
    toml: &Path,
    peers: &str,
    one_data: &Path,
    one_toml: &Path,
) {
    for by in ["channel", "campaign", "tenant", "day", "owner", "pools"] {
        let merged = common::ok(
            leadflow(scratch, toml)
                .args(["stats", "--by", by, "--json", "--peers", peers])
                .output()
                .unwrap(),
        );
        let one = common::ok(
            leadflow(one_data, one_toml)
                .args(["stats", "--by", by, "--json"])
                .output()
                .unwrap(),
        );
        let merged: serde_json::Value = serde_json::from_str(&merged).unwrap();
        let one: serde_json::Value = serde_json::from_str(&one).unwrap();
        assert!(
            !one["rows"].as_object().unwrap().is_empty(),
            "{by}: rows to compare"
        );
        assert_eq!(merged, one, "{by}");
    }
}

/// Runs `leadflow run` until its progress says it covers `expect`
/// messages and every command it decided is acknowledged by the broker,
/// then kills it with SIGKILL (no drain, no checkpoint). The engine can
/// cover a small topic within its first progress line, before its
/// producer has sent anything: a kill then would leave nothing published.
fn run_then_kill(data: &Path, config: &Path, expect: u64) {
    use std::io::BufRead;
    /// Progress lines (one a second) to wait for the acks once covered.
    const LINES_AFTER_COVERED_MAX: u32 = 30;
    let mut child = leadflow(data, config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let mut covered_lines = 0;
    let mut settled = false;
    for line in stderr.lines() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if common::covered_in(&line).is_none_or(|n| n < expect) {
            continue;
        }
        covered_lines += 1;
        // "commands <sent>/<decided> sent"
        let sent_of = line
            .split("commands ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|f| f.split_once('/'))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
        if sent_of.is_some_and(|(sent, decided)| sent == decided)
            || covered_lines >= LINES_AFTER_COVERED_MAX
        {
            settled = sent_of.is_some_and(|(sent, decided)| sent == decided);
            break;
        }
    }
    let _ = child.kill();
    child.wait().unwrap();
    assert!(
        covered_lines > 0,
        "the engine ended before covering {expect}: {said}"
    );
    assert!(
        settled,
        "the engine's commands were not all acknowledged within {LINES_AFTER_COVERED_MAX} progress lines: {said}"
    );
}

/// A policy that assigns every lead of both simulated pools, in every
/// simulated tenant (each its own table, the same rep ids in each), so
/// that the engines publish commands.
fn with_policy(dir: &Path, toml: &Path) {
    let policy = dir.join("policy.toml");
    let mut text = String::from("version = 1\n");
    for t in 0..50 {
        let table = format!("tenants.tenant-{t:02}");
        text.push_str(&format!(
            "[[{table}.pools]]\nname = \"smb\"\nkind = \"auto_assign\"\n\
             members = [{{ id = \"rep-a\", capacity = 100000 }}, {{ id = \"rep-b\", capacity = 100000 }}]\n\
             [[{table}.pools]]\nname = \"enterprise\"\nkind = \"auto_assign\"\n\
             members = [{{ id = \"rep-c\", capacity = 100000 }}]\n"
        ));
    }
    std::fs::write(&policy, text).unwrap();
    let mut text = std::fs::read_to_string(toml).unwrap();
    text = text.replacen(
        "[kafka]",
        &format!(
            "[policy]\nfile = {:?}\n\n[kafka]",
            policy.display().to_string()
        ),
        1,
    );
    std::fs::write(toml, text).unwrap();
}

#[test]
fn a_fresh_engine_restores_a_killed_ones_partitions_without_publishing_a_command_twice() {
    let dir = tempfile::tempdir().unwrap();
    let suffix = format!("restore-{}", common::run_id());
    let (a_toml, a_config) = config(dir.path(), &suffix, "a", "0-1");
    let (b_toml, _) = config(dir.path(), &suffix, "b", "2-3");
    with_policy(dir.path(), &a_toml);
    with_policy(dir.path(), &b_toml);
    create_topics(dir.path(), &a_toml);
    let items = workload(29, 600, 8);
    let (first, second) = items.split_at(items.len() / 2);
    let owned_by_a = |items: &[SimItem]| events_on(items, PARTITIONS, |p| p <= 1);

    // Given engine A on partitions 0-1 that has consumed the first half of
    // the stream and published its commands (acknowledged), then is killed
    // (-9) ...
    publish(dir.path(), &a_toml, first, "first.pb");
    let a_data = dir.path().join("a");
    run_then_kill(&a_data, &a_toml, owned_by_a(first));
    // The read stops after 3 s without a message, and a fetch from tansu
    // on a loaded machine can stall that long: an empty read is read again
    // (a topic really empty stays empty every time).
    let mut published_by_a = 0;
    for _ in 0..4 {
        published_by_a = common::published_commands(&a_config.kafka).len();
        if published_by_a > 0 {
            break;
        }
    }
    assert!(published_by_a > 0, "A published commands before it died");

    // ... when the second half arrives and a fresh engine with an empty
    // data dir takes over 0-1 (B runs 2-3 throughout) ...
    publish(dir.path(), &a_toml, second, "second.pb");
    let a2_data = dir.path().join("a2");
    let a2_said = run_until_covered(&a2_data, &a_toml, owned_by_a(&items), None);
    run_until_covered(
        &dir.path().join("b"),
        &b_toml,
        items.len() as u64 - owned_by_a(&items),
        None,
    );

    // Then it restored every event of its partitions (nothing lost) ...
    let (a2_events, _) = common::log_totals(&a2_data, &a_toml);
    assert_eq!(a2_events, owned_by_a(&items));
    assert!(
        a2_said.contains("restoring from the events topic"),
        "{a2_said}"
    );
    // ... and every command decided over the whole run was published
    // exactly once: A's before it died were not sent again.
    let (on_topic, twice) = published_ids(&a_config.kafka);
    assert!(twice.is_empty(), "published twice: {twice:?}");
    let decided: BTreeSet<String> = [&a2_data, &dir.path().join("b")]
        .iter()
        .flat_map(|data| {
            let out = common::ok(
                leadflow(data, &a_toml)
                    .args(["inspect", "commands", "--json", "--limit", "1000000"])
                    .output()
                    .unwrap(),
            );
            let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
            rows.into_iter()
                .map(|r| r["command_id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(decided, on_topic, "what was decided is what was published");
    assert!(
        a2_said.contains("a previous owner had published them"),
        "{a2_said}"
    );
    // `leadflow partitions` shows the hand-over: 0-1 claimed twice (A,
    // then A2), 2-3 once, all released by clean stops, each owner's log at
    // its partition's end.
    let out = common::ok(
        leadflow(&dir.path().join("scratch"), &a_toml)
            .args(["partitions", "--json"])
            .output()
            .unwrap(),
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let epochs: Vec<u64> = rows.iter().map(|r| r["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, vec![2, 2, 1, 1], "{out}");
    for r in &rows {
        assert_eq!(r["state"], "released", "{out}");
        assert_eq!(r["lag"], 0, "{out}");
    }
    let positions: u64 = rows.iter().map(|r| r["position"].as_u64().unwrap()).sum();
    assert_eq!(positions, items.len() as u64, "{out}");
}

/// Sends `signal` to a process.
fn signal(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

#[test]
fn two_engines_on_one_partition_never_both_publish() {
    let dir = tempfile::tempdir().unwrap();
    let suffix = format!("fence-{}", common::run_id());
    let (x_toml, x_config) = config(dir.path(), &suffix, "x", "0-3");
    with_policy(dir.path(), &x_toml);
    create_topics(dir.path(), &x_toml);
    let items = workload(31, 300, 5);
    publish(dir.path(), &x_toml, &items, "events.pb");
    let events = items
        .iter()
        .filter(|i| matches!(i, SimItem::Event(_)))
        .count() as u64;

    // Given engine X running on partitions 0-3, caught up and publishing.
    let (mut x, x_said) = common::spawn_logged(leadflow(&dir.path().join("x"), &x_toml).arg("run"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while common::published_commands(&x_config.kafka).is_empty() {
        assert!(std::time::Instant::now() < deadline, "X publishes nothing");
    }

    // When Y is started on the same partitions by mistake, then it waits
    // for X's lease, which X keeps alive, and gives up with an error
    // naming X: it never consumes, never publishes.
    let y = leadflow(&dir.path().join("y"), &x_toml)
        .arg("run")
        .output()
        .unwrap();
    let y_err = String::from_utf8_lossy(&y.stderr);
    assert!(!y.status.success(), "{y_err}");
    assert!(y_err.contains("is owned by engine"), "{y_err}");
    // An engine asked to stop (SIGTERM) while it waits for that lease
    // stops cleanly (exit 0) instead of waiting the lease out and failing.
    let (w, w_said) = common::spawn_logged(leadflow(&dir.path().join("w"), &x_toml).arg("run"));
    std::thread::sleep(Duration::from_millis(LEASE_MS / 2));
    common::unsafe_sigterm(w.id());
    let mut w = w;
    let w_status = w.wait().unwrap();
    let w_said = w_said.join().unwrap();
    assert!(w_status.success(), "{w_said}");
    assert!(w_said.contains("waiting for its lease"), "{w_said}");

    // When X is paused longer than its lease, Z takes the partitions over
    // (a claim with the next epoch) and restores them; then X, resumed,
    // sees Z's claim and stops before publishing again (fenced).
    let x_pid = x.id();
    signal(x_pid, "STOP");
    std::thread::sleep(Duration::from_millis(LEASE_MS + 500));
    // X wakes up while Z runs (Z has claimed within the first seconds).
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        signal(x_pid, "CONT");
    });
    let z_said = run_until_covered(&dir.path().join("z"), &x_toml, events, None);
    waker.join().unwrap();
    let x_status = x.wait().unwrap();
    let x_said = x_said.join().unwrap();
    assert!(!x_status.success(), "{x_said}");
    assert!(x_said.contains("fenced: engine"), "{x_said}");
    assert!(
        z_said.contains("a previous owner had published them"),
        "{z_said}"
    );
    let (z_events, _) = common::log_totals(&dir.path().join("z"), &x_toml);
    assert_eq!(z_events, events, "Z holds every event");

    // And no command was published twice.
    let (_, twice) = published_ids(&x_config.kafka);
    assert!(twice.is_empty(), "published twice: {twice:?}");
}

#[test]
fn a_rescale_from_two_engines_to_three_by_ordinal_loses_and_repeats_nothing() {
    const TWELVE: i32 = 12;
    let dir = tempfile::tempdir().unwrap();
    let suffix = format!("rescale-{}", common::run_id());
    let (toml, config) = config(dir.path(), &suffix, "e", "ordinal");
    with_policy(dir.path(), &toml);
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        &format!("partitions = {PARTITIONS}\n"),
        &format!("partitions = {TWELVE}\n"),
    );
    std::fs::write(&toml, text).unwrap();
    create_topics(dir.path(), &toml);
    let items = workload(37, 1_500, 50);
    let (first, second) = items.split_at(items.len() / 2);
    // The events of `items` that engine `ordinal` of `replicas` owns.
    let share = |items: &[SimItem], ordinal: i32, replicas: i32| {
        events_on(items, TWELVE, |p| p % replicas == ordinal)
    };
    let engine = |data: &Path, ordinal: i32, replicas: i32, expect: u64| {
        let mut c = leadflow(data, &toml);
        c.env("HOSTNAME", format!("leadflow-{ordinal}"))
            .env("LEADFLOW_KAFKA_REPLICAS", replicas.to_string());
        run_until_covered_with(c, expect)
    };

    // Given two engines by ordinal that consumed the first half ...
    publish(dir.path(), &toml, first, "first.pb");
    for o in 0..2 {
        engine(
            &dir.path().join(format!("two-{o}")),
            o,
            2,
            share(first, o, 2),
        );
    }
    // ... when the second half arrives and three engines take over (each
    // its ordinal's partitions of twelve): the first two on their old data
    // dirs (a hand-off: each keeps the stores of the partitions it still
    // owns, moves the others aside and restores the ones it gains), the
    // third with an empty one ...
    publish(dir.path(), &toml, second, "second.pb");
    let three = |o: i32| match o {
        2 => dir.path().join("three-2"),
        o => dir.path().join(format!("two-{o}")),
    };
    let mut said = Vec::new();
    for o in 0..3 {
        said.push(engine(&three(o), o, 3, share(&items, o, 3)));
    }
    // (engine 0 owned 0, 2, 4, 6, 8, 10 and owns 0, 3, 6, 9 now)
    for moved in [2, 4, 8, 10] {
        assert!(
            said[0].contains(&format!("partition {moved} is not this engine's any more")),
            "{}",
            said[0]
        );
    }
    assert!(!said[0].contains("partition 6 is not"), "{}", said[0]);
    let start = said[0]
        .lines()
        .find(|l| l.contains("leadflow run: consuming"))
        .unwrap();
    // The partitions engine 0 gains (3 and 9) were engine 1's, which
    // published their stores when it stopped: engine 0 loads them and
    // reads only the events after them.
    for gained in [3, 9] {
        assert!(
            said[0].contains(&format!("partition {gained}: loaded the store")),
            "{}",
            said[0]
        );
    }
    assert!(
        !start.contains("partition 0 at sequence 0,")
            && !start.contains("partition 3 at sequence 0,"),
        "kept and loaded stores start where they were: {start}"
    );
    // And the third engine, on an empty data dir, loads all of its
    // partitions' stores (2 and 8 were engine 0's; 5 and 11 engine 1's).
    for gained in [2, 5, 8, 11] {
        assert!(
            said[2].contains(&format!("partition {gained}: loaded the store")),
            "{}",
            said[2]
        );
    }
    // Then the three hold every event once between them ...
    let mut ids = BTreeSet::new();
    let mut held = 0;
    for o in 0..3 {
        let (events, _) = contents(&three(o), &toml);
        held += events.len();
        ids.extend(events);
    }
    let events = items
        .iter()
        .filter(|i| matches!(i, SimItem::Event(_)))
        .count();
    assert_eq!(held, events, "every event held once");
    assert_eq!(ids.len(), events, "no event held twice");
    // ... and no command went out twice over the whole run.
    let (published, twice) = published_ids(&config.kafka);
    assert!(!published.is_empty());
    assert!(twice.is_empty(), "published twice: {twice:?}");
}

/// `run_until_covered` for a command already set up (its environment).
fn run_until_covered_with(mut command: std::process::Command, expect: u64) -> String {
    use std::io::BufRead;
    let mut child = command
        .arg("run")
        .env("RUST_LOG", "leadflow=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let mut lines = stderr.lines();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        let covered = common::covered_in(&line);
        if covered.is_some_and(|n| n >= expect) || std::time::Instant::now() > deadline {
            break;
        }
    }
    common::unsafe_sigterm(child.id());
    for line in lines {
        said.push_str(&line.unwrap_or_default());
        said.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{said}");
    assert!(said.contains(&format!("covered {expect} ")), "{said}");
    said
}

/// What an engine's `/metrics` says its projections cover (accepted events).
fn projected(url: &str) -> u64 {
    let text = ureq::get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("leadflow_projection_sequence "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn three_engines_at_once_hold_100k_events_of_50_tenants_once_and_add_up_to_one() {
    const TWELVE: i32 = 12;
    let dir = tempfile::tempdir().unwrap();
    let suffix = format!("three-{}", common::run_id());
    let (toml, config) = config(dir.path(), &suffix, "e", "ordinal");
    with_policy(dir.path(), &toml);
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        &format!("partitions = {PARTITIONS}\n"),
        &format!("partitions = {TWELVE}\n"),
    );
    std::fs::write(&toml, text.clone()).unwrap();
    // The single engine compared with: every partition, its own commands
    // and owners topics, the same events topic.
    let single_toml = dir.path().join("single.toml");
    std::fs::write(
        &single_toml,
        text.replace(
            &format!("commands-{suffix}"),
            &format!("single-commands-{suffix}"),
        )
        .replace(
            &format!("owners-{suffix}"),
            &format!("single-owners-{suffix}"),
        )
        .replace("own_partitions = \"ordinal\"", "own_partitions = \"0-11\"")
        // It reads the events topic itself, not the stores the three
        // publish when they stop.
        .replace(
            &format!("snapshots_topic = \"snapshots-{suffix}\""),
            "snapshots_topic = \"\"",
        ),
    )
    .unwrap();
    create_topics(dir.path(), &toml);
    create_topics(dir.path(), &single_toml);
    let items = workload(41, 13_500, 50);
    let events = items
        .iter()
        .filter(|i| matches!(i, SimItem::Event(_)))
        .count() as u64;
    assert!(events >= 100_000, "{events}");

    // Given three engines by ordinal, each with an empty data dir and an
    // API, running before the events arrive ...
    let engines: Vec<_> = (0..3)
        .map(|o| {
            let data = dir.path().join(format!("engine-{o}"));
            let (child, url, rest) = common::run_with_api(
                leadflow(&data, &toml)
                    .env("HOSTNAME", format!("leadflow-{o}"))
                    .env("LEADFLOW_KAFKA_REPLICAS", "3")
                    .env("LEADFLOW_API_LISTEN", "127.0.0.1:0"),
            );
            let share = events_on(&items, TWELVE, |p| p % 3 == o);
            (data, child, url, rest, share)
        })
        .collect();
    // ... when 100k events of 50 tenants are published while they run ...
    publish(dir.path(), &toml, &items, "events.pb");
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    for (_, _, url, _, share) in &engines {
        while projected(url) < *share {
            assert!(
                std::time::Instant::now() < deadline,
                "{url} never covered its {share} events (at {})",
                projected(url)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(projected(url), *share, "{url} took more than its share");
    }
    // ... and one engine owning every partition consumes the same topic.
    let single_data = dir.path().join("single");
    run_until_covered(&single_data, &single_toml, events, None);

    // Then the numbers of the three, merged from their APIs, are the
    // single engine's ...
    let peers: Vec<&str> = engines.iter().map(|e| e.2.as_str()).collect();
    assert_merged_is_one(
        &dir.path().join("scratch"),
        &toml,
        &peers.join(","),
        &single_data,
        &single_toml,
    );
    // ... any engine answers a tenant's query: engine 0 forwards one about
    // a tenant of engine 2 to engine 2 and relays its answer ...
    let tenant2 = (0..50)
        .map(|t| format!("tenant-{t:02}"))
        .find(|t| tenant::home_partition(t, TWELVE).unwrap() % 3 == 2)
        .unwrap();
    let get = |url: &str, forwarded: bool| {
        let mut r = ureq::get(url).timeout(Duration::from_secs(30));
        if forwarded {
            r = r.set("x-leadflow-forwarded-by", "test");
        }
        match r.call() {
            Ok(r) => (r.status(), r.into_json::<serde_json::Value>().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
            Err(e) => panic!("GET {url}: {e}"),
        }
    };
    for route in ["reps", "pools"] {
        let path = format!("/api/v1/{route}?tenant={tenant2}&limit=1000");
        let (code, direct) = get(&format!("{}{path}", engines[2].2), false);
        assert_eq!(code, 200, "{direct}");
        assert!(!direct["items"].as_array().unwrap().is_empty(), "{direct}");
        let (code, relayed) = get(&format!("{}{path}", engines[0].2), false);
        assert_eq!((code, &relayed), (200, &direct), "{route} through engine 0");
        // A request already forwarded once is not forwarded again.
        let (code, refused) = get(&format!("{}{path}", engines[0].2), true);
        assert_eq!(code, 421, "{refused}");
        assert_eq!(refused["code"], "not_owned_here");
    }
    // ... the union of their logs holds every event exactly once ...
    let mut ids = BTreeSet::new();
    let mut held = 0;
    for (data, mut child, _, rest, share) in engines {
        common::unsafe_sigterm(child.id());
        assert!(child.wait().unwrap().success(), "{}", rest.join().unwrap());
        let (mine, _) = contents(&data, &toml);
        assert_eq!(mine.len() as u64, share);
        held += mine.len();
        ids.extend(mine);
    }
    assert_eq!(held as u64, events, "every event held once");
    assert_eq!(ids.len() as u64, events, "no event held twice");
    // ... and every command they published went out once.
    let (published, twice) = published_ids(&config.kafka);
    assert!(published.len() > 1_000, "{}", published.len());
    assert!(twice.is_empty(), "published twice: {twice:?}");
}
