//! Black-box tests of the `leadflow` binary: what an operator types.

mod common;

use common::{leadflow_at as leadflow, ok};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scenario.jsonl");

#[test]
fn import_stats_inspect_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(leadflow(&data, &["import", FIXTURE]));
    // A second import of the same file resumes after its end: nothing new.
    let again = leadflow(&data, &["import", FIXTURE]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("19 skipped"));

    let stats: serde_json::Value = serde_json::from_str(&ok(leadflow(
        &data,
        &["stats", "--by", "channel", "--json"],
    )))
    .unwrap();
    assert_eq!(stats["rows"]["search"]["created"], 2);
    assert_eq!(stats["rows"]["search"]["money"]["CNY"]["roi"], 4.0);
    let pools: serde_json::Value =
        serde_json::from_str(&ok(leadflow(&data, &["stats", "--by", "pools", "--json"]))).unwrap();
    assert_eq!(pools["rows"]["general"]["utilisation"], 0.8);
    assert_eq!(pools["rows"]["general"]["waiting_now"], 1);
    let table = ok(leadflow(&data, &["stats", "--by", "owner"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("repB") && l.contains("50.0%")),
        "{table}"
    );

    let lead = ok(leadflow(&data, &["inspect", "lead", "L2"]));
    assert!(lead.contains("status converted"), "{lead}");
    assert!(lead.contains("previous owners [repA]"), "{lead}");
    assert_eq!(
        lead.matches("#").count(),
        6,
        "six events in L2's timeline:\n{lead}"
    );
    let l4 = ok(leadflow(&data, &["inspect", "lead", "L4", "--json"]));
    let l4: serde_json::Value = serde_json::from_str(&l4).unwrap();
    assert_eq!(l4["rejected"][0]["reason"], "not_owner");
    let missing = leadflow(&data, &["inspect", "lead", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no lead"));

    let rejections = ok(leadflow(
        &data,
        &["inspect", "rejections", "--reason", "duplicate"],
    ));
    assert_eq!(rejections.lines().count(), 1, "{rejections}");
    let totals = ok(leadflow(&data, &["inspect", "log"]));
    assert!(
        totals.contains("events   16") && totals.contains("rejected 3"),
        "{totals}"
    );

    let past = ok(leadflow(
        &data,
        &["replay", "--until", "2026-11-03T21:00:00Z"],
    ));
    assert!(
        past.contains("state as of 2026-11-03T21:00:00.000Z"),
        "{past}"
    );

    // Export → import into a fresh log gives the same events.
    let exported = dir.path().join("out.jsonl");
    ok(leadflow(
        &data,
        &["export", "--out", exported.to_str().unwrap()],
    ));
    let data2 = dir.path().join("data2");
    ok(leadflow(&data2, &["import", exported.to_str().unwrap()]));
    let a = ok(leadflow(&data, &["export"]));
    let b = ok(leadflow(&data2, &["export"]));
    assert_eq!(a, b);
    assert_eq!(a.lines().count(), 16);
}

/// BI export, checked with an independent reader: `stats --format csv`
/// and `--format parquet`, and `export --format parquet`, of the
/// hand-checked fixture (see `tests/fixture_metrics.rs` for the story),
/// read back by pyarrow.
#[test]
fn stats_and_events_open_in_an_independent_reader() {
    let python = std::env::var("LEADFLOW_TEST_PYTHON")
        .expect("LEADFLOW_TEST_PYTHON is not set: run ./scripts/test, which sets up the venv");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scenario.jsonl");
    ok(leadflow(&data, &["import", fixture]));

    // CSV: one row per channel and currency; social's CNY and USD apart.
    let csv = ok(leadflow(
        &data,
        &["stats", "--by", "channel", "--format", "csv"],
    ));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..2], &["channel", "currency"], "{csv}");
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name}: {csv}"))
    };
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let cells: Vec<(&str, &str, &str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r[0],
                r[1],
                r[col("created")],
                r[col("cost_minor_units")],
                r[col("roi")],
                r[col("recall_success_rate")],
            )
        })
        .collect();
    assert_eq!(
        cells,
        vec![
            ("search", "CNY", "2", "30000", "4", "1"),
            ("social", "CNY", "2", "5000", "-1", "0"),
            ("social", "USD", "2", "700", "-1", "0"),
        ],
        "{csv}"
    );

    // Parquet, read by pyarrow.
    let stats_pq = dir.path().join("stats.parquet");
    let events_pq = dir.path().join("events.parquet");
    ok(leadflow(
        &data,
        &[
            "stats",
            "--by",
            "owner",
            "--format",
            "parquet",
            "--out",
            stats_pq.to_str().unwrap(),
        ],
    ));
    ok(leadflow(
        &data,
        &[
            "export",
            "--format",
            "parquet",
            "--out",
            events_pq.to_str().unwrap(),
        ],
    ));
    let script = r#"
