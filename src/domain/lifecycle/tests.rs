//! Given/when/then tests: given the events already applied, when one more
//! arrives, then it is applied with this state or rejected with this reason.

use super::*;
use crate::domain::event::*;
use crate::domain::money::{Currency, Money};

const T0: i64 = 1_763_600_000_000;

fn cny(minor_units: i64) -> Money {
    Money::new(minor_units, Currency::parse("CNY").unwrap())
}

fn ev(id: &str, at: i64, body: EventBody) -> LeadEvent {
    LeadEvent {
        event_id: id.into(),
        lead_id: "lead-1".into(),
        occurred_at_ms: at,
        producer: "test".into(),
        tenant_id: String::new(),
        body,
    }
}

fn created() -> EventBody {
    EventBody::Created(LeadCreated {
        channel: "search".into(),
        campaign: "c1".into(),
        pool: "general".into(),
        region: "east".into(),
        industry: "saas".into(),
        company_size: "small".into(),
        acquisition_cost: cny(10_000),
        contact_fingerprint: "fp".into(),
        attributes: Default::default(),
    })
}

fn scored(score: u32) -> EventBody {
    EventBody::Scored(LeadScored {
        score,
        attribute_score: 10,
        behaviour_score: 20,
        predictive_score: 30,
        model_version: "m1".into(),
    })
}

fn assigned(owner: &str, pool: &str) -> EventBody {
    EventBody::Assigned(LeadAssigned {
        owner_id: owner.into(),
        pool: pool.into(),
        method: AssignmentMethod::Rule,
        command_id: String::new(),
    })
}

fn followed_up(owner: &str) -> EventBody {
    EventBody::FollowedUp(LeadFollowedUp {
        owner_id: owner.into(),
        kind: FollowUpKind::Call,
        outcome: "talked".into(),
    })
}

fn recalled(owner: &str, to_pool: &str) -> EventBody {
    EventBody::Recalled(LeadRecalled {
        previous_owner_id: owner.into(),
        reason: RecallReason::Stale,
        to_pool: to_pool.into(),
        command_id: String::new(),
        rule_id: "stale".into(),
    })
}

fn converted(owner: &str, value: i64) -> EventBody {
    EventBody::Converted(LeadConverted {
        owner_id: owner.into(),
        deal_value: cny(value),
        customer_id: "cust-1".into(),
        expected_lifetime_value: None,
    })
}

/// Applies `given` (each must be accepted) and returns the state.
fn given(events: Vec<EventBody>) -> Option<Lead> {
    let mut state = None;
    for (i, body) in events.into_iter().enumerate() {
        let e = ev(&format!("g{i}"), T0 + i as i64 * 1000, body);
        state = Some(handle(state.as_ref(), &e).unwrap_or_else(|r| panic!("given #{i}: {r}")));
    }
    state
}

/// The time of the `when` event.
const WHEN_AT: i64 = T0 + 100_000;

fn when(state: &Option<Lead>, body: EventBody) -> Result<Lead, Rejection> {
    handle(state.as_ref(), &ev("when", WHEN_AT, body))
}

/// `state` as it is after an event that changes nothing but the lead's
/// latest event time.
fn unchanged_but_later(state: &Option<Lead>) -> Lead {
    Lead {
        latest_at_ms: WHEN_AT,
        ..state.clone().unwrap()
    }
}

#[test]
fn created_puts_a_new_lead_in_its_pool() {
    let lead = when(&None, created()).unwrap();
    assert_eq!(lead.status, LeadStatus::InPool);
    assert_eq!(lead.pool, "general");
    assert_eq!(lead.owner, None);
    assert_eq!(lead.created_at_ms, T0 + 100_000);
    assert_eq!((lead.generation, lead.recall_count), (0, 0));
}

#[test]
fn created_twice_is_rejected() {
    let s = given(vec![created()]);
    assert_eq!(
        when(&s, created()),
        Err(Rejection::LeadAlreadyExists { created_at_ms: T0 })
    );
}

