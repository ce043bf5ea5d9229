//! Helpers shared by the integration tests that run against the real broker
//! and the `leadflow` binary. Each test binary uses a subset of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A variable `./scripts/test` sets up (broker address, Python interpreter).
pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run ./scripts/test, which sets it up"))
}

/// The test broker's address.
pub fn brokers() -> String {
    env("LEADFLOW_TEST_BROKERS")
}

/// A suffix unique to this run, for topic and group names on the shared
/// broker.
pub fn run_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// `leadflow --data-dir DATA --config CONFIG`, with the environment
/// overrides removed that would otherwise beat the test's config file.
pub fn leadflow(data: &Path, config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leadflow"));
    c.arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .env_remove("LEADFLOW_KAFKA_GROUP_ID")
        .env_remove("LEADFLOW_POLICY_FILE")
        .env_remove("LEADFLOW_API_LISTEN")
        .env_remove("LEADFLOW_API_ADMIN_TOKEN");
    c
}

/// `leadflow --data-dir DATA ARGS` without a config file (env overrides of
/// the config and data dir removed), run to its end.
pub fn leadflow_at(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leadflow"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("LEADFLOW_CONFIG")
        .env_remove("LEADFLOW_DATA_DIR")
        .output()
        .unwrap()
}

/// The stdout of a command that must have succeeded (else its stderr in
/// the failure).
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `command` with its stderr collected by a thread; join the thread
/// after the process ends to read the log (for failure messages).
pub fn spawn_logged(command: &mut Command) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    (child, log)
}

/// Every message on the commands topic, decoded (stops after 3 s without
/// new messages).
pub fn published_commands(k: &leadflow::config::KafkaConfig) -> Vec<leadflow::bus::tail::Tailed> {
    leadflow::bus::tail::tail(
        k,
        &k.commands_topic,
        leadflow::bus::tail::Kind::Commands,
        1_000_000,
        3_000,
    )
    .unwrap()
}

/// A tmpfs mounted for the test, unmounted when dropped.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }

    pub fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes simulated items to a protobuf event file.
pub fn write(path: &Path, items: &[leadflow::sim::SimItem]) {
    let mut w = leadflow::codec::stream::EventWriter::new(
        std::io::BufWriter::new(std::fs::File::create(path).unwrap()),
        leadflow::codec::stream::Format::Protobuf,
    );
    for item in items {
        item.write_to(&mut w).unwrap();
    }
    std::io::Write::flush(&mut w.into_inner()).unwrap();
}

pub fn publish(config: &leadflow::config::Config, path: &Path) {
    let mut reader = leadflow::codec::stream::EventReader::new(
        std::io::BufReader::new(std::fs::File::open(path).unwrap()),
        leadflow::codec::stream::Format::Protobuf,
    );
    leadflow::bus::publish::publish(
        &config.kafka,
        &config.kafka.events_topic,
        &mut reader,
        &mut |_| {},
    )
    .unwrap();
}

