//! `leadflow export`: the log's accepted events as JSONL, protobuf, or
//! Parquet for analysts (one row per event, one column per field).

use super::open_stores_for_reading;
use anyhow::{bail, Context, Result};
use clap::Args;
use leadflow::codec::stream::{EventWriter, Format};
use leadflow::config::Config;
use leadflow::flat::parquet::{ParquetWriter, ROWS_PER_GROUP};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The file format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One proto3-JSON `LeadEvent` per line (what `import` reads).
    Jsonl,
    /// Length-delimited protobuf `LeadEvent`s (what `import` reads).
    Protobuf,
    /// A Parquet table for DuckDB, pandas or a BI tool: one row per event
    /// with its log sequence, one column per field (needs `--out`).
    Parquet,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Output file (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: ExportFormat,
}

pub fn exec(dir: &Path, config: &Config, a: ExportArgs) -> Result<()> {
    let logs = open_stores_for_reading(dir, config)?;
    if a.format == ExportFormat::Parquet {
        let Some(path) = &a.out else {
            bail!("--format parquet writes a file: give --out FILE");
        };
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = ParquetWriter::new(BufWriter::new(file), leadflow::flat::events::columns())?;
        let mut rows = Vec::with_capacity(ROWS_PER_GROUP);
        let mut n = 0u64;
        for (_, log) in &logs {
            for item in log.events_from(1) {
                let (seq, e) = item?;
                rows.push(leadflow::flat::events::row(seq, &e));
                n += 1;
                // One row group at a time: memory stays bounded whatever
                // the log's size.
                if rows.len() == ROWS_PER_GROUP {
                    w.write_group(&rows)?;
                    rows.clear();
                }
            }
        }
        w.write_group(&rows)?;
        w.finish()?.flush()?;
        eprintln!("exported {n} events to {}", path.display());
        return Ok(());
    }
    let out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(io::stdout().lock()),
    };
    let format = match a.format {
        ExportFormat::Protobuf => Format::Protobuf,
        _ => Format::Jsonl,
    };
    let mut w = EventWriter::new(BufWriter::new(out), format);
    let mut n = 0u64;
    // Partition stores one after another: each partition's events in
    // their order (a lead's history is in one of them).
    for (_, log) in &logs {
        for item in log.events_from(1) {
            let (_, e) = item?;
            w.write(&e)?;
            n += 1;
        }
    }
    w.into_inner().flush()?;
    eprintln!("exported {n} events");
    Ok(())
}
