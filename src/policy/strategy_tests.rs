//! Given/when/then tests of the strategies that rank reps (score
//! priority, preference by region and industry) and of a version's
//! effective time, on the world of `deadline_tests`.

use super::*;

impl World {
    fn scored(&mut self, t: i64, lead: &str, score: u32) -> Vec<LeadCommand> {
        self.at(
            t,
            lead,
            EventBody::Scored(LeadScored {
                score,
                attribute_score: score,
                behaviour_score: score,
                predictive_score: score,
                model_version: "m".into(),
            }),
        )
    }

    fn created_in(&mut self, t: i64, lead: &str, region: &str, industry: &str) -> Vec<LeadCommand> {
        self.at(
            t,
            lead,
            EventBody::Created(LeadCreated {
                channel: "search".into(),
                campaign: "c".into(),
                pool: "inbound".into(),
                region: region.into(),
                industry: industry.into(),
                company_size: String::new(),
                acquisition_cost: Money::new(100, Currency::parse("CNY").unwrap()),
                contact_fingerprint: String::new(),
                attributes: Default::default(),
            }),
        )
    }
}

fn owner_of(out: &[LeadCommand]) -> String {
    kinds(out).remove(0).2
}

#[test]
fn score_priority_gives_leads_to_the_best_converting_rep_and_the_backlog_goes_out_by_score() {
    let mut w = World::with(
        PolicyFile::parse(
            "version = 1\n[[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\nstrategy = \"score_priority\"\n\
             members = [{ id = \"rep-1\", capacity = 2 }, { id = \"rep-2\", capacity = 2 }]\n",
        )
        .unwrap(),
    );
    // History: rep-2 converts one of one, rep-1 none of one.
    assert_eq!(
        owner_of(&w.created(T0, "h1")),
        "rep-1",
        "no history: the smaller id"
    );
    w.assigned(T0, "h1", "rep-1");
    w.created(T0 + 1, "h2");
    w.assigned(T0 + 1, "h2", "rep-2");
    w.converted(T0 + 2, "h2", "rep-2");
    assert_eq!(
        owner_of(&w.created(T0 + 3, "a")),
        "rep-2",
        "the better converter"
    );
    w.assigned(T0 + 3, "a", "rep-2");
    assert_eq!(owner_of(&w.created(T0 + 4, "b")), "rep-2");
    w.assigned(T0 + 4, "b", "rep-2");
    assert_eq!(owner_of(&w.created(T0 + 5, "c")), "rep-1", "rep-2 is full");
    w.assigned(T0 + 5, "c", "rep-1");
    // Both full: two leads wait; the higher score goes out first.
    assert!(w.created(T0 + 6, "low").is_empty());
    assert!(w.created(T0 + 7, "high").is_empty());
    w.scored(T0 + 8, "low", 20);
    w.scored(T0 + 9, "high", 90);
    let out = w.converted(T0 + 10, "a", "rep-2");
    assert_eq!(out[0].lead_id, "high");
    assert!(out[0].explanation.contains("score-priority"));
}

#[test]
fn preference_matches_region_and_industry_and_falls_back_to_anyone() {
    let mut w = World::with(
        PolicyFile::parse(
            "version = 1\n[[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\nstrategy = \"preference\"\n\
             members = [\n\
               { id = \"rep-east\", capacity = 1, regions = [\"east\"] },\n\
               { id = \"rep-saas\", capacity = 5, industries = [\"saas\"] },\n\
               { id = \"rep-east-saas\", capacity = 1, regions = [\"east\"], industries = [\"saas\"] },\n\
             ]\n",
        )
        .unwrap(),
    );
    assert_eq!(
        owner_of(&w.created_in(T0, "a", "east", "saas")),
        "rep-east-saas",
        "both match"
    );
    w.assigned(T0, "a", "rep-east-saas");
    assert_eq!(
        owner_of(&w.created_in(T0 + 1, "b", "east", "retail")),
        "rep-east"
    );
    w.assigned(T0 + 1, "b", "rep-east");
    assert_eq!(
        owner_of(&w.created_in(T0 + 2, "c", "west", "saas")),
        "rep-saas"
    );
    w.assigned(T0 + 2, "c", "rep-saas");
    // East reps are full: an east/retail lead falls back to whoever has room.
    let out = w.created_in(T0 + 3, "d", "east", "retail");
    assert_eq!(owner_of(&out), "rep-saas");
    assert!(
        out[0].explanation.contains("preference fallback"),
        "{}",
        out[0].explanation
    );
}

#[test]
fn a_new_version_takes_effect_from_its_stated_time() {
    let mut w = World::new("");
    w.created(T0, "a");
    // Version 8 allocates only to rep-2, from T0 + 10 h.
    let newer = PolicyFile::parse(&format!(
        "version = 8\neffective_from_ms = {}\n\
         [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
         members = [{{ id = \"rep-2\", capacity = 20 }}]\n",
        T0 + 10 * H
    ))
    .unwrap();
    let state = Processor::state_from_bytes(&w.p.state_to_bytes()).unwrap();
    w.p = Processor::with_state(newer, state);
    assert_eq!(w.p.policy().version, 3, "the old version stays in force");
    let before = w.created(T0 + H, "b");
    assert_eq!(before[0].rule_version, 3);
    let after = w.created(T0 + 10 * H, "c");
    assert_eq!(after[0].rule_version, 8);
    assert_eq!(owner_of(&after), "rep-2");
    assert_eq!(w.p.policy().version, 8);
    // The version in force survives a snapshot.
    let state = Processor::state_from_bytes(&w.p.state_to_bytes()).unwrap();
    assert_eq!(state.in_force.map(|p| p.version), Some(8));
}
