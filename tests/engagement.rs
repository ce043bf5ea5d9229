//! Interactions from marketing (`engaged` events), end to end through the
//! binary: imported like any event, kept in the log, shown by `inspect`,
//! exported with their own columns, and refused with typed reasons when
//! they are not well formed or come after the lead's conversion.

mod common;

use common::{leadflow_at as leadflow, ok};

const EVENTS: &str = r#"{"eventId":"c-1","leadId":"L1","occurredAtMs":"1793577600000","producer":"forms","created":{"channel":"search","pool":"general","acquisitionCost":{"minorUnits":"1000","currency":"CNY"}}}
{"eventId":"g-1","leadId":"L1","occurredAtMs":"1793581200000","producer":"mailer","engaged":{"kind":"email_reply","points":15,"source":"q4-nurture","detail":"asked for pricing"}}
{"eventId":"a-1","leadId":"L1","occurredAtMs":"1793584800000","producer":"crm","assigned":{"ownerId":"repA","method":"ASSIGNMENT_METHOD_RULE"}}
{"eventId":"g-2","leadId":"L1","occurredAtMs":"1793588400000","producer":"web","engaged":{"kind":"web_visit","detail":"/pricing"}}
{"eventId":"g-3","leadId":"L1","occurredAtMs":"1793588500000","producer":"web","engaged":{"kind":"Web Visit"}}
{"eventId":"g-4","leadId":"L1","occurredAtMs":"1793588600000","producer":"web","engaged":{"kind":"web_visit","points":5000}}
{"eventId":"v-1","leadId":"L1","occurredAtMs":"1793592000000","producer":"crm","converted":{"ownerId":"repA","dealValue":{"minorUnits":"50000","currency":"CNY"},"customerId":"c"}}
{"eventId":"g-5","leadId":"L1","occurredAtMs":"1793595600000","producer":"web","engaged":{"kind":"web_visit"}}
"#;

#[test]
fn interactions_are_kept_shown_exported_and_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, EVENTS).unwrap();
    ok(leadflow(&data, &["import", input.to_str().unwrap()]));

    // The two good interactions are in the lead's timeline, one while it
    // waited, one while repA held it; the lead's state is untouched by them.
    let lead: serde_json::Value =
        serde_json::from_str(&ok(leadflow(&data, &["inspect", "lead", "L1", "--json"]))).unwrap();
    let kinds: Vec<String> = lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["event"]["engaged"]["kind"].as_str().map(str::to_string))
        .collect();
    assert_eq!(kinds, vec!["email_reply", "web_visit"], "{lead}");
    assert_eq!(lead["state"]["status"], "Converted", "{lead}");
    // Refused: a kind that is not plain, points out of bounds, and an
    // interaction after the conversion.
    let reasons: Vec<&str> = lead["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec!["invalid_field", "invalid_field", "lead_converted"],
        "{lead}"
    );
    let text = ok(leadflow(&data, &["inspect", "lead", "L1"]));
    assert!(
        text.contains("email_reply (+15 points) asked for pricing"),
        "{text}"
    );

    // Exported as events (JSON, the same bytes again) and as flat rows.
    let exported = ok(leadflow(&data, &["export"]));
    assert!(
        exported.contains(r#""engaged":{"kind":"web_visit""#),
        "{exported}"
    );
    let parquet_out = dir.path().join("events.parquet");
    ok(leadflow(
        &data,
        &[
            "export",
            "--format",
            "parquet",
            "--out",
            parquet_out.to_str().unwrap(),
        ],
    ));
    assert!(std::fs::metadata(&parquet_out).unwrap().len() > 0);
    let log = ok(leadflow(&data, &["inspect", "log"]));
    assert!(
        log.contains("events   5") && log.contains("rejected 3"),
        "{log}"
    );
}
