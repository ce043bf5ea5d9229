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
    let (engine, base, drain) =
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

    stop(engine, drain);
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

/// SIGTERM to an engine of [`engine_with_policy`]; it must exit cleanly.
fn stop(mut engine: std::process::Child, drain: std::thread::JoinHandle<String>) {
    common::unsafe_sigterm(engine.id());
    let exited = engine.wait().unwrap();
    // Its output ends with it: the drain thread is joined either way.
    let log = drain.join().unwrap();
    assert!(exited.success(), "{log}");
}

/// A read command's output on the data dir and config of
/// [`engine_with_policy`] in `dir`.
fn leadflow_in(dir: &Path, args: &[&str]) -> String {
    common::ok(
        common::leadflow(&dir.join("data"), &dir.join("leadflow.toml"))
            .args(args)
            .output()
            .unwrap(),
    )
}

/// An engine with its API and HTTP ingest on a one-partition topic of its
/// own (topics named after `prefix`), deciding under `policy`: its child
/// process, its API's base URL, and the thread draining its output.
fn engine_with_policy(
    dir: &Path,
    prefix: &str,
    policy: &str,
) -> (std::process::Child, String, std::thread::JoinHandle<String>) {
    let run = common::run_id();
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let config = dir.join("leadflow.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{}\"\ngroup_id = \"{prefix}-{run}\"\nevents_topic = \"{prefix}-events-{run}\"\n\
             commands_topic = \"{prefix}-commands-{run}\"\ndlq_topic = \"{prefix}-dlq-{run}\"\npartitions = 1\n\
             [api]\nlisten = \"127.0.0.1:0\"\ningest_token = \"{TOKEN}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n\
             [policy]\nfile = {:?}\n",
            common::brokers(),
            policy_path.display().to_string()
        ),
    )
    .unwrap();
    let data = dir.join("data");
    let leadflow = || common::leadflow(&data, &config);
    common::ok(leadflow().args(["topics", "create"]).output().unwrap());
    common::run_with_api(leadflow().env("LEADFLOW_API_INGEST_TOKEN", TOKEN))
}

#[test]
fn each_tenant_has_its_own_reps_and_pools_over_the_api() {
    use leadflow::domain::build;
    let dir = tempfile::tempdir().unwrap();
    let (engine, base, drain) = engine_with_policy(dir.path(), "ht", TENANT_POLICY);

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

    stop(engine, drain);
}

/// acme's claimable pool with a 24 h first follow-up SLA.
const DUE_POLICY: &str = r#"
version = 1
[tenants.acme]
rules = { first_follow_up_sla_ms = 86400000 }
[[tenants.acme.pools]]
name = "general"
kind = "claimable"
members = [{ id = "rep-a", capacity = 10 }, { id = "rep-b", capacity = 10 }]
"#;

