//! `leadflow bench`: end-to-end ingest throughput on the configured broker
//! beside the ceiling of a plain consumer measured in the same run.

use anyhow::Result;
use clap::Args;
use leadflow::config::Config;

#[derive(Args)]
pub struct BenchArgs {
    /// Leads to simulate (about 14 events each).
    #[arg(long, default_value_t = 10_000)]
    leads: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also run the configured policy (decide and publish commands).
    #[arg(long)]
    with_policy: bool,
    /// Also post the same workload to the HTTP ingest of a fresh engine,
    /// in requests of these sizes (events per request), e.g. `--http 100,1000`.
    #[arg(long, value_delimiter = ',')]
    http: Vec<usize>,
    /// Also measure scoring: the predictive model's AUC on held-out
    /// simulated leads beside that of their true probabilities, and the
    /// engine run again over the same workload (with the marketing
    /// system's interactions) under the policy with every scoring rule on,
    /// beside the run without. Implies `--with-policy`.
    #[arg(long)]
    scoring: bool,
    /// Measure replay instead, without a broker: simulate `--leads` into
    /// a fresh log, then time a pass that only reads and decodes it, the
    /// one-thread rebuild and `leadflow replay`'s (decoding beside the
    /// fold), best of three each; also the data dir's size beside the
    /// same events as protobuf.
    #[arg(long, conflicts_with_all = ["with_policy", "http", "scoring"])]
    replay: bool,
    /// Measure the policy's state instead, without a broker: build this
    /// many open assignments (each with a pending follow-up deadline) and
    /// report the memory and snapshot bytes per assignment.
    #[arg(long, value_name = "ASSIGNMENTS", conflicts_with_all = ["with_policy", "http", "scoring", "replay"])]
    policy_state: Option<u64>,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(config: &Config, a: BenchArgs) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("leadflow-bench-")
        .tempdir()?;
    if a.replay {
        return replay(&a, &dir.path().join("log"));
    }
    if let Some(n) = a.policy_state {
        return policy_state(&a, n, &dir.path().join("log"));
    }
    let with_policy = a.with_policy || a.scoring;
    let policy = match (&config.policy.file, with_policy) {
        (Some(path), true) => Some(leadflow::config::load_policy(path)?),
        (None, true) => {
            anyhow::bail!("--with-policy and --scoring need [policy] file in the config")
        }
        _ => None,
    };
    let r = leadflow::engine::bench(
        config,
        leadflow::engine::BenchOptions {
            leads: a.leads,
            seed: a.seed,
            data_dir: dir.path().join("log"),
            policy,
            http_batches: a.http.clone(),
            engagement: a.scoring,
            scoring: a.scoring.then(leadflow::sim::scoring::every_rule),
        },
        &mut |line| eprintln!("{line}"),
    )?;
    let quality = a.scoring.then(|| {
        eprintln!("scoring quality: 20,000 simulated leads over 90 days, held out days 45-70");
        leadflow::sim::scoring::measure_standard(a.seed)
    });
    if a.json {
        let mut doc = serde_json::to_value(&r)?;
        if let Some(q) = &quality {
            doc["scoring_quality"] = serde_json::to_value(q)?;
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "{} messages ({:.1} MB) over {} partitions of {}",
            r.messages,
            r.payload_bytes as f64 / 1e6,
            r.partitions,
            r.topic
        );
        println!(
            "ceiling (plain consumer, count only): {:>10.0} msg/s  ({:.2} s)",
            r.ceiling_per_s, r.ceiling_s
        );
        println!(
            "engine (decode, validate, durable append with offsets): {:>10.0} msg/s  ({:.2} s, {} batches, {} commands; each run decided {:?})",
            r.engine_per_s, r.engine_s, r.batches, r.commands, r.commands_per_run
        );
        println!(
            "ratio engine / ceiling: {:.2} (best of {} runs each, alternating; the engine's first, cold run: {:.0} msg/s, ratio {:.2})",
            r.ratio,
            r.runs_each,
            r.engine_first_per_s,
            r.engine_first_per_s / r.ceiling_per_s.max(1e-9)
        );
        if let Some(l) = &r.latency {
            println!(
                "event → command (publish to the command's ack), {:.0} events/s published steadily (half the engine's {:.0}): p50 {} ms, p99 {} ms, max {} ms over {} commands; the engine's share (consumed to acked): p50 {} ms, p99 {} ms (consumers at fetch.wait.max.ms = {})",
                l.published_per_s,
                l.sustained_per_s,
                l.latency_ms_p50,
                l.latency_ms_p99,
                l.latency_ms_max,
                l.commands,
                l.engine_ms_p50,
                l.engine_ms_p99,
                l.fetch_wait_ms_max
            );
        }
        for h in &r.http {
            println!(
                "http ingest, {:>5} events/request: {:>10.0} ev/s  ({:.2} s, {} requests; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; ratio to the Kafka ceiling {:.2})",
                h.events_per_request,
                h.events_per_s,
                h.seconds,
                h.requests,
                h.latency_ms_p50,
                h.latency_ms_p99,
                h.latency_ms_max,
                h.events_per_s / r.ceiling_per_s.max(1e-9)
            );
        }
        if let Some(s) = &r.scoring {
            println!(
                "engine with every scoring rule on: {:>10.0} msg/s  ({:.2} s, {} scores published, {} commands sent) beside {:.0} msg/s without ({} commands sent; best of {} runs each, alternating): ratio {:.2}",
                s.engine_per_s, s.engine_s, s.scores_published, s.commands_sent_with, s.without_per_s, s.commands_sent_without, s.runs_each, s.ratio_to_without
            );
            println!(
                "the same runs' CPU (every thread of the process): {:.2} s with scoring beside {:.2} s without (best of each): ratio {:.2}",
                s.cpu_s_with, s.cpu_s_without, s.cpu_ratio_to_without
            );
        }
        if let Some(q) = &quality {
            let auc = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.3}"));
            println!(
                "predictive score, held-out leads ({}, {} converted): AUC {} beside {} of their true probabilities (ceiling); ratio {}; top-decile lift {} ({} model versions)",
                q.model.leads,
                q.model.converted,
                auc(q.model.auc),
                auc(q.truth.auc),
                auc(q.auc_ratio()),
                q.model.lift_top_decile.map_or("-".into(), |x| format!("{x:.2}")),
                q.model_versions
            );
        }
    }
    Ok(())
}

