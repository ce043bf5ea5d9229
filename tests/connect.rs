//! Connecting to real deployments, on real brokers: the formats upstream
//! producers send, on the plain test broker `./scripts/test` starts
//! (`LEADFLOW_TEST_BROKERS`); and a secured cluster, tansu with SCRAM users
//! behind Debian's stunnel4 speaking only SASL_SSL, one per test (see
//! `scripts/broker start-secure`).

use leadflow::codec::stream::{EventWriter, Format};
use leadflow::sim::{SimConfig, SimItem, Simulator};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::{leadflow, log_totals, ok, run_until_covered};

/// A broker that speaks only SASL_SSL, started for one test and stopped
/// when dropped.
struct Secured {
    brokers: String,
    ca: String,
    other_ca: String,
    user: String,
    password: String,
    pids: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Secured {
    fn start() -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let out =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker"))
                .arg("start-secure")
                .arg(dir.path())
                .output()
                .unwrap();
        assert!(
            out.status.success(),
            "scripts/broker start-secure: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .trim_matches('"')
                .to_string()
        };
        Secured {
            brokers: var("SECURE_BROKERS"),
            ca: var("SECURE_CA"),
            other_ca: var("SECURE_OTHER_CA"),
            user: var("SECURE_USER"),
            password: var("SECURE_PASSWORD"),
            pids: var("SECURE_PIDS")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            _dir: dir,
        }
    }

    /// The settings a user would write, with `mechanism`, `password` and
    /// the CA file `ca`.
    fn properties(&self, mechanism: &str, password: &str, ca: &str) -> String {
        format!(
            "startup_timeout_ms = 20000\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\
             \"sasl.mechanisms\" = \"{mechanism}\"\n\"sasl.username\" = \"{}\"\n\
             \"sasl.password\" = \"{password}\"\n\"ssl.ca.location\" = \"{ca}\"\n",
            self.user
        )
    }
}

impl Drop for Secured {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = std::process::Command::new("kill").arg(pid).status();
        }
    }
}

/// Writes a simulated workload of about `leads` × 5 valid events as
/// length-delimited protobuf; returns how many events.
fn workload(path: &Path, leads: u64) -> u64 {
    let mut w = EventWriter::new(
        std::io::BufWriter::new(std::fs::File::create(path).unwrap()),
        Format::Protobuf,
    );
    let mut n = 0;
    for item in Simulator::new(SimConfig {
        seed: 11,
        leads,
        days: 10,
        bad_ratio: 0.0,
        ..SimConfig::default()
    }) {
        if let SimItem::Event(e) = &item {
            w.write(e).unwrap();
            n += 1;
        }
    }
    w.into_inner().flush().unwrap();
    n
}

/// A config with topics of its own; `extra` is appended as is.
fn config(dir: &Path, name: &str, brokers: &str, extra: &str) -> PathBuf {
    let suffix = format!("{name}-{}", common::run_id());
    let text = format!(
        "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"g-{suffix}\"\n\
         events_topic = \"events-{suffix}\"\ncommands_topic = \"commands-{suffix}\"\n\
         dlq_topic = \"dlq-{suffix}\"\npartitions = 2\n{extra}"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn stats_json(data: &Path, config: &Path, by: &str) -> serde_json::Value {
    let out = ok(leadflow(data, config)
        .args(["stats", "--json", "--by", by])
        .output()
        .unwrap());
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_topic_of_mixed_formats_gives_the_same_numbers_as_the_file_itself() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.pb");
    let events = workload(&input, 2_000);
    assert!(events >= 10_000, "{events}");
    let config = config(dir.path(), "mixed", &common::brokers(), "");

    // The file itself, imported.
    let imported = dir.path().join("imported");
    ok(leadflow(&imported, &config)
        .arg("import")
        .arg(&input)
        .output()
        .unwrap());

    // The same events through Kafka: raw protobuf, JSON, Schema Registry
    // framed protobuf and JSON, in turn, half without a content type.
    let consumed = dir.path().join("consumed");
    ok(leadflow(&consumed, &config)
        .args(["topics", "create"])
        .output()
        .unwrap());
    ok(leadflow(&consumed, &config)
        .args(["publish", "--wire", "mixed"])
        .arg(&input)
        .output()
        .unwrap());
    let log = run_until_covered(&consumed, &config, events, None);

    for by in ["channel", "campaign", "pool", "owner", "pools"] {
        assert_eq!(
            stats_json(&consumed, &config, by),
            stats_json(&imported, &config, by),
            "stats --by {by} differ; the engine said:\n{log}"
        );
    }
    let t = log_totals(&consumed, &config);
    assert_eq!(t, (events, 0), "(events, rejected) in the log");
}

#[test]
fn sasl_ssl_with_scram_moves_10k_events_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.pb");
    let events = workload(&input, 1_300);
    assert!(events >= 10_000, "{events}");
    let secured = Secured::start();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\n\
         members = [{ id = \"rep-a\", capacity = 100000 }]\n",
    )
    .unwrap();
    let extra = format!(
        "{}\n[policy]\nfile = {:?}\n",
        secured.properties("SCRAM-SHA-512", &secured.password, &secured.ca),
        policy.display().to_string()
    );
    let config_path = config(dir.path(), "secured", &secured.brokers, &extra);
    let data = dir.path().join("data");
    ok(leadflow(&data, &config_path)
        .args(["topics", "create"])
        .output()
        .unwrap());
    ok(leadflow(&data, &config_path)
        .arg("publish")
        .arg(&input)
        .output()
        .unwrap());
    run_until_covered(&data, &config_path, events, None);

    assert_eq!(log_totals(&data, &config_path), (events, 0));

    // The commands went out over the same secured connection; read them
    // back with the other SCRAM mechanism.
    let sha256 = dir.path().join("sha256.toml");
    std::fs::write(
        &sha256,
        std::fs::read_to_string(&config_path)
            .unwrap()
            .replace("SCRAM-SHA-512", "SCRAM-SHA-256"),
    )
    .unwrap();
    let out = ok(leadflow(&data, &sha256)
        .args([
            "tail", "--topic", "commands", "--limit", "1000000", "--json",
        ])
        .output()
        .unwrap());
    let commands = out.lines().filter(|l| l.contains("assign")).count();
    assert!(commands > 0, "no command read back over SASL_SSL: {out}");
}

/// Runs `args` against the secured broker with `props`; asserts it fails
/// within 10 s (the start-up timeout is 20 s) with `expect` in its message.
fn fails_fast(secured: &Secured, props: &str, args: &[&str], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "bad", &secured.brokers, props);
    let data = dir.path().join("data");
    let started = Instant::now();
    let out = leadflow(&data, &config).args(args).output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    assert!(
        took < Duration::from_secs(10),
        "{args:?} took {took:?} to fail: {stderr}"
    );
    assert!(stderr.contains(expect), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one clear message, not a stream: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
}

#[test]
fn a_wrong_password_ends_start_up_at_once_with_one_clear_error() {
    let secured = Secured::start();
    let props = secured.properties("SCRAM-SHA-512", "not-the-password", &secured.ca);
    for args in [&["topics", "create"][..], &["run"][..], &["tail"][..]] {
        fails_fast(&secured, &props, args, "Kafka authentication failed");
    }
}

#[test]
fn an_untrusted_certificate_ends_start_up_at_once_with_one_clear_error() {
    let secured = Secured::start();
    let props = secured.properties("SCRAM-SHA-512", &secured.password, &secured.other_ca);
    for args in [&["topics", "create"][..], &["run"][..]] {
        fails_fast(&secured, &props, args, "TLS with the Kafka broker failed");
    }
}
