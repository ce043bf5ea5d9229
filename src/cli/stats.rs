//! `leadflow stats`: a metric table (or JSON rows) from the projections.

use super::{load_all_projections, open_stores_for_reading};
use anyhow::{bail, Context, Result};
use clap::Args;
use leadflow::config::Config;
use leadflow::domain::time::parse_day_bound_ms;
use leadflow::projector::metrics::Window;
use leadflow::report::{self, StatsBy};
use std::path::{Path, PathBuf};

/// How `stats` writes its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsFormat {
    /// A table for people.
    Text,
    /// The JSON document (as `--json`).
    Json,
    /// Flat rows for spreadsheets and BI tools: one per group and
    /// currency, a header line first.
    Csv,
    /// The same flat rows as Parquet (needs `--out`).
    Parquet,
}

#[derive(Args)]
pub struct StatsArgs {
    #[arg(long, value_enum, default_value = "channel")]
    by: StatsBy,
    /// First day (inclusive) of the window: a date, or a UTC midnight
    /// (metrics are kept per UTC day; a time of day is refused).
    #[arg(long, value_parser = parse_day_bound_ms)]
    from: Option<i64>,
    /// End (exclusive) of the window: a date, or a UTC midnight.
    #[arg(long, value_parser = parse_day_bound_ms)]
    to: Option<i64>,
    /// Machine-readable output (the same as `--format json`).
    #[arg(long)]
    json: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: StatsFormat,
    /// Write the output to this file instead of stdout (Parquet needs
    /// one).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Count days in this IANA time zone ("Asia/Shanghai"; default
    /// `report.time_zone`): `--by day`, `--from`/`--to` and the owner and
    /// pool days. A zone other than the projections' is answered by
    /// folding the log again for this answer (nothing is saved).
    #[arg(long)]
    tz: Option<String>,
    /// The numbers over every engine instead of this data dir's: each
    /// engine's share from its API, merged. Comma-separated base URLs
    /// (`http://leadflow-0:8080,…`) and `dns:HOST:PORT` names resolving
    /// to every engine (a headless Service). Sends `api.read_token`.
    #[arg(long)]
    peers: Option<String>,
    /// `--by score-model`: a lead not converted this long after its
    /// creation counts as not converted ("30d", "720h"; default the
    /// policy's `scoring.predictive.horizon`, else 30 days).
    #[arg(long, value_parser = parse_duration_ms)]
    horizon: Option<i64>,
}

fn parse_duration_ms(s: &str) -> Result<i64, String> {
    leadflow::policy::duration::parse_ms(s)
}

pub fn exec(dir: &Path, config: &Config, mut a: StatsArgs) -> Result<()> {
    if a.json {
        if !matches!(a.format, StatsFormat::Text | StatsFormat::Json) {
            bail!("--json is --format json: give one of them");
        }
        a.format = StatsFormat::Json;
    }
    if a.format == StatsFormat::Parquet && a.out.is_none() {
        bail!("--format parquet writes a file: give --out FILE");
    }
    let flat = matches!(a.format, StatsFormat::Csv | StatsFormat::Parquet);
    a.json = a.format == StatsFormat::Json || flat;
    if flat {
        // The flat rows are the JSON document's, flattened.
        let mut doc = None;
        exec_inner(dir, config, &a, &mut |v| doc = Some(v))?;
        let doc = doc.context("no numbers to write")?;
        return write_flat(&doc, a.format, a.out.as_deref());
    }
    exec_inner(dir, config, &a, &mut |v| {
        let text = serde_json::to_string_pretty(&v).expect("JSON values serialise");
        println!("{text}");
    })
}

