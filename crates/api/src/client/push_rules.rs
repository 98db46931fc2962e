//! Push rules (`pushrules.yaml`).

use axum::{Json, extract::State};
use myelin_core::push::{self, edit};
use serde_json::{Value, json};

use crate::{
    AppState,
    error::ApiResult,
    extract::{Auth, QueryParams, RawBody},
    path::Segments,
};

/// # `GET /_matrix/client/v3/pushrules/`
///
/// The user's push rules in every scope (only `global` exists). matrix-js-sdk calls this,
/// with the trailing slash, before it starts its sync loop (PR-01).
pub async fn get_push_rules(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    let global = push::ruleset(&state.0, &requester.user_id).await?;
    Ok(Json(json!({ "global": global })))
}

/// # `GET /_matrix/client/v3/pushrules/global/`
///
/// The user's global ruleset itself (PR-03).
pub async fn get_global_push_rules(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    Ok(Json(push::ruleset(&state.0, &requester.user_id).await?))
}

/// # `GET /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}`
///
/// 404 `M_NOT_FOUND` for an unknown rule; 400 for a scope other than `global` or an unknown
/// kind (PR-09).
pub async fn get_rule(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((scope, kind, rule_id)): Segments<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let kind = edit::parse_kind(&scope, &kind)?;
    Ok(Json(
        edit::get_rule(&state.0, &requester, &kind, &rule_id).await?,
    ))
}

/// # `PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}?before=&after=`
pub async fn put_rule(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((scope, kind, rule_id)): Segments<(String, String, String)>,
    QueryParams(query): QueryParams,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let kind = edit::parse_kind(&scope, &kind)?;
    let body = body.object()?;
    let (before, after) = (query.get("before").cloned(), query.get("after").cloned());
    edit::put_rule(&state.0, &requester, kind, &rule_id, before, after, body).await?;
    Ok(Json(json!({})))
}

/// # `DELETE /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}`
pub async fn delete_rule(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((scope, kind, rule_id)): Segments<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let kind = edit::parse_kind(&scope, &kind)?;
    edit::delete_rule(&state.0, &requester, kind, &rule_id).await?;
    Ok(Json(json!({})))
}

/// # `GET /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/{enabled|actions}`
pub async fn get_attribute(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((scope, kind, rule_id, attribute)): Segments<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let kind = edit::parse_kind(&scope, &kind)?;
    Ok(Json(
        edit::get_attribute(&state.0, &requester, &kind, &rule_id, &attribute).await?,
    ))
}

/// # `PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/{enabled|actions}`
pub async fn put_attribute(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((scope, kind, rule_id, attribute)): Segments<(String, String, String, String)>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let kind = edit::parse_kind(&scope, &kind)?;
    let body = body.object()?;
    edit::put_attribute(&state.0, &requester, kind, &rule_id, &attribute, body).await?;
    Ok(Json(json!({})))
}