#[test]
fn a_managers_view_lists_a_reps_overdue_and_due_soon_leads() {
    use leadflow::domain::build;
    let dir = tempfile::tempdir().unwrap();
    let (engine, base, drain) = engine_with_policy(dir.path(), "hd", DUE_POLICY);

    // Given, relative to now (the engine's ticks bring the policy's time
    // to the wall clock): rep-a holds L1 (assigned 25 h ago, never
    // followed up: its recall fell due an hour ago), L2 (assigned 2 h ago:
    // due in 22 h) and L3 (assigned 1 h ago: due in 23 h); rep-b holds L4.
    const H: i64 = 3_600_000;
    let now0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut events = Vec::new();
    for (n, (lead, owner, assigned_h_ago)) in [
        ("L1", "rep-a", 25),
        ("L2", "rep-a", 2),
        ("L3", "rep-a", 1),
        ("L4", "rep-b", 2),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(
            build::created(&format!("c-{n}"), lead)
                .tenant("acme")
                .at(now0 - 30 * H)
                .pool("general")
                .event(),
        );
        events.push(
            build::assigned(&format!("a-{n}"), lead, owner)
                .tenant("acme")
                .at(now0 - assigned_h_ago * H)
                .event(),
        );
    }
    let (content_type, bytes) = body(&events, 0);
    let (code, text) = post(
        &format!("{base}/api/v1/events"),
        Some(TOKEN),
        content_type,
        &bytes,
    );
    assert_eq!(code, 200, "{text}");

    // When rep-a's due leads of the next 24 h are asked for (the first
    // tick commands L1's recall; waited for).
    let due = |query: &str| get(&format!("{base}/api/v1/reps/rep-a/due?tenant=acme{query}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (code, v) = due("&within=24h");
        assert_eq!(code, 200, "{v}");
        // L3's assignment (an hour ago) already reached L1's deadline; a
        // tick then brings the policy's time to the wall clock.
        if v["overdue"][0]["recall_commanded"] == true && v["now_ms"].as_i64() >= Some(now0) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "L1's recall never commanded, or no tick: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Then L1 is overdue (recall commanded, an hour past its deadline),
    // and L2 and L3 are due soon, earliest first, each under the first
    // follow-up rule, 24 h after its assignment.
    let leads = |list: &serde_json::Value| -> Vec<(String, i64)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| {
                assert_eq!(d["rule"], "first-follow-up-sla", "{d}");
                (
                    d["lead_id"].as_str().unwrap().to_string(),
                    d["deadline_ms"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(leads(&v["overdue"]), vec![("L1".into(), now0 - H)], "{v}");
    assert_eq!(
        leads(&v["due_soon"]),
        vec![("L2".into(), now0 + 22 * H), ("L3".into(), now0 + 23 * H)],
        "{v}"
    );
    assert_eq!(
        (v["total"].as_u64(), v["holdings"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(v["within_ms"], 24 * H);
    // And 22.5 h ahead holds L2 but not L3; a limit of 1 keeps L1 and
    // counts all three.
    let (_, v) = due("&within=22h%2030m");
    assert_eq!(
        leads(&v["due_soon"]),
        vec![("L2".into(), now0 + 22 * H)],
        "{v}"
    );
    let (_, v) = due("&limit=1");
    assert_eq!(
        (
            leads(&v["overdue"]).len(),
            v["due_soon"].as_array().unwrap().len()
        ),
        (1, 0)
    );
    assert_eq!(v["total"], 3, "{v}");
    // And rep-b's view is its own lead only.
    let (code, v) = get(&format!("{base}/api/v1/reps/rep-b/due?tenant=acme"));
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        leads(&v["due_soon"]),
        vec![("L4".into(), now0 + 22 * H)],
        "{v}"
    );
    // And a wrong question is a clear error: a rep the tenant does not
    // know, a rep of another tenant asked without it, a bad duration.
    for (url, status, needle) in [
        (
            "/api/v1/reps/nobody/due?tenant=acme",
            404,
            "no rep \"nobody\" in tenant \"acme\"",
        ),
        (
            "/api/v1/reps/rep-a/due",
            404,
            "no rep \"rep-a\" in tenant \"\"",
        ),
        (
            "/api/v1/reps/rep-a/due?tenant=acme&within=soon",
            400,
            "within",
        ),
        (
            "/api/v1/reps/rep-a/due?tenant=acme&within=400d",
            400,
            "at most 366 days",
        ),
    ] {
        let (code, v) = get(&format!("{base}{url}"));
        assert_eq!(code, status, "{url}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{url}: {v}"
        );
    }

    stop(engine, drain);
}

const ADMIN_TOKEN: &str = "admin-secret";

/// Two reps of one lead each, and a claimable pool to move leads to.
const MANAGER_POLICY: &str = r#"
version = 4
[[pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 1 }, { id = "rep-2", capacity = 1 }]
[[pools]]
name = "key-accounts"
kind = "claimable"
"#;

fn admin_post(url: &str, token: Option<&str>, body: serde_json::Value) -> (u16, serde_json::Value) {
    let (code, text) = post(url, token, "application/json", body.to_string().as_bytes());
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// A manager transfers a lead, is refused a recall of a waiting lead, and
/// gives a rep more room, which takes the waiting lead: each answered with
/// the policy's commands, explained with the manager's name and recorded
/// in the command log; without the admin token, nothing.
#[test]
fn managers_act_through_the_admin_api_with_explained_commands() {
    use leadflow::domain::build;
    let dir = tempfile::tempdir().unwrap();
    let (engine, base, drain) = engine_with_policy(dir.path(), "hm", MANAGER_POLICY);
    let t0 = 1_790_000_000_000;
    let events = [
        build::created("c-1", "L1").at(t0).pool("inbound").event(),
        build::created("c-2", "L2")
            .at(t0 + 1)
            .pool("inbound")
            .event(),
        build::created("c-3", "L3")
            .at(t0 + 2)
            .pool("inbound")
            .event(),
        build::assigned("a-1", "L1", "rep-1").at(t0 + 3).event(),
        build::assigned("a-2", "L2", "rep-2").at(t0 + 4).event(),
        build::created("c-4", "L4")
            .at(t0 + 5)
            .pool("key-accounts")
            .event(),
    ];
    let (content_type, bytes) = body(&events, 0);
    let (code, text) = post(
        &format!("{base}/api/v1/events"),
        Some(TOKEN),
        content_type,
        &bytes,
    );
    assert_eq!(code, 200, "{text}");

    let url = |path: &str| format!("{base}/api/v1/admin/{path}");
    let transfer = serde_json::json!({"rep": "rep-2", "actor": "alice"});
    let (code, v) = admin_post(&url("leads/L1/assign"), None, transfer.clone());
    assert_eq!(code, 401, "{v}");
    let (code, v) = admin_post(&url("leads/L1/assign"), Some(ADMIN_TOKEN), transfer);
    assert_eq!(code, 200, "{v}");
    let c = &v["commands"][0];
    assert_eq!(
        (c["type"].as_str(), c["owner_id"].as_str()),
        (Some("assign_lead"), Some("rep-2")),
        "{v}"
    );
    assert_eq!(
        c["explanation"],
        "assign to rep-2 (by manager alice in pool inbound, transfer from rep-1; holds 1 of 1; rule manager v4)"
    );
    assert_eq!(c["facts"]["actor"], "alice");

    let (code, v) = admin_post(
        &url("leads/L3/recall"),
        Some(ADMIN_TOKEN),
        serde_json::json!({"actor": "alice"}),
    );
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["code"], "refused");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("only a held lead can be recalled"),
        "{v}"
    );
    let (code, v) = admin_post(
        &url("leads/L1/assign"),
        Some(ADMIN_TOKEN),
        serde_json::json!({"rep": "rep-1"}),
    );
    assert_eq!(code, 400, "an action names its actor: {v}");

    // rep-1 gets room for 3: the waiting L3 goes to rep-1 at once.
    let (code, v) = admin_post(
        &url("reps/rep-1"),
        Some(ADMIN_TOKEN),
        serde_json::json!({"actor": "bob", "capacity": 3}),
    );
    assert_eq!(code, 200, "{v}");
    let c = &v["commands"][0];
    assert_eq!(
        (c["lead_id"].as_str(), c["owner_id"].as_str()),
        (Some("L3"), Some("rep-1")),
        "{v}"
    );
    let (code, reps) = get(&format!("{base}/api/v1/reps"));
    assert_eq!(code, 200);
    let rep1 = reps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rep"] == "rep-1")
        .unwrap()
        .clone();
    assert_eq!(rep1["capacity"], 3, "{reps}");

    // A waiting lead moved to inbound: the CRM carries the move out, and
    // the lead is allocated there (to rep-1, the one with room).
    let (code, v) = admin_post(
        &url("leads/L4/move"),
        Some(ADMIN_TOKEN),
        serde_json::json!({"actor": "carol", "to_pool": "inbound"}),
    );
    assert_eq!(code, 200, "{v}");
    let c = &v["commands"][0];
    assert_eq!(c["type"], "move_lead", "{v}");
    let moved = build::event(
        "m-4",
        "L4",
        leadflow::domain::EventBody::Moved(leadflow::domain::LeadMoved {
            to_pool: "inbound".into(),
            command_id: c["command_id"].as_str().unwrap().into(),
        }),
    )
    .at(t0 + 10)
    .event();
    let (content_type, bytes) = body(&[moved], 0);
    let (code, text) = post(
        &format!("{base}/api/v1/events"),
        Some(TOKEN),
        content_type,
        &bytes,
    );
    assert_eq!(code, 200, "{text}");

    stop(engine, drain);
    // The command log holds them, with who acted.
    let out = leadflow_in(dir.path(), &["inspect", "commands", "--json"]);
    let commands: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let by_manager: Vec<String> = commands
        .iter()
        .filter(|c| c["rule_id"] == "manager")
        .map(|c| {
            format!(
                "{} {}",
                c["lead_id"].as_str().unwrap(),
                c["facts"]["actor"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(by_manager, vec!["L1 alice", "L4 carol"], "{out}");
    assert!(
        commands.iter().any(|c| c["lead_id"] == "L4"
            && c["type"] == "assign_lead"
            && c["owner_id"] == "rep-1"),
        "{out}"
    );
    assert!(
        commands
            .iter()
            .any(|c| c["lead_id"] == "L3" && c["owner_id"] == "rep-1"),
        "{out}"
    );
}

/// The public pool: members may hold 2 claimed leads at most.
const CLAIM_POLICY: &str = r#"
version = 3
[[pools]]
name = "open-sea"
kind = "claimable"
members = [{ id = "rep-1", capacity = 10 }, { id = "rep-2", capacity = 10 }]
[pools.claim]
members_only = true
holdings_max = 2
"#;

/// Two reps race for one lead of the public pool, over HTTP: the request
/// appended first is granted, the other declined `already_claimed`; an
/// outsider is declined `not_a_member`. The answers are commands (in the
/// log, as `inspect commands` shows them) and counted per rep and pool
/// (`GET /api/v1/claims`).
#[test]
fn claims_from_the_public_pool_are_arbitrated_first_come_first_served() {
    use leadflow::domain::{build, EventBody, LeadClaimRequested};
    let dir = tempfile::tempdir().unwrap();
    let (engine, base, drain) = engine_with_policy(dir.path(), "hc", CLAIM_POLICY);
    let t0 = 1_790_000_000_000;
    let claim = |id: &str, lead: &str, rep: &str, at: i64| {
        build::event(
            id,
            lead,
            EventBody::ClaimRequested(LeadClaimRequested { rep_id: rep.into() }),
        )
        .at(at)
        .event()
    };
    let events = [
        build::created("c-1", "L1").at(t0).pool("open-sea").event(),
        build::created("c-2", "L2").at(t0).pool("open-sea").event(),
        claim("q-1", "L1", "rep-2", t0 + 1_000),
        claim("q-2", "L1", "rep-1", t0 + 1_000),
        claim("q-3", "L2", "rep-9", t0 + 2_000),
    ];
    let (content_type, bytes) = body(&events, 0);
    let (code, text) = post(
        &format!("{base}/api/v1/events"),
        Some(TOKEN),
        content_type,
        &bytes,
    );
    assert_eq!(code, 200, "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (code, v) = get(&format!("{base}/api/v1/claims"));
        assert_eq!(code, 200, "{v}");
        if v["granted"].as_u64().unwrap_or(0) + v["declined"].as_u64().unwrap_or(0) == 3 {
            break v;
        }
        assert!(Instant::now() < deadline, "claims not answered: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let rows: Vec<(String, String, u64, serde_json::Value)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rep"].as_str().unwrap().to_string(),
                r["pool"].as_str().unwrap().to_string(),
                r["granted"].as_u64().unwrap(),
                r["declined_by_reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "rep-1".into(),
                "open-sea".into(),
                0,
                serde_json::json!({"already_claimed": 1})
            ),
            ("rep-2".into(), "open-sea".into(), 1, serde_json::json!({})),
            (
                "rep-9".into(),
                "open-sea".into(),
                0,
                serde_json::json!({"not_a_member": 1})
            ),
        ],
        "{v}"
    );
    let (_, one) = get(&format!("{base}/api/v1/claims?rep=rep-9"));
    assert_eq!(one["total_rows"], 1, "{one}");

    stop(engine, drain);
    // The answers are commands in the log: rep-2's AssignLead of rule
    // claim, and a DeclineClaim naming each refused request.
    let out = leadflow_in(dir.path(), &["inspect", "commands", "--json"]);
    let commands: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let claims: Vec<String> = commands
        .iter()
        .filter(|c| c["rule_id"] == "claim")
        .map(|c| {
            format!(
                "{} {}",
                c["lead_id"].as_str().unwrap(),
                c["explanation"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(claims.len(), 3, "{out}");
    assert!(
        claims[0].starts_with(
            "L1 assign to rep-2 (claimed from pool open-sea, holds 0 of at most 2; rule claim v3)"
        ),
        "{claims:?}"
    );
    assert!(claims[1].starts_with("L1 decline rep-1's claim on pool open-sea: already_claimed (promised to rep-2 by cmd-assign_lead-"), "{claims:?}");
    assert!(
        claims[2].starts_with("L2 decline rep-9's claim on pool open-sea: not_a_member"),
        "{claims:?}"
    );
}

/// A policy that refuses duplicate contacts: the second lead with an open
/// lead's fingerprint is rejected `duplicate_contact` at intake (answered,
/// kept as a rejection, never in a pool); once the original converts, the
/// contact may come again.
#[test]
fn a_duplicate_contact_is_refused_at_intake_under_a_rejecting_policy() {
    use leadflow::domain::build;
    let dir = tempfile::tempdir().unwrap();
    let policy = "version = 1\n[duplicates]\nhandling = \"reject\"\n\
                  [[pools]]\nname = \"inbound\"\nkind = \"claimable\"\n";
    let (engine, base, drain) = engine_with_policy(dir.path(), "hx", policy);
    let t0 = 1_790_000_000_000;
    let lead = |id: &str, lead: &str, fp: &str, at: i64| {
        let mut e = build::created(id, lead).at(at).pool("inbound").event();
        if let leadflow::domain::EventBody::Created(c) = &mut e.body {
            c.contact_fingerprint = fp.to_string();
        }
        e
    };
    let send = |events: &[leadflow::domain::LeadEvent]| -> serde_json::Value {
        let (content_type, bytes) = body(events, 0);
        let (code, text) = post(
            &format!("{base}/api/v1/events"),
            Some(TOKEN),
            content_type,
            &bytes,
        );
        assert_eq!(code, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    };
    // The original and, in the same request, its duplicate.
    let v = send(&[
        lead("c-1", "L1", "fp-x", t0),
        lead("c-2", "L2", "fp-x", t0 + 1),
    ]);
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["items"][1]["code"], "duplicate_contact", "{v}");
    assert!(
        v["items"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("lead L1 is open with the same contact fingerprint"),
        "{v}"
    );
    // Sent again: the same answer (the id is spent on the rejection).
    let again = send(&[lead("c-2", "L2", "fp-x", t0 + 1)]);
    assert_eq!(again["items"][0]["code"], "duplicate_contact", "{again}");
    // L1 converts: the contact is free again.
    let v = send(&[
        build::assigned("a-1", "L1", "rep-1").at(t0 + 2).event(),
        build::event(
            "v-1",
            "L1",
            leadflow::domain::EventBody::Converted(leadflow::domain::LeadConverted {
                owner_id: "rep-1".into(),
                deal_value: leadflow::domain::Money::new(
                    100,
                    leadflow::domain::Currency::parse("CNY").unwrap(),
                ),
                customer_id: "cust".into(),
                expected_lifetime_value: None,
            }),
        )
        .at(t0 + 3)
        .event(),
        lead("c-3", "L3", "fp-x", t0 + 4),
    ]);
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(3), Some(0)),
        "{v}"
    );

    stop(engine, drain);
    let out = leadflow_in(
        dir.path(),
        &["inspect", "rejections", "--reason", "duplicate_contact"],
    );
    assert!(out.contains("duplicate_contact"), "{out}");
}

/// Lead scoring through the running engine: events over HTTP, the engine's
/// own `scored` event in the lead's timeline, and the score's parts and
/// reasons in `GET /api/v1/leads/{id}`; kept once across a restart.
#[test]
fn the_engine_scores_a_lead_and_says_why() {
    use leadflow::domain::{build, EventBody, LeadEngaged};
    let dir = tempfile::tempdir().unwrap();
    let policy = "version = 1\n\
                  [[scoring.attributes]]\nfield = \"industry\"\nequals = \"manufacturing\"\npoints = 20\n\
                  [scoring.behaviour.email_reply]\npoints = 15\nhalf_life = \"14d\"\n";
    let (engine, base, drain) = engine_with_policy(dir.path(), "hs", policy);
    let t0 = 1_790_000_000_000;
    let send = |events: &[LeadEvent]| {
        let (content_type, bytes) = body(events, 0);
        let (code, text) = post(
            &format!("{base}/api/v1/events"),
            Some(TOKEN),
            content_type,
            &bytes,
        );
        assert_eq!(code, 200, "{text}");
    };
    // Given a manufacturer created, then (another request) replying to
    // an email.
    send(&[build::created("c-1", "S1")
        .profile("east", "manufacturing", "large")
        .at(t0)
        .event()]);
    send(&[build::event(
        "g-1",
        "S1",
        EventBody::Engaged(LeadEngaged {
            kind: "email_reply".into(),
            points: None,
            source: "mailer".into(),
            detail: String::new(),
        }),
    )
    .at(t0 + 60_000)
    .event()]);
    // Then its timeline holds two scores of the engine's own (10 at
    // creation: attribute 20 and no behaviour yet, weighted 30/30; 18 =
    // (20 + 15) / 2, rounded half up, after the reply), and the lead's
    // answer gives the score now with its parts and reasons.
    let (code, lead) = get(&format!("{base}/api/v1/leads/S1"));
    assert_eq!(code, 200, "{lead}");
    let scores: Vec<u64> = lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["event"]["producer"] == "leadflow")
        .map(|t| t["event"]["scored"]["score"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(scores, vec![10, 18], "{lead}");
    let score = &lead["score"];
    assert_eq!(
        (
            score["attribute"].as_u64(),
            score["behaviour"].as_u64(),
            score["combined"].as_u64()
        ),
        (Some(20), Some(15), Some(18)),
        "{lead}"
    );
    let reasons: Vec<&str> = score["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec!["industry = manufacturing", "email_reply"],
        "{lead}"
    );
    stop(engine, drain);
    // A restart publishes nothing again.
    let (engine, base, drain) = common::run_with_api(
        common::leadflow(&dir.path().join("data"), &dir.path().join("leadflow.toml"))
            .env("LEADFLOW_API_INGEST_TOKEN", TOKEN),
    );
    let (_, lead) = get(&format!("{base}/api/v1/leads/S1"));
    let engine_events = lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["event"]["producer"] == "leadflow")
        .count();
    assert_eq!(engine_events, 2, "{lead}");
    stop(engine, drain);
    // And `inspect lead` over the stopped engine's data dir says the same:
    // the score now, its parts and the rules that gave them.
    let shown = common::ok(
        common::leadflow(&dir.path().join("data"), &dir.path().join("leadflow.toml"))
            .args(["inspect", "lead", "S1"])
            .output()
            .unwrap(),
    );
    assert!(
        shown.contains("score now 18 (attribute 20, behaviour 15, predictive -)")
            && shown.contains(
                "rules: industry = manufacturing +20.00 points, email_reply +15.00 points"
            ),
        "{shown}"
    );
}
