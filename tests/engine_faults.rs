//! Engine-level faults, with librdkafka's `MockCluster` standing in for a
//! broker that can be told to misbehave (and the engine run as a process
//! where a crash must end it): a group that never assigns a partition, a
//! full disk under a running engine, and a replay for the API while the
//! engine ingests. A binary of its own, so that these heavy tests do not
//! share the machine with `fault_injection.rs`' timing-sensitive ones.

mod common;

use common::{publish, wait_for, write};
use leadflow::config::Config;
use leadflow::control::Handle;
use leadflow::log::{EventLog, LogOptions};
use leadflow::shutdown::Shutdown;
use leadflow::sim::{SimConfig, SimItem, Simulator};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Captured log output of this test binary (the engine logs through
/// `tracing`); installed once, shared by the tests that read it.
fn captured_log() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("leadflow=warn")
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

/// A mock broker with the engine's topics (2 partitions each), and a
/// config pointing at it with its own consumer group.
fn mock_with_topics(
    group: &str,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    Config,
) {
    let mock = MockCluster::new(1).unwrap();
    let mut config = Config::default();
    config.kafka.brokers = mock.bootstrap_servers();
    config.kafka.group_id = group.into();
    for topic in leadflow::bus::admin::topics(&config.kafka) {
        mock.create_topic(topic, 2, 1).unwrap();
    }
    (mock, config)
}

/// A simulated workload of `leads` over ten days, published to the events
/// topic; returns its items.
fn published_workload(
    config: &Config,
    dir: &std::path::Path,
    seed: u64,
    leads: u64,
) -> Vec<SimItem> {
    let items: Vec<SimItem> = Simulator::new(SimConfig {
        seed,
        leads,
        days: 10,
        ..SimConfig::default()
    })
    .collect();
    let file = dir.join("events.pb");
    write(&file, &items);
    publish(config, &file);
    items
}

/// The engine (no policy) on its own thread, and its handle once it has
/// started; `covered` follows its progress.
fn spawn_engine(
    config: &Config,
    log: EventLog,
    shutdown: &Shutdown,
    covered: Option<Arc<AtomicU64>>,
) -> (
    std::thread::JoinHandle<Result<leadflow::engine::Finished, leadflow::engine::EngineError>>,
    Handle,
) {
    common::spawn_engine(config, log, None, shutdown, covered.unwrap_or_default())
}

#[test]
fn an_engine_the_group_gives_no_partition_says_so_and_is_not_ready() {
    let log_output = captured_log();
    let (mock, mut config) = mock_with_topics("unassigned-test");
    config.kafka.unassigned_warn_ms = 1_000;
    // Given a group coordinator that never lets the engine join.
    mock.request_errors(
        RDKafkaApiKey::JoinGroup,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE; 10_000],
    );
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(&dir.path().join("data"), &LogOptions::default()).unwrap();
    let shutdown = Shutdown::new();
    let (engine, handle) = spawn_engine(&config, log, &shutdown, None);
    // When 2.5 s pass without a partition, then the engine has said so in
    // its log and its telemetry (what /readyz reads) shows it.
    std::thread::sleep(Duration::from_millis(2_500));
    let t = handle.intake_status().unwrap();
    drop(handle);
    shutdown.trigger();
    engine.join().unwrap().unwrap();
    assert_eq!(t.assigned_partitions, 0);
    assert!(t.unassigned_ms >= 2_000, "{}", t.unassigned_ms);
    let text = String::from_utf8(log_output.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("no partitions assigned") && text.contains("unassigned-test"),
        "{text}"
    );
}

/// The log's free-space floor on the small disks below (the default, 64
/// MiB, is more than they hold).
const FLOOR_BYTES: u64 = 1024 * 1024;

