//! `leadflow export`: the log's accepted events as JSONL or protobuf.

use super::open_stores_for_reading;
use anyhow::{Context, Result};
use clap::Args;
use leadflow::codec::stream::{EventWriter, Format};
use leadflow::config::Config;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ExportArgs {
    /// Output file (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
}

pub fn exec(dir: &Path, config: &Config, a: ExportArgs) -> Result<()> {
    let logs = open_stores_for_reading(dir, config)?;
    let out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(io::stdout().lock()),
    };
    let mut w = EventWriter::new(BufWriter::new(out), a.format);
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
