//! `leadflow topics`: the engine's topics on the configured broker.

use anyhow::Result;
use clap::Subcommand;
use leadflow::config::Config;

#[derive(Subcommand)]
pub enum TopicsWhat {
    /// Create the events, commands and dead-letter topics with
    /// `kafka.partitions` partitions (existing ones are left alone).
    Create,
}

pub fn exec(config: &Config, what: TopicsWhat) -> Result<()> {
    match what {
        TopicsWhat::Create => {
            for (topic, outcome) in leadflow::bus::admin::create_topics(&config.kafka)? {
                println!("{topic}: {outcome}");
            }
        }
    }
    Ok(())
}