import json, sys
import pyarrow.parquet as pq
e = pq.read_table(sys.argv[1])
s = pq.read_table(sys.argv[2]).to_pylist()
types = {}
for t in e.column("type").to_pylist():
    types[t] = types.get(t, 0) + 1
print(json.dumps({
    "events": e.num_rows,
    "time_type": str(e.schema.field("occurred_at_ms").type),
    "first": {k: str(v) for k, v in e.slice(0, 1).to_pylist()[0].items() if v is not None},
    "types": types,
    "converted_cny": [r["deal_value_minor_units"] for r in e.to_pylist() if r["type"] == "converted"],
    "owners": [[r["owner"], r["currency"], r["assignments"], r["conversions"], r["revenue_minor_units"]] for r in s],
}))
"#;
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            script,
            events_pq.to_str().unwrap(),
            stats_pq.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow could not read them: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events"], 16, "{v}");
    assert_eq!(v["time_type"], "timestamp[ms, tz=UTC]", "{v}");
    assert_eq!(v["first"]["lead_id"], "L1", "{v}");
    assert_eq!(v["first"]["type"], "created", "{v}");
    assert_eq!(v["first"]["acquisition_cost_minor_units"], "10000", "{v}");
    assert_eq!(
        v["first"]["occurred_at_ms"], "2026-11-02 00:00:00+00:00",
        "{v}"
    );
    assert_eq!(
        v["types"],
        serde_json::json!({"created": 4, "scored": 1, "assigned": 4, "followed_up": 3, "recalled": 2, "converted": 2}),
        "{v}"
    );
    assert_eq!(
        v["converted_cny"],
        serde_json::json!([100000, 50000]),
        "{v}"
    );
    // repA: 2 assignments, L1 converted for 1000.00 CNY; repB the same
    // count and L2's 500.00 CNY.
    assert_eq!(
        v["owners"],
        serde_json::json!([["repA", "CNY", 2, 1, 100000], ["repB", "CNY", 2, 1, 50000]]),
        "{v}"
    );
    // Parquet needs a file.
    let err = leadflow(&data, &["export", "--format", "parquet"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("give --out FILE"));
}

