//! Shared-secret registration (`/_synapse/admin/v1/register`), for scripts that create the
//! first admin (the reference server's `register_new_matrix_user`): a nonce from `GET`, then
//! a `POST` whose `mac` is the HMAC-SHA1, keyed by `registration.shared_secret`, of the nonce,
//! username, password, `admin` or `notadmin` and the optional user type, NUL-separated.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::{optional_bool, optional_string};
use crate::{
    Services,
    accounts::{Session, new_login_tokens},
    error::{Error, Result, forbidden, missing_param},
    ids,
};
use myelin_store::{FlagsChange, StoreError, User};

/// How long a nonce may be used, in milliseconds (the reference server's minute).
const NONCE_TTL_MS: i64 = 60_000;

/// Nonces handed out and not used yet, with their expiry. In memory: a script asks for one
/// and posts it within a second, to the same server.
#[derive(Default)]
pub struct Nonces(Mutex<HashMap<String, i64>>);

impl Nonces {
    fn issue(&self, now_ms: i64) -> String {
        let nonce = ids::new_session_id();
        let mut live = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|_, expires| *expires > now_ms);
        live.insert(nonce.clone(), now_ms + NONCE_TTL_MS);
        nonce
    }

    /// Uses the nonce up: `true` if it was live.
    fn take(&self, nonce: &str, now_ms: i64) -> bool {
        let mut live = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        live.remove(nonce).is_some_and(|expires| expires > now_ms)
    }
}

fn secret(services: &Services) -> Result<String> {
    services
        .registration()
        .shared_secret
        .ok_or_else(|| Error::Unknown("Shared secret registration is not enabled".into()))
}

/// `GET /_synapse/admin/v1/register`.
pub fn nonce(services: &Services) -> Result<String> {
    secret(services)?;
    Ok(services.nonces.issue(crate::now_ms()))
}

fn required<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str> {
    optional_string(body, field)?.ok_or_else(|| missing_param(format!("{field} is required")))
}

/// The hex HMAC the request must carry.
fn expected_mac(
    secret: &str,
    nonce: &str,
    username: &str,
    password: &str,
    admin: bool,
    user_type: Option<&str>,
) -> Result<String> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .map_err(|e| Error::Internal(format!("shared secret: {e}").into()))?;
    mac.update(nonce.as_bytes());
    mac.update(b"\0");
    mac.update(username.as_bytes());
    mac.update(b"\0");
    mac.update(password.as_bytes());
    mac.update(b"\0");
    mac.update(if admin { b"admin" } else { b"notadmin" });
    if let Some(user_type) = user_type {
        mac.update(b"\0");
        mac.update(user_type.as_bytes());
    }
    let digest = mac.finalize().into_bytes();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// `POST /_synapse/admin/v1/register`: creates the account, logged in on a new device.
pub async fn register(services: &Services, body: Map<String, Value>) -> Result<Session> {
    let secret = secret(services)?;
    let nonce = required(&body, "nonce")?;
    let username = required(&body, "username")?;
    let password = required(&body, "password")?;
    let mac = required(&body, "mac")?;
    let admin = optional_bool(&body, "admin")?.unwrap_or(false);
    let user_type = optional_string(&body, "user_type")?;
    let displayname = optional_string(&body, "displayname")?;
    if !services.nonces.take(nonce, crate::now_ms()) {
        return Err(Error::Unknown("unrecognised nonce".into()));
    }
    let expected = expected_mac(&secret, nonce, username, password, admin, user_type)?;
    if !bool::from(
        expected
            .as_bytes()
            .ct_eq(mac.to_ascii_lowercase().as_bytes()),
    ) {
        return Err(forbidden("HMAC incorrect"));
    }
    let password = crate::accounts::new_password(&Map::from_iter([(
        "new_password".to_owned(),
        Value::from(password),
    )]))?;
    let localpart = crate::accounts::check_new_username(services, username).await?;
    let user_id = ids::user_id(&localpart, &services.config.server_name);
    let hash = services.passwords.hash(password).await?;
    let device_id = ids::new_device_id();
    let (login, issued) = new_login_tokens(services, device_id.clone(), None, None, false);
    services
        .store
        .create_user(
            User {
                user_id: user_id.clone(),
                password_hash: Some(hash),
                appservice_id: None,
                deactivated: false,
            },
            Some(login),
            crate::now_ms(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => Error::UserInUse,
            other => other.into(),
        })?;
    let change = FlagsChange {
        admin: Some(admin),
        user_type: user_type.map(|t| Some(t.to_owned())),
        ..FlagsChange::default()
    };
    services.store.set_user_flags(&user_id, change).await?;
    if let Some(name) = displayname.filter(|n| !n.is_empty()) {
        let me = super::acting_as(&user_id);
        let body = Map::from_iter([("displayname".to_owned(), Value::from(name))]);
        crate::profile::set_field(services, &me, &user_id, "displayname", body).await?;
    }
    tracing::info!(%user_id, admin, "registered with the shared secret");
    Ok(Session::new(services, user_id, Some((device_id, issued))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_is_the_reference_servers() {
        // Computed with Python's hmac module, as register_new_matrix_user does.
        let mac = expected_mac("secret", "nonce", "user", "pass", false, None).unwrap();
        assert_eq!(mac, "a62633a505e2bc2e61569cf3c6847ee41ef09bae");
        let typed = expected_mac("secret", "nonce", "user", "pass", true, Some("bot")).unwrap();
        assert_eq!(typed, "0899de123d60946c6afbd7cec8db32e32241feed");
    }

    #[test]
    fn a_nonce_is_used_once() {
        let nonces = Nonces::default();
        let nonce = nonces.issue(0);
        assert!(nonces.take(&nonce, 1));
        assert!(!nonces.take(&nonce, 2));
        let late = nonces.issue(0);
        assert!(!nonces.take(&late, NONCE_TTL_MS + 1));
    }
}
