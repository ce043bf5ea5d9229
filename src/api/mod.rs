//! The HTTP surface of `leadflow run` (axum): health, readiness, Prometheus
//! metrics and a read-only JSON API over the running engine, plus admin
//! endpoints behind a bearer token.
//!
//! Handlers read through [`Handle`], which takes the engine's state lock
//! for the duration of one read; nothing here writes to the log. Errors are
//! JSON `{"code": ..., "message": ...}`. Lists are paginated (`offset`,
//! `limit` up to `api.page_items_max`). Request bodies are bounded. No lead
//! or owner id ever becomes a metric label.

mod admin;
mod board;
mod claims;
mod due;
mod ingest;
mod manage;
mod openapi;
mod stats;
mod tenant;

use tenant::{Scoped, TenantScope};

pub use openapi::{openapi_document, ROUTES};

use crate::config::ApiConfig;
use crate::control::{ControlError, Handle};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Largest request body accepted.
const BODY_BYTES_MAX: usize = 64 * 1024;

#[derive(Clone)]
struct Api {
    handle: Handle,
    config: Arc<ApiConfig>,
    /// The policy file to reload from (`[policy] file`).
    policy_file: Option<Arc<std::path::PathBuf>>,
    /// The request rate bound (GCRA, one second of burst).
    limiter: Arc<governor::DefaultDirectRateLimiter>,
    /// One replay (a past moment, an admin rebuild) at a time.
    replays: Arc<tokio::sync::Semaphore>,
    /// One filtered view folded at a time (the others wait their turn).
    views: Arc<tokio::sync::Semaphore>,
}

impl Api {
    /// Runs a replay on tokio's blocking pool, so that the server's one
    /// thread keeps answering (probes above all) meanwhile; one at a time,
    /// a second one is refused with 429.
    async fn replay<T: Send + 'static>(
        &self,
        work: impl FnOnce(Handle) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let Ok(_permit) = self.replays.clone().try_acquire_owned() else {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "replay_running",
                "a replay of the log is running; try again when it is done",
            ));
        };
        let handle = self.handle.clone();
        tokio::task::spawn_blocking(move || work(handle))
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("the replay failed: {e}"),
                )
            })?
    }
}

/// Refuses requests beyond `api.requests_per_s_max` (with one second of
/// burst) with a JSON 429, so that a runaway client cannot keep the
/// engine's state lock busy.
async fn rate_limit(
    State(api): State<Api>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if api.limiter.check().is_ok() {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests per second",
                api.config.requests_per_s_max
            ),
        )
        .into_response()
    }
}

/// A JSON error with a stable code.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        match e {
            ControlError::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", e.to_string())
            }
            e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}

impl From<crate::log::LogError> for ApiError {
    fn from(e: crate::log::LogError) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Constant-time comparison, so a token cannot be guessed byte by byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn check_read(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    match &api.config.read_token {
        None => Ok(()),
        Some(t) if bearer(headers).is_some_and(|b| same(b, t)) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid read token is required (Authorization: Bearer ...)",
        )),
    }
}

fn check_admin(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    check_bearer(
        headers,
        api.config.admin_token.as_deref(),
        (
            "admin_disabled",
            "no admin token is configured (api.admin_token), so admin endpoints are off",
        ),
        "a valid admin token is required (Authorization: Bearer ...)",
    )
}

/// A route that needs its own bearer token: off (403 with `off`) when none
/// is configured, 401 with `needed` when the request lacks it.
fn check_bearer(
    headers: &HeaderMap,
    token: Option<&str>,
    off: (&'static str, &'static str),
    needed: &'static str,
) -> Result<(), ApiError> {
    match token {
        None => Err(ApiError::new(StatusCode::FORBIDDEN, off.0, off.1)),
        Some(t) if bearer(headers).is_some_and(|b| same(b, t)) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            needed,
        )),
    }
}

/// A query string that does not parse is a JSON 400, like every error.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))
}

#[derive(Deserialize)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
    /// Point in time (RFC 3339, date or epoch ms): the pools as they were.
    at: Option<String>,
}

impl Page {
    fn bounds(&self, api: &Api) -> Result<(usize, usize), ApiError> {
        let max = api.config.page_items_max;
        let limit = self.limit.unwrap_or(max.min(100));
        if limit == 0 || limit > max {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("limit must be in 1..={max}"),
            ));
        }
        Ok((self.offset.unwrap_or(0), limit))
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(api): State<Api>) -> Result<Response, ApiError> {
    let t = api.handle.intake_status()?;
    let lag: i64 = t.lag.values().sum();
    // Ready: partitions assigned, the lag of each known (from librdkafka's
    // statistics, once a second), and small enough in sum.
    let ready = t.assigned_partitions > 0
        && t.lag.len() >= t.assigned_partitions
        && lag as u64 <= api.config.ready_lag_messages_max;
    let body = json!({
        "ready": ready,
        "assigned_partitions": t.assigned_partitions,
        "unassigned_ms": t.unassigned_ms,
        "lag_messages": lag,
        "lag_messages_max": api.config.ready_lag_messages_max,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(body)).into_response())
}