/// Report days in a time zone, DST-correct (see `tests/fixture_metrics.rs`
/// for the story): repB's first follow-up of L3 at h40 (2026-11-03T16:00Z)
/// is on Nov 3 in UTC but on Nov 4 in Shanghai (00:00 local), so repB's
/// Nov 4 has one first follow-up in UTC (L2's) and two in Shanghai; every
/// lead was created on Nov 2 UTC, which is Nov 1 in Los Angeles.
#[test]
fn stats_count_days_in_the_report_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scenario.jsonl");
    ok(leadflow(&data, &["import", fixture]));
    let nov4 = [
        "--by",
        "owner",
        "--from",
        "2026-11-04",
        "--to",
        "2026-11-05",
        "--json",
    ];
    let rep_b = |extra: &[&str]| -> (u64, u64) {
        let mut args = extra.to_vec();
        args.push("stats");
        args.extend(nov4);
        let v: serde_json::Value = serde_json::from_str(&ok(leadflow(&data, &args))).unwrap();
        let b = &v["rows"]["repB"];
        (
            b["first_follow_ups"].as_u64().unwrap(),
            b["first_follow_ups_within_sla"].as_u64().unwrap(),
        )
    };
    assert_eq!(rep_b(&[]), (1, 1));
    // `--tz` folds the log again for the answer.
    let mut args = vec!["stats"];
    args.extend(nov4);
    args.extend(["--tz", "Asia/Shanghai"]);
    let v: serde_json::Value = serde_json::from_str(&ok(leadflow(&data, &args))).unwrap();
    assert_eq!(
        (
            v["rows"]["repB"]["first_follow_ups"].as_u64(),
            v["rows"]["repB"]["first_follow_ups_within_sla"].as_u64()
        ),
        (Some(2), Some(1)),
        "{v}"
    );
    // So does `report.time_zone` in the config (the projections are
    // rebuilt in it), and UTC again after it.
    let config = dir.path().join("leadflow.toml");
    std::fs::write(&config, "[report]\ntime_zone = \"Asia/Shanghai\"\n").unwrap();
    assert_eq!(rep_b(&["--config", config.to_str().unwrap()]), (2, 1));
    assert_eq!(rep_b(&[]), (1, 1));
    let days: serde_json::Value = serde_json::from_str(&ok(leadflow(
        &data,
        &[
            "stats",
            "--by",
            "day",
            "--json",
            "--tz",
            "America/Los_Angeles",
        ],
    )))
    .unwrap();
    assert_eq!(days["rows"]["2026-11-01"]["created"], 4, "{days}");
    let bad = leadflow(&data, &["stats", "--tz", "Mars/Olympus"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("\"Mars/Olympus\" is not an IANA time zone"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Money in one reporting currency at dated rates (see
/// `tests/fixture_metrics.rs` for the story): costs on Nov 2 at the CNY
/// rate then (0.14 USD), deals on and after Nov 3 at the next (0.15).
#[test]
fn stats_report_money_in_one_currency_at_dated_rates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scenario.jsonl");
    ok(leadflow(&data, &["import", fixture]));
    let config = dir.path().join("leadflow.toml");
    let stats = |rates: &str, by: &str| -> serde_json::Value {
        std::fs::write(&config, format!("[report]\ncurrency = \"USD\"\n{rates}")).unwrap();
        serde_json::from_str(&ok(leadflow(
            &data,
            &[
                "--config",
                config.to_str().unwrap(),
                "stats",
                "--by",
                by,
                "--json",
            ],
        )))
        .unwrap()
    };
    let both = "[[report.rates]]\ncurrency = \"CNY\"\nfrom = \"2026-01-01\"\nrate = \"0.14\"\n\
                [[report.rates]]\ncurrency = \"CNY\"\nfrom = \"2026-11-03\"\nrate = \"0.15\"\n";
    let v = stats(both, "channel");
    let search = &v["rows"]["search"]["reporting"];
    // Cost 300.00 CNY * 0.14 = 42.00 USD; deals 1000 + 500 CNY * 0.15 =
    // 225.00 USD; lifetime values 3000 and 500 CNY * 0.15 over two.
    assert_eq!(search["currency"], "USD", "{v}");
    assert_eq!(search["cost_minor_units"], 4_200, "{v}");
    assert_eq!(search["revenue_minor_units"], 22_500, "{v}");
    let roi = search["roi"].as_f64().unwrap();
    assert!((roi - (22_500.0 - 4_200.0) / 4_200.0).abs() < 1e-9, "{v}");
    assert_eq!(search["cac_minor_units"], 2_100.0, "{v}");
    assert_eq!(search["avg_clv_minor_units"], 26_250.0, "{v}");
    assert_eq!(search["amounts_without_rate"], 0, "{v}");
    // Social: 50.00 CNY (7.00 USD) and 7.00 USD of cost, nothing earned —
    // one number where the per-currency figures are two.
    let social = &v["rows"]["social"];
    assert_eq!(social["reporting"]["cost_minor_units"], 1_400, "{v}");
    assert_eq!(social["reporting"]["roi"], -1.0, "{v}");
    assert_eq!(social["money"].as_object().unwrap().len(), 2, "{v}");
    let owners = stats(both, "owner");
    assert_eq!(
        owners["rows"]["repA"]["revenue_reporting"]["minor_units"], 15_000,
        "{owners}"
    );
    // A rate table that starts too late says so instead of guessing.
    let late = stats(
        "[[report.rates]]\ncurrency = \"CNY\"\nfrom = \"2026-11-03\"\nrate = \"0.15\"\n",
        "channel",
    );
    let search = &late["rows"]["search"]["reporting"];
    assert_eq!(search["cost_minor_units"], 0, "{late}");
    assert_eq!(search["amounts_without_rate"], 2, "{late}");
    // A bad table is refused at start, naming the entry.
    std::fs::write(
        &config,
        "[report]\ncurrency = \"USD\"\n[[report.rates]]\ncurrency = \"CNY\"\nfrom = \"2026-13-01\"\nrate = \"0.14\"\n",
    )
    .unwrap();
    let bad = leadflow(&data, &["--config", config.to_str().unwrap(), "stats"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("report.rates[0].from \"2026-13-01\" is not a date"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn simulate_is_deterministic_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("unused");
    let run = |name: &str| {
        let p = dir.path().join(name);
        ok(leadflow(
            &data,
            &[
                "simulate",
                "--leads",
                "200",
                "--days",
                "5",
                "--seed",
                "3",
                "--out",
                p.to_str().unwrap(),
            ],
        ));
        std::fs::read(p).unwrap()
    };
    assert_eq!(run("a.jsonl"), run("b.jsonl"));
    let pb = run("c.pb");
    assert!(!pb.is_empty() && pb != run("a.jsonl"));
    // Both formats import to the same log contents.
    for f in ["a.jsonl", "c.pb"] {
        ok(leadflow(
            &dir.path().join(format!("log-{f}")),
            &["import", dir.path().join(f).to_str().unwrap()],
        ));
    }
    assert_eq!(
        ok(leadflow(&dir.path().join("log-a.jsonl"), &["export"])),
        ok(leadflow(&dir.path().join("log-c.pb"), &["export"]))
    );
}

#[test]
fn errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "[log]\nbatch_size = 3\n").unwrap();
    let out = leadflow(
        &data,
        &["--config", bad_config.to_str().unwrap(), "inspect", "log"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("batch_size"), "{err}");

    let out = leadflow(&data, &["import", "/no/such/file.jsonl"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.jsonl"));

    let out = leadflow(&data, &["stats", "--from", "last tuesday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));

    let help = ok(leadflow(&data, &["--help"]));
    for cmd in [
        "demo", "import", "replay", "inspect", "stats", "export", "simulate",
    ] {
        assert!(help.contains(cmd), "--help lacks {cmd}");
    }
}

/// The README's first command, shortened: the live demo on the in-process
/// Kafka runs the whole loop — leads published, the engine deciding
/// assignments, the simulated CRM carrying them out, reps converting and
/// recalling — and stops cleanly when its time is up.
#[test]
fn the_live_demo_runs_the_whole_loop_and_stops_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = ok(leadflow(
        &dir.path().join("data"),
        &[
            "demo",
            "--duration-s",
            "10",
            "--rate",
            "100",
            "--bad-ratio",
            "0.05",
        ],
    ));
    assert!(started.elapsed().as_secs() < 60, "stopped on time");
    let number = |after: &str| -> u64 {
        out.split(after)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.trim_end_matches([',', '.', ')']).parse().ok())
            .unwrap_or_else(|| panic!("no {after:?} in:\n{out}"))
    };
    let leads = number("The world published ");
    let assignments = number("leads, ");
    let decided = number("decided ");
    let published = number("commands and published ");
    assert!(leads > 300, "{out}");
    assert!(assignments > 0 && assignments <= decided, "{out}");
    assert_eq!(decided, published, "the outbox drained on shutdown:\n{out}");
    assert!(out.contains("conversions"), "{out}");
    // Garbage went to the dead-letter topic, and nothing else was rejected.
    let rejected = number(", rejected ");
    let dead_letters = number("dead-letter topic: ");
    assert!(rejected > 0 && rejected == dead_letters, "{out}");
    assert!(out.contains("rejected undecodable"), "{out}");
    assert!(!out.contains("rejected unknown_lead"), "{out}");
}

/// `backtest` decides under per-pool rules and `when` clauses: the same
/// history under one tenant-wide 48 h SLA, and under a candidate whose
/// `smb` pool writes its own 4 h SLA (in people's units) and its own cold
/// pool after one recall.
#[test]
fn backtest_understands_per_pool_rules() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let events = dir.path().join("e.pb");
    ok(leadflow(
        &data,
        &[
            "simulate",
            "--leads",
            "400",
            "--days",
            "8",
            "--out",
            events.to_str().unwrap(),
        ],
    ));
    ok(leadflow(&data, &["import", events.to_str().unwrap()]));
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let pools = "[[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\n\
                 members = [{ id = \"rep-001\", capacity = 50 }, { id = \"rep-002\", capacity = 50 }]\n";
    let baseline = write(
        "tenant.toml",
        &format!("version = 1\n[rules]\nfirst_follow_up_sla = \"48h\"\n{pools}"),
    );
    let candidate = write(
        "per-pool.toml",
        &format!(
            "version = 2\n[rules]\nfirst_follow_up_sla = \"48h\"\n{pools}\
             [pools.rules]\nfirst_follow_up_sla = \"4h\"\nmax_recalls = 1\ncold_pool = \"smb-cold\"\n\
             [[pools]]\nname = \"smb-cold\"\nkind = \"claimable\"\n"
        ),
    );
    let out: serde_json::Value = serde_json::from_str(&ok(leadflow(
        &data,
        &[
            "backtest",
            "--baseline",
            baseline.to_str().unwrap(),
            "--policy",
            candidate.to_str().unwrap(),
            "--json",
        ],
    )))
    .unwrap();
    let (b, c) = (&out["baseline"]["outcome"], &out["candidate"]["outcome"]);
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    assert!(n(&b["assignments"]) > 0, "{out}");
    assert!(
        n(&c["sla_breaches"]) > n(&b["sla_breaches"]),
        "the pool's 4 h SLA breaches more than the tenant's 48 h: {out}"
    );
    assert_eq!(
        n(&b["to_cold_pool"]),
        0,
        "the tenant has no cold pool: {out}"
    );
    // The smb pool sends every recall to its cold pool; the enterprise
    // pool (tenant rules, 48 h, no cold pool) sends none there.
    let to_cold = n(&c["to_cold_pool"]);
    assert!(to_cold > 0, "{out}");
    assert!(n(&c["recalls"]) - to_cold <= n(&b["recalls"]), "{out}");
}

/// `backtest` replays a simulated history under two policies that differ in
/// their first-follow-up SLA: the stricter one breaches more, and both see
/// the same assignments to make.
#[test]
fn backtest_compares_two_policies_on_the_same_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let events = dir.path().join("e.pb");
    ok(leadflow(
        &data,
        &[
            "simulate",
            "--leads",
            "600",
            "--days",
            "10",
            "--out",
            events.to_str().unwrap(),
        ],
    ));
    ok(leadflow(&data, &["import", events.to_str().unwrap()]));
    let policy = |name: &str, sla_h: i64| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "version = {sla_h}\n[rules]\nfirst_follow_up_sla_ms = {}\nreminder_lead_ms = 1800000\n\
                 [[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\n\
                 members = [{{ id = \"rep-001\", capacity = 50 }}, {{ id = \"rep-002\", capacity = 50 }}]\n",
                sla_h * 3_600_000
            ),
        )
        .unwrap();
        path
    };
    let (lenient, strict) = (policy("lenient.toml", 48), policy("strict.toml", 4));
    let out: serde_json::Value = serde_json::from_str(&ok(leadflow(
        &data,
        &[
            "backtest",
            "--baseline",
            lenient.to_str().unwrap(),
            "--policy",
            strict.to_str().unwrap(),
            "--sim-seed",
            "42",
            "--json",
        ],
    )))
    .unwrap();
    let (b, c) = (&out["baseline"]["outcome"], &out["candidate"]["outcome"]);
    assert_eq!(b["policy_version"], 48);
    assert_eq!(c["policy_version"], 4);
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    assert!(n(&b["assignments"]) > 0, "{out}");
    assert!(
        n(&c["sla_breaches"]) > n(&b["sla_breaches"]),
        "a 4 h SLA breaches more than a 48 h one: {out}"
    );
    assert_eq!(
        n(&c["recalls"]),
        n(&c["recalls_by_reason"]["no_first_follow_up"])
    );
    assert!(n(&c["reminders"]) > 0);
    // The simulator's model estimates conversions for each allocation.
    let expected = |v: &serde_json::Value| v["expected_conversions"].as_f64().unwrap();
    assert!(expected(b) > 0.0 && expected(c) > 0.0, "{out}");
    assert!(expected(b) <= n(&b["assignments"]) as f64);
    let gini = c["fairness_gini"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&gini));
    // Fairness and SLA compliance per rep, against the policy's capacities.
    let config = dir.path().join("leadflow.toml");
    std::fs::write(
        &config,
        format!("[policy]\nfile = {:?}\n", lenient.display().to_string()),
    )
    .unwrap();
    let fair: serde_json::Value = serde_json::from_str(&ok(leadflow(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "stats",
            "--by",
            "fairness",
            "--json",
        ],
    )))
    .unwrap();
    let reps = fair["reps"].as_array().unwrap();
    assert_eq!(reps.len(), 2, "{fair}");
    assert_eq!(reps[0]["rep"], "rep-001");
    assert_eq!(reps[0]["capacity"], 50);
    assert!(n(&reps[0]["assignments"]) > 0, "{fair}");
    assert!((0.0..=1.0).contains(&fair["gini"].as_f64().unwrap()));
    // The table form names both policies.
    let table = ok(leadflow(
        &data,
        &[
            "backtest",
            "--baseline",
            lenient.to_str().unwrap(),
            "--policy",
            strict.to_str().unwrap(),
        ],
    ));
    assert!(
        table.contains("lenient.toml") && table.contains("SLA breaches"),
        "{table}"
    );
}

