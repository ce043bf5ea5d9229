//! `GET /api/v1/stats`: the metrics of `leadflow stats --json` over a
//! window of days, for all leads or for the leads a filter selects
//! (`tenant`, `channel`, `pool`: what a lead was created with; see
//! `projector::filter`).
//!
//! An unfiltered answer reads the engine's own projections; a filtered
//! one reads a view kept up to date for that filter (`control::filtered`),
//! one fold at a time: the first answer for a filter replays the log, the
//! later ones fold only what came since.

use super::tenant::{Scoped, TenantScope};
use super::{check_read, query, Api, ApiError};
use crate::projector::metrics::Window;
use crate::projector::{LeadFilter, Projections};
use crate::report::{self, StatsBy};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

/// The window and the lead filter of a stats-like query.
#[derive(Deserialize)]
pub(super) struct ViewQuery {
    from: Option<String>,
    to: Option<String>,
    channel: Option<String>,
    pool: Option<String>,
}

/// What a stats-like query reads: its window and its leads.
pub(super) struct View {
    pub window: Window,
    pub filter: LeadFilter,
}

impl View {
    /// Reads the query, resolving `tenant` (forwarded to the engine that
    /// owns it, whose answer is then returned as is).
    pub(super) async fn resolve(
        api: &Api,
        headers: &HeaderMap,
        uri: &Uri,
        q: Result<Query<ViewQuery>, QueryRejection>,
        scope: Result<Query<TenantScope>, QueryRejection>,
    ) -> Result<Result<View, Response>, ApiError> {
        let q = query(q)?;
        let tenant = match query(scope)?.resolve(api, headers, uri).await? {
            Scoped::Here(t) => t,
            Scoped::Forwarded(answer) => return Ok(Err(answer)),
        };
        let time = |v: &Option<String>, name: &str| -> Result<Option<i64>, ApiError> {
            v.as_deref()
                .map(crate::domain::time::parse_day_bound_ms)
                .transpose()
                .map_err(|e| bad(format!("{name}: {e}")))
        };
        let window = Window {
            from_ms: time(&q.from, "from")?,
            to_ms: time(&q.to, "to")?,
        };
        let nonempty = |v: Option<String>, name: &str| match v {
            Some(s) if s.is_empty() || s.len() > crate::domain::lifecycle::ID_LEN_BYTES_MAX => {
                Err(bad(format!(
                    "{name}: give a value of 1..={} bytes, or leave it out for all",
                    crate::domain::lifecycle::ID_LEN_BYTES_MAX
                )))
            }
            v => Ok(v),
        };
        Ok(Ok(View {
            window,
            filter: LeadFilter {
                tenant,
                channel: nonempty(q.channel, "channel")?,
                pool: nonempty(q.pool, "pool")?,
            },
        }))
    }

    /// Runs `f` over the projections of the view's leads: the engine's own
    /// when the filter takes every lead, a filtered view otherwise (folded
    /// off the server's thread, one at a time).
    pub(super) async fn read<T: Send + 'static>(
        &self,
        api: &Api,
        f: impl FnOnce(&Projections) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        if self.filter.is_everything() {
            return Ok(api.handle.with_projections(None, |p, _| f(p))?);
        }
        let _turn = api.views.clone().acquire_owned().await.map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                "the engine is stopping",
            )
        })?;
        let handle = api.handle.clone();
        let filter = self.filter.clone();
        tokio::task::spawn_blocking(move || {
            handle
                .projections_filtered(&filter)
                .map(|p| f(&p))
                .map_err(ApiError::from)
        })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the filtered view failed: {e}"),
            )
        })?
    }
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

#[derive(Deserialize)]
pub(super) struct StatsQuery {
    group_by: Option<String>,
}

pub(super) async fn stats(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<StatsQuery>, QueryRejection>,
    view: Result<Query<ViewQuery>, QueryRejection>,
    scope: Result<Query<TenantScope>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_read(&api, &headers)?;
    let q = query(q)?;
    let by_name = q.group_by.as_deref().unwrap_or("channel");
    let by = StatsBy::parse(by_name)
        .filter(|b| !matches!(b, StatsBy::Fairness | StatsBy::ScoreModel))
        .ok_or_else(|| bad(format!("unknown group_by {by_name:?}")))?;
    let view = match View::resolve(&api, &headers, &uri, view, scope).await? {
        Ok(v) => v,
        Err(forwarded) => return Ok(forwarded),
    };
    let window = view.window;
    let answer: Value = view
        .read(&api, move |p| {
            report::stats_json(by, &p.metrics.agg, &p.pool, window)
        })
        .await?;
    Ok(Json(answer).into_response())
}