/// `bench --policy-state N`.
fn policy_state(a: &BenchArgs, assignments: u64, data_dir: &std::path::Path) -> Result<()> {
    anyhow::ensure!(
        (1..=10_000_000).contains(&assignments),
        "--policy-state takes 1..=10000000 assignments"
    );
    eprintln!("policy state: building {assignments} open assignments");
    let r = leadflow::engine::bench_policy_state(assignments, data_dir)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "policy state per open assignment ({} of them, built in {:.2} s): {:.0} bytes in memory, {:.0} bytes in its snapshot as stored ({:.0} before compression)",
        r.assignments,
        r.build_s,
        r.memory_bytes_per_assignment,
        r.snapshot_bytes_per_assignment,
        r.snapshot_raw_bytes_per_assignment
    );
    Ok(())
}

/// `bench --replay`.
fn replay(a: &BenchArgs, data_dir: &std::path::Path) -> Result<()> {
    let r =
        leadflow::engine::bench_replay(a.leads, a.seed, data_dir, &mut |line| eprintln!("{line}"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "{} events: {:.1} MB as protobuf ({:.0} bytes per event)",
        r.events,
        mb(r.protobuf_bytes),
        r.protobuf_bytes as f64 / r.events.max(1) as f64,
    );
    for (what, bytes) in [
        ("compressed (zstd)", r.data_dir_bytes),
        ("uncompressed", r.data_dir_bytes_uncompressed),
    ] {
        println!(
            "data dir, {what:<17} {:>7.1} MB ({:.0} bytes per event, {:.2} x the protobuf)",
            mb(bytes),
            bytes as f64 / r.events.max(1) as f64,
            bytes as f64 / r.protobuf_bytes.max(1) as f64
        );
    }
    println!(
        "read and decode only (ceiling): {:>10.0} events/s",
        r.decode_only_per_s
    );
    println!(
        "rebuild on one thread:          {:>10.0} events/s  (ratio to the ceiling {:.2})",
        r.one_thread_per_s,
        r.one_thread_per_s / r.decode_only_per_s.max(1e-9)
    );
    println!(
        "replay (decoding beside fold):  {:>10.0} events/s  (ratio to the ceiling {:.2}, to one thread {:.2}; best of {} runs each)",
        r.replay_per_s,
        r.replay_per_s / r.decode_only_per_s.max(1e-9),
        r.replay_per_s / r.one_thread_per_s.max(1e-9),
        r.runs_each
    );
    Ok(())
}
