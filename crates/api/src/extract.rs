//! Extractors: the authenticated requester, the client address, and the raw body.
//!
//! The body is read as bytes (bounded by `limits.max_request_bytes`) and parsed by the
//! handler's domain function, because the order of checks matters: a request for another
//! user's account data is a 403 whatever its body is.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request},
    http::{HeaderMap, header, request::Parts},
};
use myelin_core::{
    Services,
    auth::{self, Credentials, Requester},
};
use serde_json::{Map, Value};

use crate::{
    AppState,
    error::{ApiError, bad_json, body_timeout, invalid_param, not_json, too_large},
};

/// The authenticated party, resolved from `Authorization: Bearer` or `?access_token=`.
pub struct Auth(pub Requester);

/// The requester of an endpoint whose token is optional: `None` without one; a token that is
/// present must be valid.
pub struct MaybeAuth(pub Option<Requester>);

/// Query parameters that every authenticated endpoint understands.
pub struct QueryParams(pub HashMap<String, String>);

fn query(parts: &Parts) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// The bearer token, from the header or (deprecated, still sent by older clients) the query.
pub fn access_token<'a>(
    headers: &'a HeaderMap,
    query: &'a HashMap<String, String>,
) -> Option<&'a str> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    from_header.or_else(|| query.get("access_token").map(String::as_str))
}

/// The client's address: the peer, or the rightmost `X-Forwarded-For` hop that is not a
/// trusted proxy when the peer itself is one.
pub fn client_ip(parts: &Parts, services: &Services) -> Option<String> {
    client_addr(parts, services).map(|ip| ip.to_string())
}

/// [`client_ip`] without formatting it (the per-request path only needs the address).
pub fn client_addr(parts: &Parts, services: &Services) -> Option<std::net::IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    let trusted = &services.config.trusted_proxies;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse::<std::net::IpAddr>().ok())
        .collect::<Vec<_>>();
    let client = forwarded
        .into_iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .unwrap_or(peer);
    Some(client)
}

/// The client address as an extractor.
pub struct ClientIp(pub Option<String>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(client_ip(parts, &state.0)))
    }
}

impl QueryParams {
    /// A non-negative integer parameter; 400 `M_INVALID_PARAM` when it is not one.
    pub fn number(&self, name: &str) -> Result<Option<usize>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<usize>()
                .map(Some)
                .map_err(|_| invalid_param(format!("{name} must be a non-negative integer"))),
        }
    }
}

impl FromRequestParts<AppState> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Ok(Self(query(parts)))
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let services: &Arc<Services> = &state.0;
        let params = query(parts);
        let creds = Credentials {
            token: access_token(&parts.headers, &params),
            user_id: params.get("user_id").map(String::as_str),
            device_id: params.get("device_id").map(String::as_str),
            client_ip: client_addr(parts, services),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        };
        let requester = auth::authenticate(services, creds).await?;
        if let Some(identity) = parts.extensions.get::<crate::middleware::Identity>() {
            identity.set(&requester.user_id, requester.device_id.as_deref());
        }
        Ok(Self(requester))
    }
}

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if access_token(&parts.headers, &query(parts)).is_none() {
            return Ok(Self(None));
        }
        let Auth(requester) = Auth::from_request_parts(parts, state).await?;
        Ok(Self(Some(requester)))
    }
}

/// The request body, at most `limits.max_request_bytes` long (413 `M_TOO_LARGE` beyond), read
/// within `limits.body_read_timeout_ms` (408 beyond).
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limits = &state.0.config.limits;
        let limit = limits.max_request_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(too_large(limit));
        }
        // One deadline for the whole body, not one per read: a client trickling a byte at a
        // time would otherwise hold the request (and its connection slot) indefinitely. The
        // connection is closed after the 408, since the rest of the body was never read.
        let deadline = Duration::from_millis(limits.body_read_timeout_ms);
        match tokio::time::timeout(deadline, axum::body::to_bytes(req.into_body(), limit)).await {
            Ok(Ok(bytes)) => Ok(Self(bytes)),
            Ok(Err(_)) => Err(too_large(limit)),
            Err(_) => Err(body_timeout()),
        }
    }
}

impl RawBody {
    /// The body as a JSON object: not JSON is `M_NOT_JSON`, JSON of another kind `M_BAD_JSON`.
    pub fn object(&self) -> Result<Map<String, Value>, ApiError> {
        match serde_json::from_slice::<Value>(&self.0) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(bad_json("Request body must be a JSON object")),
            Err(_) => Err(not_json("Request body is not valid JSON")),
        }
    }

    /// Like [`RawBody::object`], but an absent body counts as `{}` (UIA-02: a DELETE without
    /// a body must get the UIA 401, not a 400).
    pub fn object_or_empty(&self) -> Result<Map<String, Value>, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        self.object()
    }
}