async fn metrics(State(api): State<Api>) -> Result<Response, ApiError> {
    Ok((
        [(header::CONTENT_TYPE, crate::control::Metrics::CONTENT_TYPE)],
        api.handle.metrics().encode(),
    )
        .into_response())
}

async fn lead(
    State(api): State<Api>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    check_read(&api, &headers)?;
    let Path(id) =
        id.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    // A lead lives in one part (its tenant's partition store).
    let report = api
        .handle
        .find_in_logs(|log| crate::views::lead_report(log, &id))?;
    let Some(report) = report else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no lead {id}"),
        ));
    };
    // With `[scoring]`: the open lead's score now, its parts and what
    // moved them (the rules' points, the model's strongest features).
    let tenant = report
        .timeline
        .first()
        .and_then(|t| t.event["tenantId"].as_str())
        .unwrap_or_default()
        .to_string();
    let score = api.handle.with_projections(Some(&tenant), |_, policy| {
        policy
            .and_then(|p| p.tenant(&tenant))
            .and_then(|t| t.score_card(&id))
    })?;
    let mut answer = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Some(card) = score {
        answer["score"] = serde_json::to_value(card).unwrap_or(Value::Null);
    }
    Ok(Json(answer))
}

async fn pools(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    page: Result<Query<Page>, QueryRejection>,
    scope: Result<Query<TenantScope>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_read(&api, &headers)?;
    let page = query(page)?;
    let (offset, limit) = page.bounds(&api)?;
    let tenant = match query(scope)?.resolve(&api, &headers, &uri).await? {
        Scoped::Here(t) => t,
        Scoped::Forwarded(answer) => return Ok(answer),
    };
    let at = page
        .at
        .as_deref()
        .map(crate::domain::time::parse_time_ms)
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("at: {e}")))?;
    let past = match at {
        Some(t) => Some(
            api.replay(move |h| h.projections_at(t).map_err(ApiError::from))
                .await?,
        ),
        None => None,
    };
    let render = |p: &dyn crate::projector::pool::PoolCounts| -> Vec<Value> {
        let sizes = p.pool_sizes();
        sizes
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(name, size)| {
                let held_by_rep = p.held_in_pool_by_rep(name);
                json!({
                    "pool": name,
                    "waiting": size.waiting,
                    "held": size.held,
                    "converted": size.converted,
                    "held_by_rep": held_by_rep,
                })
            })
            .collect()
    };
    let items = match (&past, &tenant) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "at and tenant cannot be combined: a tenant's pools are the policy's view, kept only for now",
            ))
        }
        (Some(p), None) => render(&p.pool),
        (None, None) => api.handle.with_projections(None, |p, _| render(&p.pool))?,
        (None, Some(t)) => api.handle.with_projections(Some(t), |_, policy| {
            let policy = policy.ok_or_else(TenantScope::needs_policy)?;
            Ok::<_, ApiError>(policy.tenant(t).map(|p| render(&p.state().pool)).unwrap_or_default())
        })??,
    };
    Ok(
        Json(json!({ "offset": offset, "limit": limit, "at_ms": at, "items": items }))
            .into_response(),
    )
}

