//! The policy file: which pools the engine allocates from and to whom.
//! TOML, validated on load, versioned: the version is recorded with every
//! command decided under it, so a decision can always be traced to the rules
//! that made it.
//!
//! ```toml
//! version = 3
//! effective_from_ms = 1795536000000   # optional: takes over from the previous version then
//! time_zone = "Asia/Shanghai"        # optional: the days daily caps count (default UTC)
//! [rules]                          # all optional; a missing rule never fires
//! first_follow_up_sla_ms = 86400000   # recall if not followed up within (rule first-follow-up-sla)
//! stale_after_ms = 259200000          # recall after this long without a follow-up (rule stale)
//! max_holding_ms = 2592000000         # recall if not converted within (rule max-holding)
//! reminder_lead_ms = 3600000          # remind the owner this long before a recall deadline
//! cooldown_ms = 604800000             # a recalled-from rep cannot get the lead back for this long
//! max_recalls = 3                     # the recall that reaches this count sends the lead to cold_pool
//! cold_pool = "cold"
//! daily_assignment_cap = 40           # most assignments per rep per UTC day
//! converted_count_toward_capacity = false
//!
//! [[pools]]
//! name = "inbound"
//! kind = "auto_assign"        # or "claimable": reps claim, the engine does not allocate
//! strategy = "round_robin"    # or "least_loaded", "score_priority", "preference"
//! [[pools.members]]
//! id = "rep-1"
//! capacity = 50               # most open leads held at once
//! active = true
//! regions = ["east"]          # preferences, for strategy "preference"
//! industries = ["saas"]
//! [pools.rules]               # optional: this pool's own rules over [rules]
//! first_follow_up_sla = "7d"  # durations: milliseconds, or "24h", "7d", "90min"
//! [[pools.when]]              # optional: rules for the pool's leads that match
//! channel = ["referral"]      # also region, industry, score_at_least, score_below
//! score_at_least = 80
//! rules = { first_follow_up_sla = "4h" }
//! [pools.calendar]            # optional: deadlines count working time only
//! time_zone = "Asia/Shanghai"
//! working_hours = "09:00-18:00"
//! working_days = ["mon", "tue", "wed", "thu", "fri"]
//! holidays = ["2026-10-01"]
//!
//! [tenants.acme.rules]         # optional: a tenant's own rules and pools
//! stale_after_ms = 172800000
//! [[tenants.acme.pools]]
//! name = "inbound"
//! kind = "auto_assign"
//! [[tenants.acme.pools.members]]
//! id = "rep-1"                # acme's rep-1: not the default tenant's
//! capacity = 20
//! ```
//!
//! The top level is the policy of the default tenant (the empty tenant
//! id, every event of a single-tenant deployment). Each `[tenants.<id>]`
//! table is another tenant's whole policy: its rules and its pools, whose
//! member ids are that tenant's reps. Tenants share nothing: a rep id
//! means a different person in each, and a tenant the file does not list
//! gets no allocation and no deadlines (its leads wait in their pools and
//! count in the numbers). `version` and `effective_from_ms` are the
//! file's: one version moves every tenant at once.

use super::duration;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read. Check the path and permissions.
    #[error("cannot read policy {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not valid TOML for the policy schema; the message names the key.
    #[error("invalid policy {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    /// Parsed, but breaks a rule (duplicate pool, zero capacity, ...).
    #[error("invalid policy: {0}")]
    Invalid(String),
}

/// How leads leave a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// Reps claim leads themselves; the engine only watches.
    Claimable,
    /// The engine allocates each waiting lead to a member.
    AutoAssign,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: String,
    /// Most open (assigned, unconverted) leads held at once.
    pub capacity: u32,
    #[serde(default = "yes")]
    pub active: bool,
    /// Preferred lead regions (strategy `preference`).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Preferred lead industries (strategy `preference`).
    #[serde(default)]
    pub industries: Vec<String>,
}

fn yes() -> bool {
    true
}

