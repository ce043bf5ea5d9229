//! `leadflow publish`: an event file onto a topic, in any of the formats
//! the engine reads (README, Formats).

use super::spinner;
use anyhow::{bail, Context, Result};
use clap::Args;
use leadflow::codec::stream::{EventReader, Format};
use leadflow::config::Config;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct PublishArgs {
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

pub fn exec(config: &Config, a: PublishArgs) -> Result<()> {
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
