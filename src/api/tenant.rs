//! `?tenant=ID`: a query about one tenant's pools or reps, answered by the
//! engine that owns the tenant's partition wherever it is asked.
//!
//! A tenant's pools and reps are its policy's view (a rep id is unique only
//! within its tenant), held by the one engine that owns the tenant's
//! partition. Asked elsewhere, an engine forwards the request to that
//! owner's API (the URL the owner published with its claim on the owners
//! topic, `api.advertised_url`) and relays the answer, so a client may ask
//! any engine, e.g. through one Service. A forwarded request carries
//! `x-leadflow-forwarded-by` (the forwarder's URL); an engine that gets one for a tenant it does
//! not own answers 421 instead of forwarding again, so claims that are
//! briefly out of date never make a loop.

use super::{Api, ApiError};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::time::Duration;

/// The header a forwarded request carries (the forwarding engine's URL).
const FORWARDED_BY: &str = "x-leadflow-forwarded-by";
/// Longest wait for the owner's answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer relayed.
const FORWARD_BYTES_MAX: u64 = 64 * 1024 * 1024;

#[derive(Deserialize)]
pub(super) struct TenantScope {
    tenant: Option<String>,
}

/// Where a scoped query is answered.
pub(super) enum Scoped {
    /// Here: no tenant, or a tenant whose partition this engine owns.
    Here(Option<String>),
    /// The owner's answer, relayed.
    Forwarded(Response),
}

impl TenantScope {
    /// Checks the tenant asked about and finds where it is answered.
    pub(super) async fn resolve(
        self,
        api: &Api,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Scoped, ApiError> {
        let Some(t) = self.tenant else {
            return Ok(Scoped::Here(None));
        };
        if crate::domain::lifecycle::check_tenant_id(&t).is_err() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "tenant: {t:?} is not a tenant id (at most {} ASCII letters, digits, '.', '_', '-', ':')",
                    crate::domain::lifecycle::TENANT_ID_LEN_BYTES_MAX
                ),
            ));
        }
        let Some(partition) = api.handle.tenant_elsewhere(&t)? else {
            return Ok(Scoped::Here(Some(t)));
        };
        let owner = api.handle.partition_owner(partition)?;
        let misdirected = |why: String| {
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "not_owned_here",
                format!(
                    "tenant {t:?} lives on partition {partition}, which another engine owns; {why} (`leadflow partitions` shows who owns it)"
                ),
            )
        };
        if headers.contains_key(FORWARDED_BY) {
            return Err(misdirected(
                "this request was already forwarded once".into(),
            ));
        }
        let (engine, url) = match owner {
            Some((engine, Some(url))) => (engine, url),
            Some((engine, None)) => {
                return Err(misdirected(format!(
                    "its owner {engine} published no API address"
                )))
            }
            None => return Err(misdirected("no live owner is known".into())),
        };
        let target = format!(
            "{url}{}",
            uri.path_and_query().map_or(uri.path(), |p| p.as_str())
        );
        let auth = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let me = api.handle.api_url()?.unwrap_or_default();
        let answer = tokio::task::spawn_blocking(move || forward(&target, auth.as_deref(), &me))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?;
        match answer {
            Ok((status, body)) => Ok(Scoped::Forwarded(
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                    Json(body),
                )
                    .into_response(),
            )),
            Err(detail) => Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "owner_unreachable",
                format!(
                    "tenant {t:?} lives on partition {partition}, owned by {engine} at {url}, which did not answer: {detail}"
                ),
            )),
        }
    }

    /// The tenant an action is about, when this engine owns its
    /// partition; actions are not forwarded (421 otherwise).
    pub(super) fn tenant_here(self, api: &Api) -> Result<String, ApiError> {
        let t = self.tenant.unwrap_or_default();
        if crate::domain::lifecycle::check_tenant_id(&t).is_err() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("tenant: {t:?} is not a tenant id"),
            ));
        }
        if let Some(partition) = api.handle.tenant_elsewhere(&t)? {
            return Err(ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "not_owned_here",
                format!(
                    "tenant {t:?} lives on partition {partition}, which another engine owns: send the action to it (`leadflow partitions` shows who)"
                ),
            ));
        }
        Ok(t)
    }

    pub(super) fn needs_policy() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "tenant: per-tenant pools and reps are the policy's view, and this engine runs without a policy",
        )
    }
}

/// The owner's status and JSON answer to the same request.
fn forward(target: &str, auth: Option<&str>, me: &str) -> Result<(u16, serde_json::Value), String> {
    use std::io::Read;
    let mut request = ureq::get(target)
        .timeout(FORWARD_TIMEOUT)
        .set(FORWARDED_BY, me);
    if let Some(a) = auth {
        request = request.set("Authorization", a);
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = response.status();
    let mut body = Vec::new();
    response
        .into_reader()
        .take(FORWARD_BYTES_MAX)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    let value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    Ok((status, value))
}
