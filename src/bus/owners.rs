//! Who owns which partition of the events topic, kept on Kafka itself: a
//! compacted topic (`kafka.owners_topic`) with one record per partition,
//! keyed `<events topic>/<partition>`, holding the owner's claim.
//!
//! Why: engines that own partitions statically (`kafka.own_partitions`)
//! do not use the group protocol, and that protocol cannot be trusted on
//! every broker anyway (tansu 0.6 handed the same partitions to two
//! members). So ownership is a lease with an epoch, as in fencing tokens:
//!
//! - An owner re-publishes its claim every [`HEARTBEAT_MS`] (with its
//!   position, lag and whether it is restoring, which `leadflow
//!   partitions` shows). On a clean stop it publishes the claim released.
//! - An engine that starts on a partition whose latest claim is another
//!   engine's, heard from within `kafka.owner_lease_ms`, waits for that
//!   lease to run out (the other engine stopped, or was killed), and gives
//!   up with an error if the other keeps its claim alive: two engines
//!   started on one partition by mistake do not both run.
//! - Taking a partition writes a claim with the next epoch. An engine that
//!   sees a claim for one of its partitions that beats its own (a higher
//!   epoch, or the same epoch from a greater engine id) is fenced: it
//!   stops before publishing another command, with an error. It checks
//!   before every publishing pass, so what it may still publish after the
//!   new owner's claim is bounded by one pass plus the time its watcher
//!   takes to see the claim (the in-flight window; README, Scaling out).
//! - A heartbeat never blocks the engine: it is handed to the producer and
//!   its delivery picked up later, so a broker outage stops nothing. If no
//!   heartbeat has been delivered for longer than the lease, another
//!   engine may have taken over meanwhile: the owner publishes no command
//!   until the broker takes its heartbeats again and a full read of the
//!   owners topic shows no claim beating its own (else it is fenced).
//!
//! The claims are JSON, so other tools can read the topic.

use super::{client_config, BusError};
use crate::config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often an owner re-publishes its claims.
pub const HEARTBEAT_MS: u64 = 1_000;

/// How long reading the owners topic may wait on a silent broker.
const READ_STALL_MS_MAX: u64 = 30_000;

/// How long a read of the owners topic goes on once nothing new comes.
const READ_QUIET_MS: u64 = 500;

/// One partition's latest claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The engine: `<host>:<pid>`, unique per process.
    pub engine: String,
    /// Raised by one at every take-over.
    pub epoch: u64,
    /// When the owner last published this (wall clock, UTC ms).
    pub heard_at_ms: i64,
    /// The next offset of the partition the owner's log holds.
    pub position: u64,
    /// Messages behind the partition's end, as the owner last saw it
    /// (-1: unknown).
    pub lag: i64,
    /// Whether the owner is still rebuilding the partition's state.
    pub restoring: bool,
    /// The owner stopped cleanly: the next one need not wait.
    pub released: bool,
    /// Where the owner's API answers (`api.advertised_url`), for queries
    /// forwarded to it; absent for an engine without an API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

impl Claim {
    /// Whether `self` beats `other` for the same partition: a higher epoch,
    /// or at the same epoch the greater engine id (two engines that took
    /// the same epoch at once agree on the winner once both claims show).
    pub fn beats(&self, other: &Claim) -> bool {
        (self.epoch, &self.engine) > (other.epoch, &other.engine)
    }

    /// Whether a live owner holds the partition as of `now_ms`.
    pub fn is_live(&self, now_ms: i64, lease_ms: u64) -> bool {
        !self.released && now_ms.saturating_sub(self.heard_at_ms) < lease_ms as i64
    }
}

/// The key of a partition's claim.
pub fn key(events_topic: &str, partition: i32) -> String {
    format!("{events_topic}/{partition}")
}

/// The partition a claim's key names, if it is one of `events_topic`'s.
fn partition_of_key(events_topic: &str, key: &str) -> Option<i32> {
    key.strip_prefix(events_topic)?
        .strip_prefix('/')?
        .parse()
        .ok()
}

/// This process's engine id.
pub fn engine_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "engine".into());
    format!("{host}:{}", std::process::id())
}

/// Reads the owners topic to its end: the latest claim per key.
pub fn read_claims(k: &KafkaConfig) -> Result<BTreeMap<String, Claim>, BusError> {
    let (consumer, any) = super::reader::assigned(
        k,
        &k.owners_topic,
        &format!("{}-owners", k.group_id),
        super::reader::From::default(),
        &[],
    )?;
    let mut claims = BTreeMap::new();
    if !any {
        return Ok(claims);
    }
    super::reader::read_to_quiet(
        &consumer,
        k,
        &k.owners_topic,
        (READ_QUIET_MS, READ_STALL_MS_MAX),
        &mut |key, payload| {
            apply_record(&mut claims, key, payload);
            Ok(())
        },
    )?;
    Ok(claims)
}

