//! Given/when/then tests of the policies of several tenants.

use super::tests::event;
use super::*;
use crate::domain::*;
use crate::sim::{SimConfig, Simulator};

const TWO_TENANTS: &str = r#"
version = 2
[[pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 5 }]

[tenants.acme]
rules = { first_follow_up_sla_ms = 10000 }
[[tenants.acme.pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 1 }]

[tenants.globex]
[[tenants.globex.pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 1 }]
"#;

fn created(seq: u64, at_ms: i64, tenant: &str, lead: &str) -> LeadEvent {
    let mut e = event(
        seq,
        at_ms,
        lead,
        build::created("", lead)
            .channel("search")
            .pool("inbound")
            .body(),
    );
    e.tenant_id = tenant.into();
    e
}

fn assigns(commands: &[LeadCommand]) -> Vec<(&str, &str, &str)> {
    commands
        .iter()
        .filter_map(|c| match &c.body {
            CommandBody::AssignLead { owner_id, .. } => {
                Some((c.tenant_id.as_str(), c.lead_id.as_str(), owner_id.as_str()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_rep_id_is_a_different_rep_in_each_tenant() {
    // Given two tenants whose only rep is "rep-1", with room for one lead.
    let mut p = Policies::new(PolicyFile::parse(TWO_TENANTS).unwrap());
    // When each tenant gets a lead, and acme a second one.
    let mut out = Vec::new();
    out.extend(p.handle(1, &created(1, 1_000, "acme", "a-1")));
    out.extend(p.handle(2, &created(2, 2_000, "globex", "g-1")));
    out.extend(p.handle(3, &created(3, 3_000, "acme", "a-2")));
    // Then each tenant's rep-1 gets its own tenant's first lead: globex's
    // lead does not wait behind acme's full rep-1, and acme's second one
    // waits in acme's backlog.
    assert_eq!(
        assigns(&out),
        vec![("acme", "a-1", "rep-1"), ("globex", "g-1", "rep-1")]
    );
    let acme = p.tenant("acme").unwrap().state();
    assert_eq!(acme.backlog["inbound"].len(), 1);
    assert!(p.tenant("globex").unwrap().state().backlog.is_empty());
    assert_eq!(p.tenant("").unwrap().state().pending_by_rep.len(), 0);
}

#[test]
fn a_tenant_the_policy_does_not_list_gets_no_decisions() {
    // Given the two-tenant policy.
    let mut p = Policies::new(PolicyFile::parse(TWO_TENANTS).unwrap());
    // When a tenant it does not list creates a lead.
    let out = p.handle(1, &created(1, 1_000, "initech", "i-1"));
    // Then nothing is decided, and the lead is still in that tenant's view.
    assert!(out.is_empty(), "{out:?}");
    assert!(p
        .tenant("initech")
        .unwrap()
        .state()
        .pool
        .leads
        .contains_key("i-1"));
}

#[test]
fn a_tenants_deadline_fires_on_its_own_time_or_a_tick_never_on_anothers() {
    // Given acme's lead assigned at t=1s (to be followed up within 10 s).
    let mut p = Policies::new(PolicyFile::parse(TWO_TENANTS).unwrap());
    p.handle(1, &created(1, 500, "acme", "a-1"));
    let mut assigned = event(2, 1_000, "a-1", build::assigned("", "a-1", "rep-1").body());
    assigned.tenant_id = "acme".into();
    p.handle(2, &assigned);
    let acme = p.tenant("acme").unwrap();
    assert_eq!(acme.policy().rules.first_follow_up_sla_ms, Some(10_000));
    assert_eq!(
        acme.next_due_ms(),
        Some(11_000),
        "{:?}",
        acme.state().watches().collect::<Vec<_>>()
    );
    // When globex has an event at t=20s.
    let out = p.handle(3, &created(3, 20_000, "globex", "g-1"));
    // Then only globex's own decision comes: another tenant's event time
    // is not acme's clock (a partition read ahead of another must not
    // fire its deadlines early).
    let kinds = |out: &[LeadCommand]| -> Vec<(String, &'static str)> {
        out.iter()
            .map(|c| (c.tenant_id.clone(), c.body.type_name()))
            .collect()
    };
    assert_eq!(kinds(&out), vec![("globex".to_string(), "assign_lead")]);
    // When the wall clock ticks at t=15s.
    let out = p.advance(15_000);
    // Then acme's recall fires, at its deadline, stamped with acme.
    assert_eq!(kinds(&out), vec![("acme".to_string(), "recall_lead")]);
    assert_eq!(out[0].issued_at_ms, 11_000);
    assert_eq!(p.tenant("acme").unwrap().next_due_ms(), None);
}

/// A policy with every kind of deadline and allocation state, for tenant
/// tables (or the top level) over the simulator's pools and reps.
fn busy_rules_and_pools() -> String {
    let members: Vec<String> = (0..6)
        .map(|i| format!("{{ id = \"rep-{i:03}\", capacity = 3 }}"))
        .collect();
    format!(
        r#"rules = {{ first_follow_up_sla_ms = 86400000, stale_after_ms = 172800000, reminder_lead_ms = 3600000, cooldown_ms = 86400000, max_recalls = 2, cold_pool = "cold", daily_assignment_cap = 4 }}
pools = [
  {{ name = "smb", kind = "auto_assign", strategy = "round_robin", members = [{m}] }},
  {{ name = "enterprise", kind = "auto_assign", strategy = "least_loaded", members = [{m}] }},
  {{ name = "cold", kind = "claimable" }},
]
"#,
        m = members.join(", ")
    )
}

/// Three simulated tenants, each with the busy table as its own.
fn three_tenants() -> PolicyFile {
    let mut text = String::from("version = 1\n");
    for t in 0..3 {
        text.push_str(&format!(
            "[tenants.tenant-{t:02}]\n{}",
            busy_rules_and_pools()
        ));
    }
    PolicyFile::parse(&text).unwrap()
}

fn sim_events(tenants: u32, leads: u64) -> Vec<LeadEvent> {
    Simulator::new(SimConfig {
        leads,
        days: 20,
        tenants,
        ..SimConfig::default()
    })
    .events()
    .collect()
}

#[test]
fn one_tenant_decides_exactly_as_the_single_processor() {
    // Given a single-tenant workload with late events (every seventh one
    // two days older than it is), and a busy policy.
    let text = format!("version = 1\n{}", busy_rules_and_pools());
    let policy = PolicyFile::parse(&text).unwrap();
    let mut events = sim_events(0, 400);
    for e in events.iter_mut().step_by(7) {
        e.occurred_at_ms -= 2 * 86_400_000;
    }
    // When the policies and one processor see the same events.
    let (mut many, mut one) = (Policies::new(policy.clone()), Processor::new(policy));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, e) in events.iter().enumerate() {
        a.extend(many.handle(i as u64 + 1, e));
        b.extend(one.handle(i as u64 + 1, e));
    }
    // Then they decide the same commands in the same order.
    assert!(b.len() > 100, "the workload decides little: {}", b.len());
    assert_eq!(a, b);
}

#[test]
fn each_tenant_decides_as_if_it_were_alone_however_the_tenants_interleave() {
    // Given three tenants with the same rep ids, each with its own table.
    let policy = three_tenants();
    let events = sim_events(3, 600);
    let end_ms = events.iter().map(|e| e.occurred_at_ms).max().unwrap();
    // When the policies see the stream in time order, and again with the
    // tenants far apart (all of tenant-02, then tenant-01, then tenant-00,
    // as engines reading their partitions at different speeds would) ...
    let run = |order: &[&LeadEvent]| {
        let mut many = Policies::new(policy.clone());
        let mut out = Vec::new();
        for (i, e) in order.iter().enumerate() {
            out.extend(many.handle(i as u64 + 1, e));
        }
        out.extend(many.advance(end_ms));
        out
    };
    let in_time: Vec<&LeadEvent> = events.iter().collect();
    let mut apart = in_time.clone();
    apart.sort_by_key(|e| std::cmp::Reverse(e.tenant_id.clone()));
    let mixed = run(&in_time);
    let separate = run(&apart);
    assert!(
        mixed.iter().all(|c| !c.tenant_id.is_empty()),
        "every command carries its tenant"
    );
    for t in 0..3 {
        // ... and one processor sees only this tenant's events.
        let tenant = format!("tenant-{t:02}");
        let mut alone = Processor::new(policy.for_tenant(&tenant));
        let mut own = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if e.tenant_id == tenant {
                own.extend(alone.handle(i as u64 + 1, e));
            }
        }
        own.extend(alone.advance(end_ms));
        // Then the tenant's commands are the same, in the same order,
        // whatever the other tenants did and however they interleaved.
        let of = |out: &[LeadCommand]| -> Vec<LeadCommand> {
            out.iter()
                .filter(|c| c.tenant_id == tenant)
                .map(|c| {
                    let mut c = c.clone();
                    c.tenant_id.clear();
                    c
                })
                .collect()
        };
        assert!(own.len() > 50, "{tenant} decides little: {}", own.len());
        assert_eq!(of(&mixed), own, "{tenant}, in time order");
        assert_eq!(of(&separate), own, "{tenant}, tenants apart");
    }
}

#[test]
fn a_resumed_state_decides_what_the_uninterrupted_one_does() {
    // Given three tenants and their mixed stream.
    let policy = three_tenants();
    let events = sim_events(3, 300);
    let half = events.len() / 2;
    let mut whole = Policies::new(policy.clone());
    let mut a = Vec::new();
    for (i, e) in events.iter().enumerate() {
        a.extend(whole.handle(i as u64 + 1, e));
    }
    // When the state is saved half-way and resumed.
    let mut first = Policies::new(policy.clone());
    let mut b = Vec::new();
    for (i, e) in events[..half].iter().enumerate() {
        b.extend(first.handle(i as u64 + 1, e));
    }
    let saved = Policies::state_from_bytes(&first.state_to_bytes()).unwrap();
    assert_eq!(saved.covered_seq, half as u64);
    let mut resumed = Policies::resume(policy, saved);
    for (i, e) in events.iter().enumerate().skip(half) {
        b.extend(resumed.handle(i as u64 + 1, e));
    }
    // Then the commands are the same, in the same order.
    assert_eq!(a, b);
}

#[test]
fn a_tenant_table_is_checked_and_its_errors_name_it() {
    let bad = "version = 1\n[tenants.acme]\n[[tenants.acme.pools]]\nname = \"p\"\nkind = \"auto_assign\"\nmembers = [{ id = \"r\", capacity = 0 }]\n";
    let e = PolicyFile::parse(bad).unwrap_err().to_string();
    assert!(
        e.contains("tenants.acme: pool p: member r has capacity 0"),
        "{e}"
    );
    let bad_id = "version = 1\n[tenants.\"a b\"]\n";
    let e = PolicyFile::parse(bad_id).unwrap_err().to_string();
    assert!(e.contains("is 1 to 64 ASCII letters"), "{e}");
    let unknown = "version = 1\n[tenants.acme]\nrulez = {}\n";
    assert!(PolicyFile::parse(unknown).is_err());
}

#[test]
fn a_new_tenant_starts_under_the_version_its_own_time_calls_for() {
    // Given version 2 (acme's SLA 10 s), and version 3 (acme's SLA 20 s)
    // loaded at t=0 to take effect at t=50s.
    let v2 = PolicyFile::parse(TWO_TENANTS).unwrap();
    let v3_text = TWO_TENANTS
        .replace("version = 2", "version = 3\neffective_from_ms = 50000")
        .replace(
            "first_follow_up_sla_ms = 10000",
            "first_follow_up_sla_ms = 20000",
        );
    let v3 = PolicyFile::parse(&v3_text).unwrap();
    let acme_sla = |p: &Policies| {
        p.tenant("acme")
            .unwrap()
            .policy()
            .rules
            .first_follow_up_sla_ms
    };
    // When the default tenant's events reach t=60s before acme's first
    // event (at t=1s) is read (its partition was read ahead of acme's).
    let mut ahead = Policies::new(v2.clone());
    ahead.load(v3.clone());
    ahead.handle(1, &created(1, 60_000, "", "d-1"));
    assert_eq!(ahead.policy().version, 3, "the default tenant moved on");
    ahead.handle(2, &created(2, 1_000, "acme", "a-1"));
    // And when acme's event is read first.
    let mut behind = Policies::new(v2);
    behind.load(v3);
    behind.handle(1, &created(1, 1_000, "acme", "a-1"));
    behind.handle(2, &created(2, 60_000, "", "d-1"));
    // Then acme is under version 2 both ways (its own time is 1 s), with
    // version 3 waiting for its start.
    assert_eq!(acme_sla(&ahead), Some(10_000));
    assert_eq!(acme_sla(&behind), Some(10_000));
    for p in [&ahead, &behind] {
        let acme = p.tenant("acme").unwrap();
        assert_eq!(acme.latest_loaded().version, 3);
    }
    // And a tick past the start moves acme to version 3 both ways, and a
    // saved state resumes with it.
    ahead.advance(55_000);
    behind.advance(55_000);
    assert_eq!(acme_sla(&ahead), Some(20_000));
    assert_eq!(acme_sla(&behind), Some(20_000));
    let resumed = Policies::resume(
        ahead.policy().clone(),
        Policies::state_from_bytes(&ahead.state_to_bytes()).unwrap(),
    );
    assert_eq!(acme_sla(&resumed), Some(20_000));
}

#[test]
fn a_tick_behind_a_tenants_event_time_fires_nothing_there_and_does_not_panic() {
    // Given acme's events stamped ahead of the engine's wall clock (a
    // producer's clock hours fast), and then a late `assigned` that puts a
    // deadline (t=11s) behind acme's time (t=200s).
    let mut p = Policies::new(PolicyFile::parse(TWO_TENANTS).unwrap());
    p.handle(1, &created(1, 500, "acme", "a-1"));
    p.handle(2, &created(2, 200_000, "acme", "a-2"));
    let mut assigned = event(3, 1_000, "a-1", build::assigned("", "a-1", "rep-1").body());
    assigned.tenant_id = "acme".into();
    p.handle(3, &assigned);
    assert_eq!(p.tenant("acme").unwrap().next_due_ms(), Some(11_000));
    // When the wall clock ticks at t=15s, past the deadline but behind
    // acme's own time.
    let out = p.advance(15_000);
    // Then nothing fires (acme's time does not go back to the tick; the
    // overdue deadline waits for acme's time to move), and the engine
    // goes on.
    assert!(out.is_empty(), "{out:?}");
    // When a tick passes acme's time, the deadline fires, at its own time.
    let out = p.advance(300_000);
    let recalls: Vec<_> = out
        .iter()
        .filter(|c| c.body.type_name() == "recall_lead")
        .map(|c| (c.tenant_id.as_str(), c.lead_id.as_str(), c.issued_at_ms))
        .collect();
    assert_eq!(recalls, vec![("acme", "a-1", 11_000)]);
    assert_eq!(p.tenant("acme").unwrap().next_due_ms(), None);
}
