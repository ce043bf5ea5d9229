//! SIGTERM while the engine is under load on both of its inputs — Kafka
//! and HTTP ingest — on the real broker (`./scripts/test`): the process
//! exits 0 within its drain, every request the API answered is durable
//! with the sequence it answered, and the command and dead-letter outboxes
//! are empty (everything decided was published before the exit).

mod common;

use leadflow::codec::stream::{EventWriter, Format};
use leadflow::domain::LeadEvent;
use leadflow::log::{EventLog, LogOptions};
use leadflow::sim::{SimConfig, SimItem, Simulator};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "shutdown-s3cret";
const HTTP_CLIENTS: usize = 4;
/// Large enough that a request takes a while: at the signal, several are
/// being served.
const EVENTS_PER_REQUEST: usize = 2_000;
/// A request sent at least this long before the signal was being served
/// when it came (its connection accepted and its bytes read).
const IN_FLIGHT_MS_MIN: u64 = 50;

/// What became of one request.
struct Request {
    sent: Instant,
    /// (event id, answered sequence) of each event, or why there was no
    /// answer.
    outcome: Result<Vec<(String, u64)>, String>,
}

/// Posts `events` in requests until done or the server goes away.
fn client(url: String, events: Vec<LeadEvent>, posted: Arc<AtomicU64>) -> Vec<Request> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let mut requests = Vec::new();
    for chunk in events.chunks(EVENTS_PER_REQUEST) {
        let mut w = EventWriter::new(Vec::new(), Format::Protobuf);
        for e in chunk {
            w.write(e).unwrap();
        }
        let sent = Instant::now();
        let answer = agent
            .post(&url)
            .set("Content-Type", "application/x-protobuf")
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .send_bytes(&w.into_inner());
        let body: serde_json::Value = match answer {
            Ok(r) => r.into_json().unwrap(),
            // The server stopped accepting (or is stopping): this request
            // and the rest of this client's were not answered.
            Err(e @ (ureq::Error::Transport(_) | ureq::Error::Status(503, _))) => {
                requests.push(Request {
                    sent,
                    outcome: Err(e.to_string()),
                });
                break;
            }
            Err(e) => panic!("POST {url}: {e}"),
        };
        let items = body["items"].as_array().unwrap_or_else(|| panic!("{body}"));
        assert_eq!(items.len(), chunk.len(), "{body}");
        let mut appended = Vec::new();
        for (e, outcome) in chunk.iter().zip(items) {
            match (outcome["outcome"].as_str(), outcome["seq"].as_u64()) {
                (Some("accepted"), Some(seq)) => appended.push((e.event_id.clone(), seq)),
                _ => panic!("{} was not appended: {outcome}", e.event_id),
            }
        }
        requests.push(Request {
            sent,
            outcome: Ok(appended),
        });
        posted.fetch_add(1, Ordering::Relaxed);
    }
    requests
}

