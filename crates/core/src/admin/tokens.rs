//! Registration tokens an admin creates (`/_synapse/admin/v1/registration_tokens`), which
//! `m.login.registration_token` accepts beside the one in the configuration.
//!
//! A registration that presents a token reserves one of its uses (`pending`) in the same
//! transaction that checks it is still usable, so two registrations can never both take the
//! last use; the use counts as `completed` once the account exists.

use std::collections::HashMap;

use rand::{Rng, distr::Alphanumeric};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use super::require_admin;
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, invalid_param, not_found},
};
use myelin_store::{RegistrationToken, StoreError, TokenChange};

const MAX_TOKEN_LEN: usize = 64;

fn to_json(t: &RegistrationToken) -> Value {
    json!({
        "token": t.token,
        "uses_allowed": t.uses_allowed,
        "pending": t.pending,
        "completed": t.completed,
        "expiry_time": t.expiry_time,
    })
}

fn unknown(token: &str) -> Error {
    not_found(format!("No such registration token: {token}"))
}

fn valid_token_chars(token: &str) -> bool {
    token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

/// `uses_allowed`: absent leaves it, `null` is unlimited, else a non-negative integer.
fn uses_allowed(body: &Map<String, Value>) -> Result<Option<Option<u64>>> {
    match body.get("uses_allowed") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => v
            .as_u64()
            .map(|n| Some(Some(n)))
            .ok_or_else(|| invalid_param("uses_allowed must be a non-negative integer or null")),
    }
}

/// `expiry_time`: absent leaves it, `null` is never, else a time in the future (ms).
fn expiry_time(body: &Map<String, Value>) -> Result<Option<Option<i64>>> {
    match body.get("expiry_time") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_i64() {
            Some(t) if t >= crate::now_ms() => Ok(Some(Some(t))),
            Some(_) => Err(invalid_param("expiry_time must not be in the past")),
            None => Err(invalid_param("expiry_time must be an integer or null")),
        },
    }
}

/// `GET /_synapse/admin/v1/registration_tokens` (`?valid=true|false` filters).
pub async fn list_tokens(
    services: &Services,
    requester: &Requester,
    params: &HashMap<String, String>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let valid = match params.get("valid").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(invalid_param("valid must be true or false")),
    };
    let now = crate::now_ms();
    let tokens: Vec<Value> = services
        .store
        .registration_tokens()
        .await?
        .iter()
        .filter(|t| valid.is_none_or(|v| t.usable(now) == v))
        .map(to_json)
        .collect();
    Ok(json!({ "registration_tokens": tokens }))
}

/// `POST /_synapse/admin/v1/registration_tokens/new`.
pub async fn create_token(
    services: &Services,
    requester: &Requester,
    body: Map<String, Value>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let uses_allowed = uses_allowed(&body)?.flatten();
    let expiry_time = expiry_time(&body)?.flatten();
    let given = match body.get("token") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.is_empty() || t.len() > MAX_TOKEN_LEN => {
            return Err(invalid_param(format!(
                "token must not be empty and at most {MAX_TOKEN_LEN} characters"
            )));
        }
        Some(Value::String(t)) if !valid_token_chars(t) => {
            return Err(invalid_param(
                "token may only contain A-Z, a-z, 0-9, '.', '_', '~' and '-'",
            ));
        }
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(invalid_param("token must be a string")),
    };
    let length = match body.get("length") {
        None | Some(Value::Null) => 16,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=64) => n as usize,
            _ => return Err(invalid_param("length must be an integer from 1 to 64")),
        },
    };
    // A generated token that happens to exist is drawn again; a given one is refused.
    for _ in 0..4 {
        let token = given.clone().unwrap_or_else(|| {
            rand::rng()
                .sample_iter(&Alphanumeric)
                .take(length)
                .map(char::from)
                .collect()
        });
        let record = RegistrationToken {
            token,
            uses_allowed,
            pending: 0,
            completed: 0,
            expiry_time,
        };
        match services
            .store
            .create_registration_token(record.clone())
            .await
        {
            Ok(()) => {
                tracing::info!(by = %requester.user_id, "admin created a registration token");
                return Ok(to_json(&record));
            }
            Err(StoreError::Conflict(_)) if given.is_none() => continue,
            Err(StoreError::Conflict(_)) => {
                return Err(invalid_param("Token already in use"));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(Error::Internal("could not draw an unused token".into()))
}

/// `GET /_synapse/admin/v1/registration_tokens/{token}`.
pub async fn get_token(services: &Services, requester: &Requester, token: &str) -> Result<Value> {
    require_admin(services, requester).await?;
    let found = services.store.registration_token(token).await?;
    found.as_ref().map(to_json).ok_or_else(|| unknown(token))
}

/// `PUT /_synapse/admin/v1/registration_tokens/{token}`.
pub async fn update_token(
    services: &Services,
    requester: &Requester,
    token: &str,
    body: Map<String, Value>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let change = TokenChange {
        uses_allowed: uses_allowed(&body)?,
        expiry_time: expiry_time(&body)?,
    };
    let updated = services
        .store
        .update_registration_token(token, change)
        .await?;
    updated.as_ref().map(to_json).ok_or_else(|| unknown(token))
}

/// `DELETE /_synapse/admin/v1/registration_tokens/{token}`.
pub async fn delete_token(services: &Services, requester: &Requester, token: &str) -> Result<()> {
    require_admin(services, requester).await?;
    if services.store.delete_registration_token(token).await? {
        Ok(())
    } else {
        Err(unknown(token))
    }
}

/// Whether `token` is the configured registration token (any number of uses).
pub fn is_configured_token(services: &Services, token: &str) -> bool {
    let registration = services.registration();
    let expected = registration.token.as_deref().unwrap_or("");
    !expected.is_empty() && bool::from(token.as_bytes().ct_eq(expected.as_bytes()))
}

/// `GET /register/m.login.registration_token/validity`'s answer: the configured token, or an
/// admin's token with a use left.
pub async fn registration_token_usable(services: &Services, token: &str) -> Result<bool> {
    if is_configured_token(services, token) {
        return Ok(true);
    }
    let found = services.store.registration_token(token).await?;
    Ok(found.is_some_and(|t| t.usable(crate::now_ms())))
}
