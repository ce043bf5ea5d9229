//! The admin routes, behind `api.admin_token`: checkpoint now, rebuild
//! the projections from the log, reload the policy file.

use super::{check_admin, Api, ApiError};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

pub(super) async fn admin_snapshot(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check_admin(&api, &headers)?;
    let seq = api.handle.save_snapshots()?;
    Ok(Json(json!({ "snapshot_seq": seq })))
}

pub(super) async fn admin_rebuild(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check_admin(&api, &headers)?;
    let seq = api
        .replay(|h| h.rebuild_projections().map_err(ApiError::from))
        .await?;
    Ok(Json(json!({ "rebuilt_to_seq": seq })))
}

pub(super) async fn admin_reload_policy(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check_admin(&api, &headers)?;
    let Some(path) = &api.policy_file else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_policy",
            "the engine runs without [policy] file",
        ));
    };
    let policy = crate::config::load_policy(path).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_policy",
            e.to_string(),
        )
    })?;
    let loaded = policy.version;
    let in_force = api.handle.reload_policy(policy)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_policy",
            "the engine runs without a policy",
        )
    })?;
    Ok(Json(
        json!({ "loaded_version": loaded, "version_in_force": in_force }),
    ))
}
