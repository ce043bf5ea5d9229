//! The `leadflow` command line, laid out like cargo's
//! `src/bin/cargo/commands/`: one file per command, its `Args` beside its
//! `exec`. Each command is a thin shell over the library: it parses
//! arguments, opens the log, calls into the library and prints. Results go
//! to stdout, progress to stderr, logs through `tracing` (set `RUST_LOG`).

mod backtest;
mod bench;
mod demo;
mod export;
mod import;
mod inspect;
mod inspect_commands;
mod partitions;
mod publish;
mod replay;
mod run;
mod simulate;
mod stats;
mod stats_score_model;
mod tail;
mod topics;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use leadflow::config::Config;
use leadflow::log::{EventLog, LogOptions};
use std::io;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "leadflow",
    version,
    about = "Event-sourced lead lifecycle engine"
)]
pub struct Cli {
    /// Directory of the sled event log [default: leadflow-data; the demo
    /// uses a temporary one unless this is given].
    #[arg(long, global = true, env = "LEADFLOW_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML config file (defaults apply to anything it leaves out).
    #[arg(long, global = true, env = "LEADFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr: text (coloured on a terminal) or json (one
    /// object per line, for log shippers). The level comes from RUST_LOG.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "LEADFLOW_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The live demo: in-process Kafka, the engine, a simulated marketing
    /// system and CRM (`--offline`: simulate, import, replay, stats).
    Demo(demo::DemoArgs),
    /// Append an event file (JSONL or length-delimited protobuf) to the log.
    Import(import::ImportArgs),
    /// Rebuild the projections from the log (optionally as of a past moment).
    Replay(replay::ReplayArgs),
    /// Show one lead, the rejected inputs, or the log's totals.
    Inspect {
        #[command(subcommand)]
        what: inspect::InspectWhat,
    },
    /// Print a metric table.
    Stats(stats::StatsArgs),
    /// Write the log's accepted events as JSONL (or protobuf).
    Export(export::ExportArgs),
    /// Generate a seeded, deterministic, realistic workload.
    Simulate(simulate::SimulateArgs),
    /// Consume the lead-events topic into the log until SIGINT/SIGTERM.
    Run(run::RunArgs),
    /// Publish an event file to a topic (protobuf, keyed by lead id).
    Publish(publish::PublishArgs),
    /// Print a topic's messages, decoded.
    Tail(tail::TailArgs),
    /// Replay the log's history under a candidate policy, side by side with
    /// the policy in force: recalls, reminders, SLA breaches, workload,
    /// fairness.
    Backtest(backtest::BacktestArgs),
    /// End-to-end ingest throughput on the configured broker, side by side
    /// with a plain consumer that only counts (the ceiling).
    Bench(bench::BenchArgs),
    /// Who owns which partition of the events topic: owner, epoch,
    /// position, lag, restore progress (`--watch`: progress bars).
    Partitions(partitions::PartitionsArgs),
    /// Manage the engine's topics.
    Topics {
        #[command(subcommand)]
        what: topics::TopicsWhat,
    },
}

const DATA_DIR_DEFAULT: &str = "leadflow-data";

/// Runs the parsed command line.
pub fn exec(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    let named_dir = cli.data_dir;
    let data_dir = named_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
    let data_dir = data_dir.as_path();
    match cli.command {
        Command::Demo(a) => demo::exec(&config, named_dir.as_deref(), a),
        Command::Import(a) => import::exec(data_dir, &config, a),
        Command::Replay(a) => replay::exec(data_dir, &config, a),
        Command::Inspect { what } => inspect::exec(data_dir, &config, what),
        Command::Stats(a) => stats::exec(data_dir, &config, a),
        Command::Export(a) => export::exec(data_dir, &config, a),
        Command::Simulate(a) => simulate::exec(a).map(|_| ()),
        Command::Run(a) => run::exec(data_dir, &config, a),
        Command::Publish(a) => publish::exec(&config, a),
        Command::Tail(a) => tail::exec(&config, a),
        Command::Bench(a) => bench::exec(&config, a),
        Command::Backtest(a) => backtest::exec(data_dir, &config, a),
        Command::Partitions(a) => partitions::exec(&config, a),
        Command::Topics { what } => topics::exec(&config, what),
    }
}