/// How an `auto_assign` pool picks among its eligible members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Take turns; the turn is part of the durable policy state, so it is
    /// fair across batches and restarts.
    #[default]
    RoundRobin,
    /// The member with the lowest holdings relative to capacity (ties: the
    /// smaller id).
    LeastLoaded,
    /// Reps ranked by conversion rate (conversions / assignments received,
    /// over the history the policy has seen); the best eligible one takes
    /// the lead, and the pool's backlog goes out highest score first.
    ScorePriority,
    /// Members whose `regions`/`industries` match the lead's (both matching
    /// ranks above one) take turns; when no preferred member is eligible,
    /// any eligible member does (round-robin fallback).
    Preference,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolPolicy {
    pub name: String,
    pub kind: PoolKind,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub members: Vec<Member>,
    /// When set, the deadlines of leads assigned from this pool count
    /// working time only (see [`super::calendar`]).
    #[serde(default)]
    pub calendar: Option<super::calendar::CalendarSpec>,
    /// The pool's own rules, over the tenant's.
    #[serde(default)]
    pub rules: RuleOverrides,
    /// Rules for the pool's leads that match a condition, over the pool's
    /// own; the first clause a lead matches applies.
    #[serde(default)]
    pub when: Vec<When>,
    /// How reps' claims from this pool are arbitrated (claimable pools).
    #[serde(default)]
    pub claim: ClaimRules,
}

/// The rules a claim from a claimable pool must pass (see
/// [`super::claim`]); all optional: a claim of a waiting lead nobody else
/// claimed first is granted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimRules {
    /// Only the pool's members may claim from it.
    pub members_only: bool,
    /// A rep holding this many open leads (assignments commanded and not
    /// carried out count too) may claim no more.
    pub holdings_max: Option<u32>,
    /// Most claims granted to one rep from this pool per UTC day.
    pub claims_per_day_max: Option<u32>,
    /// A rep who lost a lead (it was recalled from them, they released
    /// it, or it was moved to someone else) may claim it back only this
    /// long after.
    #[serde(alias = "reclaim_after", deserialize_with = "duration::opt_ms")]
    pub reclaim_after_ms: Option<i64>,
}

impl ClaimRules {
    pub fn is_empty(&self) -> bool {
        *self == ClaimRules::default()
    }
}

/// Deadline and allocation rules. Every duration is in event-time
/// milliseconds; a rule left out never fires.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    #[serde(alias = "first_follow_up_sla", deserialize_with = "duration::opt_ms")]
    pub first_follow_up_sla_ms: Option<i64>,
    #[serde(alias = "stale_after", deserialize_with = "duration::opt_ms")]
    pub stale_after_ms: Option<i64>,
    #[serde(alias = "max_holding", deserialize_with = "duration::opt_ms")]
    pub max_holding_ms: Option<i64>,
    #[serde(alias = "reminder_lead", deserialize_with = "duration::opt_ms")]
    pub reminder_lead_ms: Option<i64>,
    #[serde(alias = "cooldown", deserialize_with = "duration::opt_ms")]
    pub cooldown_ms: Option<i64>,
    pub max_recalls: Option<u32>,
    pub cold_pool: Option<String>,
    pub daily_assignment_cap: Option<u32>,
    /// A rep's conversions count toward their capacity in every pool
    /// (a rule of the tenant, not of a pool: holdings are the rep's).
    pub converted_count_toward_capacity: bool,
    /// An `AssignLead` the CRM has not carried out (no `assigned` event)
    /// within this time expires: a `CancelCommand` withdraws it, the rep's
    /// reserved capacity is released and the lead is decided again, without
    /// that rep. Without it an assignment waits for the CRM for ever.
    #[serde(alias = "assign_command_ttl", deserialize_with = "duration::opt_ms")]
    pub assign_command_ttl_ms: Option<i64>,
}

