//! Terse event builders for tests, examples and tools: the one place that
//! spells out a whole `LeadEvent` with its defaults, so that a test says
//! only what matters to it.
//!
//! ```
//! use leadflow::domain::build;
//! let e = build::created("e1", "L1").pool("smb").at(1_000).event();
//! assert_eq!(e.occurred_at_ms, 1_000);
//! ```
//!
//! Defaults: time 0, producer `test`; a created lead comes from channel
//! `web`, campaign `c`, pool `general`, costs 1.00 CNY and has no region,
//! industry or size; an assignment is by rule, from no pool, for no
//! command; a recall is for staleness, to the home pool.

use super::*;

/// An event being built; [`EventBuilder::event`] (or `into()`) ends it.
#[derive(Clone, Debug)]
pub struct EventBuilder {
    event: LeadEvent,
}

/// An event with any body.
pub fn event(id: &str, lead: &str, body: EventBody) -> EventBuilder {
    EventBuilder {
        event: LeadEvent {
            event_id: id.into(),
            lead_id: lead.into(),
            occurred_at_ms: 0,
            producer: "test".into(),
            tenant_id: String::new(),
            body,
        },
    }
}

/// `lead` is created.
pub fn created(id: &str, lead: &str) -> EventBuilder {
    event(
        id,
        lead,
        EventBody::Created(LeadCreated {
            channel: "web".into(),
            campaign: "c".into(),
            pool: "general".into(),
            region: String::new(),
            industry: String::new(),
            company_size: String::new(),
            acquisition_cost: Money::new(100, Currency::parse("CNY").expect("a known currency")),
            contact_fingerprint: String::new(),
            attributes: Default::default(),
        }),
    )
}

/// `lead` is assigned to `owner`.
pub fn assigned(id: &str, lead: &str, owner: &str) -> EventBuilder {
    event(
        id,
        lead,
        EventBody::Assigned(LeadAssigned {
            owner_id: owner.into(),
            pool: String::new(),
            method: AssignmentMethod::Rule,
            command_id: String::new(),
        }),
    )
}

/// `lead` is recalled from `previous_owner`.
pub fn recalled(id: &str, lead: &str, previous_owner: &str) -> EventBuilder {
    event(
        id,
        lead,
        EventBody::Recalled(LeadRecalled {
            previous_owner_id: previous_owner.into(),
            reason: RecallReason::Stale,
            to_pool: String::new(),
            command_id: String::new(),
            rule_id: String::new(),
        }),
    )
}

impl EventBuilder {
    /// At event time `ms`.
    pub fn at(mut self, ms: i64) -> Self {
        self.event.occurred_at_ms = ms;
        self
    }

    pub fn tenant(mut self, tenant_id: &str) -> Self {
        self.event.tenant_id = tenant_id.into();
        self
    }

    pub fn producer(mut self, producer: &str) -> Self {
        self.event.producer = producer.into();
        self
    }

    /// The pool a lead is created into, or an assignment is made from.
    pub fn pool(mut self, pool: &str) -> Self {
        match &mut self.event.body {
            EventBody::Created(c) => c.pool = pool.into(),
            EventBody::Assigned(a) => a.pool = pool.into(),
            EventBody::Recalled(r) => r.to_pool = pool.into(),
            _ => panic!("a pool on a {} event", self.event.body.kind().as_str()),
        }
        self
    }

    /// A created lead's channel.
    pub fn channel(mut self, channel: &str) -> Self {
        self.created().channel = channel.into();
        self
    }

    /// A created lead's region, industry and company size.
    pub fn profile(mut self, region: &str, industry: &str, company_size: &str) -> Self {
        let c = self.created();
        c.region = region.into();
        c.industry = industry.into();
        c.company_size = company_size.into();
        self
    }

    /// A created lead's acquisition cost.
    pub fn cost(mut self, cost: Money) -> Self {
        self.created().acquisition_cost = cost;
        self
    }

    /// The command an assignment or recall carries out.
    pub fn command(mut self, command_id: &str) -> Self {
        match &mut self.event.body {
            EventBody::Assigned(a) => a.command_id = command_id.into(),
            EventBody::Recalled(r) => r.command_id = command_id.into(),
            _ => panic!("a command on a {} event", self.event.body.kind().as_str()),
        }
        self
    }

    /// How an assignment was made.
    pub fn method(mut self, method: AssignmentMethod) -> Self {
        match &mut self.event.body {
            EventBody::Assigned(a) => a.method = method,
            _ => panic!("a method on a {} event", self.event.body.kind().as_str()),
        }
        self
    }

    /// Why a lead was recalled.
    pub fn reason(mut self, reason: RecallReason) -> Self {
        match &mut self.event.body {
            EventBody::Recalled(r) => r.reason = reason,
            _ => panic!("a reason on a {} event", self.event.body.kind().as_str()),
        }
        self
    }

    /// The event.
    pub fn event(self) -> LeadEvent {
        self.event
    }

    /// The event's body alone (for helpers that stamp id and time).
    pub fn body(self) -> EventBody {
        self.event.body
    }

    fn created(&mut self) -> &mut LeadCreated {
        match &mut self.event.body {
            EventBody::Created(c) => c,
            other => panic!("a created-lead field on a {} event", other.kind().as_str()),
        }
    }
}

impl From<EventBuilder> for LeadEvent {
    fn from(b: EventBuilder) -> LeadEvent {
        b.event
    }
}