/// Logs go to stderr through `tracing` (level from `RUST_LOG`, default
/// warn): coloured only on a terminal, or as one JSON object per line for
/// log shippers.
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// The error and its causes, each said once: a layer whose message already
/// includes its cause's (`storage: {0}`) would otherwise print it twice.
pub fn describe_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(text.trim()) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// A reader that goes away (`leadflow stats --json | head`) ends the
/// output quietly with status 0, as with other Unix tools. Rust ignores
/// SIGPIPE, so a write to a closed pipe fails with EPIPE: `println!`
/// panics on it (caught here), `write!` returns it (see [`is_broken_pipe`]).
pub fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Opens (or creates) the log, for the commands that write it.
fn open_log(dir: &Path, config: &Config) -> Result<EventLog> {
    EventLog::open(dir, &LogOptions::from(&config.log))
        .with_context(|| format!("opening the event log in {}", dir.display()))
}

/// Opens an existing log, for `replay`: a wrong path is an error, never an
/// empty log created on the spot.
fn open_existing_log(dir: &Path, config: &Config) -> Result<EventLog> {
    Ok(EventLog::open_existing(
        dir,
        &LogOptions::from(&config.log),
    )?)
}

/// Opens an existing log for the commands that only read it, also on a
/// full disk (see `EventLog::open_for_reading`).
fn open_log_for_reading(dir: &Path, config: &Config) -> Result<EventLog> {
    Ok(EventLog::open_for_reading(
        dir,
        &LogOptions::from(&config.log),
    )?)
}

/// Opens every log of an existing data dir for a command that only reads
/// it: the data dir's own log, or each of its partition stores (see
/// `log::stores`), by partition. A path with neither is an error, and
/// nothing is created.
fn open_stores_for_reading(dir: &Path, config: &Config) -> Result<Vec<(Option<i32>, EventLog)>> {
    open_stores(dir, config, open_log_for_reading)
}

/// [`open_stores_for_reading`] with each log opened by `open`.
fn open_stores(
    dir: &Path,
    config: &Config,
    open: fn(&Path, &Config) -> Result<EventLog>,
) -> Result<Vec<(Option<i32>, EventLog)>> {
    if !leadflow::log::stores::holds_log(dir) {
        let stores = leadflow::log::stores::partition_stores(dir)?;
        if !stores.is_empty() {
            let mut out = Vec::with_capacity(stores.len());
            for (p, path) in stores {
                out.push((Some(p), open(&path, config)?));
            }
            return Ok(out);
        }
    }
    Ok(vec![(None, open(dir, config)?)])
}

/// Loads the projections of every log of a data dir, summed for reading
/// (see `Projections::merge_for_reading`).
fn load_all_projections(
    logs: &[(Option<i32>, EventLog)],
    config: &Config,
) -> Result<leadflow::projector::Projections> {
    let mut merged: Option<leadflow::projector::Projections> = None;
    for (_, log) in logs {
        let p = load_projections(log, config)?;
        match merged.as_mut() {
            None => merged = Some(p),
            Some(m) => m.merge_for_reading(&p),
        }
    }
    Ok(merged.expect("a data dir has at least one log"))
}

/// A progress bar on stderr (a spinner when the length is unknown).
fn spinner(len: Option<u64>, what: &str) -> ProgressBar {
    let pb = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner(),
    };
    pb.set_message(what.to_string());
    pb
}

/// Loads the projections (snapshot + tail) with a progress bar.
fn load_projections(log: &EventLog, config: &Config) -> Result<leadflow::projector::Projections> {
    let pb = spinner(Some(log.last_seq()), "loading projections");
    let p = leadflow::replay::load(log, &config.projection, &mut |seq| pb.set_position(seq))?;
    pb.finish_and_clear();
    Ok(p)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("   {l}\n")).collect()
}