#[test]
fn sigterm_under_load_exits_0_with_every_answer_durable_and_the_outboxes_drained() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::run_id();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\n\
         members = [{ id = \"rep-a\", capacity = 100000 }, { id = \"rep-b\", capacity = 100000 }]\n",
    )
    .unwrap();
    let config = dir.path().join("leadflow.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{}\"\ngroup_id = \"s-{run}\"\nevents_topic = \"s-events-{run}\"\n\
             commands_topic = \"s-commands-{run}\"\ndlq_topic = \"s-dlq-{run}\"\npartitions = 2\n\
             [api]\nlisten = \"127.0.0.1:0\"\ningest_token = \"{TOKEN}\"\nrequests_per_s_max = 100000\n\
             [policy]\nfile = {:?}\n",
            common::brokers(),
            policy.display().to_string()
        ),
    )
    .unwrap();
    // One simulated history, its leads split between the two inputs (a
    // lead's events stay on one, in order): even leads over Kafka (with
    // bad records among them, for the dead letters), odd ones over HTTP,
    // spread over the clients.
    let kafka_file = dir.path().join("kafka.pb");
    let mut kafka = EventWriter::new(
        std::io::BufWriter::new(std::fs::File::create(&kafka_file).unwrap()),
        Format::Protobuf,
    );
    let mut http: Vec<Vec<LeadEvent>> = vec![Vec::new(); HTTP_CLIENTS];
    let mut lead_index: HashMap<String, usize> = HashMap::new();
    for item in Simulator::new(SimConfig {
        seed: 77,
        leads: 20_000,
        days: 30,
        bad_ratio: 0.002,
        ..SimConfig::default()
    }) {
        match &item {
            SimItem::Event(e) => {
                let n = lead_index.len();
                let i = *lead_index.entry(e.lead_id.clone()).or_insert(n);
                if i % 2 == 0 {
                    item.write_to(&mut kafka).unwrap();
                } else {
                    http[(i / 2) % HTTP_CLIENTS].push(e.clone());
                }
            }
            _ => item.write_to(&mut kafka).unwrap(),
        }
    }
    kafka.into_inner().flush().unwrap();

    let data = dir.path().join("data");
    let leadflow = || common::leadflow(&data, &config);
    common::ok(leadflow().args(["topics", "create"]).output().unwrap());
    let (mut engine, base, drain) =
        common::run_with_api(leadflow().env("RUST_LOG", "leadflow=info"));
    let url = format!("{base}/api/v1/events");

    // Load on both inputs.
    let publisher = {
        let mut publish = leadflow();
        publish.arg("publish").arg(&kafka_file);
        std::thread::spawn(move || common::ok(publish.output().unwrap()))
    };
    let posted = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = http
        .into_iter()
        .map(|events| {
            let (url, posted) = (url.clone(), posted.clone());
            std::thread::spawn(move || client(url, events, posted))
        })
        .collect();
    // When the engine is busy with both (a few dozen requests answered,
    // Kafka messages taken in and some bad ones among them, as its metrics
    // say), SIGTERM arrives.
    let metric = |prefix: &str| -> u64 {
        let text = ureq::get(&format!("{base}/metrics"))
            .call()
            .map(|r| r.into_string().unwrap())
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<u64>().ok())
            .sum()
    };
    let busy = Instant::now() + Duration::from_secs(120);
    while posted.load(Ordering::Relaxed) < 8
        || metric("leadflow_messages_consumed_total ") < 1_000
        || metric("leadflow_events_rejected_total{") == 0
    {
        assert!(Instant::now() < busy, "the load never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    common::unsafe_sigterm(engine.id());
    let signalled = Instant::now();

    // Then it exits 0 within its drain ...
    let status = loop {
        if let Some(status) = engine.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(60),
            "still running 60 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = drain.join().unwrap();
    publisher.join().unwrap();
    assert!(status.success(), "exit {status}:\n{stderr}");
    assert!(stderr.contains("stopped after"), "{stderr}");
    // ... every request being served when the signal came was answered
    // (none cut off) ...
    let requests: Vec<Request> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    for r in &requests {
        if let Err(e) = &r.outcome {
            let before = signalled.saturating_duration_since(r.sent);
            assert!(
                before < Duration::from_millis(IN_FLIGHT_MS_MIN),
                "a request sent {} ms before SIGTERM was cut off: {e}",
                before.as_millis()
            );
        }
    }
    let appended: Vec<(String, u64)> = requests
        .into_iter()
        .filter_map(|r| r.outcome.ok())
        .flatten()
        .collect();
    assert!(!appended.is_empty());

    // ... every event the API answered is in the log at the sequence it
    // was answered with, and nothing decided waits to be published.
    let log = EventLog::open(&data, &LogOptions::default()).unwrap();
    for (id, seq) in &appended {
        assert_eq!(log.seq_of(id).unwrap(), Some(*seq), "{id}");
    }
    assert!(
        log.last_seq() > appended.len() as u64,
        "Kafka events are in too"
    );
    let (decided, pending) = log.command_counts().unwrap();
    assert!(decided > 0, "the policy decided commands");
    assert_eq!(pending, 0, "every decided command was published");
    assert_eq!(log.dead_letters_pending().unwrap(), 0);
    assert!(log.stats().unwrap().rejected > 0, "bad records came in");
}
