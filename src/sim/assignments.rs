//! A floor of open assignments, for sizing the policy's state: lead `i`
//! created in pool `manual` and claimed by one of 100 reps, a millisecond
//! after the one before. No follow-up, so each assignment keeps a pending
//! deadline (under a policy with a first follow-up SLA).

use crate::domain::{
    AssignmentMethod, Currency, EventBody, LeadAssigned, LeadCreated, LeadEvent, Money,
};

/// The pool the leads are created in.
pub const POOL: &str = "manual";

/// `created` then `assigned` for each of `leads` leads, the first at
/// `t0_ms`; event ids `ev-1`, `ev-2`, … in order.
pub fn open_assignments(leads: u64, t0_ms: i64) -> impl Iterator<Item = LeadEvent> {
    (0..leads).flat_map(move |i| {
        let lead = format!("lead-{i:08}");
        let at = t0_ms + i as i64;
        let event = |n: u64, body| LeadEvent {
            event_id: format!("ev-{}", 2 * i + n),
            lead_id: lead.clone(),
            occurred_at_ms: at,
            producer: "bench".into(),
            tenant_id: String::new(),
            body,
        };
        let created = event(
            1,
            EventBody::Created(LeadCreated {
                channel: "paid_search".into(),
                campaign: "spring".into(),
                pool: POOL.into(),
                region: String::new(),
                industry: String::new(),
                company_size: String::new(),
                acquisition_cost: Money::new(1, Currency::parse("CNY").expect("CNY")),
                contact_fingerprint: String::new(),
                attributes: Default::default(),
            }),
        );
        let assigned = event(
            2,
            EventBody::Assigned(LeadAssigned {
                owner_id: format!("rep-{}", i % 100),
                pool: String::new(),
                method: AssignmentMethod::Claim,
                command_id: String::new(),
            }),
        );
        [created, assigned]
    })
}