/// A pool's own rules, or a `when` clause's: each rule given here
/// replaces the tenant's (see [`PolicyFile::lead_rules`]); one left out
/// is inherited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleOverrides {
    #[serde(alias = "first_follow_up_sla", deserialize_with = "duration::opt_ms")]
    pub first_follow_up_sla_ms: Option<i64>,
    #[serde(alias = "stale_after", deserialize_with = "duration::opt_ms")]
    pub stale_after_ms: Option<i64>,
    #[serde(alias = "max_holding", deserialize_with = "duration::opt_ms")]
    pub max_holding_ms: Option<i64>,
    #[serde(alias = "reminder_lead", deserialize_with = "duration::opt_ms")]
    pub reminder_lead_ms: Option<i64>,
    #[serde(alias = "cooldown", deserialize_with = "duration::opt_ms")]
    pub cooldown_ms: Option<i64>,
    pub max_recalls: Option<u32>,
    pub cold_pool: Option<String>,
    /// In a pool's own rules: the most assignments a rep gets *from this
    /// pool* per day (counted apart from other pools), in place of the
    /// tenant's cap on all their assignments. Not allowed in a `when`
    /// clause: a rep's day does not depend on the lead.
    pub daily_assignment_cap: Option<u32>,
    #[serde(alias = "assign_command_ttl", deserialize_with = "duration::opt_ms")]
    pub assign_command_ttl_ms: Option<i64>,
}

impl RuleOverrides {
    pub fn is_empty(&self) -> bool {
        *self == RuleOverrides::default()
    }
}

impl Rules {
    /// These rules with every rule `o` gives replacing this one's.
    pub fn overlaid(&self, o: &RuleOverrides) -> Rules {
        Rules {
            first_follow_up_sla_ms: o.first_follow_up_sla_ms.or(self.first_follow_up_sla_ms),
            stale_after_ms: o.stale_after_ms.or(self.stale_after_ms),
            max_holding_ms: o.max_holding_ms.or(self.max_holding_ms),
            reminder_lead_ms: o.reminder_lead_ms.or(self.reminder_lead_ms),
            cooldown_ms: o.cooldown_ms.or(self.cooldown_ms),
            max_recalls: o.max_recalls.or(self.max_recalls),
            cold_pool: o.cold_pool.clone().or_else(|| self.cold_pool.clone()),
            daily_assignment_cap: o.daily_assignment_cap.or(self.daily_assignment_cap),
            converted_count_toward_capacity: self.converted_count_toward_capacity,
            assign_command_ttl_ms: o.assign_command_ttl_ms.or(self.assign_command_ttl_ms),
        }
    }
}

/// Rules for the leads of a pool that match a condition, e.g. a shorter
/// SLA for leads scored 80 or more. Every condition given must hold (a
/// list matches any of its values); a pool's first matching clause
/// applies, over the pool's own rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct When {
    pub channel: Vec<String>,
    pub region: Vec<String>,
    pub industry: Vec<String>,
    /// The lead's latest score is at least this (an unscored lead does
    /// not match).
    pub score_at_least: Option<u32>,
    /// The lead's latest score is below this (an unscored lead does not
    /// match).
    pub score_below: Option<u32>,
    pub rules: RuleOverrides,
}

/// What a [`When`] clause can test about a lead.
#[derive(Clone, Copy, Debug, Default)]
pub struct LeadFacts<'a> {
    pub channel: &'a str,
    pub region: &'a str,
    pub industry: &'a str,
    pub score: Option<u32>,
}

impl When {
    pub fn matches(&self, lead: &LeadFacts<'_>) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        any(&self.channel, lead.channel)
            && any(&self.region, lead.region)
            && any(&self.industry, lead.industry)
            && self
                .score_at_least
                .is_none_or(|min| lead.score.is_some_and(|s| s >= min))
            && self
                .score_below
                .is_none_or(|max| lead.score.is_some_and(|s| s < max))
    }

    fn has_condition(&self) -> bool {
        !(self.channel.is_empty()
            && self.region.is_empty()
            && self.industry.is_empty()
            && self.score_at_least.is_none()
            && self.score_below.is_none())
    }

    /// The condition for people: "score >= 80, channel in [ads]".
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        for (name, list) in [
            ("channel", &self.channel),
            ("region", &self.region),
            ("industry", &self.industry),
        ] {
            match list.as_slice() {
                [] => {}
                [one] => parts.push(format!("{name} = {one}")),
                many => parts.push(format!("{name} in [{}]", many.join(", "))),
            }
        }
        if let Some(min) = self.score_at_least {
            parts.push(format!("score >= {min}"));
        }
        if let Some(max) = self.score_below {
            parts.push(format!("score < {max}"));
        }
        parts.join(", ")
    }
}

