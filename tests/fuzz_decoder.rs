//! A bounded fuzz smoke run of the event decoders, on stable Rust in the
//! test suite (proptest drives it; `PROPTEST_CASES` raises the count for a
//! longer run). Whatever the bytes, decoding never panics, every record of
//! a file comes out as an event or a rejection with bounded bytes, reading
//! ends, and what decodes survives the lifecycle without a panic.
//! Inputs: random bytes, and valid encodings mutated (bytes flipped,
//! inserted, cut), which reach much deeper into the decoder than noise.

use leadflow::codec::stream::{EventReader, EventWriter, Format, REJECTED_PREFIX_BYTES};
use leadflow::codec::{decode_event, encode_event, event_from_json, event_to_json};
use leadflow::domain::lifecycle;
use leadflow::sim::{SimConfig, SimItem, Simulator};
use proptest::prelude::*;

/// A few hundred valid events of every kind, encoded.
fn seeds() -> Vec<leadflow::domain::LeadEvent> {
    Simulator::new(SimConfig {
        seed: 1,
        leads: 40,
        days: 5,
        ..SimConfig::default()
    })
    .filter_map(|item| match item {
        SimItem::Event(e) => Some(e),
        _ => None,
    })
    .collect()
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Cut(usize),
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        match *m {
            Mutation::Flip(i, b) => {
                let i = i % bytes.len();
                bytes[i] ^= b;
            }
            Mutation::Insert(i, b) => {
                let i = i % (bytes.len() + 1);
                bytes.insert(i, b);
            }
            Mutation::Cut(i) => bytes.truncate(i % bytes.len()),
        }
    }
    bytes
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Cut),
        ],
        1..6,
    )
}

/// A decoded event must go through the lifecycle (as a creation or on a
/// created lead) without a panic.
fn judge(event: &leadflow::domain::LeadEvent) {
    let _ = lifecycle::handle(None, event);
    if let Ok(lead) = lifecycle::handle(None, &seeds_created()) {
        let _ = lifecycle::handle(Some(&lead), event);
    }
}

fn seeds_created() -> leadflow::domain::LeadEvent {
    thread_local!(static CREATED: leadflow::domain::LeadEvent = seeds()
        .into_iter()
        .find(|e| matches!(e.body, leadflow::domain::EventBody::Created(_)))
        .unwrap());
    CREATED.with(Clone::clone)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(e) = decode_event(&bytes) {
            judge(&e);
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if let Ok(e) = event_from_json(text) {
                judge(&e);
            }
        }
    }

    #[test]
    fn mutated_events_never_panic_the_decoders(pick in any::<prop::sample::Index>(), m in mutations()) {
        let all = seeds();
        let event = pick.get(&all);
        if let Ok(e) = decode_event(&mutate(encode_event(event), &m)) {
            judge(&e);
            // What decodes encodes back to something that decodes the same.
            prop_assert_eq!(decode_event(&encode_event(&e)).ok(), Some(e));
        }
        let json = mutate(event_to_json(event).into_bytes(), &m);
        if let Ok(text) = std::str::from_utf8(&json) {
            if let Ok(e) = event_from_json(text) {
                judge(&e);
            }
        }
    }

    #[test]
    fn any_file_reads_to_its_end_in_bounded_records(
        m in mutations(),
        noise in prop::collection::vec(any::<u8>(), 0..512),
        protobuf in any::<bool>(),
    ) {
        let format = if protobuf { Format::Protobuf } else { Format::Jsonl };
        let mut w = EventWriter::new(Vec::new(), format);
        for e in seeds().iter().take(20) {
            w.write(e).unwrap();
        }
        let mut bytes = mutate(w.into_inner(), &m);
        bytes.extend_from_slice(&noise);
        let limit = 2048;
        let mut r = EventReader::new(&bytes[..], format).with_record_bytes_max(limit);
        let mut records = 0usize;
        while let Some(record) = r.next_record().unwrap() {
            records += 1;
            prop_assert!(records <= bytes.len() + 1, "reading must end");
            match record {
                Ok(e) => judge(&e),
                Err((_, raw)) => prop_assert!(raw.len() <= limit.max(REJECTED_PREFIX_BYTES) + 2),
            }
        }
        prop_assert!(r.byte_offset() <= bytes.len() as u64);
    }
}
