//! `GET /capabilities` (`capabilities.yaml`): what this server really does. Each capability
//! is `true` only where the feature is built; the rest say `false` rather than nothing, so
//! clients do not offer what would fail.

use axum::{Json, extract::State};
use myelin_core::events::SUPPORTED_VERSIONS;
use serde_json::{Map, Value, json};

use crate::{AppState, error::ApiResult, extract::Auth};

/// # `GET /_matrix/client/v3/capabilities`
pub async fn get_capabilities(
    State(state): State<AppState>,
    Auth(_requester): Auth,
) -> ApiResult<Json<Value>> {
    let available: Map<String, Value> = SUPPORTED_VERSIONS
        .iter()
        .map(|v| ((*v).to_owned(), json!("stable")))
        .collect();
    let disabled = json!({ "enabled": false });
    let enabled = json!({ "enabled": true });
    Ok(Json(json!({
        "capabilities": {
            "m.room_versions": {
                "default": state.0.config.rooms.default_version,
                "available": available,
            },
            "m.change_password": enabled,
            "m.set_displayname": enabled,
            "m.set_avatar_url": enabled,
            "m.3pid_changes": disabled,
            "m.get_login_token": disabled,
            "m.profile_fields": enabled,
        }
    })))
}
