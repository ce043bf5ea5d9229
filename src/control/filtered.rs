//! Filtered views kept up to date: the projections of the leads a filter
//! admits (`projector::filter`), per part, for the API's filtered stats.
//!
//! The first request for a filter folds every part's log through its
//! reader (off the engine's lock); later ones fold only what was appended
//! since, so a dashboard that refreshes a filtered view every few seconds
//! costs a tail fold, not a replay. The views are bounded: at most
//! [`VIEWS_MAX`] filters are kept, the one used longest ago goes first.

use super::{ControlError, PartKey};
use crate::log::LogReader;
use crate::projector::metrics::MetricParams;
use crate::projector::{LeadFilter, Projections};
use std::collections::BTreeMap;

/// Most filtered views kept at once. Each holds the working state of its
/// open leads, so this bounds their memory to a few times the engine's own.
pub const VIEWS_MAX: usize = 4;

struct View {
    filter: LeadFilter,
    params: MetricParams,
    parts: BTreeMap<PartKey, Projections>,
    /// A counter value: larger is more recently used.
    used: u64,
}

/// The views kept, behind the handle's mutex.
#[derive(Default)]
pub struct FilteredViews {
    views: Vec<View>,
    uses: u64,
}

impl FilteredViews {
    /// The projections of the leads `filter` admits over every part, each
    /// brought up to the end its log had when asked (`ends`), summed.
    pub fn answer(
        &mut self,
        filter: &LeadFilter,
        params: &MetricParams,
        ends: &BTreeMap<PartKey, u64>,
        readers: &BTreeMap<PartKey, LogReader>,
    ) -> Result<Projections, ControlError> {
        self.uses += 1;
        let at = match self
            .views
            .iter()
            .position(|v| v.filter == *filter && v.params == *params)
        {
            Some(i) => i,
            None => {
                if self.views.len() >= VIEWS_MAX {
                    let oldest = (0..self.views.len())
                        .min_by_key(|i| self.views[*i].used)
                        .expect("not empty");
                    self.views.swap_remove(oldest);
                }
                self.views.push(View {
                    filter: filter.clone(),
                    params: params.clone(),
                    parts: BTreeMap::new(),
                    used: 0,
                });
                self.views.len() - 1
            }
        };
        let view = &mut self.views[at];
        view.used = self.uses;
        // A part the engine no longer has (a rescale) leaves the view.
        view.parts.retain(|k, _| ends.contains_key(k));
        for (k, end) in ends {
            let Some(reader) = readers.get(k) else {
                continue;
            };
            let p = view
                .parts
                .entry(*k)
                .or_insert_with(|| Projections::filtered(params.clone(), filter.clone()));
            crate::replay::fold_through(reader, p, *end)?;
        }
        Ok(Projections::summed(view.parts.values())
            .unwrap_or_else(|| Projections::filtered(params.clone(), filter.clone())))
    }
}
