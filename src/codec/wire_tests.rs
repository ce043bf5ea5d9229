//! The format rule of `codec::wire`, one case per line of it.

use super::*;
use crate::domain::{build, Currency, EventBody, Money};

fn event() -> LeadEvent {
    let mut e = build::created("ev-1", "L1")
        .at(1_767_225_600_000)
        .producer("crm-web")
        .channel("search")
        .pool("inbound")
        .profile("east", "saas", "smb")
        .cost(Money::new(12_345, Currency::parse("CNY").unwrap()))
        .event();
    if let EventBody::Created(c) = &mut e.body {
        c.campaign = "spring".into();
        c.contact_fingerprint = "fp".into();
    }
    e
}

fn no_headers() -> Headers {
    Headers::default()
}

fn decode(bytes: &[u8], h: &Headers) -> Result<(LeadEvent, Format), Rejection> {
    decode_message(bytes, h, &Accept::default())
}

fn detail(r: Rejection) -> String {
    match r {
        Rejection::Undecodable { detail } => detail,
        other => format!("{other:?}"),
    }
}

#[test]
fn every_format_decodes_to_the_same_event_by_its_bytes_alone() {
    for format in [
        Format::Protobuf,
        Format::Json,
        Format::RegistryProtobuf { schema_id: 7 },
        Format::RegistryJson { schema_id: 7 },
    ] {
        let (bytes, _) = encode_message(&event(), format);
        let (got, found) = decode(&bytes, &no_headers()).unwrap();
        assert_eq!(got, event(), "{format:?}");
        assert_eq!(found, format);
    }
}

#[test]
fn a_content_type_header_names_the_family_and_the_first_byte_the_framing() {
    for format in [
        Format::Protobuf,
        Format::Json,
        Format::RegistryProtobuf { schema_id: 3 },
        Format::RegistryJson { schema_id: 3 },
    ] {
        let (bytes, _) = encode_message(&event(), format);
        let family = match format {
            Format::Protobuf | Format::RegistryProtobuf { .. } => CONTENT_TYPE_PROTOBUF,
            _ => "application/json; charset=utf-8",
        };
        let h = Headers {
            content_type: Some(family.into()),
            ..Headers::default()
        };
        assert_eq!(decode(&bytes, &h).unwrap().1, format);
    }
}

#[test]
fn json_with_leading_whitespace_is_json() {
    let text = format!("  \n{}", crate::codec::event_to_json(&event()));
    assert_eq!(
        decode(text.as_bytes(), &no_headers()).unwrap(),
        (event(), Format::Json)
    );
}

#[test]
fn a_content_type_that_contradicts_the_bytes_is_rejected_naming_both() {
    let (json, _) = encode_message(&event(), Format::Json);
    let h = Headers {
        content_type: Some(CONTENT_TYPE_PROTOBUF.into()),
        ..Headers::default()
    };
    let d = detail(decode(&json, &h).unwrap_err());
    assert!(d.contains("content-type says protobuf"), "{d}");

    let (pb, _) = encode_message(&event(), Format::Protobuf);
    let h = Headers {
        content_type: Some(CONTENT_TYPE_JSON.into()),
        ..Headers::default()
    };
    assert!(detail(decode(&pb, &h).unwrap_err()).starts_with("json:"));
}

#[test]
fn an_unknown_content_type_is_rejected_not_guessed() {
    let (pb, _) = encode_message(&event(), Format::Protobuf);
    let h = Headers {
        content_type: Some("application/avro".into()),
        ..Headers::default()
    };
    assert!(detail(decode(&pb, &h).unwrap_err()).contains("application/avro"));
}

#[test]
fn a_schema_id_outside_the_allow_list_is_rejected() {
    let (bytes, _) = encode_message(&event(), Format::RegistryProtobuf { schema_id: 9 });
    let accept = Accept {
        schema_ids: vec![1, 2],
    };
    let d = detail(decode_message(&bytes, &no_headers(), &accept).unwrap_err());
    assert!(d.contains("schema id 9"), "{d}");
    let accept = Accept {
        schema_ids: vec![9],
    };
    assert!(decode_message(&bytes, &no_headers(), &accept).is_ok());
}

#[test]
fn message_indexes_that_do_not_name_lead_event_are_rejected() {
    let (pb, _) = encode_message(&event(), Format::Protobuf);
    // [0] (the single-zero shorthand): Money in events.proto.
    let mut bytes = vec![0, 0, 0, 0, 1, 0];
    bytes.extend_from_slice(&pb);
    let d = detail(decode(&bytes, &no_headers()).unwrap_err());
    assert!(d.contains("[0]"), "{d}");
    // A count far beyond any schema's nesting.
    let bytes = [0, 0, 0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f];
    assert!(detail(decode(&bytes, &no_headers()).unwrap_err()).contains("message indexes"));
}

#[test]
fn a_frame_cut_short_is_rejected() {
    for n in 1..5 {
        let bytes = [0u8, 0, 0, 1][..n].to_vec();
        assert!(
            detail(decode(&bytes, &no_headers()).unwrap_err()).contains("cut short"),
            "{n}"
        );
    }
}

#[test]
fn cloud_events_headers_fill_empty_fields_and_contradictions_are_rejected() {
    let mut bare = event();
    bare.event_id.clear();
    bare.producer.clear();
    bare.occurred_at_ms = 0;
    let (bytes, _) = encode_message(&bare, Format::Json);
    let h = Headers {
        ce_id: Some("ev-1".into()),
        ce_source: Some("crm-web".into()),
        ce_time: Some("2026-01-01T00:00:00Z".into()),
        ce_type: Some("leadflow.v1.LeadCreated".into()),
        ..Headers::default()
    };
    assert_eq!(decode(&bytes, &h).unwrap().0, event());

    let (full, _) = encode_message(&event(), Format::Protobuf);
    for h in [
        Headers {
            ce_id: Some("ev-2".into()),
            ..Headers::default()
        },
        Headers {
            ce_time: Some("2026-01-01T00:00:01Z".into()),
            ..Headers::default()
        },
        Headers {
            ce_type: Some("leadflow.v1.LeadConverted".into()),
            ..Headers::default()
        },
        Headers {
            ce_time: Some("yesterday".into()),
            ..Headers::default()
        },
    ] {
        let r = decode(&full, &h).unwrap_err();
        assert_eq!(r.code(), "invalid_field", "{h:?}: {r:?}");
    }
    // A foreign type name is not ours to judge.
    let h = Headers {
        ce_type: Some("com.example.lead".into()),
        ..Headers::default()
    };
    assert!(decode(&full, &h).is_ok());
}

#[test]
fn header_names_are_matched_ignoring_case() {
    let mut h = Headers::default();
    assert!(h.set("Content-Type", b"application/json"));
    assert!(h.set("CE_ID", b"x"));
    assert!(!h.set("traceparent", b"00-..."));
    assert_eq!(h.content_type.as_deref(), Some("application/json"));
    assert_eq!(h.ce_id.as_deref(), Some("x"));
}

proptest::proptest! {
    #[test]
    fn no_bytes_make_the_decoder_panic(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        json in proptest::prelude::any::<bool>(),
    ) {
        let h = Headers {
            content_type: json.then(|| CONTENT_TYPE_JSON.to_string()),
            ..Headers::default()
        };
        let _ = decode(&bytes, &h);
        let mut framed = vec![0u8];
        framed.extend_from_slice(&bytes);
        let _ = decode(&framed, &h);
    }
}