fn apply_record(claims: &mut BTreeMap<String, Claim>, key: Option<&[u8]>, payload: Option<&[u8]>) {
    let (Some(key), Some(payload)) = (key, payload) else {
        return;
    };
    let Ok(claim) = serde_json::from_slice::<Claim>(payload) else {
        return;
    };
    claims.insert(String::from_utf8_lossy(key).into_owned(), claim);
}

/// One partition of the events topic as `leadflow partitions` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    /// The latest claim, if any engine ever claimed it.
    pub claim: Option<Claim>,
    /// The partition's end as the broker reports it (its high watermark;
    /// some brokers report less than the end, so never below `position`).
    pub end: i64,
    /// Whether a live owner holds it now (a claim heard from within the
    /// lease and not released).
    pub live: bool,
}

impl PartitionStatus {
    /// What the partition's state is, in a word: `running`, `restoring`,
    /// `released`, `lease expired`, `unowned`.
    pub fn state(&self) -> &'static str {
        match &self.claim {
            None => "unowned",
            Some(c) if c.released => "released",
            Some(_) if !self.live => "lease expired",
            Some(c) if c.restoring => "restoring",
            Some(_) => "running",
        }
    }

    /// The fraction of the partition the owner's log holds (1 when empty).
    pub fn progress(&self) -> f64 {
        let at = self.claim.as_ref().map_or(0, |c| c.position) as f64;
        if self.end <= 0 {
            1.0
        } else {
            (at / self.end as f64).min(1.0)
        }
    }
}

/// Every partition of the events topic: who claims it, how far its
/// owner's log reaches, and the partition's end.
pub fn status(k: &KafkaConfig, now_ms: i64) -> Result<Vec<PartitionStatus>, BusError> {
    let count = super::admin::check_topics(k, &[&k.events_topic])?[0] as i32;
    let claims = read_claims(k)?;
    let consumer = super::side_consumer(k, "owners")?;
    let mut out = Vec::new();
    for p in 0..count {
        let (_, high) = consumer.fetch_watermarks(&k.events_topic, p, Duration::from_secs(10))?;
        let claim = claims.get(&key(&k.events_topic, p)).cloned();
        let position = claim.as_ref().map_or(0, |c| c.position) as i64;
        out.push(PartitionStatus {
            partition: p,
            live: claim
                .as_ref()
                .is_some_and(|c| c.is_live(now_ms, k.owner_lease_ms)),
            claim,
            end: high.max(position),
        });
    }
    Ok(out)
}

/// An engine's claims on its partitions: taken at start, kept alive by
/// heartbeats, watched for a newer owner.
pub struct Owner {
    events_topic: String,
    owners_topic: String,
    engine: String,
    /// Per owned partition, the claim last published.
    mine: BTreeMap<i32, Claim>,
    /// Per partition of the events topic not ours, the latest claim seen:
    /// where a tenant's query is forwarded.
    others: BTreeMap<i32, Claim>,
    producer: BaseProducer,
    watcher: BaseConsumer,
    last_heartbeat: Instant,
    /// When a heartbeat was last known delivered (nothing left in flight).
    delivered_at: Instant,
    /// No heartbeat was delivered for longer than the lease: ownership
    /// must be confirmed before publishing again.
    lapsed: bool,
    lease: Duration,
    /// For the confirming read of the owners topic.
    kafka: KafkaConfig,
}

