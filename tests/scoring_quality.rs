//! The predictive score against the best any model could do: on a simulated
//! history the simulator knows each lead's true probability of conversion.

use leadflow::domain::time::MS_PER_DAY;
use leadflow::sim::scoring::measure_standard;

mod common;
use common::{leadflow_at, ok};

#[test]
fn the_model_ranks_held_out_leads_nearly_as_well_as_their_true_probabilities() {
    // 20,000 leads over 90 days, those first followed up on days 45-70
    // held out (`sim::scoring::measure_standard`, as `leadflow bench
    // --scoring` measures it).
    let q = measure_standard(42);
    eprintln!(
        "model AUC {:?}, true probabilities' AUC {:?}, over {} held-out leads ({} converted); \
         {} model versions over {} events",
        q.model.auc, q.truth.auc, q.model.leads, q.model.converted, q.model_versions, q.events
    );
    // Enough held-out leads and conversions for the AUCs to mean something
    // (its standard error is about 0.01 here), from a model retrained daily.
    assert!(q.model.leads > 5_000 && q.model.converted > 300, "{q:?}");
    assert!(q.model_versions >= 60, "{}", q.model_versions);
    let ratio = q
        .auc_ratio()
        .expect("both outcomes among the held-out leads");
    assert!(ratio >= 0.9, "model AUC / true AUC = {ratio:.3}");
    // The model ranks: its top decile converts well above the average.
    assert!(q.model.lift_top_decile.expect("ten deciles") > 1.5, "{q:?}");
}

/// `stats --by score-model` through the binary: a simulated history with
/// its marketing interactions imported, and the simulator's own model
/// (`sim-v1`) measured against what came of its leads.
#[test]
fn stats_by_score_model_measures_each_model_on_known_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let events = dir.path().join("events.pb");
    let events = events.to_str().unwrap();
    ok(leadflow_at(
        &data,
        &[
            "simulate",
            "--leads",
            "1500",
            "--days",
            "40",
            "--engagement",
            "--out",
            events,
        ],
    ));
    ok(leadflow_at(&data, &["import", events]));
    let json = ok(leadflow_at(
        &data,
        &["stats", "--by", "score-model", "--horizon", "10d", "--json"],
    ));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["horizon_ms"], 10 * MS_PER_DAY);
    let sim = &doc["rows"]["sim-v1"];
    // Leads created in the last 10 days have no known outcome yet unless
    // they converted: fewer than every lead count, most do.
    let leads = sim["leads"].as_u64().unwrap();
    assert!((1_000..1_500).contains(&leads), "{sim}");
    assert!(sim["converted"].as_u64().unwrap() > 30, "{sim}");
    // The simulator's score follows its leads' quality: it ranks them far
    // better than chance, and its top decile converts above the average.
    let auc = sim["auc"].as_f64().unwrap();
    assert!((0.6..1.0).contains(&auc), "{sim}");
    assert!(sim["lift_top_decile"].as_f64().unwrap() > 1.2, "{sim}");
    assert_eq!(sim["calibration"].as_array().unwrap().len(), 10);
    // The table for people says the same.
    let text = ok(leadflow_at(
        &data,
        &["stats", "--by", "score-model", "--horizon", "10d"],
    ));
    assert!(
        text.contains("sim-v1") && text.contains(&format!("{auc:.3}")),
        "{text}"
    );
    // A horizon longer than the history: only the conversions are known,
    // one outcome, so no AUC (a dash, not a number made up).
    let none = ok(leadflow_at(
        &data,
        &[
            "stats",
            "--by",
            "score-model",
            "--horizon",
            "400d",
            "--json",
        ],
    ));
    let none: serde_json::Value = serde_json::from_str(&none).unwrap();
    let sim = &none["rows"]["sim-v1"];
    assert_eq!(sim["leads"], sim["converted"], "{sim}");
    assert!(sim["auc"].is_null(), "{sim}");
    // Wrong uses are refused with the reason.
    let out = leadflow_at(&data, &["stats", "--horizon", "10d"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--by score-model"));
    let out = leadflow_at(
        &dir.path().join("nothing"),
        &["stats", "--by", "score-model"],
    );
    assert!(!out.status.success());
}

/// `backtest` of allocation by the engine's own predicted score against a
/// policy in force that ignores scores, on the simulator's ground truth.
#[test]
fn backtest_compares_allocation_by_predicted_score_with_the_policy_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let events = dir.path().join("events.pb");
    let events = events.to_str().unwrap();
    ok(leadflow_at(
        &data,
        &[
            "simulate",
            "--leads",
            "3000",
            "--days",
            "40",
            "--engagement",
            "--out",
            events,
        ],
    ));
    ok(leadflow_at(&data, &["import", events]));
    // Three reps of 40 leads each: capacity binds, leads wait, and which
    // go out first matters.
    let pool = "[rules]\nfirst_follow_up_sla_ms = 172800000\n\
                [[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\n\
                members = [{ id = \"rep-001\", capacity = 40 }, { id = \"rep-002\", capacity = 40 }, \
                { id = \"rep-003\", capacity = 40 }]\n";
    let baseline = dir.path().join("in-force.toml");
    std::fs::write(
        &baseline,
        format!("version = 1\n{pool}strategy = \"round_robin\"\n"),
    )
    .unwrap();
    let candidate = dir.path().join("by-score.toml");
    std::fs::write(
        &candidate,
        format!(
            "version = 2\n{pool}strategy = \"score_priority\"\n\
             [scoring]\nweights = {{ attribute = 0, behaviour = 30, predictive = 70 }}\n\
             [scoring.behaviour.email_reply]\npoints = 30\n\
             [scoring.behaviour.form_submit]\npoints = 30\n\
             [scoring.behaviour.web_visit]\npoints = 5\n\
             [scoring.predictive]\nhorizon = \"10d\"\nmin_examples = 100\n"
        ),
    )
    .unwrap();
    let out: serde_json::Value = serde_json::from_str(&ok(leadflow_at(
        &data,
        &[
            "backtest",
            "--baseline",
            baseline.to_str().unwrap(),
            "--policy",
            candidate.to_str().unwrap(),
            "--sim-seed",
            "42",
            "--json",
        ],
    )))
    .unwrap();
    let (b, c) = (&out["baseline"]["outcome"], &out["candidate"]["outcome"]);
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    // The candidate scored the history itself and published its scores;
    // the policy in force scores nothing.
    assert_eq!(n(&b["score_updates"]), 0, "{out}");
    assert!(n(&c["score_updates"]) > 3_000, "{out}");
    // Both assign about as many leads; the leads the candidate sends out
    // first are the ones likelier to buy: more conversions expected by
    // the simulator's model of the same reps.
    let (ab, ac) = (n(&b["assignments"]), n(&c["assignments"]));
    assert!(ab > 1_000 && ac.abs_diff(ab) < ab / 20, "{out}");
    let expected = |v: &serde_json::Value| v["expected_conversions"].as_f64().unwrap();
    assert!(expected(c) > 1.05 * expected(b), "{out}");
}

