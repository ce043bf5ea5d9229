//! The HTTP API of a running engine on the real broker (`./scripts/test`
//! starts it; address in `LEADFLOW_TEST_BROKERS`): `leadflow run` with the
//! API on a free port, fed the hand-checked fixture through the events
//! topic. Health, readiness, Prometheus metrics (without lead or owner ids
//! as labels), the JSON API with pagination and JSON errors, the OpenAPI
//! document against the real routes, and the admin token.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scenario.jsonl");

fn get(url: &str) -> (u16, String) {
    match ureq::get(url).timeout(Duration::from_secs(10)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

fn post(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::post(url).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn the_api_serves_health_metrics_queries_and_guards_admin() {
    let brokers = common::brokers();
    let dir = tempfile::tempdir().unwrap();
    let run = common::run_id();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[[pools]]\nname = \"general\"\nkind = \"claimable\"\n\
         [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
         members = [{ id = \"rep-a\", capacity = 7 }]\n",
    )
    .unwrap();
    let config = dir.path().join("leadflow.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"api-{run}\"\nevents_topic = \"api-events-{run}\"\n\
             commands_topic = \"api-commands-{run}\"\ndlq_topic = \"api-dlq-{run}\"\npartitions = 2\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"s3cret\"\npage_items_max = 50\n\
             header_read_timeout_ms = 1000\nconnections_max = 64\n\
             [policy]\nfile = {:?}\n",
            policy.display().to_string()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let leadflow = || common::leadflow(&data, &config);
    assert!(leadflow()
        .args(["topics", "create"])
        .status()
        .unwrap()
        .success());
    assert!(leadflow()
        .args(["publish", FIXTURE])
        .status()
        .unwrap()
        .success());
    // Its output keeps being drained, so it never blocks on a full pipe.
    let (mut engine, base, drain) = common::run_with_api(&mut leadflow());

    let (code, body) = get(&format!("{base}/healthz"));
    assert_eq!((code, body.trim()), (200, "ok"));

    // Wait for the fixture to be in: L1 has five events and one rejected.
    let deadline = Instant::now() + Duration::from_secs(60);
    let lead = loop {
        let (code, body) = get(&format!("{base}/api/v1/leads/L1"));
        if code == 200 {
            let v = json(&body);
            if v["timeline"].as_array().unwrap().len() == 5 && v["rejected_events"] == 1 {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "L1 never arrived: {code} {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(lead["timeline"][0]["event"]["eventId"], "fx-01");
    assert!(lead["state"]["status"].is_string(), "{lead}");

    let (code, body) = get(&format!("{base}/api/v1/leads/nobody"));
    assert_eq!(code, 404);
    assert_eq!(json(&body)["code"], "not_found");

    // Ready once caught up (the statistics that carry the lag come every second).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = get(&format!("{base}/readyz"));
        if code == 200 {
            assert_eq!(json(&body)["ready"], true);
            break;
        }
        assert_eq!(code, 503, "{body}");
        assert!(Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // All 19 fixture records durable (16 events, 3 rejections): consumed
    // alone could still sit in an open batch.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (code, metrics) = get(&format!("{base}/metrics"));
        assert_eq!(code, 200);
        // The lag (from librdkafka's statistics) and the pool gauges are
        // refreshed once a second: they may show after the last event.
        let durable = [
            "leadflow_projection_sequence 16",
            "reason=\"duplicate\"} 1",
            "reason=\"not_owner\"} 1",
            "reason=\"undecodable\"} 1",
            "leadflow_consumer_lag_messages{partition=",
            "leadflow_pool_leads{pool=",
        ];
        if durable.iter().all(|d| metrics.contains(d)) {
            break metrics;
        }
        assert!(Instant::now() < deadline, "never all consumed:\n{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    };
    for needle in [
        "leadflow_events_accepted_total{type=\"created\"} 4",
        "leadflow_events_rejected_total{reason=\"not_owner\"} 1",
        "leadflow_events_rejected_total{reason=",
        "leadflow_consumer_lag_messages{partition=",
        "leadflow_batch_size_inputs_bucket{le=\"+Inf\"}",
        "leadflow_append_seconds_count",
        "leadflow_event_to_command_seconds_bucket{le=\"0.05\"}",
        "leadflow_consumed_to_command_seconds_bucket{le=\"0.05\"}",
        "leadflow_outbox_pending_commands",
        "leadflow_projection_sequence ",
        "leadflow_pool_leads{pool=",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    // Every metric the shipped Grafana dashboard queries exists.
    let grafana = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/leadflow.json"
    ))
    .unwrap();
    let grafana: serde_json::Value = serde_json::from_str(&grafana).unwrap();
    let mut queried = 0;
    for panel in grafana["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(base) = name.strip_prefix("leadflow_") {
                    queried += 1;
                    let base = base.trim_end_matches("_bucket");
                    assert!(
                        metrics.contains(&format!("leadflow_{base}")),
                        "the dashboard queries leadflow_{base}, which /metrics lacks"
                    );
                }
            }
        }
    }
    assert!(queried >= 10);
    for id in ["\"L1\"", "\"L2\"", "\"rep-a\"", "\"rep-7\""] {
        assert!(!metrics.contains(id), "an id as a label: {id}");
    }

    let pools = json(&get(&format!("{base}/api/v1/pools?limit=1")).1);
    assert_eq!(pools["items"].as_array().unwrap().len(), 1);
    let (code, body) = get(&format!("{base}/api/v1/pools?limit=500"));
    assert_eq!(code, 400, "limit above page_items_max");
    assert_eq!(json(&body)["code"], "bad_request");
    let reps = json(&get(&format!("{base}/api/v1/reps")).1);
    assert!(
        reps["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rep"] == "rep-a" && r["capacity"] == 7),
        "{reps}"
    );
    let stats = json(&get(&format!("{base}/api/v1/stats?group_by=channel")).1);
    assert!(stats.to_string().contains("search"), "{stats}");
    let (code, body) = get(&format!("{base}/api/v1/stats?group_by=nonsense"));
    assert_eq!(code, 400);
    assert_eq!(json(&body)["code"], "bad_request");

    // The funnel counts distinct leads (hand-checked on the fixture): L1
    // and L2 (search) were assigned, followed up and converted (L2 twice
    // assigned), L3 (social) assigned and followed up, L4 (social, pool
    // vip) never assigned (its follow-up was refused).
    let board = json(&get(&format!("{base}/api/v1/board")).1);
    let funnel = |row: &serde_json::Value| {
        [
            "created",
            "leads_assigned",
            "leads_followed_up",
            "converted",
        ]
        .map(|k| row[k].as_u64())
    };
    assert_eq!(
        funnel(&board["total"]),
        [Some(4), Some(3), Some(3), Some(2)],
        "{board}"
    );
    assert_eq!(board["time_zone"], "UTC");
    assert_eq!(board["owners_total"]["assignments"], 4, "{board}");
    // A filter selects leads by what they were created with, and every
    // number is about those leads: social's funnel, and no other channel.
    let social = json(
        &get(&format!(
            "{base}/api/v1/stats?group_by=channel&channel=social"
        ))
        .1,
    );
    let rows = social["rows"].as_object().unwrap();
    assert_eq!(rows.keys().collect::<Vec<_>>(), vec!["social"], "{social}");
    assert_eq!(
        funnel(&rows["social"]),
        [Some(2), Some(1), Some(1), Some(0)]
    );
    assert_eq!(rows["social"]["recalls"], 1);
    // Reps' work on search leads only: repB took L2 (not L3, social).
    let search = json(&get(&format!("{base}/api/v1/board?channel=search")).1);
    assert_eq!(search["filter"]["channel"], "search");
    assert_eq!(search["by_owner"]["repA"]["assignments"], 2, "{search}");
    assert_eq!(search["by_owner"]["repB"]["assignments"], 1, "{search}");
    assert_eq!(board["by_owner"]["repB"]["assignments"], 2, "{board}");
    // Pools over time: the queue at the end of each day with movement.
    let days = |b: &serde_json::Value, pool: &str| -> Vec<(String, i64, u64, u64)> {
        b["pool_days"][pool]
            .as_array()
            .unwrap_or_else(|| panic!("no {pool}: {b}"))
            .iter()
            .map(|d| {
                (
                    d["date"].as_str().unwrap().to_string(),
                    d["waiting_at_end"].as_i64().unwrap(),
                    d["inflow"].as_u64().unwrap(),
                    d["outflow"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        days(&board, "general"),
        vec![
            ("2026-11-02".into(), 0, 3, 3),
            ("2026-11-04".into(), 0, 1, 1),
            ("2026-11-10".into(), 1, 1, 0),
        ]
    );
    let social_board = json(&get(&format!("{base}/api/v1/board?channel=social")).1);
    assert_eq!(
        days(&social_board, "general"),
        vec![
            ("2026-11-02".into(), 0, 1, 1),
            ("2026-11-10".into(), 1, 1, 0)
        ]
    );
    assert_eq!(
        days(&social_board, "vip"),
        vec![("2026-11-02".into(), 1, 1, 0)]
    );
    // Filters combine, and with the window: vip leads created from Nov 3.
    let vip = json(&get(&format!("{base}/api/v1/board?pool=vip&channel=social")).1);
    assert_eq!(
        funnel(&vip["total"]),
        [Some(1), Some(0), Some(0), Some(0)],
        "{vip}"
    );
    let later = json(&get(&format!("{base}/api/v1/board?pool=vip&from=2026-11-03")).1);
    assert_eq!(later["total"]["created"], 0, "{later}");
    // A tenant with no leads has none; an empty filter value is an error.
    let nobody = json(&get(&format!("{base}/api/v1/stats?tenant=nobody")).1);
    assert_eq!(nobody["rows"], serde_json::json!({}), "{nobody}");
    let (code, body) = get(&format!("{base}/api/v1/board?channel="));
    assert_eq!(
        (code, json(&body)["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );

    // The OpenAPI document lists exactly the routes the server answers.
    let doc = json(&get(&format!("{base}/api/v1/openapi.json")).1);
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    documented.sort();
    let mut routes: Vec<(String, String)> = leadflow::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
    for (method, path) in &routes {
        let url = format!("{base}{}", path.replace("{id}", "L1"));
        let (code, body) = if method == "get" {
            get(&url)
        } else {
            post(&url, Some("s3cret"))
        };
        // A route that exists may answer 404 for an id it does not know
        // (with its JSON error); the router's own 404 has no body.
        let routed = code != 404
            || serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|v| v["code"] == "not_found");
        assert!(routed && code != 405, "{method} {path}: {code} {body}");
    }

    // schemathesis (from PyPI, in the venv `./scripts/test` sets up) checks
    // every documented route against the running server: no server errors,
    // documented status codes, content types and schemas. The routes behind
    // a bearer token (admin, HTTP ingest) are left out: schemathesis sends
    // malformed Authorization headers, which hyper answers itself with a
    // bare 400 before any handler runs; the token checks below and in
    // tests/http_ingest.rs cover them.
    let python = std::env::var("LEADFLOW_TEST_PYTHON")
        .expect("LEADFLOW_TEST_PYTHON is not set: run ./scripts/test, which sets up the venv");
    let st = std::path::Path::new(&python).with_file_name("st");
    let checked = Command::new(&st)
        // schemathesis keeps a .hypothesis cache in its working directory.
        .current_dir(dir.path())
        .args([
            "run",
            "--checks",
            "all",
            "--hypothesis-max-examples",
            "30",
            "--hypothesis-seed",
            "1",
            "--exclude-path-regex",
            "^/api/v1/(admin/|events$)",
            "--base-url",
            &base,
            &format!("{base}/api/v1/openapi.json"),
        ])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "schemathesis found problems:\n{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    // Admin: no token, a wrong one, the right one.
    let admin = format!("{base}/api/v1/admin/snapshot");
    let (code, body) = post(&admin, None);
    assert_eq!(code, 401);
    assert_eq!(json(&body)["code"], "unauthorized");
    assert_eq!(post(&admin, Some("guess")).0, 401);
    let (code, body) = post(&admin, Some("s3cret"));
    assert_eq!(code, 200, "{body}");
    let seq = metrics
        .lines()
        .find_map(|l| l.strip_prefix("leadflow_projection_sequence "))
        .unwrap();
    assert_eq!(json(&body)["snapshot_seq"].to_string(), seq);
    for admin in ["rebuild", "reload-policy"] {
        let url = format!("{base}/api/v1/admin/{admin}");
        assert_eq!(post(&url, None).0, 401, "{admin} without a token");
        assert_eq!(
            post(&url, Some("nope")).0,
            401,
            "{admin} with a wrong token"
        );
    }
    let (code, body) = post(&format!("{base}/api/v1/admin/rebuild"), Some("s3cret"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["rebuilt_to_seq"].to_string(), seq);
    let (code, body) = post(
        &format!("{base}/api/v1/admin/reload-policy"),
        Some("s3cret"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["version_in_force"], 1);

    // Point in time: before the fixture's first event nothing existed; at
    // its end the pools are as they are now.
    let before = json(&get(&format!("{base}/api/v1/pools?at=2026-11-01")).1);
    assert_eq!(before["items"].as_array().unwrap().len(), 0, "{before}");
    let now = json(&get(&format!("{base}/api/v1/pools")).1);
    let end = json(&get(&format!("{base}/api/v1/pools?at=2030-01-01")).1);
    assert_eq!(now["items"], end["items"]);
    let (code, body) = get(&format!("{base}/api/v1/pools?at=yesterday-ish"));
    assert_eq!(
        (code, json(&body)["code"].as_str()),
        (400, Some("bad_request"))
    );

    // Requests are rate-bounded: a burst beyond the bound gets JSON 429s,
    // while probes and metrics stay exempt (a flood must not fail them).
    let limited = (0..600)
        .map(|_| get(&format!("{base}/api/v1/reps")))
        .filter(|(code, body)| *code == 429 && body.contains("rate_limited"))
        .count();
    assert!(limited > 0, "no request was rate limited");
    for probe in ["healthz", "readyz", "metrics"] {
        let codes: Vec<u16> = (0..300)
            .map(|_| get(&format!("{base}/{probe}")).0)
            .collect();
        assert!(
            codes.iter().all(|c| *c == 200),
            "/{probe} was limited: {:?}",
            codes.iter().filter(|c| **c != 200).collect::<Vec<_>>()
        );
    }

    // Silent clients cannot hold the server: past connections_max (64) a
    // connection is closed at once, and every one that sends no complete
    // request is closed after header_read_timeout_ms (1 s).
    let addr = base.trim_start_matches("http://").to_string();
    let silent: Vec<std::net::TcpStream> = (0..80)
        .map(|i| {
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            if i % 2 == 0 {
                // Half a request: a header that never ends.
                std::io::Write::write_all(&mut c, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
            }
            c
        })
        .collect();
    let closed_within = |c: &std::net::TcpStream, within: Duration| -> bool {
        c.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match std::io::Read::read(&mut (&*c), &mut buf) {
                Ok(0) => return true,
                Ok(_) => continue, // a 408 or similar before the close
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    };
    let started = Instant::now();
    let closed = silent
        .iter()
        .filter(|c| closed_within(c, Duration::from_secs(5)))
        .count();
    assert_eq!(closed, 80, "silent connections left open");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        get(&format!("{base}/healthz")).0,
        200,
        "the server still answers"
    );

    // One lead, one answer: the API's view of L1 is what `inspect lead
    // --json` prints from the same log once the engine has stopped.
    let (code, served) = get(&format!("{base}/api/v1/leads/L1"));
    assert_eq!(code, 200, "{served}");

    let _ = Command::new("kill")
        .args(["-TERM", &engine.id().to_string()])
        .status();
    let status = engine.wait().unwrap();
    let rest = drain.join().unwrap();
    assert!(status.success(), "{rest}");

    let printed = leadflow()
        .args(["inspect", "lead", "L1", "--json"])
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    assert_eq!(
        json(&served),
        json(&String::from_utf8(printed.stdout).unwrap()),
        "GET /api/v1/leads/L1 and inspect lead L1 --json differ"
    );
}