/// The scope of the tenant-wide rules, in explanations.
pub const SCOPE_TENANT: &str = "tenant";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Recorded with each decision as the rule version.
    pub version: u32,
    /// When this version takes over from the one in force (event time, UTC
    /// ms). Until then the engine keeps deciding under the previous version
    /// (the one its saved state was made under). Without it, or with no
    /// previous version to keep, it applies from when it is loaded.
    #[serde(default)]
    pub effective_from_ms: Option<i64>,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default)]
    pub pools: Vec<PoolPolicy>,
    /// What becomes of a lead created with the contact of an open lead.
    #[serde(default)]
    pub duplicates: Duplicates,
    /// The IANA time zone whose days the daily caps and the claims per
    /// day count (`""`: UTC), so that a team's cap starts again at its own
    /// midnight.
    #[serde(default)]
    pub time_zone: String,
    /// How the engine scores leads (see [`scoring`](super::scoring));
    /// left out, it computes no score.
    #[serde(default)]
    pub scoring: super::scoring::Scoring,
    /// Every other tenant's rules and pools, by tenant id (see the module
    /// docs). Empty in a single-tenant deployment.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantPolicy>,
}

/// One tenant's policy inside the file: what the top level is for the
/// default tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicy {
    #[serde(default)]
    pub rules: Rules,
    #[serde(default)]
    pub pools: Vec<PoolPolicy>,
    #[serde(default)]
    pub duplicates: Duplicates,
    /// The tenant's own days (see [`PolicyFile::time_zone`]); left out,
    /// the top level's.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The tenant's own scoring (not the top level's: its leads and their
    /// history are its own).
    #[serde(default)]
    pub scoring: super::scoring::Scoring,
}

/// `[duplicates]`: a lead created with the `contact_fingerprint` of a lead
/// still open (not converted) is a duplicate contact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Duplicates {
    /// `reject`: refused at intake, rejection `duplicate_contact` (dead
    /// letter, counted); `link`: accepted, linked to the original and
    /// assigned to the original's owner when someone holds it. Left out:
    /// duplicates are counted in the numbers and allocated like any lead.
    pub handling: Option<DuplicateHandling>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateHandling {
    Reject,
    Link,
}

/// Limits that keep a policy file reasonable.
const POOLS_MAX: usize = 1_000;
const MEMBERS_PER_POOL_MAX: usize = 10_000;
/// Most `when` clauses in one pool (each is tried in turn for a lead).
const WHEN_PER_POOL_MAX: usize = 32;
/// Most tenant tables in one file.
pub const TENANTS_MAX: usize = 100_000;

