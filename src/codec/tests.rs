use super::*;
use crate::domain::*;

fn cny(v: i64) -> Money {
    Money::new(v, Currency::parse("CNY").unwrap())
}

fn samples() -> Vec<LeadEvent> {
    let bodies = vec![
        EventBody::Created(LeadCreated {
            channel: "search".into(),
            campaign: "q4".into(),
            pool: "general".into(),
            region: "east".into(),
            industry: "saas".into(),
            company_size: "small".into(),
            acquisition_cost: cny(1234),
            contact_fingerprint: "ab12".into(),
            attributes: [("utm".to_string(), "x".to_string())].into_iter().collect(),
        }),
        EventBody::Scored(LeadScored {
            score: 70,
            attribute_score: 1,
            behaviour_score: 2,
            predictive_score: 3,
            model_version: "v9".into(),
        }),
        EventBody::Assigned(LeadAssigned {
            owner_id: "rep-1".into(),
            pool: "vip".into(),
            method: AssignmentMethod::Claim,
            command_id: "cmd-1".into(),
        }),
        EventBody::FollowedUp(LeadFollowedUp {
            owner_id: "rep-1".into(),
            kind: FollowUpKind::Meeting,
            outcome: "ok".into(),
        }),
        EventBody::Recalled(LeadRecalled {
            previous_owner_id: "rep-1".into(),
            reason: RecallReason::NoFirstFollowUp,
            to_pool: "cold".into(),
            command_id: "cmd-2".into(),
            rule_id: "sla".into(),
        }),
        EventBody::Converted(LeadConverted {
            owner_id: "rep-2".into(),
            deal_value: cny(9_900),
            customer_id: "cust".into(),
            expected_lifetime_value: Some(cny(30_000)),
        }),
        EventBody::CommandDeclined(LeadCommandDeclined {
            command_id: "cmd-3".into(),
            reason: "rep on leave".into(),
        }),
        EventBody::ClaimRequested(LeadClaimRequested {
            rep_id: "rep-3".into(),
        }),
        EventBody::Moved(LeadMoved {
            to_pool: "vip".into(),
            command_id: "cmd-4".into(),
        }),
        EventBody::Engaged(LeadEngaged {
            kind: "email_reply".into(),
            points: Some(-5),
            source: "mailer".into(),
            detail: "re: pricing".into(),
        }),
        EventBody::Engaged(LeadEngaged {
            kind: "web_visit".into(),
            points: None,
            source: String::new(),
            detail: String::new(),
        }),
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| LeadEvent {
            event_id: format!("e{i}"),
            lead_id: "lead-1".into(),
            occurred_at_ms: 1_763_600_000_000 + i as i64,
            producer: "crm".into(),
            tenant_id: String::new(),
            body,
        })
        .collect()
}

#[test]
fn every_event_kind_round_trips_through_protobuf_and_json() {
    let kinds: std::collections::BTreeSet<EventKind> =
        samples().iter().map(|e| e.body.kind()).collect();
    assert_eq!(kinds.len(), EventKind::ALL.len(), "a sample of every kind");
    for e in samples() {
        assert_eq!(decode_event(&encode_event(&e)).unwrap(), e);
        assert_eq!(event_from_json(&event_to_json(&e)).unwrap(), e);
    }
}

#[test]
fn json_follows_the_proto3_mapping() {
    let json = event_to_json(&samples()[0]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["eventId"], "e0");
    assert_eq!(v["occurredAtMs"], "1763600000000", "int64 is a JSON string");
    assert_eq!(v["created"]["acquisitionCost"]["minorUnits"], "1234");
    let recall = event_to_json(&samples()[4]);
    assert!(
        recall.contains("\"RECALL_REASON_NO_FIRST_FOLLOW_UP\""),
        "{recall}"
    );
    // The mapping also accepts the original field names and numeric int64s.
    let e = event_from_json(
        r#"{"event_id":"x","lead_id":"l","occurred_at_ms":5,"scored":{"score":7}}"#,
    )
    .unwrap();
    assert_eq!(e.occurred_at_ms, 5);
}

#[test]
fn garbage_is_undecodable_not_a_panic() {
    assert_eq!(
        decode_event(&[0xff, 0xff, 0xff]).unwrap_err().code(),
        "undecodable"
    );
    assert_eq!(
        event_from_json("{not json").unwrap_err().code(),
        "undecodable"
    );
}

