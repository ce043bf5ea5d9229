//! HTTP ingest (`POST /api/v1/events`) beside Kafka ingest, on the real
//! broker (`./scripts/test`): the same events over both land in one log
//! exactly once, a retried request changes nothing, tokens are enforced.

mod common;

use leadflow::codec::stream::{EventWriter, Format};
use leadflow::domain::LeadEvent;
use leadflow::sim::{SimConfig, SimItem, Simulator};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "ingest-s3cret";

fn post(url: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut req = ureq::post(url)
        .timeout(Duration::from_secs(60))
        .set("Content-Type", content_type);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

/// One request body in one of the three formats, chosen by `n`.
fn body(events: &[LeadEvent], n: usize) -> (&'static str, Vec<u8>) {
    match n % 3 {
        0 => {
            let items: Vec<String> = events.iter().map(leadflow::codec::event_to_json).collect();
            (
                "application/json",
                format!("[{}]", items.join(",")).into_bytes(),
            )
        }
        1 => {
            let mut out = String::new();
            for e in events {
                out.push_str(&leadflow::codec::event_to_json(e));
                out.push('\n');
            }
            ("application/x-ndjson", out.into_bytes())
        }
        _ => {
            let mut w = EventWriter::new(Vec::new(), Format::Protobuf);
            for e in events {
                w.write(e).unwrap();
            }
            ("application/x-protobuf", w.into_inner())
        }
    }
}

#[test]
fn the_same_events_over_http_and_kafka_land_once_and_a_retry_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::run_id();
    let config = dir.path().join("leadflow.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{}\"\ngroup_id = \"h-{run}\"\nevents_topic = \"h-events-{run}\"\n\
             commands_topic = \"h-commands-{run}\"\ndlq_topic = \"h-dlq-{run}\"\npartitions = 2\n\
             [api]\nlisten = \"127.0.0.1:0\"\ningest_token = \"{TOKEN}\"\nrequests_per_s_max = 10000\n",
            common::brokers()
        ),
    )
    .unwrap();
    let input = dir.path().join("events.pb");
    let mut events = Vec::new();
    let mut w = EventWriter::new(
        std::io::BufWriter::new(std::fs::File::create(&input).unwrap()),
        Format::Protobuf,
    );
    for item in Simulator::new(SimConfig {
        seed: 21,
        leads: 20_000,
        days: 30,
        bad_ratio: 0.0,
        ..SimConfig::default()
    }) {
        if let SimItem::Event(e) = item {
            w.write(&e).unwrap();
            events.push(e);
        }
    }
    w.into_inner().flush().unwrap();
    let total = events.len() as u64;
    assert!(total >= 100_000, "{total}");

    let data = dir.path().join("data");
    let leadflow = || common::leadflow(&data, &config);
    common::ok(leadflow().args(["topics", "create"]).output().unwrap());
    let (mut engine, base, drain) =
        common::run_with_api(leadflow().env("LEADFLOW_API_INGEST_TOKEN", TOKEN));
    let url = format!("{base}/api/v1/events");

    // Tokens first: none, and a wrong one, append nothing.
    let (json, one) = body(&events[..1], 0);
    assert_eq!(post(&url, None, json, &one).0, 401);
    assert_eq!(post(&url, Some("wrong"), json, &one).0, 401);
    assert_eq!(post(&url, Some(TOKEN), "text/csv", &one).0, 415);

    // The same events over Kafka (in the background) and over HTTP.
    let publisher = {
        let data = data.clone();
        let config = config.clone();
        let input = input.clone();
        std::thread::spawn(move || {
            common::ok(
                common::leadflow(&data, &config)
                    .arg("publish")
                    .arg(&input)
                    .output()
                    .unwrap(),
            )
        })
    };
    let mut answered = 0u64;
    let mut http_first = 0u64;
    let mut last = None;
    for (n, chunk) in events.chunks(1_000).enumerate() {
        let (content_type, bytes) = body(chunk, n);
        let (code, text) = post(&url, Some(TOKEN), content_type, &bytes);
        assert_eq!(code, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), chunk.len());
        assert_eq!(v["rejected"], 0, "{text}");
        http_first += v["accepted"].as_u64().unwrap();
        answered += v["accepted"].as_u64().unwrap() + v["duplicates"].as_u64().unwrap();
        last = Some((content_type, bytes, chunk.len()));
    }
    assert_eq!(answered, total);
    publisher.join().unwrap();

    // Wait until the Kafka copies are read too (each a duplicate).
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (code, body) = common_get(&format!("{base}/metrics"));
        assert_eq!(code, 200);
        let consumed = body
            .lines()
            .find_map(|l| l.strip_prefix("leadflow_messages_consumed_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if consumed >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Kafka copies not read: {consumed}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_millis(1_500));

    // A retried request: every item answered from the log.
    let (content_type, bytes, len) = last.unwrap();
    let (code, text) = post(&url, Some(TOKEN), content_type, &bytes);
    assert_eq!(code, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["accepted"], 0, "{text}");
    assert_eq!(v["duplicates"].as_u64().unwrap(), len as u64, "{text}");

    common::unsafe_sigterm(engine.id());
    assert!(
        engine.wait().unwrap().success(),
        "{}",
        drain.join().unwrap()
    );
    drain.join().unwrap();
    let (accepted, rejected) = common::log_totals(&data, &config);
    assert_eq!(accepted, total, "every event once");
    // An event HTTP brought first makes its Kafka copy a stored `duplicate`
    // rejection; one Kafka brought first is answered `duplicate` over HTTP
    // and stores nothing. Nothing else is rejected.
    assert_eq!(
        rejected, http_first,
        "only the Kafka copies of HTTP's events"
    );

    // The log holds exactly the file's events: the same numbers as an import.
    let imported = dir.path().join("imported");
    common::ok(
        common::leadflow(&imported, &config)
            .arg("import")
            .arg(&input)
            .output()
            .unwrap(),
    );
    for by in ["channel", "owner", "pools"] {
        let stats = |d: &Path| {
            common::ok(
                common::leadflow(d, &config)
                    .args(["stats", "--json", "--by", by])
                    .output()
                    .unwrap(),
            )
        };
        assert_eq!(stats(&data), stats(&imported), "stats --by {by}");
    }
}

fn common_get(url: &str) -> (u16, String) {
    match ureq::get(url).timeout(Duration::from_secs(10)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

fn get(url: &str) -> (u16, serde_json::Value) {
    match ureq::get(url).timeout(Duration::from_secs(60)).call() {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// Rep id `rep-1` in two tenants, each with room for one lead, and a
/// third tenant the policy does not list.
const TENANT_POLICY: &str = r#"
version = 1
[tenants.acme]
[[tenants.acme.pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 1 }]
[tenants.globex]
[[tenants.globex.pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 1 }]
"#;

#[test]
fn each_tenant_has_its_own_reps_and_pools_over_the_api() {
    use leadflow::domain::build;
    let dir = tempfile::tempdir().unwrap();
    let run = common::run_id();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, TENANT_POLICY).unwrap();
    let config = dir.path().join("leadflow.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{}\"\ngroup_id = \"ht-{run}\"\nevents_topic = \"ht-events-{run}\"\n\
             commands_topic = \"ht-commands-{run}\"\ndlq_topic = \"ht-dlq-{run}\"\npartitions = 1\n\
             [api]\nlisten = \"127.0.0.1:0\"\ningest_token = \"{TOKEN}\"\n\
             [policy]\nfile = {:?}\n",
            common::brokers(),
            policy.display().to_string()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let leadflow = || common::leadflow(&data, &config);
    common::ok(leadflow().args(["topics", "create"]).output().unwrap());
    let (mut engine, base, drain) =
        common::run_with_api(leadflow().env("LEADFLOW_API_INGEST_TOKEN", TOKEN));

    // Given two leads of acme, one of globex, one of initech (unlisted).
    let lead = |n: u32, tenant: &str, lead: &str| {
        build::created(&format!("e-{n}"), lead)
            .tenant(tenant)
            .at(1_790_000_000_000 + i64::from(n))
            .pool("inbound")
            .channel("search")
            .event()
    };
    let events = [
        lead(1, "acme", "a-1"),
        lead(2, "acme", "a-2"),
        lead(3, "globex", "g-1"),
        lead(4, "initech", "i-1"),
    ];
    let (content_type, bytes) = body(&events, 1);
    let (code, text) = post(
        &format!("{base}/api/v1/events"),
        Some(TOKEN),
        content_type,
        &bytes,
    );
    assert_eq!(code, 200, "{text}");

    // Then each tenant's rep-1 holds a pending assignment of its own.
    let pending = |tenant: &str| {
        let (code, v) = get(&format!("{base}/api/v1/reps?tenant={tenant}"));
        assert_eq!(code, 200, "{v}");
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["rep"].as_str().unwrap().to_string(),
                    r["capacity"].as_u64(),
                    r["pending_assignments"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(pending("acme"), vec![("rep-1".to_string(), Some(1), 1)]);
    assert_eq!(pending("globex"), vec![("rep-1".to_string(), Some(1), 1)]);
    assert_eq!(pending("initech"), vec![]);
    // And acme's second lead waits in acme's pool, none in globex's.
    let waiting = |tenant: &str| {
        let (code, v) = get(&format!("{base}/api/v1/pools?tenant={tenant}"));
        assert_eq!(code, 200, "{v}");
        v["items"][0]["waiting"].as_u64().unwrap()
    };
    assert_eq!(
        waiting("acme"),
        2,
        "both acme leads wait until the CRM assigns"
    );
    assert_eq!(waiting("globex"), 1);
    // A tenant id that cannot be one is a clear 400.
    let (code, v) = get(&format!("{base}/api/v1/reps?tenant=a%20b"));
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("not a tenant id"),
        "{v}"
    );

    common::unsafe_sigterm(engine.id());
    assert!(
        engine.wait().unwrap().success(),
        "{}",
        drain.join().unwrap()
    );
}