impl PolicyFile {
    /// Parses and validates a policy given as text (reading the file is
    /// `config::load_policy`'s job: the policy does no I/O).
    pub fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
        PolicyFile::parse_named(text, "<text>")
    }

    /// [`parse`](Self::parse), naming where the text came from in errors.
    pub fn parse_named(text: &str, name: &str) -> Result<PolicyFile, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|source| PolicyError::Parse {
            path: name.to_string(),
            source,
        })?;
        file.validate()?;
        Ok(file)
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.tenants.len() > TENANTS_MAX {
            return Err(PolicyError::Invalid(format!(
                "more than {TENANTS_MAX} tenants"
            )));
        }
        for (tenant, _) in self.tenants.iter() {
            if tenant.is_empty() || crate::domain::lifecycle::check_tenant_id(tenant).is_err() {
                return Err(PolicyError::Invalid(format!(
                    "tenants.{tenant:?}: a tenant id is 1 to {} ASCII letters, digits, '.', '_', '-' or ':' (the default tenant's policy is the top level)",
                    crate::domain::lifecycle::TENANT_ID_LEN_BYTES_MAX
                )));
            }
            self.for_tenant(tenant)
                .validate_own()
                .map_err(|e| match e {
                    PolicyError::Invalid(m) => {
                        PolicyError::Invalid(format!("tenants.{tenant}: {m}"))
                    }
                    other => other,
                })?;
        }
        self.validate_own()
    }

    /// The policy of one tenant, as a file of its own: the whole file for
    /// the default tenant (`""`), a listed tenant's rules and pools under
    /// the file's version, and for a tenant the file does not list a
    /// policy with no rules and no pools (it decides nothing).
    pub fn for_tenant(&self, tenant: &str) -> PolicyFile {
        if tenant.is_empty() {
            return self.clone();
        }
        let own = self.tenants.get(tenant).cloned().unwrap_or_default();
        PolicyFile {
            version: self.version,
            effective_from_ms: self.effective_from_ms,
            rules: own.rules,
            pools: own.pools,
            duplicates: own.duplicates,
            time_zone: own.time_zone.unwrap_or_else(|| self.time_zone.clone()),
            scoring: own.scoring,
            tenants: BTreeMap::new(),
        }
    }

    /// Whether the engine scores leads under it (at the top level or for
    /// a tenant).
    pub fn scores(&self) -> bool {
        !self.scoring.is_off() || self.tenants.values().any(|t| !t.scoring.is_off())
    }

    /// One tenant's rules and pools, without copying them (a tenant the
    /// file does not list has none).
    pub fn table(&self, tenant: &str) -> (Option<&Rules>, &[PoolPolicy]) {
        if tenant.is_empty() {
            return (Some(&self.rules), &self.pools);
        }
        match self.tenants.get(tenant) {
            Some(t) => (Some(&t.rules), &t.pools),
            None => (None, &[]),
        }
    }

    /// The rules of this file's own level (not of its tenant tables).
    fn validate_own(&self) -> Result<(), PolicyError> {
        let bad = |m: String| Err(PolicyError::Invalid(m));
        if let Err(e) = crate::domain::time::DayClock::new(&self.time_zone) {
            return bad(format!("time_zone: {e}"));
        }
        self.scoring.validate().map_err(PolicyError::Invalid)?;
        check_rules(&self.rules, "rules")?;
        if self.pools.len() > POOLS_MAX {
            return bad(format!("more than {POOLS_MAX} pools"));
        }
        let mut names = BTreeSet::new();
        for p in &self.pools {
            if p.name.is_empty() {
                return bad("a pool without a name".into());
            }
            if !names.insert(p.name.as_str()) {
                return bad(format!("pool {} is defined twice", p.name));
            }
            if let Some(c) = &p.calendar {
                if let Err(e) = super::calendar::Calendar::parse(c) {
                    return bad(format!("pool {}: calendar: {e}", p.name));
                }
            }
            let own = self.rules.overlaid(&p.rules);
            check_rules(&own, &format!("pool {} rules", p.name))?;
            let c = &p.claim;
            if !c.is_empty() && p.kind != PoolKind::Claimable {
                return bad(format!(
                    "pool {}: claim rules apply to claimable pools only (the engine allocates an auto_assign pool itself)",
                    p.name
                ));
            }
            if c.holdings_max == Some(0) || c.claims_per_day_max == Some(0) {
                return bad(format!(
                    "pool {}: claim.holdings_max and claim.claims_per_day_max must be at least 1",
                    p.name
                ));
            }
            if c.reclaim_after_ms.is_some_and(|v| v <= 0) {
                return bad(format!(
                    "pool {}: claim.reclaim_after_ms must be positive",
                    p.name
                ));
            }
            if p.when.len() > WHEN_PER_POOL_MAX {
                return bad(format!(
                    "pool {} has more than {WHEN_PER_POOL_MAX} when clauses",
                    p.name
                ));
            }
            for (i, w) in p.when.iter().enumerate() {
                let at = format!("pool {} when #{}", p.name, i + 1);
                if !w.has_condition() {
                    return bad(format!(
                        "{at} has no condition (rules for every lead of the pool go in its rules)"
                    ));
                }
                if w.rules.daily_assignment_cap.is_some() {
                    return bad(format!(
                        "{at}: daily_assignment_cap is the pool's or the tenant's (a rep's day does not depend on the lead)"
                    ));
                }
                check_rules(&own.overlaid(&w.rules), &at)?;
            }
            if p.members.len() > MEMBERS_PER_POOL_MAX {
                return bad(format!(
                    "pool {} has more than {MEMBERS_PER_POOL_MAX} members",
                    p.name
                ));
            }
            let mut ids = BTreeSet::new();
            for m in &p.members {
                if m.id.is_empty() {
                    return bad(format!("pool {} has a member without an id", p.name));
                }
                if !ids.insert(m.id.as_str()) {
                    return bad(format!("pool {}: member {} is listed twice", p.name, m.id));
                }
                if m.capacity == 0 {
                    return bad(format!("pool {}: member {} has capacity 0", p.name, m.id));
                }
            }
        }
        Ok(())
    }

    pub fn pool(&self, name: &str) -> Option<&PoolPolicy> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The rules of `pool` whatever the lead: the tenant's, with the
    /// pool's own over them (borrowed when the pool has none, the common
    /// case).
    pub fn pool_rules(&self, pool: &str) -> Cow<'_, Rules> {
        match self.pool(pool) {
            Some(p) if !p.rules.is_empty() => Cow::Owned(self.rules.overlaid(&p.rules)),
            _ => Cow::Borrowed(&self.rules),
        }
    }

    /// Whether `pool` sets a daily cap of its own (counted per pool).
    pub fn pool_has_own_cap(&self, pool: &str) -> bool {
        self.pool(pool)
            .is_some_and(|p| p.rules.daily_assignment_cap.is_some())
    }

    /// The rules a lead is under in `pool`, and where they come from: the
    /// first `when` clause of the pool the lead matches, over the pool's
    /// own rules, over the tenant's. The scope reads `tenant`, `pool P`
    /// or `pool P when <condition>`.
    ///
    /// The common case, a pool without rules of its own, borrows the
    /// tenant's rules (this runs for every assignment decided).
    pub fn lead_rules(&self, pool: &str, lead: &LeadFacts<'_>) -> (Cow<'_, Rules>, String) {
        let tenant = || (Cow::Borrowed(&self.rules), SCOPE_TENANT.to_string());
        let Some(p) = self.pool(pool) else {
            return tenant();
        };
        if let Some(w) = p.when.iter().find(|w| w.matches(lead)) {
            let scope = format!("pool {} when {}", p.name, w.label());
            let rules = self.rules.overlaid(&p.rules).overlaid(&w.rules);
            return (Cow::Owned(rules), scope);
        }
        if p.rules.is_empty() {
            return tenant();
        }
        let rules = self.rules.overlaid(&p.rules);
        (Cow::Owned(rules), format!("pool {}", p.name))
    }
}

