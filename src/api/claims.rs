//! `GET /api/v1/claims`: how reps' claims from the public pools were
//! answered — granted, and declined by reason — per rep and pool, as the
//! policy counted them (its fold of the log: a replay counts the same).
//! Filters: `rep`, `pool`; `tenant` as everywhere (forwarded to the engine
//! owning the tenant's partition).

use super::tenant::{Scoped, TenantScope};
use super::{check_read, query, Api, ApiError};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub(super) struct ClaimsQuery {
    rep: Option<String>,
    pool: Option<String>,
}

pub(super) async fn claims(
    State(api): State<Api>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<ClaimsQuery>, QueryRejection>,
    scope: Result<Query<TenantScope>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_read(&api, &headers)?;
    let q = query(q)?;
    let tenant = match query(scope)?.resolve(&api, &headers, &uri).await? {
        Scoped::Here(t) => t,
        Scoped::Forwarded(answer) => return Ok(answer),
    };
    let tenant_id = tenant.unwrap_or_default();
    let max = api.config.page_items_max;
    let answer = api.handle.with_projections(Some(&tenant_id), |_, policy| {
        let Some(policies) = policy else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_policy",
                "claims are arbitrated by the policy, and this engine runs without a policy ([policy] file)",
            ));
        };
        let mut rows = Vec::new();
        let mut total = 0usize;
        let (mut granted_all, mut declined_all) = (0u64, 0u64);
        if let Some(p) = policies.tenant(&tenant_id) {
            for ((rep, pool), c) in p.claim_counts() {
                if q.rep.as_ref().is_some_and(|r| r != rep)
                    || q.pool.as_ref().is_some_and(|p| p != pool)
                {
                    continue;
                }
                let declined: u64 = c.declined.values().sum();
                granted_all += c.granted;
                declined_all += declined;
                total += 1;
                if rows.len() < max {
                    rows.push(json!({
                        "rep": rep,
                        "pool": pool,
                        "granted": c.granted,
                        "declined": declined,
                        "declined_by_reason": c.declined,
                    }));
                }
            }
        }
        Ok(json!({
            "tenant": tenant_id,
            "granted": granted_all,
            "declined": declined_all,
            "total_rows": total,
            "rows": rows,
        }))
    })??;
    Ok(Json(answer).into_response())
}
