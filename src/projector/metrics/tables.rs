//! How the aggregates' rows are keyed and found: the cohort table, whose
//! rows a lead's working record holds by place, and the owner and pool
//! tables' rows, looked up by borrowed `(name, day)`. Each looks a key up
//! by its parts, borrowed, and allocates one only for a row it has not
//! seen.

use super::aggregates::{CohortAgg, Dimension};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CohortKey {
    pub dimension: Dimension,
    pub value: String,
    pub day: i64,
}

/// A [`CohortKey`] as its parts, owned or borrowed: a [`CohortTable`]
/// looks a cohort up by `(dimension, &str, day)` and allocates a key only
/// for a cohort it has not seen (a new lead's seven).
pub trait CohortKeyParts {
    fn parts(&self) -> (Dimension, &str, i64);
}

impl CohortKeyParts for CohortKey {
    fn parts(&self) -> (Dimension, &str, i64) {
        (self.dimension, &self.value, self.day)
    }
}

impl CohortKeyParts for (Dimension, &str, i64) {
    fn parts(&self) -> (Dimension, &str, i64) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn CohortKeyParts + 'a> for CohortKey {
    fn borrow(&self) -> &(dyn CohortKeyParts + 'a) {
        self
    }
}

// Ordered as `CohortKey`'s derived order (dimension, value, day), which
// `BTreeMap` look-ups through `Borrow` require.
impl PartialEq for dyn CohortKeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn CohortKeyParts + '_ {}

impl PartialOrd for dyn CohortKeyParts + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn CohortKeyParts + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

/// A key of the owner and pool tables, `(name, day)`, as its parts, owned
/// or borrowed: the fold looks a table's row up by `(&str, day)` and
/// allocates a key only for a row it has not seen (most events touch one).
pub trait DayKeyParts {
    fn parts(&self) -> (&str, i64);
}

impl DayKeyParts for (String, i64) {
    fn parts(&self) -> (&str, i64) {
        (&self.0, self.1)
    }
}

impl DayKeyParts for (&str, i64) {
    fn parts(&self) -> (&str, i64) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn DayKeyParts + 'a> for (String, i64) {
    fn borrow(&self) -> &(dyn DayKeyParts + 'a) {
        self
    }
}

// Ordered as the tuple's derived order (name, day), which `BTreeMap`
// look-ups through `Borrow` require.
impl PartialEq for dyn DayKeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn DayKeyParts + '_ {}

impl PartialOrd for dyn DayKeyParts + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn DayKeyParts + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

/// Runs `f` on the row `(name, day)` of an owner or pool table, made
/// (with its key's one allocation) only when missing.
pub fn with_day_row<V: Default, R>(
    table: &mut BTreeMap<(String, i64), V>,
    name: &str,
    day: i64,
    f: impl FnOnce(&mut V) -> R,
) -> R {
    let parts = (name, day);
    if let Some(row) = table.get_mut(&parts as &dyn DayKeyParts) {
        return f(row);
    }
    f(table.entry((name.to_string(), day)).or_default())
}

/// A cohort's place in a [`CohortTable`].
pub type CohortId = u32;

/// Cohorts at most in one table: ids are `u32`, and [`NO_COHORT`] is kept
/// out of their range.
pub const COHORTS_MAX: usize = u32::MAX as usize - 1;

/// The id no cohort has: a lead's place for a dimension it is not counted
/// by (the default tenant).
pub const NO_COHORT: CohortId = u32::MAX;

/// The cohort table: each cohort's row in a vector, found by its place.
/// A lead's cohorts are fixed when it is created (its dimension values and
/// creation day never change), so the fold keeps their places in the
/// lead's working record: an event that counts in seven cohorts indexes
/// seven rows, where a search of an ordered map by string keys for each
/// was a fifth of the metrics fold. The ordered key map is searched only
/// when a lead is created and when tables merge; readers go through it,
/// in key order. Places are part of the fold's state (working records
/// hold them), so a table is saved with its rows in place order.
#[derive(Clone, Debug, Default)]
pub struct CohortTable {
    rows: Vec<CohortAgg>,
    /// Each cohort's place in `rows`, found by borrowed parts.
    places: BTreeMap<CohortKey, CohortId>,
}

impl CohortTable {
    /// The place of the cohort `(dimension, value, day)`, made (with its
    /// key's allocation) only when missing.
    pub fn place(&mut self, dimension: Dimension, value: &str, day: i64) -> CohortId {
        let parts = (dimension, value, day);
        if let Some(&id) = self.places.get(&parts as &dyn CohortKeyParts) {
            return id;
        }
        assert!(self.rows.len() < COHORTS_MAX, "cohort table full");
        let id = self.rows.len() as CohortId;
        let key = CohortKey {
            dimension,
            value: value.to_string(),
            day,
        };
        self.places.insert(key, id);
        self.rows.push(CohortAgg::default());
        id
    }

    /// The row at `id`, a place this table gave.
    pub fn row_mut(&mut self, id: CohortId) -> &mut CohortAgg {
        &mut self.rows[id as usize]
    }

    /// Every cohort with its row, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&CohortKey, &CohortAgg)> {
        self.places
            .iter()
            .map(|(k, &id)| (k, &self.rows[id as usize]))
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Two tables are equal when they hold the same cohorts with the same
/// rows, whatever their places (two folds' tables merged in either order
/// are one table).
impl PartialEq for CohortTable {
    fn eq(&self, other: &CohortTable) -> bool {
        self.iter().eq(other.iter())
    }
}

/// Saved as `(key, row)` pairs in place order, so that the places come
/// back as they were.
impl Serialize for CohortTable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut keys: Vec<Option<&CohortKey>> = vec![None; self.rows.len()];
        for (k, &id) in &self.places {
            keys[id as usize] = Some(k);
        }
        s.collect_seq(
            keys.into_iter()
                .zip(&self.rows)
                .map(|(k, row)| (k.expect("every place has its key"), row)),
        )
    }
}

impl<'de> Deserialize<'de> for CohortTable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CohortTable, D::Error> {
        let pairs = Vec::<(CohortKey, CohortAgg)>::deserialize(d)?;
        if pairs.len() > COHORTS_MAX {
            return Err(serde::de::Error::custom("more cohorts than a table holds"));
        }
        let mut table = CohortTable::default();
        for (id, (key, row)) in pairs.into_iter().enumerate() {
            if table.places.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "cohort {key:?} twice in a table"
                )));
            }
            table.places.insert(key, id as CohortId);
            table.rows.push(row);
        }
        Ok(table)
    }
}