/// The checks every resolved rule set must pass (the tenant's, each
/// pool's, each `when` clause's); `at` names it in the message.
fn check_rules(r: &Rules, at: &str) -> Result<(), PolicyError> {
    let bad = |m: String| Err(PolicyError::Invalid(m));
    for (name, v) in [
        ("first_follow_up_sla_ms", r.first_follow_up_sla_ms),
        ("stale_after_ms", r.stale_after_ms),
        ("max_holding_ms", r.max_holding_ms),
        ("reminder_lead_ms", r.reminder_lead_ms),
        ("cooldown_ms", r.cooldown_ms),
        ("assign_command_ttl_ms", r.assign_command_ttl_ms),
    ] {
        if v.is_some_and(|v| v <= 0) {
            return bad(format!("{at}.{name} must be positive"));
        }
    }
    if let Some(lead) = r.reminder_lead_ms {
        for (name, v) in [
            ("first_follow_up_sla_ms", r.first_follow_up_sla_ms),
            ("stale_after_ms", r.stale_after_ms),
            ("max_holding_ms", r.max_holding_ms),
        ] {
            if v.is_some_and(|v| lead >= v) {
                return bad(format!(
                    "{at}.reminder_lead_ms ({lead}) must be shorter than {at}.{name}"
                ));
            }
        }
    }
    if r.max_recalls == Some(0) {
        return bad(format!("{at}.max_recalls must be at least 1"));
    }
    if r.max_recalls.is_some() != r.cold_pool.is_some() {
        return bad(format!("{at}.max_recalls and {at}.cold_pool go together"));
    }
    if r.daily_assignment_cap == Some(0) {
        return bad(format!("{at}.daily_assignment_cap must be at least 1"));
    }
    Ok(())
}
