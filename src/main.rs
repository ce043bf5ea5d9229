//! The `leadflow` command line. Each subcommand is a thin shell over the
//! library: it parses arguments, opens the log, calls into the library and
//! prints. Logging goes through `tracing` (set `RUST_LOG`), results to stdout,
//! progress to stderr.

mod cli;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use leadflow::codec;
use leadflow::codec::stream::{EventReader, EventWriter, Format};
use leadflow::config::Config;
use leadflow::domain::time::{format_ms, parse_day_bound_ms, parse_time_ms};
use leadflow::import::ImportSummary;
use leadflow::log::{EventLog, LogOptions};
use leadflow::projector::metrics::Window;
use leadflow::replay;
use leadflow::report::{self, StatsBy};
use leadflow::sim::{SimConfig, Simulator};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "leadflow",
    version,
    about = "Event-sourced lead lifecycle engine"
)]
struct Cli {
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
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The live demo: in-process Kafka, the engine, a simulated marketing
    /// system and CRM (`--offline`: simulate, import, replay, stats).
    Demo(DemoArgs),
    /// Append an event file (JSONL or length-delimited protobuf) to the log.
    Import(ImportArgs),
    /// Rebuild the projections from the log (optionally as of a past moment).
    Replay(ReplayArgs),
    /// Show one lead, the rejected inputs, or the log's totals.
    Inspect {
        #[command(subcommand)]
        what: InspectWhat,
    },
    /// Print a metric table.
    Stats(StatsArgs),
    /// Write the log's accepted events as JSONL (or protobuf).
    Export(ExportArgs),
    /// Generate a seeded, deterministic, realistic workload.
    Simulate(SimulateArgs),
    /// Consume the lead-events topic into the log until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Publish an event file to a topic (protobuf, keyed by lead id).
    Publish(PublishArgs),
    /// Print a topic's messages, decoded.
    Tail(TailArgs),
    /// Replay the log's history under a candidate policy, side by side with
    /// the policy in force: recalls, reminders, SLA breaches, workload,
    /// fairness.
    Backtest(BacktestArgs),
    /// End-to-end ingest throughput on the configured broker, side by side
    /// with a plain consumer that only counts (the ceiling).
    Bench(BenchArgs),
    /// Manage the engine's topics.
    Topics {
        #[command(subcommand)]
        what: TopicsWhat,
    },
}

