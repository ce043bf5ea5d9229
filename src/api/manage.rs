//! Managers' actions over HTTP, behind `api.admin_token`:
//! `POST /api/v1/admin/leads/{id}/assign`, `.../recall`, `.../move` and
//! `POST /api/v1/admin/reps/{id}`. Each is recorded in the log as a policy
//! input and answered once durable with the commands it made, which the
//! engine publishes like any other (see `policy::manager`). A refused
//! action (an unknown lead, a recall of a lead nobody holds, ...) is 409
//! `refused` and records nothing.
//!
//! `?tenant=ID` names the lead's or rep's tenant. Unlike a read, an action
//! is not forwarded: asked of an engine that does not own the tenant's
//! partition, it answers 421 naming the partition.

use super::tenant::TenantScope;
use super::{check_admin, query, Api, ApiError};
use crate::policy::ManagerAction;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest actor name kept (it is written into every command it makes).
const ACTOR_LEN_BYTES_MAX: usize = 128;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignBody {
    rep: String,
    actor: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecallBody {
    actor: String,
    to_pool: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MoveBody {
    actor: String,
    to_pool: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RepBody {
    actor: String,
    capacity: Option<u32>,
    active: Option<bool>,
    #[serde(default)]
    reset: bool,
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn path(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(id)| id).map_err(|e| bad(e.body_text()))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| bad(e.body_text()))
}

fn check_actor(actor: &str) -> Result<(), ApiError> {
    if actor.trim().is_empty() || actor.len() > ACTOR_LEN_BYTES_MAX {
        return Err(bad(format!(
            "actor: who acts, 1 to {ACTOR_LEN_BYTES_MAX} bytes (it is recorded with every command)"
        )));
    }
    Ok(())
}

/// Records the action and answers with its commands.
async fn act(
    api: &Api,
    scope: Result<Query<TenantScope>, QueryRejection>,
    action: ManagerAction,
    actor: String,
) -> Result<Json<Value>, ApiError> {
    let tenant = query(scope)?.tenant_here(api)?;
    let handle = api.handle.clone();
    let requested_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let t = tenant.clone();
    let answer =
        tokio::task::spawn_blocking(move || handle.manage(&t, action, &actor, requested_at_ms))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })??;
    match answer {
        Ok(commands) => {
            let commands: Vec<Value> = commands
                .iter()
                .map(|c| {
                    json!({
                        "command_id": c.command_id,
                        "type": c.body.type_name(),
                        "lead_id": c.lead_id,
                        "owner_id": c.body.owner_id(),
                        "rule_id": c.rule_id,
                        "rule_version": c.rule_version,
                        "explanation": c.explanation,
                        "facts": c.facts,
                        "body": c.body,
                    })
                })
                .collect();
            Ok(Json(json!({ "tenant": tenant, "commands": commands })))
        }
        Err(why) => Err(ApiError::new(StatusCode::CONFLICT, "refused", why)),
    }
}

pub(super) async fn assign(
    State(api): State<Api>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    scope: Result<Query<TenantScope>, QueryRejection>,
    b: Result<Json<AssignBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&api, &headers)?;
    let lead_id = path(id)?;
    let b = body(b)?;
    check_actor(&b.actor)?;
    let action = ManagerAction::AssignLead {
        lead_id,
        rep: b.rep,
    };
    act(&api, scope, action, b.actor).await
}

pub(super) async fn recall(
    State(api): State<Api>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    scope: Result<Query<TenantScope>, QueryRejection>,
    b: Result<Json<RecallBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&api, &headers)?;
    let lead_id = path(id)?;
    let b = body(b)?;
    check_actor(&b.actor)?;
    let action = ManagerAction::RecallLead {
        lead_id,
        to_pool: b.to_pool,
    };
    act(&api, scope, action, b.actor).await
}

pub(super) async fn move_lead(
    State(api): State<Api>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    scope: Result<Query<TenantScope>, QueryRejection>,
    b: Result<Json<MoveBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&api, &headers)?;
    let lead_id = path(id)?;
    let b = body(b)?;
    check_actor(&b.actor)?;
    let action = ManagerAction::MoveLead {
        lead_id,
        to_pool: b.to_pool,
    };
    act(&api, scope, action, b.actor).await
}

pub(super) async fn rep(
    State(api): State<Api>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    scope: Result<Query<TenantScope>, QueryRejection>,
    b: Result<Json<RepBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&api, &headers)?;
    let rep = path(id)?;
    let b = body(b)?;
    check_actor(&b.actor)?;
    let action = ManagerAction::SetRep {
        rep,
        capacity: b.capacity,
        active: b.active,
        reset: b.reset,
    };
    act(&api, scope, action, b.actor).await
}