#[test]
fn stats_by_pools_has_a_row_for_every_pool_holding_leads() {
    // Given, on 2026-11-01: L1 created in pool "quiet" (it waits there),
    // L2 created in "general" and assigned to repA under pool "vip" (it
    // waited in general and is held under vip).
    let dir = tempfile::tempdir().unwrap();
    let day1 = 1_793_577_600_000i64; // 2026-11-01T00:00:00Z
    let lines = [
        format!(
            r#"{{"eventId":"p-1","leadId":"L1","occurredAtMs":"{}","producer":"t","created":{{"channel":"search","pool":"quiet","acquisitionCost":{{"minorUnits":"100","currency":"CNY"}}}}}}"#,
            day1
        ),
        format!(
            r#"{{"eventId":"p-2","leadId":"L2","occurredAtMs":"{}","producer":"t","created":{{"channel":"search","pool":"general","acquisitionCost":{{"minorUnits":"100","currency":"CNY"}}}}}}"#,
            day1 + 1_000
        ),
        format!(
            r#"{{"eventId":"p-3","leadId":"L2","occurredAtMs":"{}","producer":"t","assigned":{{"ownerId":"repA","method":"ASSIGNMENT_METHOD_RULE","pool":"vip"}}}}"#,
            day1 + 2_000
        ),
    ];
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let data = dir.path().join("data");
    ok(leadflow(&data, &["import", file.to_str().unwrap()]));
    // When the pools are reported over a window with no flow in it (from
    // 2026-11-05).
    let pools: serde_json::Value = serde_json::from_str(&ok(leadflow(
        &data,
        &["stats", "--by", "pools", "--json", "--from", "2026-11-05"],
    )))
    .unwrap();
    let rows = &pools["rows"];
    // Then the quiet pool shows its waiting lead (also at the window's
    // start), general shows nothing waiting (L2 left it, counted as its
    // outflow before the window), and vip, where L2 is held but never
    // waited, has its row with the held lead and no flows.
    assert_eq!(rows["quiet"]["waiting_now"], 1, "{pools}");
    assert_eq!(rows["quiet"]["waiting_at_start"], 1, "{pools}");
    assert_eq!(rows["general"]["waiting_now"], 0, "{pools}");
    assert_eq!(rows["general"]["waiting_at_start"], 0, "{pools}");
    assert_eq!(rows["vip"]["held_now"], 1, "{pools}");
    assert_eq!(rows["vip"]["inflow"], 0, "{pools}");
    assert_eq!(rows["vip"]["outflow"], 0, "{pools}");
    assert_eq!(rows.as_object().unwrap().len(), 3, "{pools}");
    // And the table lists the same three pools.
    let table = ok(leadflow(
        &data,
        &["stats", "--by", "pools", "--from", "2026-11-05"],
    ));
    for pool in ["quiet", "general", "vip"] {
        assert!(table.lines().any(|l| l.starts_with(pool)), "{table}");
    }
}