#[derive(Args)]
struct BacktestArgs {
    /// The candidate policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The policy to compare with (default: the one in force, `[policy]
    /// file` of the config).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Count commands issued at or after this time.
    #[arg(long, value_parser = parse_time_ms)]
    from: Option<i64>,
    /// Count commands issued before this time.
    #[arg(long, value_parser = parse_time_ms)]
    to: Option<i64>,
    /// The history was made by `leadflow simulate --seed S`: estimate each
    /// policy's conversions with the simulator's behaviour model.
    #[arg(long)]
    sim_seed: Option<u64>,
    /// `--reps` of that simulation.
    #[arg(long, default_value_t = 40)]
    sim_reps: u32,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
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

#[derive(Args)]
struct RunArgs {
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    duration_s: Option<u64>,
    /// Forget the log's stored positions in the events topic and read it
    /// from its start: the way out when the topic was recreated (the engine
    /// refuses to start while a stored position is beyond a partition's
    /// end). Events the log already holds come back as duplicates, so
    /// nothing is counted twice.
    #[arg(long)]
    reset_positions: bool,
}

#[derive(Args)]
struct PublishArgs {
    file: PathBuf,
    /// Topic (default: the config's events topic).
    #[arg(long)]
    topic: Option<String>,
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// How the events go on the topic (README, Formats).
    #[arg(long, value_enum, default_value = "protobuf")]
    wire: leadflow::bus::publish::Wire,
    /// The schema id written into Schema Registry frames.
    #[arg(long, default_value_t = 1)]
    schema_id: u32,
}

#[derive(Args)]
struct TailArgs {
    /// Which topic: events, commands or dlq (names from the config).
    #[arg(long, value_enum, default_value = "events")]
    topic: leadflow::bus::tail::Kind,
    /// Stop after this many messages.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Stop when nothing new arrives for this long.
    #[arg(long, default_value_t = 2000)]
    idle_ms: u64,
    /// Only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Start at this offset (default: the beginning).
    #[arg(long)]
    offset: Option<i64>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum TopicsWhat {
    /// Create the events, commands and dead-letter topics with
    /// `kafka.partitions` partitions (existing ones are left alone).
    Create,
}

#[derive(Args)]
struct DemoArgs {
    /// Run the offline demo instead: simulate a 30-day history into a file,
    /// import it, replay it and print the metrics (no Kafka at all).
    #[arg(long)]
    offline: bool,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration_s: Option<u64>,
    /// New leads per second from the simulated marketing system.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Sales reps in the simulated CRM.
    #[arg(long, default_value_t = 16)]
    reps: u32,
    /// Most open leads a rep holds (the policy's capacity).
    #[arg(long, default_value_t = 30)]
    capacity: u32,
    /// Wall milliseconds per simulated hour (smaller is faster).
    #[arg(long, default_value_t = 50)]
    hour_ms: u64,
    /// Leads to simulate (offline demo).
    #[arg(long, default_value_t = 20_000)]
    leads: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of bad inputs mixed in (to show the rejection path).
    #[arg(long, default_value_t = 0.002)]
    bad_ratio: f64,
    /// Keep the demo's data dir instead of deleting it.
    #[arg(long)]
    keep: bool,
}

#[derive(Args)]
struct ImportArgs {
    /// Event file to import.
    file: PathBuf,
    /// File format; guessed from the extension when absent (.pb/.bin/.ldpb
    /// are protobuf, anything else JSONL).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Name of the source whose position is stored (default: `file:` and
    /// the canonical path). Re-running an import resumes after the last
    /// durable record of its source; use a new name to import again.
    #[arg(long)]
    source: Option<String>,
    /// Print `ack NEXT_OFFSET LAST_SEQ` to stdout after each durable batch.
    #[arg(long)]
    print_acks: bool,
}

#[derive(Args)]
struct ReplayArgs {
    /// Only fold events at or before this event time (RFC 3339, date or epoch
    /// ms): the state at a past moment. Not saved as a snapshot.
    #[arg(long, value_parser = parse_time_ms)]
    until: Option<i64>,
    /// Print pool state as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum InspectWhat {
    /// Timeline and current state of one lead.
    Lead {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Rejected inputs, newest last.
    Rejections {
        /// Only this reason code (e.g. `duplicate`, `not_owner`).
        #[arg(long)]
        reason: Option<String>,
        /// Show at most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Totals of the log.
    Log,
    /// The policy's stored commands: rule, facts, explanation and delivery
    /// state (pending or sent), oldest first.
    Commands(cli::inspect_commands::InspectCommandsArgs),
    /// The live policy's commands beside the shadow policy's, counted by
    /// type, rule and reason.
    Shadow {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct StatsArgs {
    #[arg(long, value_enum, default_value = "channel")]
    by: StatsBy,
    /// First day (inclusive) of the window: a date, or a UTC midnight
    /// (metrics are kept per UTC day; a time of day is refused).
    #[arg(long, value_parser = parse_day_bound_ms)]
    from: Option<i64>,
    /// End (exclusive) of the window: a date, or a UTC midnight.
    #[arg(long, value_parser = parse_day_bound_ms)]
    to: Option<i64>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// Output file (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
}

#[derive(Args)]
struct SimulateArgs {
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum)]
    format: Option<Format>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 10_000)]
    leads: u64,
    #[arg(long, default_value_t = 30)]
    days: u32,
    #[arg(long, default_value_t = 40)]
    reps: u32,
    /// Start of the simulated history (event time).
    #[arg(long, value_parser = parse_time_ms)]
    start: Option<i64>,
    /// Probability per valid event of also writing one bad input.
    #[arg(long, default_value_t = 0.0)]
    bad_ratio: f64,
}

// sled allocates per key; a faster allocator is a measurable win on append.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // mimalloc returns freed memory to the OS after 10 ms by default; with
    // transparent huge pages every re-use then faults in and zeroes 2 MiB,
    // which took half of an import's CPU. Keep freed memory instead.
    // SAFETY: setting an option is thread-safe and takes plain integers.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = Cli::parse();
    init_logging(cli.log_format);
    quiet_on_closed_stdout();
    if let Err(e) = run(cli) {
        if is_broken_pipe(&e) {
            std::process::exit(0);
        }
        eprintln!("error: {}", describe_error(&e));
        std::process::exit(1);
    }
}

/// The error and its causes, each said once: a layer whose message already
/// includes its cause's (`storage: {0}`) would otherwise print it twice.
fn describe_error(e: &anyhow::Error) -> String {
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

/// Logs go to stderr through `tracing` (level from `RUST_LOG`, default
/// warn): coloured only on a terminal, or as one JSON object per line for
/// log shippers.
fn init_logging(format: LogFormat) {
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

/// A reader that goes away (`leadflow stats --json | head`) ends the
/// output quietly with status 0, as with other Unix tools. Rust ignores
/// SIGPIPE, so a write to a closed pipe fails with EPIPE: `println!`
/// panics on it (caught here), `write!` returns it (see [`is_broken_pipe`]).
fn quiet_on_closed_stdout() {
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

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    let named_dir = cli.data_dir;
    let data_dir = named_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
    let data_dir = data_dir.as_path();
    match cli.command {
        Command::Demo(a) => demo(&config, named_dir.as_deref(), a),
        Command::Import(a) => {
            let mut log = open_log(data_dir, &config)?;
            import(&mut log, &config, &a)?;
            // The next open loads the index instead of scanning the log.
            log.checkpoint_index()?;
            Ok(())
        }
        Command::Replay(a) => replay_cmd(data_dir, &config, a),
        Command::Inspect { what } => inspect(data_dir, &config, what),
        Command::Stats(a) => stats(data_dir, &config, a),
        Command::Export(a) => export(data_dir, &config, a),
        Command::Simulate(a) => simulate(a).map(|_| ()),
        Command::Run(a) => run_engine(data_dir, &config, a),
        Command::Publish(a) => publish(&config, a),
        Command::Tail(a) => tail(&config, a),
        Command::Bench(a) => bench(&config, a),
        Command::Backtest(a) => backtest(data_dir, &config, a),
        Command::Topics {
            what: TopicsWhat::Create,
        } => {
            for (topic, outcome) in leadflow::bus::admin::create_topics(&config.kafka)? {
                println!("{topic}: {outcome}");
            }
            Ok(())
        }
    }
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

/// Counts bytes read, for the import progress bar.
struct Counting<R> {
    inner: R,
    read_bytes: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read_bytes += n as u64;
        Ok(n)
    }
}

fn import(log: &mut EventLog, config: &Config, a: &ImportArgs) -> Result<ImportSummary> {
    let format = a.format.unwrap_or_else(|| Format::from_path(&a.file));
    let file = File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let len = file.metadata().map(|m| m.len()).ok();
    let source = match &a.source {
        Some(s) => s.clone(),
        None => format!("file:{}", std::fs::canonicalize(&a.file)?.display()),
    };
    let mut reader = EventReader::new(
        BufReader::with_capacity(
            1 << 20,
            Counting {
                inner: file,
                read_bytes: 0,
            },
        ),
        format,
    )
    .with_record_bytes_max(config.log.record_bytes_max);
    let pb = spinner(len, "importing");
    let started = Instant::now();
    let stdout = io::stdout();
    let summary = leadflow::import::import(
        log,
        &mut reader,
        &source,
        &config.log,
        &mut |done, reader| {
            pb.set_position(reader.inner().get_ref().read_bytes);
            if a.print_acks {
                let mut out = stdout.lock();
                // A closed stdout must not stop the import; the acks are
                // advisory.
                let _ = writeln!(out, "ack {} {}", done.next_offset, done.last_seq);
                let _ = out.flush();
            }
        },
    )
    .with_context(|| format!("importing {}", a.file.display()))?;
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "imported {} records from {} in {:.2}s ({:.0} records/s): {} accepted, {} rejected{}",
        summary.records,
        a.file.display(),
        secs,
        summary.records as f64 / secs.max(1e-9),
        summary.accepted,
        summary.rejected,
        if summary.skipped > 0 {
            format!(
                ", {} skipped (already imported from {source})",
                summary.skipped
            )
        } else {
            String::new()
        }
    );
    Ok(summary)
}

fn replay_cmd(dir: &Path, config: &Config, a: ReplayArgs) -> Result<()> {
    let log = open_existing_log(dir, config)?;
    let pb = spinner(Some(log.last_seq()), "replaying");
    let started = Instant::now();
    let p = replay::rebuild(&log, &config.projection, a.until, &mut |seq| {
        pb.set_position(seq)
    })?;
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if a.until.is_none() {
        replay::save(&log, &p)?;
    }
    if a.json {
        let sizes = p.pool.pool_sizes();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "covered_seq": p.covered_seq,
                "until_ms": a.until,
                "pools": sizes,
                "holdings": p.pool.holdings_by_rep(),
            }))?
        );
    } else {
        if let Some(u) = a.until {
            println!("state as of {}", format_ms(u));
        }
        print!("{}", report::pool_summary(&p.pool));
    }
    eprintln!(
        "replayed {} events in {:.2}s ({:.0} events/s){}",
        p.covered_seq,
        secs,
        p.covered_seq as f64 / secs.max(1e-9),
        if a.until.is_none() {
            "; snapshot saved"
        } else {
            ""
        }
    );
    Ok(())
}

