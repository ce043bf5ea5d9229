//! Given/when/then tests of per-pool rules, `when` clauses by lead
//! attribute, and durations written for people.

use super::deadline_tests::World;
use super::*;
use crate::domain::*;

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
const T0: i64 = 1_790_000_000_000;

/// Two pools under one tenant SLA of 2 days: `smb` inherits it,
/// `enterprise` allows 7 days, and 4 hours for leads scored 80 or more
/// from the `referral` channel.
const TWO_POOLS: &str = r#"
version = 4
[rules]
first_follow_up_sla = "2d"
max_recalls = 3
cold_pool = "cold"

[[pools]]
name = "smb"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 10 }]

[[pools]]
name = "enterprise"
kind = "auto_assign"
members = [{ id = "rep-2", capacity = 10 }]
[pools.rules]
first_follow_up_sla = "7d"
reminder_lead = "1d"
max_recalls = 1
cold_pool = "enterprise-cold"
[[pools.when]]
score_at_least = 80
channel = ["referral"]
rules = { first_follow_up_sla = "4h", reminder_lead = "1h" }

[[pools]]
name = "cold"
kind = "claimable"
[[pools]]
name = "enterprise-cold"
kind = "claimable"
"#;

fn create(w: &mut World, t: i64, lead: &str, pool: &str, channel: &str) -> Vec<LeadCommand> {
    w.at(
        t,
        lead,
        build::created("", lead).channel(channel).pool(pool).body(),
    )
}

fn score(w: &mut World, t: i64, lead: &str, score: u32) {
    w.at(
        t,
        lead,
        EventBody::Scored(LeadScored {
            score,
            attribute_score: 0,
            behaviour_score: 0,
            predictive_score: 0,
            model_version: String::new(),
        }),
    );
}

