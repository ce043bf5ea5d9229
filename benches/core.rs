//! Core benchmarks: the per-event cost of each stage, and durable append
//! throughput. Run: `cargo bench --bench core`.

// The engine's allocator, set up as the `leadflow` binary sets it up: the
// figures are the engine's, not the system allocator's (whose fresh pages
// for every growing map were most of a policy bench's time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use leadflow::codec;
use leadflow::config::ProjectionConfig;
use leadflow::domain::{lifecycle, LeadEvent};
use leadflow::log::{EventLog, Input, LogOptions};
use leadflow::projector::metrics::MetricParams;
use leadflow::projector::Projections;
use leadflow::sim::{SimConfig, Simulator};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn events(leads: u64) -> Vec<LeadEvent> {
    Simulator::new(SimConfig {
        leads,
        ..SimConfig::default()
    })
    .events()
    .collect()
}

fn per_event(c: &mut Criterion) {
    let evs = events(2_000);
    let mut g = c.benchmark_group("per_event");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.bench_function("lifecycle_handle", |b| {
        b.iter(|| {
            let mut states: HashMap<&str, lifecycle::Lead> = HashMap::new();
            for e in &evs {
                let next = lifecycle::handle(states.get(e.lead_id.as_str()), e).unwrap();
                states.insert(&e.lead_id, next);
            }
            states.len()
        })
    });
    g.bench_function("projections_apply", |b| {
        b.iter(|| {
            let mut p = Projections::new(MetricParams::from(&ProjectionConfig::default()));
            for (i, e) in evs.iter().enumerate() {
                p.apply(i as u64 + 1, e);
            }
            p.covered_seq
        })
    });
    let encoded: Vec<Vec<u8>> = evs.iter().map(codec::encode_event).collect();
    g.bench_function("protobuf_decode", |b| {
        b.iter(|| {
            encoded
                .iter()
                .filter(|b| codec::decode_event(b).is_ok())
                .count()
        })
    });
    // The events topic's decoder (format rule, headers) on the same bytes
    // with the content-type header `leadflow publish` sets: compare with
    // `protobuf_decode` in the same run.
    let headers = codec::wire::Headers {
        content_type: Some(codec::wire::CONTENT_TYPE_PROTOBUF.to_string()),
        ..Default::default()
    };
    let accept = codec::wire::Accept::default();
    g.bench_function("wire_decode_protobuf", |b| {
        b.iter(|| {
            encoded
                .iter()
                .filter(|b| codec::wire::decode_message(b, &headers, &accept).is_ok())
                .count()
        })
    });
    let json: Vec<Vec<u8>> = evs
        .iter()
        .map(|e| codec::event_to_json(e).into_bytes())
        .collect();
    let no_headers = codec::wire::Headers::default();
    g.bench_function("wire_decode_json", |b| {
        b.iter(|| {
            json.iter()
                .filter(|b| codec::wire::decode_message(b, &no_headers, &accept).is_ok())
                .count()
        })
    });
    g.finish();
}

fn durable_append(c: &mut Criterion) {
    let evs = events(20_000);
    let mut g = c.benchmark_group("log");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for batch in [100usize, 2_000] {
        g.throughput(Throughput::Elements(evs.len() as u64));
        g.bench_function(format!("append_durable_batch_{batch}"), |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().unwrap();
                    let log = EventLog::open(dir.path(), &LogOptions::default()).unwrap();
                    let inputs: Vec<Input> =
                        evs.iter().cloned().map(|e| Input::event(e, None)).collect();
                    (dir, log, inputs)
                },
                |(dir, mut log, inputs)| {
                    let started = Instant::now();
                    for chunk in inputs.chunks(batch) {
                        log.append(chunk, &[]).unwrap();
                    }
                    assert_eq!(log.last_seq(), evs.len() as u64);
                    (dir, started.elapsed())
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, per_event, durable_append);

/// `criterion_main!`, with the allocator set up as the binary's first.
fn main() {
    leadflow::keep_freed_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