fn load_projections(log: &EventLog, config: &Config) -> Result<leadflow::projector::Projections> {
    let pb = spinner(Some(log.last_seq()), "loading projections");
    let p = replay::load(log, &config.projection, &mut |seq| pb.set_position(seq))?;
    pb.finish_and_clear();
    Ok(p)
}

fn stats(dir: &Path, config: &Config, a: StatsArgs) -> Result<()> {
    let log = open_log_for_reading(dir, config)?;
    let p = load_projections(&log, config)?;
    let window = Window {
        from_ms: a.from,
        to_ms: a.to,
    };
    if a.by == StatsBy::Fairness {
        let path = config
            .policy
            .file
            .as_ref()
            .context("--by fairness needs the policy's capacities: set [policy] file")?;
        let policy = leadflow::policy::PolicyFile::load(path)?;
        let (rows, gini) = report::fairness(&p.metrics.agg, &policy, window);
        if a.json {
            let json = serde_json::json!({ "reps": rows, "gini": gini });
            println!("{}", serde_json::to_string_pretty(&json)?);
        } else {
            print!("{}", report::fairness_text(&rows, gini));
        }
        return Ok(());
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::stats_json(
                a.by,
                &p.metrics.agg,
                &p.pool,
                window
            ))?
        );
    } else {
        print!(
            "{}",
            report::stats_text(a.by, &p.metrics.agg, &p.pool, window)
        );
    }
    Ok(())
}