fn recalls(commands: &[LeadCommand]) -> Vec<(&str, &str)> {
    commands
        .iter()
        .filter_map(|c| match &c.body {
            CommandBody::RecallLead { to_pool, .. } => Some((c.lead_id.as_str(), to_pool.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn durations_may_be_written_as_people_write_them() {
    let text = PolicyFile::parse(
        "version = 1\n[rules]\nfirst_follow_up_sla = \"24h\"\nstale_after_ms = \"3d\"\ncooldown = \"1h 30min\"\n",
    )
    .unwrap();
    let ms = PolicyFile::parse(
        "version = 1\n[rules]\nfirst_follow_up_sla_ms = 86400000\nstale_after_ms = 259200000\ncooldown_ms = 5400000\n",
    )
    .unwrap();
    assert_eq!(text, ms);
    let err = PolicyFile::parse("version = 1\n[rules]\nstale_after = \"soonish\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stale_after") && err.contains("\"soonish\" is not a duration"),
        "{err}"
    );
    let twice =
        PolicyFile::parse("version = 1\n[rules]\nstale_after = \"1d\"\nstale_after_ms = 1\n")
            .unwrap_err()
            .to_string();
    assert!(twice.contains("duplicate"), "{twice}");
}

#[test]
fn a_pool_overrides_the_tenant_sla_and_says_so() {
    // Given a lead in each pool, assigned at T0 and never followed up.
    let mut w = World::with(PolicyFile::parse(TWO_POOLS).unwrap());
    create(&mut w, T0, "s", "smb", "ads");
    create(&mut w, T0, "e", "enterprise", "ads");
    w.assigned(T0, "s", "rep-1");
    w.assigned(T0, "e", "rep-2");
    // Then the smb lead is recalled after the tenant's 2 days, the
    // enterprise one after its pool's 7 (reminded a day before).
    let two_days = w.p.advance(T0 + 2 * DAY);
    assert_eq!(recalls(&two_days), vec![("s", "smb")]);
    let s = &two_days[0];
    assert_eq!(s.facts["rule_scope"], "tenant");
    assert!(!s.explanation.contains("under"), "{}", s.explanation);
    assert!(w.p.advance(T0 + 6 * DAY - 1).is_empty());
    let remind = w.p.advance(T0 + 6 * DAY);
    assert_eq!(remind.len(), 1);
    assert!(matches!(remind[0].body, CommandBody::RemindFollowUp { .. }));
    let week = w.p.advance(T0 + 7 * DAY);
    // The enterprise pool's own max_recalls = 1: its first recall sends
    // the lead to its own cold pool.
    assert_eq!(recalls(&week), vec![("e", "enterprise-cold")]);
    let e = &week[0];
    assert_eq!(e.facts["rule_scope"], "pool enterprise");
    assert_eq!(e.facts[FACT_TO_COLD_POOL], "true");
    assert!(
        e.explanation.contains("168 h") && e.explanation.contains("under pool enterprise"),
        "{}",
        e.explanation
    );
    assert!(!two_days[0].facts.contains_key(FACT_TO_COLD_POOL));
}

#[test]
fn a_when_clause_gives_high_scored_referrals_a_shorter_sla() {
    let mut w = World::with(PolicyFile::parse(TWO_POOLS).unwrap());
    // Given three enterprise leads: a referral scored 85, a referral
    // scored 60 and an ad scored 90.
    for (lead, channel, s) in [
        ("hot", "referral", 85),
        ("warm", "referral", 60),
        ("ad", "ads", 90),
    ] {
        create(&mut w, T0, lead, "enterprise", channel);
        score(&mut w, T0, lead, s);
        w.assigned(T0, lead, "rep-2");
    }
    // Then only the first matches the clause: reminded after 3 h,
    // recalled after 4 h, to the pool's own cold pool (the clause
    // inherits the rest of the pool's rules).
    let fired = w.p.advance(T0 + 4 * H);
    let kinds: Vec<(&str, &str)> = fired
        .iter()
        .map(|c| (c.lead_id.as_str(), c.body.type_name()))
        .collect();
    assert_eq!(
        kinds,
        vec![("hot", "remind_follow_up"), ("hot", "recall_lead")]
    );
    assert_eq!(recalls(&fired), vec![("hot", "enterprise-cold")]);
    assert_eq!(fired[0].issued_at_ms, T0 + 3 * H);
    assert_eq!(
        fired[1].facts["rule_scope"],
        "pool enterprise when channel = referral, score >= 80"
    );
    assert!(
        fired[1]
            .explanation
            .contains("4 h (rule first-follow-up-sla v4 under pool enterprise when channel = referral, score >= 80;"),
        "{}",
        fired[1].explanation
    );
    let week = w.p.advance(T0 + 7 * DAY);
    assert_eq!(
        recalls(&week),
        vec![("ad", "enterprise-cold"), ("warm", "enterprise-cold")]
    );
}

#[test]
fn a_pools_daily_cap_counts_its_own_assignments() {
    // Given rep-1 in two pools: `vip` gives a rep at most 1 lead a day,
    // the tenant's cap of 3 governs `inbound`.
    let policy = PolicyFile::parse(
        r#"
version = 1
[rules]
daily_assignment_cap = 3
[[pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 100 }]
[[pools]]
name = "vip"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 100 }]
rules = { daily_assignment_cap = 1 }
"#,
    )
    .unwrap();
    let mut w = World::with(policy);
    let assigned = |c: Vec<LeadCommand>| {
        c.iter()
            .any(|c| matches!(c.body, CommandBody::AssignLead { .. }))
    };
    // When two vip leads and three inbound leads come on one day.
    assert!(assigned(create(&mut w, T0, "v1", "vip", "ads")));
    assert!(
        !assigned(create(&mut w, T0 + 1, "v2", "vip", "ads")),
        "vip's own cap of 1"
    );
    // The tenant's cap counts every assignment of the rep that day (the
    // vip one too); the vip pool's counts only its own.
    assert!(assigned(create(&mut w, T0 + 2, "i1", "inbound", "ads")));
    assert!(assigned(create(&mut w, T0 + 3, "i2", "inbound", "ads")));
    assert!(
        !assigned(create(&mut w, T0 + 4, "i3", "inbound", "ads")),
        "the tenant's cap of 3"
    );
    // Then at midnight both waiting leads go out: each cap starts over.
    let next_day = (T0 / DAY + 1) * DAY;
    let woke = w.p.advance(next_day);
    let leads: Vec<&str> = woke.iter().map(|c| c.lead_id.as_str()).collect();
    assert_eq!(leads, vec!["i3", "v2"]);
}

#[test]
fn a_pools_cooldown_is_the_one_the_lead_was_held_from() {
    // Given a pool with a cooldown of 2 days (the tenant has none).
    let policy = PolicyFile::parse(
        r#"
version = 1
[[pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 10 }, { id = "rep-2", capacity = 10 }]
rules = { cooldown = "2d" }
"#,
    )
    .unwrap();
    let mut w = World::with(policy);
    create(&mut w, T0, "a", "inbound", "ads");
    w.assigned(T0, "a", "rep-1");
    // When it is recalled from rep-1, then from rep-2 within rep-1's
    // cooldown.
    let back = w.at(
        T0 + H,
        "a",
        build::recalled("", "a", "rep-1").pool("inbound").body(),
    );
    assert!(
        back.iter().any(|c| c.body.owner_id() == "rep-2"),
        "rep-1 is skipped"
    );
    w.assigned(T0 + H, "a", "rep-2");
    let again = w.at(
        T0 + 2 * H,
        "a",
        build::recalled("", "a", "rep-2").pool("inbound").body(),
    );
    // Then nobody may take it: rep-2 was just recalled from, rep-1 cools
    // down until T0 + H + 2 days.
    assert!(again.is_empty(), "{again:?}");
    let woke = w.p.advance(T0 + H + 2 * DAY);
    assert_eq!(woke.len(), 1);
    assert_eq!(woke[0].body.owner_id(), "rep-1");
}

#[test]
fn pool_rules_are_validated_where_they_are_written() {
    let base = "version = 1\n[rules]\nfirst_follow_up_sla = \"2h\"\n[[pools]]\nname = \"p\"\nkind = \"auto_assign\"\n";
    for (extra, says) in [
        (
            "rules = { reminder_lead = \"3h\" }\n",
            "pool p rules.reminder_lead_ms (10800000) must be shorter than pool p rules.first_follow_up_sla_ms",
        ),
        ("rules = { max_recalls = 2 }\n", "pool p rules.max_recalls and pool p rules.cold_pool go together"),
        ("[[pools.when]]\nrules = { stale_after = \"1d\" }\n", "pool p when #1 has no condition"),
        (
            "[[pools.when]]\nregion = [\"east\"]\nrules = { daily_assignment_cap = 2 }\n",
            "pool p when #1: daily_assignment_cap is the pool's or the tenant's",
        ),
        (
            "[[pools.when]]\nscore_at_least = 80\nrules = { first_follow_up_sla = \"-1h\" }\n",
            "not a duration",
        ),
        ("rules = { converted_count_toward_capacity = true }\n", "unknown field"),
    ] {
        let err = PolicyFile::parse(&format!("{base}{extra}")).unwrap_err().to_string();
        assert!(err.contains(says), "{extra}: {err}");
    }
}

#[test]
fn an_assignment_keeps_the_rules_of_its_scope_across_versions() {
    // Given an enterprise lead assigned under version 4 (7 days).
    let mut w = World::with(PolicyFile::parse(TWO_POOLS).unwrap());
    create(&mut w, T0, "e", "enterprise", "ads");
    w.assigned(T0, "e", "rep-2");
    // When version 5 cuts the pool's SLA to 1 day.
    let v5 = TWO_POOLS
        .replace("version = 4", "version = 5")
        .replace(
            "first_follow_up_sla = \"7d\"",
            "first_follow_up_sla = \"1d\"",
        )
        .replace("reminder_lead = \"1d\"", "reminder_lead = \"1h\"");
    w.p.load(PolicyFile::parse(&v5).unwrap());
    // Then the running assignment keeps its 7 days.
    assert!(recalls(&w.p.advance(T0 + 6 * DAY)).is_empty());
    let week = w.p.advance(T0 + 7 * DAY);
    assert_eq!(recalls(&week), vec![("e", "enterprise-cold")]);
    assert_eq!(week[0].rule_version, 4);
}
