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
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(config: &Config, a: BenchArgs) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("leadflow-bench-")
        .tempdir()?;
    let policy = match (&config.policy.file, a.with_policy) {
        (Some(path), true) => Some(leadflow::config::load_policy(path)?),
        (None, true) => anyhow::bail!("--with-policy needs [policy] file in the config"),
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
        },
        &mut |line| eprintln!("{line}"),
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
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
            "engine (decode, validate, durable append with offsets): {:>10.0} msg/s  ({:.2} s, {} batches, {} commands)",
            r.engine_per_s, r.engine_s, r.batches, r.commands
        );
        println!("ratio engine / ceiling: {:.2}", r.ratio);
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
    }
    Ok(())
}
