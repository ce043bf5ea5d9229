//! `leadflow tail`: a topic's messages, decoded whatever their format.

use anyhow::Result;
use clap::Args;
use leadflow::config::Config;

#[derive(Args)]
pub struct TailArgs {
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

pub fn exec(config: &Config, a: TailArgs) -> Result<()> {
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