#[test]
fn events_for_an_unknown_lead_are_rejected() {
    for body in [
        scored(5),
        assigned("a", ""),
        followed_up("a"),
        recalled("a", ""),
        converted("a", 1),
    ] {
        assert_eq!(when(&None, body), Err(Rejection::UnknownLead));
    }
}

#[test]
fn scoring_keeps_the_state_in_pool_and_when_assigned() {
    let s = given(vec![created()]);
    assert_eq!(when(&s, scored(100)).unwrap(), unchanged_but_later(&s));
    let s = given(vec![created(), assigned("a", "")]);
    assert_eq!(when(&s, scored(0)).unwrap(), unchanged_but_later(&s));
}

fn engaged(kind: &str, points: Option<i32>) -> EventBody {
    EventBody::Engaged(LeadEngaged {
        kind: kind.into(),
        points,
        source: "mailer".into(),
        detail: "opened the pricing email".into(),
    })
}

#[test]
fn interactions_keep_the_state_whether_waiting_or_held_and_end_with_conversion() {
    // Given a waiting lead and a held one, when they engage, then nothing
    // changes but the lead's latest time; after conversion, they are
    // refused like any event.
    let waiting = given(vec![created()]);
    assert_eq!(
        when(&waiting, engaged("web_visit", None)).unwrap(),
        unchanged_but_later(&waiting)
    );
    let held = given(vec![created(), assigned("rep-1", "")]);
    assert_eq!(
        when(&held, engaged("email_reply", Some(-20))).unwrap(),
        unchanged_but_later(&held)
    );
    let done = given(vec![
        created(),
        assigned("rep-1", ""),
        converted("rep-1", 5),
    ]);
    assert_eq!(
        when(&done, engaged("web_visit", None)).unwrap_err().code(),
        "lead_converted"
    );
}

#[test]
fn an_interaction_has_a_plain_kind_and_bounded_points_and_text() {
    let s = given(vec![created()]);
    let code = |body| when(&s, body).unwrap_err().code();
    assert_eq!(code(engaged("", None)), "missing_field");
    assert_eq!(code(engaged("Web Visit", None)), "invalid_field");
    assert_eq!(code(engaged(&"k".repeat(65), None)), "invalid_field");
    assert_eq!(code(engaged("web_visit", Some(1001))), "invalid_field");
    assert_eq!(code(engaged("web_visit", Some(-1001))), "invalid_field");
    let mut long = engaged("web_visit", None);
    if let EventBody::Engaged(e) = &mut long {
        e.detail = "x".repeat(1025);
    }
    assert_eq!(code(long), "invalid_field");
    assert!(when(&s, engaged(&"k".repeat(64), Some(1000))).is_ok());
}

#[test]
fn scores_out_of_range_are_rejected() {
    let s = given(vec![created()]);
    assert_eq!(
        when(&s, scored(101)),
        Err(Rejection::ScoreOutOfRange {
            field: "scored.score".into(),
            value: 101
        })
    );
    let mut body = LeadScored {
        score: 1,
        attribute_score: 1,
        behaviour_score: 400,
        predictive_score: 1,
        model_version: String::new(),
    };
    assert_eq!(
        when(&s, EventBody::Scored(body.clone()))
            .unwrap_err()
            .code(),
        "score_out_of_range"
    );
    body.behaviour_score = 1;
    body.predictive_score = 101;
    assert_eq!(
        when(&s, EventBody::Scored(body)).unwrap_err().code(),
        "score_out_of_range"
    );
}

#[test]
fn assigning_from_the_pool_gives_an_owner_and_a_new_generation() {
    let s = given(vec![created()]);
    let lead = when(&s, assigned("rep-1", "")).unwrap();
    assert_eq!(lead.status, LeadStatus::Assigned);
    assert_eq!(lead.owner.as_deref(), Some("rep-1"));
    assert_eq!(lead.pool, "general", "an empty pool keeps the current one");
    assert_eq!(lead.generation, 1);
    let lead = when(&s, assigned("rep-1", "vip")).unwrap();
    assert_eq!(lead.pool, "vip");
}