impl Owner {
    /// Takes `partitions`: waits while another engine holds a live lease on
    /// any of them (up to twice `kafka.owner_lease_ms`), then publishes
    /// claims with the next epochs. `positions` gives each partition's
    /// position in this engine's log; `restoring`, those being rebuilt.
    /// `None` when `stop` says the engine was asked to stop while it
    /// waited (nothing claimed).
    pub fn take(
        k: &KafkaConfig,
        partitions: &[i32],
        positions: &BTreeMap<i32, u64>,
        restoring: &[i32],
        api_url: Option<&str>,
        now_ms: &dyn Fn() -> i64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Owner>, BusError> {
        let engine = engine_id();
        let waited = Instant::now();
        let wait_max = Duration::from_millis(2 * k.owner_lease_ms);
        let claims = loop {
            let claims = read_claims(k)?;
            let held: Vec<(i32, &Claim)> = partitions
                .iter()
                .filter_map(|p| claims.get(&key(&k.events_topic, *p)).map(|c| (*p, c)))
                .filter(|(_, c)| c.engine != engine && c.is_live(now_ms(), k.owner_lease_ms))
                .collect();
            let Some((p, holder)) = held.first() else {
                break claims;
            };
            if waited.elapsed() >= wait_max {
                return Err(BusError::Owned {
                    partition: *p,
                    engine: holder.engine.clone(),
                    waited_ms: waited.elapsed().as_millis() as u64,
                });
            }
            tracing::warn!(
                partition = p,
                engine = %holder.engine,
                heard_ms_ago = now_ms().saturating_sub(holder.heard_at_ms),
                lease_ms = k.owner_lease_ms,
                "another engine holds this partition; waiting for its lease to run out"
            );
            // A stop request is answered within 100 ms, not after the wait.
            let napped = Instant::now();
            while napped.elapsed() < Duration::from_millis(HEARTBEAT_MS) {
                if stop() {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        let producer: BaseProducer = client_config(k).create()?;
        let mut mine = BTreeMap::new();
        for p in partitions {
            let epoch = claims.get(&key(&k.events_topic, *p)).map_or(0, |c| c.epoch) + 1;
            mine.insert(
                *p,
                Claim {
                    engine: engine.clone(),
                    epoch,
                    heard_at_ms: now_ms(),
                    position: positions.get(p).copied().unwrap_or(0),
                    lag: -1,
                    restoring: restoring.contains(p),
                    released: false,
                    api_url: api_url.map(str::to_string),
                },
            );
        }
        let others = claims
            .iter()
            .filter_map(|(key, c)| Some((partition_of_key(&k.events_topic, key)?, c)))
            .filter(|(p, _)| !mine.contains_key(p))
            .map(|(p, c)| (p, c.clone()))
            .collect();
        // The watcher reads from the end as it is now: every claim after
        // this point, ours included, is compared with ours.
        let watcher = super::side_consumer(k, "owners")?;
        let mut tpl = TopicPartitionList::new();
        let count = super::admin::check_topics(k, &[&k.owners_topic])?[0] as i32;
        for p in 0..count {
            tpl.add_partition_offset(&k.owners_topic, p, Offset::End)?;
        }
        watcher.assign(&tpl)?;
        let mut owner = Owner {
            events_topic: k.events_topic.clone(),
            owners_topic: k.owners_topic.clone(),
            engine,
            mine,
            others,
            producer,
            watcher,
            last_heartbeat: Instant::now(),
            delivered_at: Instant::now(),
            lapsed: false,
            lease: Duration::from_millis(k.owner_lease_ms),
            kafka: k.clone(),
        };
        owner.publish()?;
        tracing::info!(
            engine = %owner.engine,
            epochs = ?owner.mine.iter().map(|(p, c)| (*p, c.epoch)).collect::<Vec<_>>(),
            "claimed partitions on {}",
            owner.owners_topic
        );
        Ok(Some(owner))
    }

    /// Publishes every claim and waits for the broker to have them.
    fn publish(&mut self) -> Result<(), BusError> {
        self.send_claims()?;
        self.producer.flush(Duration::from_secs(10))?;
        self.delivered_at = Instant::now();
        Ok(())
    }

    /// Hands every claim to the producer, without waiting.
    fn send_claims(&mut self) -> Result<(), BusError> {
        for (p, claim) in &self.mine {
            let key = key(&self.events_topic, *p);
            let value = serde_json::to_vec(claim).expect("claims serialise");
            self.producer
                .send(BaseRecord::to(&self.owners_topic).key(&key).payload(&value))
                .map_err(|(e, _)| e)?;
        }
        self.last_heartbeat = Instant::now();
        Ok(())
    }

    /// Whether commands may be published now: always, unless heartbeats
    /// went undelivered for longer than the lease (see the module docs).
    /// Then not until one is delivered again; and once one is, a full read
    /// of the owners topic must show no claim beating ours
    /// ([`BusError::Fenced`] if one does).
    pub fn may_publish(&mut self) -> Result<bool, BusError> {
        if !self.lapsed {
            return Ok(true);
        }
        if self.producer.in_flight_count() > 0 {
            return Ok(false);
        }
        let claims = read_claims(&self.kafka)?;
        for p in self.mine.keys() {
            if let Some(c) = claims.get(&key(&self.events_topic, *p)) {
                self.fenced_by(*p, c)?;
            }
        }
        tracing::info!("heartbeats delivered again and no other engine claimed our partitions meanwhile: publishing again");
        self.lapsed = false;
        Ok(true)
    }

    /// Fails with [`BusError::Fenced`] if a claim that beats one of ours
    /// has shown up on the owners topic since the last call. Call it
    /// before every publishing pass. Returns whether another partition's
    /// claim changed (see [`others`](Self::others)).
    pub fn check(&mut self) -> Result<bool, BusError> {
        let mut changed = false;
        while let Some(m) = self.watcher.poll(Duration::ZERO) {
            // A broker away is an error of the poll, not of the owner: the
            // consumer reconnects by itself, and claims published meanwhile
            // come when it does (until then `may_publish` holds commands
            // once the lease lapsed).
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!("owners watcher: {e}");
                    break;
                }
            };
            let mut seen = BTreeMap::new();
            apply_record(&mut seen, m.key(), m.payload());
            for (key, claim) in seen {
                let Some(p) = partition_of_key(&self.events_topic, &key) else {
                    continue;
                };
                if self.mine.contains_key(&p) {
                    self.fenced_by(p, &claim)?;
                } else if self.others.get(&p) != Some(&claim) {
                    self.others.insert(p, claim);
                    changed = true;
                }
            }
        }
        Ok(changed)
    }

    /// [`BusError::Fenced`] if `claim`, another engine's on our partition
    /// `p`, beats ours.
    fn fenced_by(&self, p: i32, claim: &Claim) -> Result<(), BusError> {
        match self.mine.get(&p) {
            Some(ours) if claim.engine != self.engine && claim.beats(ours) => {
                Err(BusError::Fenced {
                    partition: p,
                    engine: claim.engine.clone(),
                    epoch: claim.epoch,
                    ours: ours.epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// The latest claim seen on every partition this engine does not own.
    pub fn others(&self) -> &BTreeMap<i32, Claim> {
        &self.others
    }

    /// Re-publishes the claims with fresh positions, lags and restore
    /// states, once per [`HEARTBEAT_MS`].
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        position: &dyn Fn(i32) -> (u64, i64, bool),
    ) -> Result<(), BusError> {
        self.producer.poll(Duration::ZERO);
        let in_flight = self.producer.in_flight_count();
        if in_flight == 0 {
            self.delivered_at = Instant::now();
        } else if !self.lapsed && self.delivered_at.elapsed() > self.lease {
            tracing::warn!(
                undelivered_ms = self.delivered_at.elapsed().as_millis() as u64,
                lease_ms = self.lease.as_millis() as u64,
                "heartbeats have not reached the broker for longer than the lease: \
                 holding commands until ownership is confirmed"
            );
            self.lapsed = true;
        }
        // One heartbeat at a time: while the broker is away the last one
        // waits in the producer instead of a queue of stale ones.
        if in_flight > 0 || self.last_heartbeat.elapsed() < Duration::from_millis(HEARTBEAT_MS) {
            return Ok(());
        }
        for (p, claim) in self.mine.iter_mut() {
            let (at, lag, restoring) = position(*p);
            claim.heard_at_ms = now_ms;
            claim.position = at;
            claim.lag = lag;
            claim.restoring = restoring;
        }
        self.send_claims()
    }

    /// Releases the claims (a clean stop) with the final positions of the
    /// log: the next owner need not wait.
    pub fn release(mut self, now_ms: i64, positions: &BTreeMap<i32, u64>) -> Result<(), BusError> {
        for (p, claim) in self.mine.iter_mut() {
            claim.heard_at_ms = now_ms;
            claim.released = true;
            claim.restoring = false;
            // The lag is the partition's end less the position from here.
            claim.lag = -1;
            if let Some(at) = positions.get(p) {
                claim.position = *at;
            }
        }
        self.publish()
    }

    /// The partitions and epochs claimed.
    pub fn epochs(&self) -> Vec<(i32, u64)> {
        self.mine.iter().map(|(p, c)| (*p, c.epoch)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(engine: &str, epoch: u64, heard_at_ms: i64) -> Claim {
        Claim {
            engine: engine.into(),
            epoch,
            heard_at_ms,
            position: 0,
            lag: -1,
            restoring: false,
            released: false,
            api_url: None,
        }
    }

    #[test]
    fn a_later_epoch_beats_and_a_tie_goes_to_the_greater_engine_id() {
        assert!(claim("a", 2, 0).beats(&claim("b", 1, 0)));
        assert!(!claim("b", 1, 0).beats(&claim("a", 2, 0)));
        assert!(claim("b", 3, 0).beats(&claim("a", 3, 0)));
        assert!(!claim("a", 3, 0).beats(&claim("b", 3, 0)));
        assert!(!claim("a", 3, 0).beats(&claim("a", 3, 0)), "never itself");
    }

    #[test]
    fn a_lease_lives_until_it_is_released_or_runs_out() {
        let c = claim("a", 1, 1_000);
        assert!(c.is_live(5_000, 10_000));
        assert!(!c.is_live(11_000, 10_000));
        let released = Claim {
            released: true,
            ..c
        };
        assert!(!released.is_live(1_000, 10_000));
    }
}
