//! A foreign client talks to the engine: `tests/foreign_client.py`, a
//! Python producer/consumer (confluent-kafka) using classes generated from
//! our `.proto` files, publishes lead events to the real test broker and
//! reads the engine's commands back. `./scripts/test` sets up the Python
//! venv (`scripts/pyenv`) and passes its interpreter in
//! `LEADFLOW_TEST_PYTHON`.

use std::collections::BTreeSet;
use std::process::Command;

mod common;
use common::env;

#[test]
fn a_python_client_publishes_events_and_reads_our_commands_back() {
    let brokers = env("LEADFLOW_TEST_BROKERS");
    let python = env("LEADFLOW_TEST_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    let run_id = common::run_id();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 4\n[[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\n\
         members = [{ id = \"rep-x\", capacity = 100 }, { id = \"rep-y\", capacity = 100 }]\n",
    )
    .unwrap();
    let (events, commands) = (
        format!("py-events-{run_id}"),
        format!("py-commands-{run_id}"),
    );
    let config = dir.path().join("leadflow.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"py-{run_id}\"\nevents_topic = \"{events}\"\n\
             commands_topic = \"{commands}\"\ndlq_topic = \"py-dlq-{run_id}\"\npartitions = 2\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n\
             [policy]\nfile = {:?}\n",
            policy.display().to_string()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let leadflow = || common::leadflow(&data, &config);
    let created = leadflow().args(["topics", "create"]).output().unwrap();
    assert!(created.status.success(), "{created:?}");

    let (mut engine, engine_log) = common::spawn_logged(leadflow().arg("run"));

    let leads = 12;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/foreign_client.py");
    let out = Command::new(&python)
        .args([
            script,
            &brokers,
            &events,
            &commands,
            &run_id,
            &leads.to_string(),
        ])
        .output()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &engine.id().to_string()])
        .status();
    let status = engine.wait().unwrap();
    let engine_log = engine_log.join().unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}\nengine:\n{engine_log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status.success(), "engine: {status}\n{engine_log}");

    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["published"], leads);
    let assigned = seen["assigned"].as_object().unwrap();
    assert_eq!(
        assigned.len(),
        leads,
        "every lead got an assignment: {seen}"
    );
    let owners: BTreeSet<&str> = assigned
        .values()
        .map(|a| a["owner_id"].as_str().unwrap())
        .collect();
    assert_eq!(owners, BTreeSet::from(["rep-x", "rep-y"]), "round-robin");
    for (lead, a) in assigned {
        assert!(a["command_id"]
            .as_str()
            .unwrap()
            .starts_with("cmd-assign_lead-"));
        assert!(a["causation_event_id"]
            .as_str()
            .unwrap()
            .starts_with("py-ev-"));
        assert!(
            a["explanation"].as_str().unwrap().contains("round-robin"),
            "{lead}"
        );
    }

    // The engine stored the Python client's events as they were sent.
    let inspect = leadflow()
        .args(["inspect", "lead", &format!("py-{run_id}-000")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{inspect:?}");
    assert!(text.contains("partner"), "{text}");
}