fn inspect(dir: &Path, config: &Config, what: InspectWhat) -> Result<()> {
    let log = open_log_for_reading(dir, config)?;
    match what {
        InspectWhat::Lead { id, json } => {
            let timeline = log.timeline(&id)?;
            let rejections = log.lead_rejections(&id)?;
            if timeline.is_empty() && rejections.is_empty() {
                bail!("no lead {id:?} in the log");
            }
            // The current state is the pool fold of this lead's events alone.
            let mut state = leadflow::projector::pool::PoolState::default();
            for (_, e) in &timeline {
                state.apply(e);
            }
            let view = state.leads.get(&id);
            if json {
                let events: Vec<serde_json::Value> = timeline
                    .iter()
                    .map(|(seq, e)| {
                        let mut v: serde_json::Value =
                            serde_json::from_str(&codec::event_to_json(e)).expect("valid json");
                        v["seq"] = serde_json::json!(seq);
                        v
                    })
                    .collect();
                let rejected: Vec<serde_json::Value> = rejections
                    .iter()
                    .map(|r| serde_json::json!({"reason": r.reason.code(), "message": r.reason.to_string(), "event_id": r.event_id}))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "lead_id": id, "state": view, "timeline": events, "rejected": rejected,
                    }))?
                );
                return Ok(());
            }
            println!("lead {id}");
            if let Some(v) = view {
                println!(
                    "  status {}  pool {}  owner {}  score {}  channel {}",
                    v.status.as_str(),
                    v.pool,
                    v.owner.as_deref().unwrap_or("-"),
                    v.score.map_or("-".into(), |s| s.to_string()),
                    v.channel
                );
                println!(
                    "  assignments {}  recalls {}  previous owners [{}]",
                    v.generation,
                    v.recall_count,
                    v.previous_owners.join(", ")
                );
            }
            println!("timeline:");
            for (seq, e) in &timeline {
                println!(
                    "  #{seq:<8} {}  {:<11} {}",
                    format_ms(e.occurred_at_ms),
                    e.body.kind().as_str(),
                    describe(e)
                );
            }
            if !rejections.is_empty() {
                println!("rejected:");
                for r in &rejections {
                    println!(
                        "  {} ({}): {}",
                        r.event_id.as_deref().unwrap_or("?"),
                        r.reason.code(),
                        r.reason
                    );
                }
            }
        }
        InspectWhat::Rejections { reason, limit } => {
            let mut shown = 0;
            for r in log.rejections() {
                let r = r?;
                if reason.as_deref().is_some_and(|c| c != r.reason.code()) {
                    continue;
                }
                let origin = r
                    .origin
                    .as_ref()
                    .map_or(String::new(), |o| format!(" [{}@{}]", o.source, o.offset));
                println!(
                    "#{:<6} {:<20} event {} lead {}: {}{origin}",
                    r.rseq,
                    r.reason.code(),
                    r.event_id.as_deref().unwrap_or("-"),
                    r.lead_id.as_deref().unwrap_or("-"),
                    r.reason
                );
                shown += 1;
                if shown >= limit {
                    break;
                }
            }
        }
        InspectWhat::Commands(a) => cli::inspect_commands::run(&log, &a)?,
        InspectWhat::Shadow { json } => {
            let key = |c: &leadflow::domain::LeadCommand| {
                let reason = match &c.body {
                    leadflow::domain::CommandBody::RecallLead { reason, .. } => {
                        format!(" ({})", reason.as_str())
                    }
                    _ => String::new(),
                };
                format!("{} {}{reason}", c.body.type_name(), c.rule_id)
            };
            let mut counts: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
            for c in log.commands() {
                counts.entry(key(&c?.1)).or_default().0 += 1;
            }
            for c in log.shadow_commands() {
                counts.entry(key(&c?)).or_default().1 += 1;
            }
            if json {
                let rows: Vec<_> = counts
                    .iter()
                    .map(|(k, (l, s))| serde_json::json!({"command": k, "live": l, "shadow": s}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<50} {:>10} {:>10}", "command", "live", "shadow");
                for (k, (l, s)) in counts {
                    println!("{k:<50} {l:>10} {s:>10}");
                }
            }
        }
        InspectWhat::Log => {
            let s = log.stats()?;
            println!("events   {}", s.events);
            println!("rejected {}", s.rejected);
            for (code, n) in s.rejected_by_reason {
                println!("  {code:<20} {n}");
            }
            let positions = log.positions("")?;
            if !positions.is_empty() {
                println!("source positions (next offset to read)");
                for (source, next) in positions {
                    println!("  {source:<40} {next}");
                }
            }
        }
    }
    Ok(())
}

