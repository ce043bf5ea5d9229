//! What one engine contributes to numbers over every engine: its metric
//! aggregates and its pools' current sizes. Each lead lives in one
//! partition, so in one engine, and every aggregate is a sum of per-lead
//! contributions: merging the partials of engines that own disjoint
//! partitions gives exactly the numbers one engine owning all of them
//! would show (`stats --peers`).

use super::metrics::Aggregates;
use super::pool::PoolSize;
use super::Projections;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The first bytes of an encoded partial: the layout's name and version,
/// so that engines of different versions refuse each other's rather than
/// misread them.
const FORMAT: &[u8] = b"leadflow-partial/4\n";

/// One engine's mergeable numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    pub agg: Aggregates,
    pub pool_sizes: BTreeMap<String, PoolSize>,
}

impl Partial {
    pub fn of(p: &Projections) -> Partial {
        Partial {
            agg: p.metrics.agg.clone(),
            pool_sizes: p.pool.pool_sizes(),
        }
    }

    /// Adds another engine's numbers to these.
    pub fn merge(&mut self, o: &Partial) {
        self.agg.merge(&o.agg);
        for (pool, s) in &o.pool_sizes {
            let mine = self.pool_sizes.entry(pool.clone()).or_default();
            mine.waiting += s.waiting;
            mine.held += s.held;
            mine.converted += s.converted;
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = FORMAT.to_vec();
        out.extend(bincode::serialize(self).expect("partials serialise"));
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Partial, String> {
        let body = bytes.strip_prefix(FORMAT).ok_or_else(|| {
            "not a leadflow partial of this version (an engine of another version?)".to_string()
        })?;
        bincode::deserialize(body).map_err(|e| format!("a damaged partial: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tenant;
    use crate::projector::metrics::{MetricParams, Window};
    use crate::report::{stats_json_sized, StatsBy};
    use crate::sim::{SimConfig, SimItem, Simulator};

    #[test]
    fn the_partials_of_disjoint_partitions_merge_into_the_whole() {
        // Given a workload over 7 tenants folded whole, and split by the
        // partition (of 3) each tenant lives in, one fold per partition.
        let params = MetricParams::from(&crate::config::ProjectionConfig::default());
        let mut whole = Projections::new(params.clone());
        let mut parts: Vec<Projections> =
            (0..3).map(|_| Projections::new(params.clone())).collect();
        let mut seqs = [0u64; 3];
        let events = Simulator::new(SimConfig {
            seed: 5,
            leads: 800,
            days: 20,
            tenants: 7,
            ..SimConfig::default()
        })
        .filter_map(|i| match i {
            SimItem::Event(e) => Some(e),
            _ => None,
        });
        let mut lifecycle = std::collections::HashMap::new();
        for (n, e) in events.enumerate() {
            // Only what the lifecycle accepts is folded, as in the log.
            let Ok(lead) = crate::domain::lifecycle::handle(lifecycle.get(&e.lead_id), &e) else {
                continue;
            };
            lifecycle.insert(e.lead_id.clone(), lead);
            whole.apply(n as u64 + 1, &e);
            let p = tenant::partition_of(tenant::message_key(&e).as_bytes(), 3) as usize;
            seqs[p] += 1;
            parts[p].apply(seqs[p], &e);
        }
        assert!(seqs.iter().all(|n| *n > 0), "every partition had work");
        // When their partials are merged (through their wire form) ...
        let mut merged = Partial::default();
        for p in &parts {
            merged.merge(&Partial::from_bytes(&Partial::of(p).to_bytes()).unwrap());
        }
        // ... then every table equals the whole's.
        let all = Partial::of(&whole);
        for by in [
            StatsBy::Channel,
            StatsBy::Campaign,
            StatsBy::Day,
            StatsBy::Owner,
            StatsBy::Pools,
        ] {
            assert_eq!(
                stats_json_sized(by, &merged.agg, &merged.pool_sizes, Window::default()),
                stats_json_sized(by, &all.agg, &all.pool_sizes, Window::default()),
                "{by:?}"
            );
        }
        assert!(Partial::from_bytes(b"something else").is_err());
    }
}
