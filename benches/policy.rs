//! Policy benchmarks: the processor's cost per event under every rule (one
//! processor, the same behind the per-tenant `Policies` the engine holds,
//! and 50 tenants each with its own table), and one million pending
//! deadlines — memory and fire throughput, and deadlines under a business
//! calendar.
//! Run: `cargo bench --bench policy`.

// The engine's allocator, set up as the `leadflow` binary sets it up: the
// figures are the engine's, not the system allocator's (whose fresh pages
// for every growing map were most of a policy bench's time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use leadflow::domain::*;
use leadflow::policy::{Policies, PolicyFile, Processor};
use leadflow::sim::{SimConfig, Simulator};
use std::time::Instant;

const H: i64 = 3_600_000;
const T0: i64 = 1_790_000_000_000;

fn policy() -> PolicyFile {
    PolicyFile::parse(&format!(
        "version = 1\n[rules]\nfirst_follow_up_sla_ms = {}\nstale_after_ms = {}\nmax_holding_ms = {}\n\
         reminder_lead_ms = {}\ncooldown_ms = {}\nmax_recalls = 3\ncold_pool = \"cold\"\n\
         daily_assignment_cap = 50\n\
         [[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\nstrategy = \"least_loaded\"\n\
         members = [{}]\n\
         [[pools]]\nname = \"enterprise\"\nkind = \"auto_assign\"\n\
         members = [{{ id = \"rep-000\", capacity = 300 }}, {{ id = \"rep-004\", capacity = 300 }}]\n\
         [[pools]]\nname = \"cold\"\nkind = \"claimable\"\n",
        24 * H,
        72 * H,
        30 * 24 * H,
        4 * H,
        7 * 24 * H,
        (1..40)
            .filter(|i| i % 4 != 0)
            .map(|i| format!("{{ id = \"rep-{i:03}\", capacity = 300 }}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .unwrap()
}

fn handle_per_event(c: &mut Criterion) {
    let events: Vec<LeadEvent> = Simulator::new(SimConfig {
        leads: 2_000,
        ..SimConfig::default()
    })
    .events()
    .collect();
    let policy = policy();
    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("handle_per_event_all_rules", |b| {
        b.iter(|| {
            let mut p = Processor::new(policy.clone());
            let mut commands = 0;
            for (i, e) in events.iter().enumerate() {
                commands += p.handle(i as u64 + 1, e).len();
            }
            commands
        })
    });
    // The same events through the per-tenant face the engine holds: one
    // tenant, so the difference is the face's own cost.
    g.bench_function("handle_per_event_all_rules_policies", |b| {
        b.iter(|| {
            let mut p = Policies::new(policy.clone());
            let mut commands = 0;
            for (i, e) in events.iter().enumerate() {
                commands += p.handle(i as u64 + 1, e).len();
            }
            commands
        })
    });
    // The same workload spread over 50 tenants, each with the same table
    // (its own reps): 50 processors behind one face.
    let tenants: Vec<LeadEvent> = Simulator::new(SimConfig {
        leads: 2_000,
        tenants: 50,
        ..SimConfig::default()
    })
    .events()
    .collect();
    let mut table = policy.clone();
    table.tenants.clear();
    let mut fifty = policy.clone();
    for t in 0..50 {
        fifty.tenants.insert(
            format!("tenant-{t:02}"),
            leadflow::policy::TenantPolicy {
                rules: table.rules.clone(),
                pools: table.pools.clone(),
                duplicates: table.duplicates.clone(),
                time_zone: None,
                scoring: Default::default(),
            },
        );
    }
    g.bench_function("handle_per_event_all_rules_50_tenants", |b| {
        b.iter(|| {
            let mut p = Policies::new(fifty.clone());
            let mut commands = 0;
            for (i, e) in tenants.iter().enumerate() {
                commands += p.handle(i as u64 + 1, e).len();
            }
            commands
        })
    });
    g.finish();
}

/// A processor holding `n` assignments, each with a pending first-follow-up
/// deadline (created and assigned one millisecond apart).
fn pending(n: u64) -> Processor {
    let policy = PolicyFile::parse(
        "version = 1\n[rules]\nfirst_follow_up_sla_ms = 86400000\n\
         [[pools]]\nname = \"manual\"\nkind = \"claimable\"\n",
    )
    .unwrap();
    let mut p = Processor::new(policy);
    for (seq, event) in (1..).zip(leadflow::sim::assignments::open_assignments(n, T0)) {
        p.handle(seq, &event);
    }
    p
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn million_deadlines(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    // Memory, measured once (criterion measures time only).
    let before = rss_bytes();
    let started = Instant::now();
    let p = pending(N);
    let built = started.elapsed();
    let after = rss_bytes();
    let snapshot = p.state_to_bytes().len();
    eprintln!(
        "1M pending deadlines: built in {:.2}s, RSS +{} MB (policy state incl. its pool view), snapshot {} MB",
        built.as_secs_f64(),
        (after.saturating_sub(before)) / 1_000_000,
        snapshot / 1_000_000
    );
    assert_eq!(p.state().due.len() as u64, N);
    drop(p);

    let mut g = c.benchmark_group("deadlines");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    g.bench_function("fire_1m_recalls", |b| {
        b.iter_batched(
            || pending(N),
            |mut p| {
                // `advance` fires at most 10,000 per call (a bound on the
                // work per call); the engine calls it again on its next tick.
                let mut fired = 0;
                loop {
                    let n = p.advance(T0 + 48 * H).len();
                    if n == 0 {
                        break;
                    }
                    fired += n;
                }
                assert_eq!(fired as u64, N);
                fired
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// What scoring costs the processor: the simulated floor with its
/// marketing interactions under the policy above, without scoring and with
/// every scoring rule on (its scores fed back right after the event that
/// moved them, as the engine appends them).
fn scoring_cost(c: &mut Criterion) {
    let events: Vec<LeadEvent> = Simulator::new(SimConfig {
        leads: 4_000,
        days: 60,
        engagement: true,
        ..SimConfig::default()
    })
    .events()
    .collect();
    let plain = policy();
    let mut scoring = policy();
    scoring.scoring = leadflow::sim::scoring::every_rule();
    let run = |policy: &PolicyFile| {
        let mut p = Policies::new(policy.clone());
        let mut seq = 0;
        let mut commands = 0;
        for e in &events {
            seq += 1;
            commands += p.handle(seq, e).len();
            for scored in p.scores_to_publish() {
                seq += 1;
                commands += p.handle(seq, &scored).len();
            }
        }
        commands
    };
    let mut g = c.benchmark_group("scoring");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("handle_per_event_no_scoring", |b| b.iter(|| run(&plain)));
    g.bench_function("handle_per_event_every_scoring_rule", |b| {
        b.iter(|| run(&scoring))
    });
    g.finish();
}

/// A held lead's deadlines under a business calendar (Asia/Shanghai,
/// 09:00-18:00 on weekdays, two holidays): the first follow-up (24 working
/// hours), stale (72) and longest holding (30 days: ~115 dates to cross)
/// from one start, and the reminder 4 working hours before each; what a
/// `watch` computes for every assignment and follow-up in a pool with a
/// calendar.
fn calendar_deadlines(c: &mut Criterion) {
    use leadflow::policy::calendar::{Calendar, CalendarSpec};
    let calendar = Calendar::parse(&CalendarSpec {
        time_zone: "Asia/Shanghai".into(),
        working_hours: "09:00-18:00".into(),
        working_days: ["mon", "tue", "wed", "thu", "fri"]
            .map(String::from)
            .to_vec(),
        holidays: vec!["2026-10-01".into(), "2026-10-02".into()],
    })
    .unwrap();
    // Starts spread over four months, seven minutes apart and more.
    let starts: Vec<i64> = (0..1_000).map(|i| T0 + i * 10_007_000).collect();
    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(starts.len() as u64));
    g.bench_function("calendar_deadlines_per_assignment", |b| {
        b.iter(|| {
            let mut sum = 0i64;
            for at in &starts {
                for limit in [24 * H, 72 * H, 30 * 24 * H] {
                    let due = calendar.add_working(*at, limit);
                    sum = sum.wrapping_add(calendar.sub_working(due, 4 * H));
                }
            }
            sum
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    handle_per_event,
    million_deadlines,
    scoring_cost,
    calendar_deadlines
);

/// `criterion_main!`, with the allocator set up as the binary's first.
fn main() {
    leadflow::keep_freed_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