fn describe(e: &leadflow::domain::LeadEvent) -> String {
    use leadflow::domain::EventBody::*;
    match &e.body {
        Created(c) => format!(
            "channel {} campaign {} pool {} cost {}",
            c.channel, c.campaign, c.pool, c.acquisition_cost
        ),
        Scored(s) => format!("score {} (model {})", s.score, s.model_version),
        Assigned(a) => format!("to {} ({:?})", a.owner_id, a.method),
        FollowedUp(f) => format!("by {} ({:?}) {}", f.owner_id, f.kind, f.outcome),
        Recalled(r) => format!("from {} ({})", r.previous_owner_id, r.reason.as_str()),
        Converted(c) => format!("by {} deal {}", c.owner_id, c.deal_value),
        CommandDeclined(d) => format!("declined {} ({})", d.command_id, d.reason),
    }
}

fn export(dir: &Path, config: &Config, a: ExportArgs) -> Result<()> {
    let log = open_log_for_reading(dir, config)?;
    let out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(io::stdout().lock()),
    };
    let mut w = EventWriter::new(BufWriter::new(out), a.format);
    let mut n = 0u64;
    for item in log.events_from(1) {
        let (_, e) = item?;
        w.write(&e)?;
        n += 1;
    }
    w.into_inner().flush()?;
    eprintln!("exported {n} events");
    Ok(())
}