#[test]
fn an_event_without_a_known_body_is_an_unknown_type() {
    let mut m = to_pb(&samples()[0]);
    m.body = None;
    assert_eq!(
        decode_event(&m.encode_to_vec()),
        Err(Rejection::UnknownEventType)
    );
}

#[test]
fn bad_money_and_enums_are_typed() {
    let mut m = to_pb(&samples()[0]);
    if let Some(pb::lead_event::Body::Created(c)) = &mut m.body {
        c.acquisition_cost = None;
    }
    assert_eq!(
        from_pb(m.clone()),
        Err(Rejection::missing("created.acquisition_cost"))
    );
    if let Some(pb::lead_event::Body::Created(c)) = &mut m.body {
        c.acquisition_cost = Some(pb::Money {
            minor_units: 1,
            currency: "yuan".into(),
        });
    }
    assert_eq!(from_pb(m).unwrap_err().code(), "invalid_field");
    let mut m = to_pb(&samples()[2]);
    if let Some(pb::lead_event::Body::Assigned(a)) = &mut m.body {
        a.method = 42;
    }
    assert_eq!(from_pb(m).unwrap_err().code(), "invalid_field");
}

#[test]
fn commands_round_trip() {
    for body in [
        CommandBody::AssignLead {
            owner_id: "a".into(),
            pool: "p".into(),
        },
        CommandBody::RecallLead {
            owner_id: "a".into(),
            reason: RecallReason::Stale,
            to_pool: "p".into(),
        },
        CommandBody::RemindFollowUp {
            owner_id: "a".into(),
            deadline_ms: 9,
        },
        CommandBody::CancelCommand {
            command_id: "c".into(),
            reason: "expired".into(),
            owner_id: "a".into(),
        },
        CommandBody::DeclineClaim {
            owner_id: "a".into(),
            pool: "p".into(),
            reason: "already_claimed".into(),
            request_event_id: "e".into(),
        },
        CommandBody::MoveLead {
            to_pool: "q".into(),
            from_pool: "p".into(),
        },
        CommandBody::UpdateScore {
            score: 71,
            attribute_score: 35,
            behaviour_score: 20,
            predictive_score: 90,
            model_version: "nb-12".into(),
            scored_event_id: "leadflow-score-l-9".into(),
        },
    ] {
        let cmd = LeadCommand {
            command_id: crate::domain::command::command_id("l", 1, "r", &body),
            lead_id: "l".into(),
            issued_at_ms: 3,
            causation_event_id: "e".into(),
            rule_id: "r".into(),
            rule_version: 2,
            explanation: "because".into(),
            facts: [("deadline_ms".to_string(), "5".to_string())].into(),
            tenant_id: String::new(),
            body,
        };
        assert_eq!(decode_command(&encode_command(&cmd)).unwrap(), cmd);
        assert_eq!(
            command_id_of(&encode_command(&cmd)).unwrap(),
            cmd.command_id
        );
        // The header a dispatcher reads is the full decoder's.
        let header = decode_command_header(&encode_command(&cmd)).unwrap();
        assert_eq!(
            header,
            CommandHeader {
                command_id: cmd.command_id.clone(),
                lead_id: cmd.lead_id.clone(),
                causation_event_id: cmd.causation_event_id.clone(),
                rule_id: cmd.rule_id.clone(),
                type_name: cmd.body.type_name(),
            }
        );
    }
}

/// The id read from a command's first field is the id decoding finds,
/// long ids (a two-byte length) and an empty one (no field 1 at all)
/// included; bytes that are no command are refused as decoding refuses
/// them.
#[test]
fn a_commands_id_is_read_without_decoding_the_rest() {
    for id in ["", "c", &"x".repeat(300)] {
        let cmd = LeadCommand {
            command_id: id.to_string(),
            lead_id: "l".into(),
            issued_at_ms: 3,
            causation_event_id: "e".into(),
            rule_id: "r".into(),
            rule_version: 2,
            explanation: String::new(),
            facts: Default::default(),
            tenant_id: String::new(),
            body: CommandBody::MoveLead {
                to_pool: "q".into(),
                from_pool: "p".into(),
            },
        };
        let bytes = encode_command(&cmd);
        assert_eq!(command_id_of(&bytes).unwrap(), id);
        assert!(
            matches!(
                command_id_of(&bytes).unwrap(),
                std::borrow::Cow::Borrowed(_)
            ) == !id.is_empty()
        );
    }
    assert!(command_id_of(&[0xff, 0xff]).is_err());
}