#[test]
fn assigning_to_another_rep_transfers_the_lead() {
    let s = given(vec![created(), assigned("rep-1", "")]);
    let lead = when(&s, assigned("rep-2", "")).unwrap();
    assert_eq!(lead.owner.as_deref(), Some("rep-2"));
    assert_eq!(lead.generation, 2);
}

#[test]
fn assigning_to_the_current_owner_is_rejected() {
    let s = given(vec![created(), assigned("rep-1", "")]);
    assert_eq!(
        when(&s, assigned("rep-1", "")),
        Err(Rejection::AlreadyOwner {
            owner_id: "rep-1".into()
        })
    );
}

#[test]
fn assigning_a_converted_lead_is_rejected() {
    let s = given(vec![
        created(),
        assigned("rep-1", ""),
        converted("rep-1", 5),
    ]);
    assert_eq!(
        when(&s, assigned("rep-2", "")),
        Err(Rejection::LeadConverted {
            attempted: EventKind::Assigned
        })
    );
    for body in [scored(1), followed_up("rep-1"), recalled("rep-1", "")] {
        assert_eq!(when(&s, body).unwrap_err().code(), "lead_converted");
    }
}

#[test]
fn the_owner_following_up_keeps_the_lead() {
    let s = given(vec![created(), assigned("rep-1", "")]);
    assert_eq!(
        when(&s, followed_up("rep-1")).unwrap(),
        unchanged_but_later(&s)
    );
}

#[test]
fn a_follow_up_by_someone_else_is_rejected() {
    let s = given(vec![created(), assigned("rep-1", "")]);
    assert_eq!(
        when(&s, followed_up("rep-2")),
        Err(Rejection::NotOwner {
            actor: "rep-2".into(),
            current_owner: Some("rep-1".into())
        })
    );
    let in_pool = given(vec![created()]);
    assert_eq!(
        when(&in_pool, followed_up("rep-2")),
        Err(Rejection::NotOwner {
            actor: "rep-2".into(),
            current_owner: None
        })
    );
}

#[test]
fn recalling_returns_the_lead_to_a_pool() {
    let s = given(vec![created(), assigned("rep-1", ""), followed_up("rep-1")]);
    let lead = when(&s, recalled("rep-1", "cold")).unwrap();
    assert_eq!(lead.status, LeadStatus::InPool);
    assert_eq!(lead.owner, None);
    assert_eq!(lead.pool, "cold");
    assert_eq!(lead.recall_count, 1);
    assert_eq!(lead.generation, 1, "a recall does not start a holding");
    let lead = when(&s, recalled("rep-1", "")).unwrap();
    assert_eq!(lead.pool, "general");
}

#[test]
fn a_recalled_lead_can_be_reassigned_and_recalled_again() {
    let s = given(vec![
        created(),
        assigned("rep-1", ""),
        recalled("rep-1", ""),
        assigned("rep-2", ""),
    ]);
    let lead = when(&s, recalled("rep-2", "")).unwrap();
    assert_eq!((lead.generation, lead.recall_count), (2, 2));
}

#[test]
fn recalling_an_unassigned_lead_is_rejected() {
    let s = given(vec![created()]);
    assert_eq!(when(&s, recalled("rep-1", "")), Err(Rejection::NotAssigned));
    let s = given(vec![
        created(),
        assigned("rep-1", ""),
        recalled("rep-1", ""),
    ]);
    assert_eq!(when(&s, recalled("rep-1", "")), Err(Rejection::NotAssigned));
}

#[test]
fn recalling_from_someone_who_does_not_hold_it_is_rejected() {
    let s = given(vec![created(), assigned("rep-1", "")]);
    assert_eq!(
        when(&s, recalled("rep-9", "")).unwrap_err().code(),
        "not_owner"
    );
}

#[test]
fn the_owner_converting_ends_the_lifecycle() {
    let s = given(vec![created(), assigned("rep-1", "")]);
    let lead = when(&s, converted("rep-1", 99)).unwrap();
    assert_eq!(lead.status, LeadStatus::Converted);
    assert_eq!(lead.owner.as_deref(), Some("rep-1"));
}

