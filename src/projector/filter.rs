//! Views of some leads only: the projections of the leads created with
//! given attributes (tenant, channel, creation pool), for a dashboard or an
//! API client that filters.
//!
//! A filter selects **leads**, by what they were created with, and every
//! number of a filtered view is about those leads only: their funnel,
//! money, recalls, and the reps' work on them. Decided at creation, it
//! never changes for a lead, so a filtered view is a fold like any other
//! (the folds ignore the later events of a lead they never saw created)
//! and it can go on from where it stopped. One thing is still counted for
//! every lead: contact fingerprints, so that a filtered view calls the same
//! leads duplicates as the whole does.

use crate::domain::LeadCreated;

/// The attributes a lead must have been created with; `None` admits any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeadFilter {
    /// The tenant (`""` is the default tenant).
    pub tenant: Option<String>,
    pub channel: Option<String>,
    /// The pool the lead was created in.
    pub pool: Option<String>,
}

impl LeadFilter {
    /// No condition: every lead.
    pub fn is_everything(&self) -> bool {
        self.tenant.is_none() && self.channel.is_none() && self.pool.is_none()
    }

    /// Whether a lead created with `created` by `tenant_id` is in the view.
    pub fn admits(&self, tenant_id: &str, created: &LeadCreated) -> bool {
        let holds = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        holds(&self.tenant, tenant_id)
            && holds(&self.channel, &created.channel)
            && holds(&self.pool, &created.pool)
    }
}
