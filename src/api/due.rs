//! `GET /api/v1/reps/{id}/due`: a manager's view of one rep's work — the
//! leads the rep holds whose recall is past (overdue: commanded, not yet
//! carried out by the CRM) or falls within the next `within` (due soon).
//!
//! Deadlines are the policy's (each assignment keeps the rules of the
//! version it was made under, and a pool's business calendar), so the
//! answer comes from the tenant's policy processor, and "now" is the
//! policy's time: the latest of the tenant's own events and the engine's
//! wall-clock ticks, which a running engine keeps within a second or so of
//! the wall clock. A replayed state answers as of its own end, the same
//! way every time.

use super::tenant::{Scoped, TenantScope};
use super::{check_read, query, Api, ApiError};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

/// How far ahead "due soon" looks unless asked (`within`).
const WITHIN_DEFAULT: &str = "24h";
/// The farthest "due soon" may look.
const WITHIN_MS_MAX: i64 = 366 * 86_400_000;

#[derive(Deserialize)]
pub(super) struct DueQuery {
    /// How far ahead to look, as people write it ("24h", "2d 4h", "90m").
    within: Option<String>,
    /// At most this many leads (up to `api.page_items_max`).
    limit: Option<usize>,
}

pub(super) async fn rep_due(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: Uri,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<DueQuery>, QueryRejection>,
    scope: Result<Query<TenantScope>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_read(&api, &headers)?;
    let Path(rep) =
        id.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let q = query(q)?;
    let within_text = q.within.as_deref().unwrap_or(WITHIN_DEFAULT);
    let within_ms = crate::policy::duration::parse_ms(within_text)
        .ok()
        .filter(|ms| *ms <= WITHIN_MS_MAX)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("within: {within_text:?} is not a duration of at most 366 days (e.g. \"24h\", \"2d 4h\", \"90m\")"),
            )
        })?;
    let max = api.config.page_items_max;
    let limit = q.limit.unwrap_or(max.min(100));
    if limit == 0 || limit > max {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("limit must be in 1..={max}"),
        ));
    }
    let tenant = match query(scope)?.resolve(&api, &headers, &uri).await? {
        Scoped::Here(t) => t,
        Scoped::Forwarded(answer) => return Ok(answer),
    };
    let tenant_id = tenant.unwrap_or_default();
    let answer = api.handle.with_projections(Some(&tenant_id), |_, policy| {
        let Some(policies) = policy else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_policy",
                "a rep's deadlines are the policy's, and this engine runs without a policy ([policy] file)",
            ));
        };
        let file = policies.policy();
        let table = if tenant_id.is_empty() {
            Some(&file.pools)
        } else {
            file.tenants.get(&tenant_id).map(|t| &t.pools)
        };
        let member = table
            .is_some_and(|pools| pools.iter().any(|p| p.members.iter().any(|m| m.id == rep)));
        let processor = policies.tenant(&tenant_id);
        let holds = processor.is_some_and(|p| {
            let s = p.state();
            s.pool.held_by_rep.contains_key(rep.as_str()) || s.pending_by_rep.contains_key(&rep)
        });
        let Some(processor) = processor.filter(|_| member || holds) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no rep {rep:?} in tenant {tenant_id:?}: not a member of any of its pools, holding nothing"),
            ));
        };
        // A tenant's own time moves with its events; the latest tick moves
        // it only when something of it is due (see `Policies`): its time
        // is the later of the two.
        let now_ms = processor.state().now_ms.max(policies.now_ms());
        let (leads, total) = processor.due_of_rep(&rep, now_ms.saturating_add(within_ms), limit);
        let (overdue, due_soon): (Vec<_>, Vec<_>) =
            leads.into_iter().partition(|d| d.deadline_ms <= now_ms);
        Ok(json!({
            "rep": rep,
            "tenant": tenant_id,
            "now_ms": now_ms,
            "within_ms": within_ms,
            "holdings": processor.state().pool.held_by(&rep),
            "total": total,
            "overdue": overdue,
            "due_soon": due_soon,
        }))
    })??;
    Ok(Json(answer).into_response())
}