#[test]
fn conversion_by_someone_else_is_rejected() {
    let s = given(vec![created(), assigned("rep-1", "")]);
    assert_eq!(
        when(&s, converted("rep-2", 1)).unwrap_err().code(),
        "not_owner"
    );
    let in_pool = given(vec![created()]);
    assert_eq!(
        when(&in_pool, converted("rep-1", 1)).unwrap_err().code(),
        "not_owner"
    );
}

#[test]
fn a_second_conversion_is_rejected() {
    let s = given(vec![
        created(),
        assigned("rep-1", ""),
        converted("rep-1", 5),
    ]);
    assert_eq!(
        when(&s, converted("rep-1", 5)),
        Err(Rejection::AlreadyConverted)
    );
}

#[test]
fn an_event_before_creation_is_rejected() {
    let s = given(vec![created()]);
    let e = ev("early", T0 - 1, assigned("rep-1", ""));
    assert_eq!(
        handle(s.as_ref(), &e),
        Err(Rejection::BeforeCreation {
            occurred_at_ms: T0 - 1,
            created_at_ms: T0
        })
    );
    let same_ms = ev("same", T0, assigned("rep-1", ""));
    assert!(handle(s.as_ref(), &same_ms).is_ok());
}

#[test]
fn missing_required_fields_are_rejected() {
    let mut e = ev("", T0, created());
    assert_eq!(handle(None, &e), Err(Rejection::missing("event_id")));
    e.event_id = "x".into();
    e.lead_id.clear();
    assert_eq!(handle(None, &e), Err(Rejection::missing("lead_id")));
    let s = given(vec![created()]);
    assert_eq!(
        when(&s, assigned("", "")),
        Err(Rejection::missing("assigned.owner_id"))
    );
    assert_eq!(
        when(&s, followed_up("")),
        Err(Rejection::missing("followed_up.owner_id"))
    );
    let EventBody::Created(mut c) = created() else {
        unreachable!()
    };
    c.channel.clear();
    assert_eq!(
        when(&None, EventBody::Created(c)),
        Err(Rejection::missing("created.channel"))
    );
}

#[test]
fn malformed_ids_are_rejected() {
    let mut e = ev("id\u{0}", T0, created());
    assert_eq!(handle(None, &e).unwrap_err().code(), "invalid_field");
    e.event_id = "x".repeat(ID_LEN_BYTES_MAX + 1);
    assert_eq!(handle(None, &e).unwrap_err().code(), "invalid_field");
}

#[test]
fn negative_money_is_rejected() {
    let EventBody::Created(mut c) = created() else {
        unreachable!()
    };
    c.acquisition_cost = cny(-1);
    assert_eq!(
        when(&None, EventBody::Created(c)),
        Err(Rejection::NegativeMoney {
            field: "created.acquisition_cost".into(),
            minor_units: -1
        })
    );
    let s = given(vec![created(), assigned("rep-1", "")]);
    assert_eq!(
        when(&s, converted("rep-1", -10)).unwrap_err().code(),
        "negative_money"
    );
    let body = EventBody::Converted(LeadConverted {
        owner_id: "rep-1".into(),
        deal_value: cny(10),
        customer_id: String::new(),
        expected_lifetime_value: Some(cny(-3)),
    });
    assert_eq!(when(&s, body).unwrap_err().code(), "negative_money");
}

#[test]
fn money_above_the_maximum_is_an_invalid_field() {
    // Given a lead held by rep-1, when a deal of i64::MAX minor units
    // arrives (two of them summed to -2 before the bound), then it is
    // refused; the maximum itself is accepted.
    let s = given(vec![created(), assigned("rep-1", "")]);
    let err = when(&s, converted("rep-1", i64::MAX)).unwrap_err();
    assert_eq!(err.code(), "invalid_field");
    assert!(err.to_string().contains("converted.deal_value"), "{err}");
    assert!(when(&s, converted("rep-1", MONEY_MINOR_UNITS_MAX)).is_ok());
    let EventBody::Created(mut c) = created() else {
        unreachable!()
    };
    c.acquisition_cost = cny(MONEY_MINOR_UNITS_MAX + 1);
    assert_eq!(
        when(&None, EventBody::Created(c)).unwrap_err().code(),
        "invalid_field"
    );
}

