//! The dashboard: its page and scripts (compiled into the binary, so it
//! works offline) and `GET /api/v1/board`, everything one refresh of the
//! dashboard shows in one answer, for the leads its filters select.
//!
//! One answer, not one request per chart: a filtered view is folded once
//! per refresh (see `api::stats`), and every chart of a refresh shows the
//! same moment. The page and scripts need no token (they hold no data);
//! the data does, like every read.

use super::stats::{View, ViewQuery};
use super::tenant::TenantScope;
use super::{check_read, Api, ApiError};
use crate::domain::time::format_day;
use crate::report::{self, StatsBy};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The page, its script, and Apache ECharts (from the npm registry, by
/// `scripts/vendor-echarts`; its licence is beside it).
const DASHBOARD_HTML: &str = include_str!("assets/dashboard.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const ECHARTS_JS: &str = include_str!("assets/vendor/echarts/echarts.min.js");

/// The vendored ECharts' version, in its URL so a browser may keep it
/// (also in `openapi::ROUTES` and the page).
pub(super) const ECHARTS_PATH: &str = "/dashboard/echarts-6.1.0.min.js";

pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        DASHBOARD_HTML,
    )
        .into_response()
}

pub(super) async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        DASHBOARD_JS,
    )
        .into_response()
}

pub(super) async fn echarts() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // Versioned URL: the file never changes under it.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        ECHARTS_JS,
    )
        .into_response()
}

pub(super) async fn board(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: Uri,
    view: Result<Query<ViewQuery>, QueryRejection>,
    scope: Result<Query<TenantScope>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_read(&api, &headers)?;
    let view = match View::resolve(&api, &headers, &uri, view, scope).await? {
        Ok(v) => v,
        Err(forwarded) => return Ok(forwarded),
    };
    let window = view.window;
    let filter = json!({
        "tenant": view.filter.tenant,
        "channel": view.filter.channel,
        "pool": view.filter.pool,
    });
    let answer = view
        .read(&api, move |p| {
            let agg = &p.metrics.agg;
            let rows = |by: StatsBy| report::stats_json(by, agg, &p.pool, window)["rows"].take();
            let pool_days: serde_json::Map<String, Value> = agg
                .pool_days(window)
                .into_iter()
                .map(|(pool, days)| {
                    let days: Vec<Value> = days
                        .iter()
                        .map(|d| {
                            json!({
                                "date": format_day(d.day),
                                "waiting_at_end": d.waiting_at_end,
                                "inflow": d.inflow,
                                "outflow": d.outflow,
                                "recalled_in": d.recalled_in,
                            })
                        })
                        .collect();
                    (pool, Value::Array(days))
                })
                .collect();
            let holdings: serde_json::Map<String, Value> = p
                .pool
                .holdings
                .iter()
                .map(|(rep, leads)| (rep.clone(), json!(leads.len())))
                .collect();
            json!({
                "time_zone": p.metrics.params().time_zone,
                "reporting_currency": agg.reporting_currency.map(|c| c.to_string()),
                "filter": filter,
                "events_folded": p.covered_seq,
                "total": report::total_json(agg, window),
                "owners_total": report::owners_total_json(agg, window),
                "by_channel": rows(StatsBy::Channel),
                "by_day": rows(StatsBy::Day),
                "by_owner": rows(StatsBy::Owner),
                "pools": rows(StatsBy::Pools),
                "pool_days": pool_days,
                "holdings_by_rep": holdings,
            })
        })
        .await?;
    Ok(Json(answer).into_response())
}
