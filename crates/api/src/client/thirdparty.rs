//! Third-party networks (`third_party_lookup.yaml`). Bridges announce their protocols through
//! their appservice; this server does not ask them yet, so it knows no protocol, and every
//! lookup in one answers 404 `M_NOT_FOUND`.

use axum::Json;
use serde_json::{Value, json};

use crate::{error::ApiResult, extract::Auth};

/// # `GET /_matrix/client/v3/thirdparty/protocols`
pub async fn get_protocols(Auth(_requester): Auth) -> Json<Value> {
    Json(json!({}))
}

/// # `GET /_matrix/client/v3/thirdparty/protocol/{protocol}`, `/location[/{protocol}]`, `/user[/{protocol}]`
pub async fn lookup(Auth(_requester): Auth) -> ApiResult<Json<Value>> {
    Err(myelin_core::error::not_found("No such third-party protocol, location or user").into())
}