/// Writes the JSON document's flat rows as CSV or Parquet.
fn write_flat(doc: &serde_json::Value, format: StatsFormat, out: Option<&Path>) -> Result<()> {
    let table = leadflow::flat::table(doc);
    match format {
        StatsFormat::Csv => {
            let bytes = leadflow::flat::to_csv(&table)?;
            match out {
                Some(p) => {
                    std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))?
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().lock().write_all(&bytes)?;
                }
            }
        }
        _ => {
            let p = out.context("--format parquet writes a file: give --out FILE")?;
            let file =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            let mut w = leadflow::flat::parquet::ParquetWriter::new(
                std::io::BufWriter::new(file),
                table.column_kinds(),
            )?;
            w.write_group(&table.rows)?;
            use std::io::Write;
            w.finish()?.flush()?;
        }
    }
    if let Some(p) = out {
        eprintln!("wrote {} rows to {}", table.rows.len(), p.display());
    }
    Ok(())
}

/// The numbers, as text (printed here) or as the JSON document (given to
/// `emit`).
fn exec_inner(
    dir: &Path,
    config: &Config,
    a: &StatsArgs,
    emit: &mut dyn FnMut(serde_json::Value),
) -> Result<()> {
    let window = Window {
        from_ms: a.from,
        to_ms: a.to,
    };
    if a.peers.is_some()
        && a.tz
            .as_ref()
            .is_some_and(|tz| *tz != config.report.time_zone)
    {
        bail!("--tz is answered from this data dir's log; with --peers the engines' numbers are in their report.time_zone");
    }
    if let Some(spec) = &a.peers {
        if matches!(a.by, StatsBy::Fairness | StatsBy::ScoreModel) {
            bail!("--by fairness and --by score-model read this data dir's log and policy; they are not merged across --peers");
        }
        let peers = leadflow::engine::peers::resolve(spec)?;
        if peers.is_empty() {
            bail!("--peers names no engine");
        }
        let all = leadflow::engine::peers::merged(&peers, config.api.read_token.as_deref())?;
        if a.json {
            emit(report::stats_json_sized(
                a.by,
                &all.agg,
                &all.pool_sizes,
                window,
            ));
        } else {
            print!(
                "{}",
                report::stats_text_sized(a.by, &all.agg, &all.pool_sizes, window)
            );
            eprintln!("merged from {} engines: {}", peers.len(), peers.join(", "));
        }
        return Ok(());
    }
    if a.horizon.is_some() && a.by != StatsBy::ScoreModel {
        bail!("--horizon is for --by score-model");
    }
    let logs = open_stores_for_reading(dir, config)?;
    if a.by == StatsBy::ScoreModel {
        return super::stats_score_model::exec(&logs, config, a.horizon, a.json, emit);
    }
    let p = match &a.tz {
        Some(tz) if *tz != config.report.time_zone => {
            leadflow::domain::time::DayClock::new(tz).map_err(|e| anyhow::anyhow!("--tz: {e}"))?;
            let mut projection = config.projection.clone();
            projection.time_zone = tz.clone();
            let mut merged: Option<leadflow::projector::Projections> = None;
            for (_, log) in &logs {
                let pb = super::spinner(Some(log.last_seq()), &format!("counting days in {tz}"));
                let p = leadflow::replay::rebuild(log, &projection, None, &mut |seq| {
                    pb.set_position(seq)
                })?;
                pb.finish_and_clear();
                match merged.as_mut() {
                    None => merged = Some(p),
                    Some(m) => m.merge_for_reading(&p),
                }
            }
            merged.expect("a data dir has at least one log")
        }
        _ => load_all_projections(&logs, config)?,
    };
    if a.by == StatsBy::Fairness {
        let path = config
            .policy
            .file
            .as_ref()
            .context("--by fairness needs the policy's capacities: set [policy] file")?;
        let policy = leadflow::config::load_policy(path)?;
        let (rows, gini) = report::fairness(&p.metrics.agg, &policy, window);
        if a.json {
            emit(serde_json::json!({ "reps": rows, "gini": gini }));
        } else {
            print!("{}", report::fairness_text(&rows, gini));
        }
        return Ok(());
    }
    if a.json {
        emit(report::stats_json(a.by, &p.metrics.agg, &p.pool, window));
    } else {
        print!(
            "{}",
            report::stats_text(a.by, &p.metrics.agg, &p.pool, window)
        );
    }
    Ok(())
}