/// `leadflow bench --scoring` on the test broker: both sides of the
/// comparison ran over every message, the engine's scores were published,
/// and the quality line is the standard measure's (no timing is asserted:
/// figures belong to benches).
#[test]
fn bench_scoring_reports_both_runs_and_the_models_quality() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\n\
         members = [{ id = \"rep-001\", capacity = 300 }, { id = \"rep-002\", capacity = 300 }]\n",
    )
    .unwrap();
    let config = dir.path().join("leadflow.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{}\"\n[policy]\nfile = {:?}\n",
            common::brokers(),
            policy.display().to_string()
        ),
    )
    .unwrap();
    let out = ok(common::leadflow(&dir.path().join("data"), &config)
        .args(["bench", "--leads", "300", "--scoring", "--json"])
        .output()
        .unwrap());
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["messages"].as_u64().unwrap() > 300 * 10, "{doc}");
    // The ingest figures are the best of alternating runs, the engine's
    // cold first run reported beside them.
    assert_eq!(doc["runs_each"], 3, "{doc}");
    assert!(doc["engine_first_per_s"].as_f64().unwrap() > 0.0, "{doc}");
    assert!(
        doc["engine_first_per_s"].as_f64().unwrap() <= doc["engine_per_s"].as_f64().unwrap(),
        "{doc}"
    );
    let s = &doc["scoring"];
    // Nearly every lead's score at creation (a lead created and converted
    // within one batch has none: a converted lead takes no score).
    assert!(s["scores_published"].as_u64().unwrap() > 250, "{s}");
    assert_eq!(s["runs_each"], 3);
    // Each run sends every command it decides, the CRM's scores besides
    // the assignments on the side with scoring: no run finds another's
    // commands on its topic and skips them as already published.
    assert!(s["commands_sent_without"].as_u64().unwrap() > 0, "{s}");
    let sent_with = s["commands_sent_with"].as_u64().unwrap();
    assert!(sent_with > s["scores_published"].as_u64().unwrap(), "{s}");
    for side in [
        "engine_per_s",
        "without_per_s",
        "ratio_to_without",
        "cpu_s_with",
        "cpu_s_without",
        "cpu_ratio_to_without",
    ] {
        assert!(s[side].as_f64().unwrap() > 0.0, "{side}: {s}");
    }
    // Each engine run's commands are reported, the best run's among them.
    let per_run: Vec<u64> = doc["commands_per_run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(per_run.len(), 3, "{doc}");
    assert!(per_run.iter().all(|c| *c > 0), "{doc}");
    assert!(
        per_run.contains(&doc["commands"].as_u64().unwrap()),
        "{doc}"
    );
    // The latency run (a policy is on): the paced workload went through,
    // and commands caused by its events were measured.
    let l = &doc["latency"];
    assert_eq!(l["events"], doc["messages"], "{l}");
    assert!(l["commands"].as_u64().unwrap() > 0, "{l}");
    let (p50, p99, max) = (
        l["latency_ms_p50"].as_u64().unwrap(),
        l["latency_ms_p99"].as_u64().unwrap(),
        l["latency_ms_max"].as_u64().unwrap(),
    );
    assert!(p50 <= p99 && p99 <= max, "{l}");
    // The engine's share (from consumption) is part of the whole (from
    // publish).
    let engine_p99 = l["engine_ms_p99"].as_u64().unwrap();
    assert!(l["engine_ms_p50"].as_u64().unwrap() <= engine_p99, "{l}");
    assert!(engine_p99 <= max, "{l}");
    // Its consumers wait at most 5 ms in a fetch unless the config says
    // otherwise (the test broker holds every fetch that long).
    assert_eq!(l["fetch_wait_ms_max"], "5", "{l}");
    let q = &doc["scoring_quality"];
    let standard = measure_standard(42);
    assert_eq!(q["model"]["auc"].as_f64(), standard.model.auc);
    assert_eq!(q["truth"]["auc"].as_f64(), standard.truth.auc);
    // Without a policy there is nothing to score with.
    let bare = dir.path().join("bare.toml");
    std::fs::write(
        &bare,
        format!("[kafka]\nbrokers = \"{}\"\n", common::brokers()),
    )
    .unwrap();
    let refused = common::leadflow(&dir.path().join("data2"), &bare)
        .args(["bench", "--scoring"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("[policy] file"));
}
