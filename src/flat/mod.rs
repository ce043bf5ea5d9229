//! Flat metric rows for BI tools: the `stats --json` document turned into
//! one row per group and currency, with readable column names, written as
//! CSV (`stats --format csv`) or Parquet (`stats --format parquet`).
//!
//! Why flat: DuckDB, Excel and BI tools want a table, and money must never
//! be summed across currencies, so a group with costs in CNY and deals in
//! USD is two rows, one per currency, each with the group's counts beside
//! that currency's money. A group without money is one row with an empty
//! currency. Nested counts (`recalls_by_reason`) become one column per key
//! (`recalls_by_reason_stale`).

pub mod events;
pub mod parquet;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What a column holds, for typed formats (Parquet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Text,
    /// Milliseconds since the epoch, UTC.
    Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

/// One cell: every value of the document is a count, a ratio, a duration
/// or a name.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Int(i64),
    Float(f64),
    Text(String),
    Null,
}

impl Cell {
    fn of(v: &Value) -> Cell {
        match v {
            Value::Null => Cell::Null,
            Value::Bool(b) => Cell::Text(b.to_string()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Cell::Int(i),
                None => n.as_f64().map_or(Cell::Null, Cell::Float),
            },
            // A money sum too large for i64 is written as its decimal text
            // (see `metrics::serialize_sum`).
            Value::String(s) => Cell::Text(s.clone()),
            other => Cell::Text(other.to_string()),
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Text(s) => s.clone(),
            Cell::Null => String::new(),
        }
    }
}

/// A table: column names and rows of cells, one per column.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Objects of a row keyed by currency: their values go to that currency's
/// line.
const BY_CURRENCY: [&str; 2] = ["money", "revenue_minor_units"];

/// One group of the document: its name and its fields.
type Group<'a> = (String, &'a serde_json::Map<String, Value>);

/// The rows of a `stats --json` document (`{"by", "rows": {group: {..}}}`,
/// or the fairness document `{"reps": [..], "gini"}`) as a flat table.
pub fn table(doc: &Value) -> Table {
    let (group_col, groups): (String, Vec<Group<'_>>) =
        if let Some(reps) = doc.get("reps").and_then(Value::as_array) {
            let rows = reps
                .iter()
                .filter_map(|r| {
                    let o = r.as_object()?;
                    let name = o.get("rep")?.as_str()?.to_string();
                    Some((name, o))
                })
                .collect();
            ("rep".to_string(), rows)
        } else {
            let by = doc
                .get("by")
                .and_then(Value::as_str)
                .unwrap_or("group")
                .to_string();
            let rows = doc
                .get("rows")
                .and_then(Value::as_object)
                .map(|rows| {
                    rows.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_object()?)))
                        .collect()
                })
                .unwrap_or_default();
            (by, rows)
        };
    // Each group's lines: (currency, column -> cell).
    let mut lines: Vec<(String, String, BTreeMap<String, Cell>)> = Vec::new();
    for (name, fields) in &groups {
        let mut common: BTreeMap<String, Cell> = BTreeMap::new();
        let mut per_currency: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
        for (key, value) in fields.iter() {
            match value {
                Value::Object(o) if BY_CURRENCY.contains(&key.as_str()) => {
                    for (currency, v) in o {
                        let line = per_currency.entry(currency.clone()).or_default();
                        match v {
                            Value::Object(metrics) => {
                                for (m, x) in metrics {
                                    line.insert(m.clone(), Cell::of(x));
                                }
                            }
                            x => {
                                line.insert(key.clone(), Cell::of(x));
                            }
                        }
                    }
                }
                Value::Object(o) => {
                    for (k, v) in o {
                        common.insert(format!("{key}_{k}"), Cell::of(v));
                    }
                }
                v => {
                    if key != &group_col {
                        common.insert(key.clone(), Cell::of(v));
                    }
                }
            }
        }
        if per_currency.is_empty() {
            lines.push((name.clone(), String::new(), common));
        } else {
            for (currency, money) in per_currency {
                let mut line = common.clone();
                line.extend(money);
                lines.push((name.clone(), currency, line));
            }
        }
    }
    let names: BTreeSet<&String> = lines.iter().flat_map(|(_, _, l)| l.keys()).collect();
    let mut columns = vec![group_col, "currency".to_string()];
    columns.extend(names.into_iter().cloned());
    let rows = lines
        .iter()
        .map(|(group, currency, line)| {
            let mut row = vec![
                Cell::Text(group.clone()),
                if currency.is_empty() {
                    Cell::Null
                } else {
                    Cell::Text(currency.clone())
                },
            ];
            row.extend(
                columns[2..]
                    .iter()
                    .map(|c| line.get(c).cloned().unwrap_or(Cell::Null)),
            );
            row
        })
        .collect();
    Table { columns, rows }
}

impl Table {
    /// Each column's kind, from its cells: text if any cell is text, else
    /// a float if any is, else an integer (a column of nulls is text).
    pub fn column_kinds(&self) -> Vec<Column> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let cells = || self.rows.iter().map(|r| &r[i]);
                let kind = if cells().all(|c| *c == Cell::Null)
                    || cells().any(|c| matches!(c, Cell::Text(_)))
                {
                    Kind::Text
                } else if cells().any(|c| matches!(c, Cell::Float(_))) {
                    Kind::Float
                } else {
                    Kind::Int
                };
                Column {
                    name: name.clone(),
                    kind,
                }
            })
            .collect()
    }
}

/// The table as CSV (RFC 4180, a header line first).
pub fn to_csv(t: &Table) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&t.columns)?;
    for row in &t.rows {
        w.write_record(row.iter().map(Cell::to_text))?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_group_has_one_row_per_currency_and_nested_counts_get_columns() {
        let doc = json!({"by": "channel", "rows": {
            "search": {"created": 2, "conversion_rate": 0.5,
                "money": {"CNY": {"cost_minor_units": 300, "roi": 4.0},
                          "USD": {"cost_minor_units": 7, "roi": null}}},
            "social": {"created": 1, "conversion_rate": null, "money": {}},
        }});
        let t = table(&doc);
        assert_eq!(
            t.columns,
            vec![
                "channel",
                "currency",
                "conversion_rate",
                "cost_minor_units",
                "created",
                "roi"
            ]
        );
        let csv = String::from_utf8(to_csv(&t).unwrap()).unwrap();
        assert_eq!(
            csv,
            "channel,currency,conversion_rate,cost_minor_units,created,roi\n\
             search,CNY,0.5,300,2,4\n\
             search,USD,0.5,7,2,\n\
             social,,,,1,\n"
        );
        let owners = json!({"by": "owner", "rows": {"rep-1": {
            "assignments": 3, "recalls_by_reason": {"stale": 1},
            "revenue_minor_units": {"CNY": 100}}}});
        let t = table(&owners);
        assert_eq!(
            t.columns,
            vec![
                "owner",
                "currency",
                "assignments",
                "recalls_by_reason_stale",
                "revenue_minor_units"
            ]
        );
        assert_eq!(
            t.rows[0],
            vec![
                Cell::Text("rep-1".into()),
                Cell::Text("CNY".into()),
                Cell::Int(3),
                Cell::Int(1),
                Cell::Int(100)
            ]
        );
    }
}
