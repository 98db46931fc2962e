use axum::{Json, extract::State};
use serde_json::{Value, json};

use crate::{AppState, error::ApiResult};

/// Spec versions whose behaviour Myelin follows for every endpoint it serves. v1.17 brought
/// MSC4190 and MSC4326, which Myelin implements; v1.18 and later (OAuth-aware clients, the
/// removal of `?access_token=`) are not claimed.
const VERSIONS: &[&str] = &[
    "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
    "v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17",
];

/// # `GET /_matrix/client/versions`
pub async fn get_versions() -> Json<Value> {
    Json(json!({
        "versions": VERSIONS,
        "unstable_features": {
            "org.matrix.msc3391": true,
            "io.element.msc4190": true,
        }
    }))
}

/// # `GET /.well-known/matrix/support`
///
/// The operator's contacts and support page from the `support` configuration; 404
/// `M_NOT_FOUND` when none is configured.
pub async fn get_support(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let support = &state.0.config.support;
    if support.page.is_none() && support.contacts.is_empty() {
        return Err(myelin_core::error::not_found("No support information is configured").into());
    }
    let mut body = json!({ "contacts": support.contacts });
    if let Some(page) = &support.page {
        body["support_page"] = json!(page);
    }
    Ok(Json(body))
}

/// # `GET /.well-known/matrix/client`
pub async fn get_well_known(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "m.homeserver": { "base_url": &*state.1 } }))
}
