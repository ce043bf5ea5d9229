//! `leadflow import`: an event file into the log, resuming after the last
//! durable record of its source.

use super::{open_log, spinner};
use anyhow::{Context, Result};
use clap::Args;
use leadflow::codec::stream::{EventReader, Format};
use leadflow::config::Config;
use leadflow::import::ImportSummary;
use leadflow::log::EventLog;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct ImportArgs {
    /// Event file to import.
    pub file: PathBuf,
    /// File format; guessed from the extension when absent (.pb/.bin/.ldpb
    /// are protobuf, anything else JSONL).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Name of the source whose position is stored (default: `file:` and
    /// the canonical path). Re-running an import resumes after the last
    /// durable record of its source; use a new name to import again.
    #[arg(long)]
    pub source: Option<String>,
    /// Print `ack NEXT_OFFSET LAST_SEQ` to stdout after each durable batch.
    #[arg(long)]
    pub print_acks: bool,
}

pub fn exec(dir: &Path, config: &Config, a: ImportArgs) -> Result<()> {
    let stores = leadflow::log::stores::partition_stores(dir)?;
    if !stores.is_empty() {
        anyhow::bail!(
            "{} holds partition stores (partitions {:?}) kept by an engine owning partitions statically; \
             import into a data dir of its own (or publish the file to the events topic)",
            dir.display(),
            stores.iter().map(|(p, _)| *p).collect::<Vec<_>>()
        );
    }
    let mut log = open_log(dir, config)?;
    import(&mut log, config, &a)?;
    // The next open loads the index instead of scanning the log.
    log.checkpoint_index()?;
    Ok(())
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

pub fn import(log: &mut EventLog, config: &Config, a: &ImportArgs) -> Result<ImportSummary> {
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
