//! Duplicate contacts: a lead created with the `contact_fingerprint` of a
//! lead still open (not converted) in its tenant. The policy keeps the
//! fingerprints of open leads (a fold of the log like the rest of its
//! state) and, by the tenant's `[duplicates] handling`:
//! - `reject`: refuses the lead at intake ([`Processor::admit`], asked by
//!   the log just before it appends an event), rejection
//!   `duplicate_contact`: it never enters the log, the numbers or a pool;
//! - `link`: accepts it, links it to the original (fact `duplicate_of`),
//!   and assigns it to the original's owner when someone holds it (rule
//!   `duplicate-link`; capacity and caps do not apply: it is the same
//!   customer), else allocates it like any lead.
//!
//! The original is the first open lead with the fingerprint; a duplicate
//! never takes its place, and when the original converts the fingerprint
//! is free again.

use super::*;
use crate::domain::Rejection;
use file::DuplicateHandling;

pub const RULE_DUPLICATE_LINK: &str = "duplicate-link";

impl Processor {
    /// The rejection of `event` at intake, if the policy refuses it: a
    /// duplicate contact under `handling = "reject"`.
    pub fn admit(&self, event: &LeadEvent) -> Option<Rejection> {
        let EventBody::Created(c) = &event.body else {
            return None;
        };
        if self.policy.duplicates.handling != Some(DuplicateHandling::Reject) {
            return None;
        }
        let original = self.open_with_fingerprint(&c.contact_fingerprint)?;
        Some(Rejection::DuplicateContact {
            original_lead_id: original.to_string(),
        })
    }

    /// The open lead holding `fingerprint`, if any.
    fn open_with_fingerprint(&self, fingerprint: &str) -> Option<&str> {
        if fingerprint.is_empty() {
            return None;
        }
        self.state.fingerprints.get(fingerprint).map(String::as_str)
    }

    /// Notes a created lead's fingerprint; returns the original it
    /// duplicates, if it does.
    pub(super) fn note_fingerprint(&mut self, lead_id: &str, fingerprint: &str) -> Option<String> {
        if fingerprint.is_empty() {
            return None;
        }
        if let Some(original) = self.open_with_fingerprint(fingerprint) {
            return Some(original.to_string());
        }
        self.state
            .fingerprints
            .insert(fingerprint.to_string(), lead_id.to_string());
        self.state
            .fingerprint_of
            .insert(lead_id.to_string(), fingerprint.to_string());
        None
    }

    /// A converted lead frees its fingerprint.
    pub(super) fn forget_fingerprint(&mut self, lead_id: &str) {
        if let Some(fp) = self.state.fingerprint_of.remove(lead_id) {
            self.state.fingerprints.remove(&fp);
        }
    }

    /// Under `handling = "link"`: the duplicate `lead_id` of `original`
    /// goes to the original's owner, if someone holds it. Returns whether
    /// it was assigned (else it is offered like any lead).
    pub(super) fn link_duplicate(
        &mut self,
        lead_id: &str,
        original: &str,
        cause_event_id: &str,
        at_ms: i64,
        out: &mut Vec<LeadCommand>,
    ) -> bool {
        if self.policy.duplicates.handling != Some(DuplicateHandling::Link) {
            return false;
        }
        let Some(owner) = self
            .state
            .pool
            .leads
            .get(original)
            .and_then(|l| l.owner.as_deref().map(str::to_string))
        else {
            return false;
        };
        let Some(lead) = self.state.pool.leads.get(lead_id) else {
            return false;
        };
        let (pool, generation) = (lead.pool.to_string(), lead.generation);
        let version = self.policy.version;
        let (rules, scope) = self.policy.lead_rules(&pool, &self.lead_facts(lead_id));
        let expires_at_ms = rules.assign_command_ttl_ms.map(|t| at_ms.saturating_add(t));
        let body = CommandBody::AssignLead {
            owner_id: owner.clone(),
            pool: pool.clone(),
        };
        let mut facts = BTreeMap::new();
        facts.insert("duplicate_of".to_string(), original.to_string());
        facts.insert("rule_scope".to_string(), scope);
        if let Some(e) = expires_at_ms {
            facts.insert("expires_at_ms".to_string(), e.to_string());
        }
        let command = LeadCommand {
            command_id: command_id(lead_id, generation, RULE_DUPLICATE_LINK, &body),
            lead_id: lead_id.to_string(),
            issued_at_ms: at_ms,
            causation_event_id: cause_event_id.to_string(),
            rule_id: RULE_DUPLICATE_LINK.to_string(),
            rule_version: version,
            explanation: format!(
                "assign to {owner} (duplicate contact of lead {original}, which {owner} holds; rule {RULE_DUPLICATE_LINK} v{version})"
            ),
            facts,
            tenant_id: String::new(),
            body,
        };
        self.reserve(
            lead_id,
            Pending {
                rep: owner,
                command_id: command.command_id.clone(),
                cause_event_id: cause_event_id.to_string(),
                commanded_at_ms: at_ms,
                expires_at_ms,
            },
        );
        out.push(command);
        true
    }
}