#[test]
fn a_full_disk_stops_the_running_engine_with_an_error_and_it_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let small = match common::Tmpfs::mount(&dir.path().join("small"), "3m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs here ({})", why.trim());
            return;
        }
    };
    let (mock, config) = mock_with_topics("disk-full-test");
    let items = published_workload(&config, dir.path(), 12, 3_000);
    let data = small.0.join("data");
    // The engine runs as its own process, as in production: after a failed
    // write it leaves the log without sled's final flush, and only the end
    // of the process releases the data dir.
    // A group of its own for each run: the positions are in the log, and the
    // mock's coordinator would wait out the session of a member that died.
    // Its batches are stored as encoded: compressed (the default), this
    // workload would fit on the small disk and never fill it.
    let toml = dir.path().join("leadflow.toml");
    let runs = std::cell::Cell::new(0);
    let engine = |args: &[&str]| {
        runs.set(runs.get() + 1);
        std::fs::write(
            &toml,
            format!(
                "[kafka]\nbrokers = \"{}\"\ngroup_id = \"disk-full-{}\"\npartitions = 2\n\
                 [log]\ndisk_free_bytes_min = {FLOOR_BYTES}\ncompression = \"none\"\n",
                mock.bootstrap_servers(),
                runs.get()
            ),
        )
        .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_leadflow"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&toml)
            .args(args)
            .env_remove("LEADFLOW_KAFKA_GROUP_ID")
            .env_remove("LEADFLOW_POLICY_FILE")
            .env_remove("LEADFLOW_API_LISTEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The engine fills the disk: it stops on its own, within the limit,
    // with the disk-full error (not a hang, not a panic).
    let started = Instant::now();
    let mut child = engine(&["run"]);
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(90) {
            // Where it hangs, for whoever reads the failure.
            let stacks = std::process::Command::new("gdb")
                .args([
                    "-p",
                    &child.id().to_string(),
                    "-batch",
                    "-ex",
                    "thread apply all bt",
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the engine hung on a full disk\nstderr:\n{}\nthreads:\n{stacks}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("disk full"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Space is freed: a restart resumes from the log's positions and ends
    // with every event exactly once.
    small.resize("300m");
    let topic_prefix = leadflow::bus::source_prefix(&config.kafka.events_topic);
    let mut covered = 0;
    for _ in 0..12 {
        let out = engine(&["run", "--duration-s", "10"])
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = EventLog::open(&data, &LogOptions::default()).unwrap();
        covered = log
            .positions(&topic_prefix)
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>();
        // Invariant at every stop: what the positions cover is in the log
        // once (no rejections: the workload has no bad input).
        assert_eq!(log.last_seq(), covered, "nothing lost, nothing twice");
        if covered == items.len() as u64 {
            break;
        }
        eprintln!(
            "covered {covered}: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| !l.contains("covered"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!(covered, items.len() as u64, "the engine caught up");
    let log = EventLog::open(&data, &LogOptions::default()).unwrap();
    assert_eq!(log.stats().unwrap().rejected, 0);
}

#[test]
fn a_replay_of_a_past_moment_does_not_hold_the_engine_lock() {
    // Given an engine that has ingested a workload, ...
    // `_mock`, not `_`: the broker must live as long as the test.
    let (_mock, config) = mock_with_topics("replay-lock-test");
    let dir = tempfile::tempdir().unwrap();
    let items = published_workload(&config, dir.path(), 13, 4_000);
    let log = EventLog::open(&dir.path().join("data"), &LogOptions::default()).unwrap();
    let shutdown = Shutdown::new();
    let covered = Arc::new(AtomicU64::new(0));
    let (engine, handle) = spawn_engine(&config, log, &shutdown, Some(covered.clone()));
    wait_for(&covered, items.len() as u64, "the workload");
    // ... when an API client asks for a past moment (a replay of the whole
    // log), again and again for half a second (one replay of this log is
    // ~50 ms in a release build, ten times that in a debug one), then the
    // engine's lock stays free meanwhile: reads that take it (what
    // ingestion needs) answer at once, not after a replay.
    let replay = {
        let handle = handle.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut shortest = Duration::MAX;
            let mut replays = 0;
            while replays < 2 || started.elapsed() < Duration::from_millis(500) {
                let one = Instant::now();
                handle.projections_at(i64::MAX).unwrap();
                shortest = shortest.min(one.elapsed());
                replays += 1;
            }
            shortest
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let mut slowest = Duration::ZERO;
    while !replay.is_finished() {
        let started = Instant::now();
        handle.intake_status().unwrap();
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    let replay_took = replay.join().unwrap();
    drop(handle);
    shutdown.trigger();
    engine.join().unwrap().unwrap();
    // A lock held through a replay would keep some read waiting for most
    // of one.
    assert!(
        replay_took > Duration::from_millis(20),
        "a replay ({replay_took:?}) is too short to tell"
    );
    assert!(
        slowest < replay_took / 2,
        "the lock was held {slowest:?} during replays of {replay_took:?} and more"
    );
}