fn simulate(a: SimulateArgs) -> Result<leadflow::sim::SimSummary> {
    let format = a.format.unwrap_or_else(|| Format::from_path(&a.out));
    let mut config = SimConfig {
        seed: a.seed,
        leads: a.leads,
        days: a.days,
        reps: a.reps,
        bad_ratio: a.bad_ratio,
        ..SimConfig::default()
    };
    if let Some(s) = a.start {
        config.start_ms = s;
    }
    if !(0.0..=1.0).contains(&config.bad_ratio) {
        bail!("--bad-ratio must be between 0 and 1");
    }
    let file = File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut w = EventWriter::new(BufWriter::with_capacity(1 << 20, file), format);
    let pb = spinner(None, "simulating");
    let started = Instant::now();
    let mut sim = Simulator::new(config);
    let mut n = 0u64;
    for item in sim.by_ref() {
        item.write_to(&mut w)?;
        n += 1;
        if n % 50_000 == 0 {
            pb.set_message(format!("simulating: {n} records"));
            pb.tick();
        }
    }
    w.into_inner().flush()?;
    pb.finish_and_clear();
    let summary = sim.summary().clone();
    eprintln!(
        "simulated {n} records ({} bad) into {} in {:.2}s",
        summary.bad_by_reason.values().sum::<u64>(),
        a.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(summary)
}

const DATA_DIR_DEFAULT: &str = "leadflow-data";

fn demo(config: &Config, data_dir: Option<&Path>, a: DemoArgs) -> Result<()> {
    // Scratch space (the offline demo's event file, and the log unless
    // --data-dir names one) in a temporary directory, removed at the end
    // unless --keep. A log dir the user named is kept, and must be new: the
    // demo's in-process Kafka starts empty, so positions stored by an
    // earlier run would be ahead of it.
    let scratch = std::env::temp_dir().join(format!("leadflow-demo-{}", std::process::id()));
    let log_dir = match data_dir {
        Some(d) if d.join("conf").exists() => bail!(
            "the demo starts from an empty log, and {} already holds one: name a new --data-dir (or leave it out for a temporary one)",
            d.display()
        ),
        Some(d) => d.to_path_buf(),
        None => scratch.join("log"),
    };
    std::fs::create_dir_all(&scratch)?;
    if a.offline {
        return demo_offline(config, &scratch, &log_dir, a);
    }
    demo_live(config, &scratch, &log_dir, a)
}

fn demo_live(config: &Config, dir: &Path, log_dir: &Path, a: DemoArgs) -> Result<()> {
    use leadflow::engine::{DemoOptions, DemoTick};
    use leadflow::sim::live::LiveConfig;
    let shutdown = shutdown_flag(a.duration_s)?;
    println!(
        "Leadflow live demo: in-process Kafka (librdkafka MockCluster), the engine, a simulated"
    );
    println!(
        "marketing system publishing {} leads/s and a simulated CRM with {} reps carrying out",
        a.rate, a.reps
    );
    println!(
        "the engine's commands. One simulated hour lasts {} ms. Data in {}.",
        a.hour_ms,
        log_dir.display()
    );
    println!(
        "{}",
        match a.duration_s {
            Some(s) => format!("Running for {s} s (Ctrl-C stops earlier).\n"),
            None => "Ctrl-C to stop.\n".to_string(),
        }
    );
    println!("  time   events/s   accepted  rejected | waiting   held  converted  recalls | commands  dead letters");
    let options = DemoOptions {
        live: LiveConfig {
            seed: a.seed,
            leads_per_s: a.rate,
            reps: a.reps,
            hour_ms: a.hour_ms,
            garbage_ratio: a.bad_ratio,
        },
        capacity: a.capacity,
        partitions: config.kafka.partitions,
        data_dir: log_dir.to_path_buf(),
        // The dashboard on a free port unless the config names one.
        api_listen: if config.api.listen.is_empty() {
            "127.0.0.1:0".to_string()
        } else {
            config.api.listen.clone()
        },
    };
    let result = leadflow::engine::demo(
        config,
        options,
        shutdown,
        &mut |t: &DemoTick| {
            println!(
                "{:>5.0}s {:>10.0} {:>10} {:>9} | {:>7} {:>6} {:>10} {:>8} | {:>8} {:>13}",
                t.elapsed_s,
                t.events_per_s,
                t.accepted,
                t.rejected,
                t.waiting,
                t.held,
                t.converted,
                t.recalls,
                t.commands_sent,
                t.dead_letters
            );
        },
        &mut |api| {
            match api {
        Ok(addr) => println!("dashboard: http://{addr}/dashboard  (API under http://{addr}/api/v1, metrics at /metrics)"),
        Err(e) => eprintln!("the dashboard could not start: {e}"),
    }
        },
    );
    let outcome = result.map_err(anyhow::Error::from).and_then(|r| {
        replay::save(&r.log, &r.projections)?;
        let w = &r.world;
        println!(
            "\nThe world published {} leads, {} assignments (from the engine's commands), {} follow-ups, {} conversions, {} recalls, {} garbage messages; the CRM got {} reminders.",
            w.created, w.assigned, w.followed_up, w.converted, w.recalled, w.garbage, w.reminders
        );
        println!(
            "The engine appended {} events, rejected {} (all sent to the dead-letter topic: {}), decided {} commands and published {}.",
            r.stats.accepted, r.stats.rejected, r.stats.dead_letters_sent, r.stats.commands_decided, r.stats.commands_sent
        );
        let p = &r.projections;
        for (code, n) in r.log.stats()?.rejected_by_reason {
            println!("   rejected {code:<20} {n}");
        }
        println!("\nPools now:");
        print!("{}", indent(&report::pool_summary(&p.pool)));
        println!("\nCohort metrics by channel:");
        print!(
            "{}",
            indent(&report::stats_text(StatsBy::Channel, &p.metrics.agg, &p.pool, Window::default()))
        );
        Ok(())
    });
    if !a.keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    outcome
}

fn demo_offline(config: &Config, dir: &Path, log_dir: &Path, a: DemoArgs) -> Result<()> {
    println!("Leadflow demo: data in {}", log_dir.display());
    let events = dir.join("events.pb");
    println!(
        "\n1. simulating {} leads over 30 days (seed {})",
        a.leads, a.seed
    );
    let summary = simulate(SimulateArgs {
        out: events.clone(),
        format: Some(Format::Protobuf),
        seed: a.seed,
        leads: a.leads,
        days: 30,
        reps: 40,
        start: None,
        bad_ratio: a.bad_ratio,
    })?;
    for (k, n) in &summary.events_by_kind {
        println!("   {k:<12} {n}");
    }
    println!("\n2. importing into the event log (validated, deduplicated, durable)");
    let result = (|| -> Result<()> {
        let mut log = open_log(log_dir, config)?;
        let s = import(
            &mut log,
            config,
            &ImportArgs {
                file: events.clone(),
                format: Some(Format::Protobuf),
                source: None,
                print_acks: false,
            },
        )?;
        println!("   {} accepted, {} rejected", s.accepted, s.rejected);
        for (code, n) in log.stats()?.rejected_by_reason {
            println!("   rejected {code:<20} {n}");
        }
        println!("\n3. replaying the log into projections");
        let started = Instant::now();
        let p = replay::rebuild(&log, &config.projection, None, &mut |_| {})?;
        replay::save(&log, &p)?;
        println!(
            "   {} events folded in {:.2}s",
            p.covered_seq,
            started.elapsed().as_secs_f64()
        );
        print!("{}", indent(&report::pool_summary(&p.pool)));
        let w = Window::default();
        println!("\n4. cohort metrics by channel");
        print!(
            "{}",
            indent(&report::stats_text(
                StatsBy::Channel,
                &p.metrics.agg,
                &p.pool,
                w
            ))
        );
        println!("\n5. pool metrics");
        print!(
            "{}",
            indent(&report::stats_text(
                StatsBy::Pools,
                &p.metrics.agg,
                &p.pool,
                w
            ))
        );
        if a.keep {
            println!(
                "\nData kept. Try: leadflow --data-dir {} stats --by owner",
                log_dir.display()
            );
            println!(
                "           leadflow --data-dir {} inspect lead lead-{}-0000001",
                log_dir.display(),
                a.seed
            );
        }
        Ok(())
    })();
    if !a.keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("   {l}\n")).collect()
}

