//! Given/when/then tests of duplicate contacts: linked to the original's
//! owner, refused at intake, or left alone; a converted original frees
//! its fingerprint.

use super::deadline_tests::World;
use super::*;
use crate::domain::*;

const T0: i64 = 1_790_000_000_000;

fn policy(handling: &str) -> PolicyFile {
    PolicyFile::parse(&format!(
        "version = 2\n{handling}\n[[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
         members = [{{ id = \"rep-1\", capacity = 1 }}, {{ id = \"rep-2\", capacity = 5 }}]\n"
    ))
    .unwrap()
}

fn created(lead: &str, fp: &str) -> LeadEvent {
    let mut e = build::created(&format!("c-{lead}"), lead)
        .channel("partner")
        .pool("inbound")
        .at(T0)
        .event();
    if let EventBody::Created(c) = &mut e.body {
        c.contact_fingerprint = fp.to_string();
    }
    e
}

fn create(w: &mut World, lead: &str, fp: &str) -> Vec<LeadCommand> {
    let e = created(lead, fp);
    w.at(T0, lead, e.body)
}

#[test]
fn a_linked_duplicate_goes_to_the_rep_who_holds_the_original() {
    let mut w = World::with(policy("[duplicates]\nhandling = \"link\""));
    // Given A with rep-1 (at capacity 1 after it).
    create(&mut w, "A", "fp-1");
    w.assigned(T0, "A", "rep-1");
    // When B comes with A's contact.
    let out = create(&mut w, "B", "fp-1");
    // Then B goes to rep-1 anyway: the same customer, the same rep.
    assert_eq!(out.len(), 1, "{out:?}");
    let c = &out[0];
    assert_eq!(
        (c.body.owner_id(), c.rule_id.as_str()),
        ("rep-1", RULE_DUPLICATE_LINK)
    );
    assert_eq!(c.facts["duplicate_of"], "A");
    assert_eq!(
        c.explanation,
        "assign to rep-1 (duplicate contact of lead A, which rep-1 holds; rule duplicate-link v2)"
    );
    // A waiting original links nothing: C (a duplicate of waiting D) is
    // allocated like any lead.
    create(&mut w, "D", "fp-2");
    let c = create(&mut w, "C", "fp-2");
    assert_eq!(c[0].rule_id, RULE_AUTO_ASSIGN);
}

#[test]
fn a_rejected_duplicate_is_refused_at_intake_until_the_original_converts() {
    let mut w = World::with(policy("[duplicates]\nhandling = \"reject\""));
    create(&mut w, "A", "fp-1");
    assert_eq!(
        w.p.admit(&created("B", "fp-1")),
        Some(Rejection::DuplicateContact {
            original_lead_id: "A".into()
        })
    );
    assert_eq!(w.p.admit(&created("B", "fp-9")), None, "another contact");
    assert_eq!(w.p.admit(&created("B", "")), None, "no fingerprint");
    w.assigned(T0, "A", "rep-2");
    w.converted(T0 + 1, "A", "rep-2");
    assert_eq!(
        w.p.admit(&created("B", "fp-1")),
        None,
        "A is no longer open"
    );
}

#[test]
fn without_a_handling_duplicates_are_allocated_like_any_lead() {
    let mut w = World::with(policy(""));
    create(&mut w, "A", "fp-1");
    assert_eq!(w.p.admit(&created("B", "fp-1")), None);
    let out = create(&mut w, "B", "fp-1");
    assert_eq!(out[0].rule_id, RULE_AUTO_ASSIGN);
}