async fn reps(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    page: Result<Query<Page>, QueryRejection>,
    scope: Result<Query<TenantScope>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_read(&api, &headers)?;
    let page = query(page)?;
    let (offset, limit) = page.bounds(&api)?;
    let tenant = match query(scope)?.resolve(&api, &headers, &uri).await? {
        Scoped::Here(t) => t,
        Scoped::Forwarded(answer) => return Ok(answer),
    };
    let items: Vec<Value> = api
        .handle
        .with_projections(tenant.as_deref(), |p, policy| {
            if tenant.is_some() && policy.is_none() {
                return Err(TenantScope::needs_policy());
            }
            // Without a tenant: the default tenant's policy, and the holdings
            // the projections see (every tenant's, which in a single-tenant
            // deployment are the default tenant's).
            let tenant_pools: &[crate::policy::PoolPolicy] = match (policy, &tenant) {
                (None, _) => &[],
                (Some(p), None) => &p.policy().pools,
                (Some(p), Some(t)) => p.policy().tenants.get(t).map_or(&[], |t| &t.pools),
            };
            let processor = policy.and_then(|p| p.tenant(tenant.as_deref().unwrap_or("")));
            let pool: &dyn crate::projector::pool::PoolCounts = match (&tenant, processor) {
                (Some(_), Some(t)) => &t.state().pool,
                _ => &p.pool,
            };
            let mut capacity: std::collections::BTreeMap<String, u32> = Default::default();
            for pool in tenant_pools {
                for m in &pool.members {
                    let c = capacity.entry(m.id.clone()).or_default();
                    *c = (*c).max(m.capacity);
                }
            }
            let state = processor.map(|p| p.state());
            let holdings = if tenant.is_some() && processor.is_none() {
                Default::default()
            } else {
                pool.held_by_rep()
            };
            let mut reps: std::collections::BTreeSet<&String> = holdings.keys().collect();
            reps.extend(capacity.keys());
            if let Some(s) = state {
                reps.extend(s.pending_by_rep.keys());
            }
            let items = reps
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|rep| {
                    let count = |m: Option<&std::collections::BTreeMap<String, u64>>| {
                        m.and_then(|m| m.get(rep)).copied().unwrap_or(0)
                    };
                    json!({
                        "rep": rep,
                        "holdings": holdings.get(rep).copied().unwrap_or(0),
                        // A manager's change over the file's.
                        "capacity": processor
                            .and_then(|p| p.capacity_of(rep))
                            .or_else(|| capacity.get(rep).copied()),
                        // Assignments commanded, not yet carried out: they hold
                        // capacity until carried out, declined or expired.
                        "pending_assignments": state
                            .and_then(|s| s.pending_by_rep.get(rep))
                            .copied()
                            .unwrap_or(0),
                        "declined_assignments": count(state.map(|s| &s.declined_by_rep)),
                        "expired_assignments": count(state.map(|s| &s.expired_by_rep)),
                    })
                })
                .collect();
            Ok(items)
        })??;
    Ok(Json(json!({ "offset": offset, "limit": limit, "items": items })).into_response())
}

/// This engine's mergeable numbers (`projector::partial`), for `leadflow
/// stats --peers`, which merges every engine's into the whole.
async fn partial(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_read(&api, &headers)?;
    let bytes = api.handle.with_projections(None, |p, _| {
        crate::projector::partial::Partial::of(p).to_bytes()
    })?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// The router over a running engine.
pub fn router(
    handle: Handle,
    config: ApiConfig,
    policy_file: Option<std::path::PathBuf>,
) -> Router {
    let per_s =
        std::num::NonZeroU32::new(config.requests_per_s_max).unwrap_or(std::num::NonZeroU32::MIN);
    let api = Api {
        handle,
        config: Arc::new(config),
        policy_file: policy_file.map(Arc::new),
        limiter: Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
            per_s,
        ))),
        replays: Arc::new(tokio::sync::Semaphore::new(1)),
        views: Arc::new(tokio::sync::Semaphore::new(1)),
    };
    // Probes and metrics are outside the request-rate bound: a flood of API
    // requests must never make Kubernetes restart a healthy engine.
    let probes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::openapi))
        .route("/api/v1/leads/{id}", get(lead))
        .route("/api/v1/pools", get(pools))
        .route("/api/v1/reps", get(reps))
        .route("/api/v1/reps/{id}/due", get(due::rep_due))
        .route("/api/v1/claims", get(claims::claims))
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/partial", get(partial))
        .route(
            "/api/v1/events",
            post(ingest::post_events)
                .layer(DefaultBodyLimit::max(api.config.ingest_body_bytes_max)),
        )
        .route("/api/v1/admin/snapshot", post(admin::admin_snapshot))
        .route("/api/v1/admin/leads/{id}/assign", post(manage::assign))
        .route("/api/v1/admin/leads/{id}/recall", post(manage::recall))
        .route("/api/v1/admin/leads/{id}/move", post(manage::move_lead))
        .route("/api/v1/admin/reps/{id}", post(manage::rep))
        .route("/api/v1/admin/rebuild", post(admin::admin_rebuild))
        .route(
            "/api/v1/admin/reload-policy",
            post(admin::admin_reload_policy),
        )
        .route("/api/v1/board", get(board::board))
        .route("/dashboard", get(board::page))
        .route("/dashboard/dashboard.js", get(board::script))
        .route(board::ECHARTS_PATH, get(board::echarts))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            rate_limit,
        ))
        .merge(probes)
        .layer(axum::middleware::from_fn(catch_panic))
        .with_state(api)
}

/// A handler that panics answers 500 (JSON) instead of dropping the
/// connection; the engine's state lock recovers from the poisoning on its
/// side (see `control::Handle`), so ingestion goes on.
async fn catch_panic(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("api: a handler panicked; answered 500");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request failed inside the engine; see its log",
            )
            .into_response()
        }
    }
}