#[test]
fn event_times_outside_the_documented_range_are_an_invalid_field() {
    for at in [i64::MIN, -1, EVENT_TIME_MS_MAX + 1, i64::MAX] {
        let err = handle(None, &ev("e1", at, created())).unwrap_err();
        assert_eq!(err.code(), "invalid_field", "{at}");
        assert!(err.to_string().contains("occurred_at_ms"), "{err}");
    }
    for at in [EVENT_TIME_MS_MIN, EVENT_TIME_MS_MAX] {
        assert!(handle(None, &ev("e1", at, created())).is_ok(), "{at}");
    }
}

#[test]
fn an_event_later_than_the_tolerance_behind_the_latest_is_out_of_order() {
    // Given a lead assigned at T0 + 1 s, when a follow-up stamped before
    // the assignment arrives: within the tolerance it is applied (clock
    // skew), beyond it it is out of order; the latest time never goes back.
    let s = given(vec![created(), assigned("rep-1", "")]);
    let assigned_at = T0 + 1000;
    let rules = Rules {
        out_of_order_tolerance_ms: 500,
    };
    let at = |ms: i64| ev("late", ms, followed_up("rep-1"));
    let within = handle_with(s.as_ref(), &at(assigned_at - 500), &rules).unwrap();
    assert_eq!(within.latest_at_ms, assigned_at, "the latest time stays");
    assert_eq!(
        handle_with(s.as_ref(), &at(assigned_at - 501), &rules),
        Err(Rejection::OutOfOrder {
            occurred_at_ms: assigned_at - 501,
            latest_at_ms: assigned_at,
            tolerance_ms: 500
        })
    );
    let strict = Rules {
        out_of_order_tolerance_ms: 0,
    };
    assert_eq!(
        handle_with(s.as_ref(), &at(assigned_at - 1), &strict)
            .unwrap_err()
            .code(),
        "out_of_order"
    );
    assert!(handle_with(s.as_ref(), &at(assigned_at), &strict).is_ok());
    // The default tolerance is a minute.
    assert_eq!(Rules::default().out_of_order_tolerance_ms, 60_000);
}

#[test]
fn a_lead_keeps_the_tenant_it_was_created_under() {
    // Given a lead created under tenant t1.
    let mut e = ev("c", T0, created());
    e.tenant_id = "t1".into();
    let s = Some(handle(None, &e).unwrap());
    assert_eq!(s.as_ref().unwrap().tenant_id, "t1");
    // When an event for it names another tenant (or none), then it is
    // rejected as wrong_tenant; under t1 it is applied.
    for other in ["t2", ""] {
        let mut e = ev("s", WHEN_AT, scored(5));
        e.tenant_id = other.into();
        let r = handle(s.as_ref(), &e).unwrap_err();
        assert_eq!(
            r,
            Rejection::WrongTenant {
                lead_tenant_id: "t1".into(),
                event_tenant_id: other.into()
            }
        );
        assert_eq!(r.code(), "wrong_tenant");
    }
    let mut e = ev("s", WHEN_AT, scored(5));
    e.tenant_id = "t1".into();
    assert!(handle(s.as_ref(), &e).is_ok());
}

#[test]
fn a_tenant_id_is_short_and_plain() {
    for ok in ["", "acme", "acme-cn.east_1:prod", &"t".repeat(64)] {
        assert_eq!(check_tenant_id(ok), Ok(()), "{ok:?}");
    }
    for bad in [&"t".repeat(65), "a/b", "a b", "租户", "a\n"] {
        let mut e = ev("c", T0, created());
        e.tenant_id = bad.to_string();
        match handle(None, &e) {
            Err(Rejection::InvalidField { field, .. }) => assert_eq!(field, "tenant_id"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}