/// `bench --replay` needs no broker: it fills a fresh log and times three
/// passes over it. Figures are not asserted (they belong to benches), only
/// that every pass ran over every event and the sizes were measured; and
/// that it does not mix with the Kafka bench's options.
#[test]
fn bench_replay_times_three_passes_over_one_log_without_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let doc: serde_json::Value = serde_json::from_str(&ok(leadflow(
        &data,
        &["bench", "--replay", "--leads", "300", "--json"],
    )))
    .unwrap();
    // About 14 events per lead, none lost on the way into the log.
    assert!(doc["events"].as_u64().unwrap() > 300 * 10, "{doc}");
    assert!(doc["protobuf_bytes"].as_u64().unwrap() > doc["events"].as_u64().unwrap() * 20);
    assert!(doc["data_dir_bytes"].as_u64().unwrap() > 0, "{doc}");
    // Compression makes the data dir smaller than the same log without.
    assert!(
        doc["data_dir_bytes"].as_u64().unwrap()
            < doc["data_dir_bytes_uncompressed"].as_u64().unwrap(),
        "{doc}"
    );
    for pass in ["decode_only_per_s", "one_thread_per_s", "replay_per_s"] {
        assert!(doc[pass].as_f64().unwrap() > 0.0, "{pass}: {doc}");
    }
    assert_eq!(doc["runs_each"], 3);
    // The bench's log lives in a temporary directory, never the data dir.
    assert!(!data.exists());
    let mixed = leadflow(&data, &["bench", "--replay", "--scoring"]);
    assert!(!mixed.status.success());
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("cannot be used with"));
}

/// `bench --policy-state N` needs no broker either: it builds N open
/// assignments and sizes them. Figures are the bench's; asserted here is
/// that it measured something of the right scale for that many.
#[test]
fn bench_policy_state_sizes_open_assignments_without_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let doc: serde_json::Value = serde_json::from_str(&ok(leadflow(
        &data,
        &["bench", "--policy-state", "20000", "--json"],
    )))
    .unwrap();
    assert_eq!(doc["assignments"], 20000);
    // Each assignment's snapshot names at least its lead and rep; stored,
    // it is compressed (the log's default) and takes less.
    let raw = doc["snapshot_raw_bytes_per_assignment"].as_f64().unwrap();
    assert!((20.0..100_000.0).contains(&raw), "{doc}");
    let stored = doc["snapshot_bytes_per_assignment"].as_f64().unwrap();
    assert!(stored > 0.0 && stored < raw, "{doc}");
    assert!(doc["memory_bytes_per_assignment"].as_f64().unwrap() >= 0.0);
    assert!(!data.exists());
    let refused = leadflow(&data, &["bench", "--policy-state", "0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("1..=10000000"));
}
