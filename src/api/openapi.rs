//! The OpenAPI 3 document, generated from [`ROUTES`], the one list of
//! routes the router is checked against (`tests/api.rs` compares them and
//! runs schemathesis over the document). Written by hand rather than with
//! an annotation crate: a dozen routes with hand-written JSON bodies, and
//! the check against the router is what keeps it true.

use axum::Json;
use serde_json::{json, Value};

/// Every route, as (method, path): the router is built from the handlers
/// below and the OpenAPI document from this list; a test checks they agree.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/leads/{id}"),
    ("get", "/api/v1/pools"),
    ("get", "/api/v1/reps"),
    ("get", "/api/v1/reps/{id}/due"),
    ("get", "/api/v1/claims"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/partial"),
    ("post", "/api/v1/events"),
    ("post", "/api/v1/admin/snapshot"),
    ("post", "/api/v1/admin/leads/{id}/assign"),
    ("post", "/api/v1/admin/leads/{id}/recall"),
    ("post", "/api/v1/admin/leads/{id}/move"),
    ("post", "/api/v1/admin/reps/{id}"),
    ("post", "/api/v1/admin/rebuild"),
    ("post", "/api/v1/admin/reload-policy"),
    ("get", "/api/v1/board"),
    ("get", "/dashboard"),
    ("get", "/dashboard/dashboard.js"),
    ("get", "/dashboard/echarts-6.1.0.min.js"),
];

pub(super) async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3 document of [`ROUTES`].
pub fn openapi_document() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let mut paths = serde_json::Map::new();
    for (method, path) in ROUTES {
        let mut op = json!({
            "operationId": format!("{method}{}", path.replace(['/', '{', '}', '.'], "_")),
            "responses": {
                "200": { "description": "OK" },
                "default": { "description": "error", "content": { "application/json": { "schema": error } } }
            }
        });
        let mut params = Vec::new();
        if path.contains("{id}") {
            params.push(
                json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}),
            );
        }
        if *path == "/api/v1/pools" || *path == "/api/v1/reps" {
            params.push(json!({"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}));
            params.push(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}));
            params.push(json!({"name": "tenant", "in": "query", "schema": {"type": "string"},
                "description": "One tenant's pools or reps (the policy's view); asked of an engine that does not own the tenant's partition, forwarded to the one that does"}));
        }
        if *path == "/api/v1/reps/{id}/due" {
            params.push(json!({"name": "within", "in": "query", "schema": {"type": "string"},
                "description": "How far ahead to look for deadlines, e.g. 24h (default), 2d 4h, 90m; at most 366d"}));
            params.push(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}));
            params.push(json!({"name": "tenant", "in": "query", "schema": {"type": "string"},
                "description": "The rep's tenant (a rep id is unique only within its tenant); forwarded to the engine owning its partition"}));
        }
        if *path == "/api/v1/claims" {
            params.push(json!({"name": "rep", "in": "query", "schema": {"type": "string"}}));
            params.push(json!({"name": "pool", "in": "query", "schema": {"type": "string"}}));
            params.push(json!({"name": "tenant", "in": "query", "schema": {"type": "string"},
                "description": "One tenant's claims; forwarded to the engine owning its partition"}));
        }
        if *path == "/api/v1/pools" {
            params.push(json!({"name": "at", "in": "query", "schema": {"type": "string"}}));
        }
        if *path == "/api/v1/stats" {
            params.push(json!({"name": "group_by", "in": "query", "schema": {"type": "string",
                "enum": ["channel", "campaign", "pool", "region", "industry", "company-size", "tenant", "day", "owner", "pools"]}}));
        }
        if *path == "/api/v1/stats" || *path == "/api/v1/board" {
            for (name, description) in [
                (
                    "from",
                    "First day of the window (a date, days of report.time_zone)",
                ),
                ("to", "The day after the window's last (exclusive)"),
                (
                    "tenant",
                    "Only the leads of this tenant; forwarded to the engine owning its partition",
                ),
                ("channel", "Only the leads created from this channel"),
                ("pool", "Only the leads created into this pool"),
            ] {
                params.push(
                    json!({"name": name, "in": "query", "schema": {"type": "string"},
                    "description": description}),
                );
            }
        }
        if path.starts_with("/api/v1/admin") || *path == "/api/v1/events" {
            op["security"] = json!([{ "bearer": [] }]);
        }
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path items are objects")
            .insert(method.to_string(), op);
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Leadflow", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": { "type": "object", "required": ["code", "message"],
                "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } }
        }
    })
}
