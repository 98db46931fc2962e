//! Refresh tokens (`refresh.yaml`).
//!
//! A client that logs in or registers with `refresh_token: true` gets an access token that
//! expires after `tokens.refreshable_access_token_lifetime_secs` and a refresh token. `POST
//! /refresh` trades the refresh token for a new pair; the device's previous access token stops
//! working at once, while the old refresh token keeps working until the new pair is first
//! used, so a lost answer can be retried. An expired access token is answered 401
//! `M_UNKNOWN_TOKEN` with `soft_logout: true`. Only hashes of either token are stored.

use myelin_store::{NewLogin, NewRefresh, Refreshed};
use serde_json::{Map, Value};

use crate::{
    Services,
    error::{Error, Result, bad_json, missing_param},
    ids,
};

/// The tokens a client receives, as plain text (their hashes are in the [`NewLogin`]).
#[derive(Debug)]
pub(crate) struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

/// A new access token for `device_id` and, with `refreshable`, a refresh token with it.
pub(crate) fn new_login_tokens(
    services: &Services,
    device_id: String,
    display_name: Option<String>,
    client_ip: Option<&str>,
    refreshable: bool,
) -> (NewLogin, Issued) {
    let now_ms = crate::now_ms();
    let access_token = ids::new_access_token();
    let tokens = &services.config.tokens;
    let mut issued = Issued {
        access_token,
        refresh_token: None,
        expires_in_ms: None,
    };
    let mut login = NewLogin {
        device_id,
        display_name,
        token_hash: ids::token_hash(&issued.access_token),
        ip: client_ip.map(str::to_owned),
        now_ms,
        expires_ts: None,
        refresh: None,
    };
    if refreshable {
        let lifetime_ms = tokens
            .refreshable_access_token_lifetime_secs
            .saturating_mul(1000);
        let refresh_token = ids::new_refresh_token();
        login.expires_ts = Some(now_ms.saturating_add(lifetime_ms as i64));
        login.refresh = Some(NewRefresh {
            token_hash: ids::token_hash(&refresh_token),
            expires_ts: tokens
                .refresh_token_lifetime_secs
                .map(|secs| now_ms.saturating_add(secs.saturating_mul(1000) as i64)),
        });
        issued.refresh_token = Some(refresh_token);
        issued.expires_in_ms = Some(lifetime_ms);
    }
    (login, issued)
}

/// `POST /refresh`: `{access_token, refresh_token, expires_in_ms}`.
pub async fn refresh(services: &Services, body: &Map<String, Value>) -> Result<Value> {
    let old = match body.get("refresh_token") {
        None | Some(Value::Null) => return Err(missing_param("refresh_token is required")),
        Some(Value::String(token)) => ids::token_hash(token),
        Some(_) => return Err(bad_json("refresh_token must be a string")),
    };
    // The device is the old token's; storage fills it in.
    let (login, issued) = new_login_tokens(services, String::new(), None, None, true);
    let outcome = services
        .detached(move |services| async move {
            let outcome = services.store.refresh(old, login).await?;
            if let Refreshed::Done(owner) = &outcome {
                // The device's previous access token was revoked.
                services
                    .tokens
                    .forget_devices(&owner.user_id, std::slice::from_ref(&owner.device_id));
            }
            Ok::<_, Error>(outcome)
        })
        .await?;
    match outcome {
        Refreshed::Done(_) => Ok(serde_json::json!({
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "expires_in_ms": issued.expires_in_ms,
        })),
        // The device may still exist: the client can log in again and keep it.
        Refreshed::Unknown | Refreshed::Expired => Err(Error::SoftLoggedOut),
    }
}