pub fn wait_for(covered: &std::sync::atomic::AtomicU64, n: u64, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while covered.load(std::sync::atomic::Ordering::Relaxed) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: only {} of {n} covered",
            covered.load(std::sync::atomic::Ordering::Relaxed)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A `Created` event: lead `lead` into `pool` at `at_ms`, with event id
/// `id` (web channel, 1.00 CNY).
pub fn created(id: &str, lead: &str, pool: &str, at_ms: i64) -> leadflow::domain::LeadEvent {
    leadflow::domain::build::created(id, lead)
        .pool(pool)
        .at(at_ms)
        .event()
}

/// An `Assigned` event (by rule, from pool "inbound"): `lead` to `owner`
/// at `at_ms`, carrying out `command_id`, with event id `id`.
pub fn assigned(
    id: &str,
    lead: &str,
    owner: &str,
    command_id: &str,
    at_ms: i64,
) -> leadflow::domain::LeadEvent {
    leadflow::domain::build::assigned(id, lead, owner)
        .pool("inbound")
        .command(command_id)
        .at(at_ms)
        .event()
}

/// A consumer of every partition of `topic` (`partitions` of them) from
/// the beginning, polling for new messages every 20 ms (a CRM wants
/// commands as soon as they are on the topic).
pub fn reader_from_start(
    k: &leadflow::config::KafkaConfig,
    topic: &str,
    partitions: i32,
    group: &str,
) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = leadflow::bus::client_config(k)
        .set("group.id", group)
        .set("fetch.wait.max.ms", "20")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

/// Runs `leadflow run` until the log covers `expect` messages of the topic
/// (read from its progress lines), then stops it with SIGTERM and waits for
/// a clean exit.
pub fn run_until_covered(data: &Path, config: &Path, expect: u64, group: Option<&str>) -> String {
    let mut cmd = leadflow(data, config);
    cmd.arg("run")
        .env("RUST_LOG", "leadflow=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    if let Some(g) = group {
        cmd.env("LEADFLOW_KAFKA_GROUP_ID", g);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if let Some(n) = covered_in(&line) {
                let _ = tx.send(n);
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut consumed = 0;
    while consumed < expect {
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "only {consumed} of {expect} covered in time; the engine said:\n{}",
                reader.join().unwrap()
            );
        }
        if let Ok(n) = rx.recv_timeout(Duration::from_millis(200)) {
            consumed = consumed.max(n);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "leadflow run exited early: {status}\n{}",
                reader.join().unwrap()
            );
        }
    }
    // One more progress tick so the last batch and its dead letters settle.
    std::thread::sleep(Duration::from_millis(1500));
    unsafe_sigterm(child.id());
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(
        status.success(),
        "run did not stop cleanly: {status}\n{log}"
    );
    log
}

/// The messages a `leadflow run` progress line says the log covers.
pub fn covered_in(line: &str) -> Option<u64> {
    line.split("covered ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.trim_end_matches(',').parse().ok())
}

pub fn unsafe_sigterm(pid: u32) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// `leadflow run` started from `command` with its API on a free port: the
/// process, the API's base URL (from its `api listening on` line) and a
/// thread that keeps draining its stderr (join it after the process ends
/// for the rest of the log).
pub fn run_with_api(command: &mut Command) -> (Child, String, std::thread::JoinHandle<String>) {
    let mut engine = command
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(engine.stderr.take().unwrap());
    let mut base = None;
    let mut seen = String::new();
    let mut line = String::new();
    while base.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(url) = line.trim().strip_prefix("api listening on ") {
            base = Some(url.to_string());
        }
        seen.push_str(&line);
        line.clear();
    }
    let base = base.unwrap_or_else(|| panic!("the engine printed no API address: {seen}"));
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        rest
    });
    (engine, base, drain)
}

/// (events, rejected) of a data dir, as `inspect log` prints them.
pub fn log_totals(data: &Path, config: &Path) -> (u64, u64) {
    let out = ok(leadflow(data, config)
        .args(["inspect", "log"])
        .output()
        .unwrap());
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in: {out}"))
    };
    (field("events "), field("rejected "))
}

/// The engine in process on its own thread (progress every 100 ms into
/// `covered`), with `processor` as its policy, and its handle once it has
/// started.
pub fn spawn_engine(
    config: &leadflow::config::Config,
    log: leadflow::log::EventLog,
    processor: Option<leadflow::policy::Policies>,
    shutdown: &leadflow::shutdown::Shutdown,
    covered: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> (
    std::thread::JoinHandle<Result<leadflow::engine::Finished, leadflow::engine::EngineError>>,
    leadflow::control::Handle,
) {
    use leadflow::projector::{metrics::MetricParams, Projections};
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let config = config.clone();
    let shutdown = shutdown.clone();
    let engine = std::thread::spawn(move || {
        let engine = leadflow::replay::Engine {
            log,
            projections: Projections::new(MetricParams::from(&config.projection)),
            processor,
            shadow: None,
        };
        leadflow::engine::run(
            leadflow::engine::Run {
                config: &config,
                parts: leadflow::engine::whole(engine),
                restored_from_snapshot: Vec::new(),
                shutdown: &shutdown,
                api: None,
                progress_every: Duration::from_millis(100),
                wall_clock_ticks: true,
            },
            &mut |s| handle_tx.send(s.handle).unwrap(),
            &mut |p| covered.store(p.covered, std::sync::atomic::Ordering::Relaxed),
        )
    });
    let handle = handle_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (engine, handle)
}