/// A flag set by SIGINT or SIGTERM, or after `duration_s` seconds.
fn shutdown_flag(duration_s: Option<u64>) -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let shutdown = std::sync::Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, shutdown.clone())?;
    }
    if let Some(secs) = duration_s {
        let flag = shutdown.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(secs));
            flag.store(true, Ordering::Relaxed);
        });
    }
    Ok(shutdown)
}

fn run_engine(dir: &Path, config: &Config, a: RunArgs) -> Result<()> {
    use std::sync::atomic::Ordering;
    // The broker, the credentials and the topics first: a wrong password
    // or certificate is one error before anything is opened or printed.
    let k = &config.kafka;
    leadflow::bus::admin::check_topics(k, &leadflow::bus::admin::topics(k))?;
    let shutdown = shutdown_flag(a.duration_s)?;
    let options = LogOptions {
        dead_letter_outbox: true,
        ..LogOptions::from(&config.log)
    };
    let mut log = EventLog::open(dir, &options)
        .with_context(|| format!("opening the event log in {}", dir.display()))?;
    if a.reset_positions {
        let prefix = leadflow::bus::source_prefix(&config.kafka.events_topic);
        let forgotten = log.reset_positions(&prefix)?;
        eprintln!(
            "forgot {} stored positions of {} ({}); reading it from the start, held events become duplicates",
            forgotten.len(),
            config.kafka.events_topic,
            forgotten
                .iter()
                .map(|(source, next)| format!("{source}@{next}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let projections = load_projections(&log, config)?;
    let processor = match &config.policy.file {
        None => None,
        Some(path) => {
            let policy = leadflow::policy::PolicyFile::load(path)?;
            eprintln!(
                "policy {} version {} ({} pools)",
                path.display(),
                policy.version,
                policy.pools.len()
            );
            let (processor, decided) = replay::load_policy(&mut log, policy)?;
            let stored = log.append_commands(decided)?;
            if !stored.is_empty() {
                eprintln!("{} commands decided while catching up", stored.len());
            }
            Some(processor)
        }
    };
    let shadow = match &config.policy.shadow_file {
        None => None,
        Some(path) => {
            let policy = leadflow::policy::PolicyFile::load(path)?;
            eprintln!(
                "shadow policy {} version {}: decides beside the live one, publishes nothing",
                path.display(),
                policy.version
            );
            // What the shadow decides while catching up was stored when
            // those events were appended: storing it again would count it
            // twice in the comparison.
            let shadow = replay::load_shadow_policy(&log, policy)?;
            Some(shadow)
        }
    };
    // Every fold has caught up with the whole log, so they start from the
    // same point (the ingest asserts it).
    eprintln!(
        "leadflow run: consuming {} from {} as group {} (log at sequence {}); Ctrl-C to stop",
        config.kafka.events_topic,
        config.kafka.brokers,
        config.kafka.group_id,
        log.last_seq()
    );
    let started = Instant::now();
    let mut api_thread = None;
    let mut api_error = None;
    let done = leadflow::bus::ingest::run_full(
        config,
        log,
        projections,
        processor,
        shadow,
        &shutdown,
        std::time::Duration::from_secs(1),
        &mut |p| {
            let sizes = p.projections.pool.pool_sizes();
            let waiting: u64 = sizes.values().map(|s| s.waiting).sum();
            let held: u64 = sizes.values().map(|s| s.held).sum();
            let converted: u64 = sizes.values().map(|s| s.converted).sum();
            eprintln!(
                "{:>6.1}s  covered {}  consumed {}  accepted {}  rejected {}  dead letters {}  commands {}/{} sent  | waiting {waiting} held {held} converted {converted}",
                started.elapsed().as_secs_f64(),
                p.covered,
                p.stats.consumed,
                p.stats.accepted,
                p.stats.rejected,
                p.stats.dead_letters_sent,
                p.stats.commands_sent,
                p.stats.commands_decided,
            );
        },
        &mut |handle| {
            if config.api.listen.is_empty() {
                return;
            }
            match leadflow::engine::serve_api(
                &config.api,
                config.policy.file.clone(),
                handle,
                shutdown.clone(),
            ) {
                Ok((addr, thread)) => {
                    eprintln!("api listening on http://{addr}");
                    api_thread = Some(thread);
                }
                Err(e) => {
                    api_error = Some(e);
                    shutdown.store(true, Ordering::Relaxed);
                }
            }
        },
    )?;
    if let Some(e) = api_error {
        anyhow::bail!("cannot listen on {}: {e}", config.api.listen);
    }
    if let Some(t) = api_thread {
        let _ = t.join();
    }
    replay::save(&done.log, &done.projections)?;
    if let Some(p) = &done.processor {
        replay::save_policy(&done.log, p)?;
    }
    if let Some(p) = &done.shadow {
        replay::save_policy_named(&done.log, p, leadflow::policy::SHADOW_SNAPSHOT_NAME)?;
    }
    let stats = done.stats;
    eprintln!(
        "stopped after {:.1}s: consumed {}, skipped {} redelivered, accepted {}, rejected {}, {} dead letters sent, {} commands decided, {} sent, {} rewinds; log at sequence {}",
        started.elapsed().as_secs_f64(),
        stats.consumed,
        stats.skipped,
        stats.accepted,
        stats.rejected,
        stats.dead_letters_sent,
        stats.commands_decided,
        stats.commands_sent,
        stats.rewinds,
        done.log.last_seq()
    );
    Ok(())
}

fn backtest(dir: &Path, config: &Config, a: BacktestArgs) -> Result<()> {
    use leadflow::policy::PolicyFile;
    let baseline_path = a
        .baseline
        .clone()
        .or_else(|| config.policy.file.clone())
        .context("no policy to compare with: set [policy] file in the config or pass --baseline")?;
    let baseline = PolicyFile::load(&baseline_path)?;
    let candidate = PolicyFile::load(&a.policy)?;
    let log = open_log_for_reading(dir, config)?;
    let started = Instant::now();
    let pb = spinner(Some(log.last_seq()), "backtesting");
    let events = log.events_from(1).map_while(|r| match r {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!("reading the log: {e}");
            None
        }
    });
    let model = a
        .sim_seed
        .map(|seed| leadflow::sim::model::Model::for_seed(seed, a.sim_reps));
    let ticks = replay::recorded_ticks(&log)?;
    let outcomes = leadflow::backtest::run(
        &[baseline, candidate],
        events,
        &ticks,
        (a.from, a.to),
        model.as_ref(),
        &mut |seq| pb.set_position(seq),
        &mut |_, _| {},
    );
    pb.finish_and_clear();
    let names = vec![
        format!("in force ({})", baseline_path.display()),
        format!("candidate ({})", a.policy.display()),
    ];
    if a.json {
        let json = serde_json::json!({
            "events": log.last_seq(),
            "baseline": { "file": baseline_path, "outcome": outcomes[0] },
            "candidate": { "file": a.policy, "outcome": outcomes[1] },
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", leadflow::backtest::table(&names, &outcomes));
    }
    eprintln!(
        "backtested {} events under 2 policies in {:.2}s",
        log.last_seq(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn bench(config: &Config, a: BenchArgs) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("leadflow-bench-")
        .tempdir()?;
    let policy = match (&config.policy.file, a.with_policy) {
        (Some(path), true) => Some(leadflow::policy::PolicyFile::load(path)?),
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

fn publish(config: &Config, a: PublishArgs) -> Result<()> {
    let format = a.format.unwrap_or_else(|| Format::from_path(&a.file));
    let topic = a.topic.unwrap_or_else(|| config.kafka.events_topic.clone());
    let file = File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let mut reader = EventReader::new(BufReader::with_capacity(1 << 20, file), format);
    let pb = spinner(None, "publishing");
    let started = Instant::now();
    let s = leadflow::bus::publish::publish_as(
        &config.kafka,
        &topic,
        &mut reader,
        a.wire,
        a.schema_id,
        &mut |n| {
            pb.set_message(format!("publishing: {n} records"));
            pb.tick();
        },
    )?;
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "published {} events and {} undecodable records to {topic} in {secs:.2}s ({:.0} records/s)",
        s.events,
        s.undecodable,
        (s.events + s.undecodable) as f64 / secs.max(1e-9)
    );
    if let Some(at) = reader.truncated_at() {
        bail!(
            "{} ends inside a record that starts at byte {at}: the records before it were published, the broken part was not",
            a.file.display()
        );
    }
    Ok(())
}

fn tail(config: &Config, a: TailArgs) -> Result<()> {
    use leadflow::bus::tail::Kind;
    let k = &config.kafka;
    let topic = match a.topic {
        Kind::Events => &k.events_topic,
        Kind::Commands => &k.commands_topic,
        Kind::Dlq => &k.dlq_topic,
    };
    let from = leadflow::bus::tail::From {
        partition: a.partition,
        offset: a.offset,
    };
    for m in leadflow::bus::tail::tail_from(k, topic, a.topic, from, a.limit, a.idle_ms)? {
        if a.json {
            println!("{}", serde_json::to_string(&m)?);
        } else {
            let headers: Vec<String> = m.headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "{}@{} key={} {} {}",
                m.partition,
                m.offset,
                m.key.as_deref().unwrap_or("-"),
                headers.join(" "),
                m.body
            );
        }
    }
    Ok(())
}
