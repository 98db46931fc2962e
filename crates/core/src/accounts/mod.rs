//! Accounts and sessions: login and logout here, registration in [`register`], password
//! changes and deactivation in [`manage`], refresh tokens in [`refresh`].
//!
//! A device and its first token are created in one transaction (AU-21), so a login that fails
//! half-way can never leave a device without a token behind.

mod manage;
mod refresh;
mod register;

pub use manage::{change_password, deactivate};
pub(crate) use manage::{new_password, optional_bool};
pub use refresh::refresh;
pub(crate) use refresh::{Issued, new_login_tokens};
pub(crate) use register::check_new_username;
pub use register::{register, registration_token_valid, username_available};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, forbidden, limit_exceeded, missing_param},
    ids, ratelimit, uia,
};
use myelin_store::{StoreError, User};

const LOGIN_TYPE_PASSWORD: &str = "m.login.password";
const LOGIN_TYPE_APPSERVICE: &str = "m.login.application_service";
const BAD_CREDENTIALS: &str = "Invalid username or password";

/// A successful registration or login, as the client receives it.
#[derive(Debug, Serialize)]
pub struct Session {
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Only for a client that asked for one (`refresh_token: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    /// Deprecated by the spec but still read by older clients.
    pub home_server: String,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Map<String, Value>) -> Result<T> {
    serde_json::from_value(Value::Object(body.clone()))
        .map_err(|e| bad_json(format!("Invalid request body: {e}")))
}

impl Session {
    /// The answer to a registration or login: with a device, its tokens.
    pub(crate) fn new(
        services: &Services,
        user_id: String,
        device: Option<(String, Issued)>,
    ) -> Self {
        let (device_id, issued) = device.unzip();
        let (access_token, refresh_token, expires_in_ms) = match issued {
            Some(i) => (Some(i.access_token), i.refresh_token, i.expires_in_ms),
            None => (None, None, None),
        };
        Self {
            user_id,
            access_token,
            device_id,
            refresh_token,
            expires_in_ms,
            home_server: services.config.server_name.clone(),
        }
    }
}

fn user_in_use(err: StoreError) -> Error {
    match err {
        StoreError::Conflict(_) => Error::UserInUse,
        other => other.into(),
    }
}

#[derive(Debug, Deserialize)]
struct LoginBody {
    #[serde(rename = "type")]
    login_type: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    initial_device_display_name: Option<String>,
    #[serde(default)]
    refresh_token: Option<bool>,
}

/// `POST /login`, counted in `myelin_logins_total` by type and outcome.
pub async fn login(
    services: &Services,
    body: Map<String, Value>,
    as_token: Option<&str>,
    client_ip: Option<&str>,
) -> Result<Session> {
    let kind = match body.get("type").and_then(Value::as_str) {
        Some(LOGIN_TYPE_PASSWORD) => "password",
        Some(LOGIN_TYPE_APPSERVICE) => "application_service",
        _ => "other",
    };
    let outcome = login_with(services, body, as_token, client_ip).await;
    let result = if outcome.is_ok() {
        "success"
    } else {
        "failure"
    };
    metrics::counter!("myelin_logins_total", "type" => kind, "result" => result).increment(1);
    outcome
}

async fn login_with(
    services: &Services,
    body: Map<String, Value>,
    as_token: Option<&str>,
    client_ip: Option<&str>,
) -> Result<Session> {
    let named = uia::login_identifier(&body)?;
    let request: LoginBody = parse(&body)?;
    let user_id = match request.login_type.as_str() {
        LOGIN_TYPE_PASSWORD => {
            let (Some(named), Some(password)) = (named, request.password.as_deref()) else {
                return Err(bad_json("identifier and password are required"));
            };
            let user_id = ids::login_user_id(named, &services.config.server_name);
            let ok = match &user_id {
                Some(user_id) => check_password(services, user_id, password, client_ip).await?,
                None => false,
            };
            match (ok, user_id) {
                (true, Some(user_id)) => user_id,
                _ => return Err(forbidden(BAD_CREDENTIALS)),
            }
        }
        LOGIN_TYPE_APPSERVICE => {
            let service = match (as_token, crate::auth::appservice_for(services, as_token)) {
                (None, _) => return Err(Error::MissingToken),
                (Some(_), None) => return Err(Error::UnknownToken),
                (Some(_), Some(service)) => service,
            };
            if service.msc4190 {
                return Err(Error::AppserviceLoginUnsupported);
            }
            let user_id = named
                .and_then(|n| ids::login_user_id(n, &services.config.server_name))
                .ok_or_else(|| bad_json("identifier is required"))?;
            if !service.is_interested_in(&user_id) {
                return Err(Error::Exclusive(
                    "This user is not in the application service's namespace".into(),
                ));
            }
            match services.store.get_user(&user_id).await? {
                None => return Err(forbidden(BAD_CREDENTIALS)),
                Some(user) if user.deactivated => return Err(Error::UserDeactivated),
                Some(_) => {}
            }
            user_id
        }
        _ => return Err(Error::Unknown("Unknown login type".into())),
    };
    // Told only to whoever proved the password, as the reference server does.
    if services
        .store
        .user_flags(&user_id)
        .await?
        .is_some_and(|f| f.locked)
    {
        return Err(Error::UserLocked);
    }
    if let Some(device_id) = &request.device_id {
        ids::check_device_id(device_id)?;
        // DD-08: device IDs and cross-signing public keys share one namespace (the spec's
        // "device IDs will not collide"); XS-10 refuses the other direction.
        let keys = services
            .store
            .cross_signing_keys(vec![user_id.clone()])
            .await?;
        if keys.iter().any(|k| &k.key_id == device_id) {
            return Err(Error::DeviceIdInUse);
        }
    }
    crate::devices::check_display_name(
        services,
        request.initial_device_display_name.as_deref(),
        "initial_device_display_name",
    )?;
    let device_id = request.device_id.unwrap_or_else(ids::new_device_id);
    let (new, issued) = new_login_tokens(
        services,
        device_id.clone(),
        request.initial_device_display_name,
        client_ip,
        request.refresh_token.unwrap_or(false),
    );
    crate::devices::sign_in(services, &user_id, new).await?;
    tracing::info!(%user_id, %device_id, "logged in");
    Ok(Session::new(services, user_id, Some((device_id, issued))))
}

/// Verifies a password, rate-limiting failures per account and per client address.
///
/// The allowance is spent before the check and given back when the password is right: a
/// check in flight has already used its allowance, so parallel guesses cannot all pass while
/// earlier ones are still being hashed.
pub async fn check_password(
    services: &Services,
    user_id: &str,
    password: &str,
    client_ip: Option<&str>,
) -> Result<bool> {
    let limiters = &services.limiters;
    let address = client_ip.map(ratelimit::address_key);
    limiters
        .login_failures_per_account
        .check(user_id)
        .map_err(limit_exceeded)?;
    if let Some(address) = &address
        && let Err(wait) = limiters.login_failures_per_address.check(address)
    {
        limiters.login_failures_per_account.refund(user_id);
        return Err(limit_exceeded(wait));
    }
    let checked = verify_password(services, user_id, password).await;
    // Only a wrong password keeps what it spent; a server error is not the client's guess.
    if !matches!(checked, Ok(false)) {
        limiters.login_failures_per_account.refund(user_id);
        if let Some(address) = &address {
            limiters.login_failures_per_address.refund(address);
        }
    }
    checked
}

async fn verify_password(services: &Services, user_id: &str, password: &str) -> Result<bool> {
    let user = services.store.get_user(user_id).await?;
    // Said before any password check, as the reference server does: the account is gone
    // for good, and no password could open it.
    if user.as_ref().is_some_and(|u| u.deactivated) {
        return Err(Error::UserDeactivated);
    }
    let hash = user.and_then(|u| u.password_hash);
    services.passwords.verify(password.to_owned(), hash).await
}

/// `POST /logout`: deletes the requester's device and with it the token.
pub async fn logout(services: &Services, requester: &Requester) -> Result<()> {
    let Some(device_id) = &requester.device_id else {
        return Err(forbidden("Application service tokens cannot be logged out"));
    };
    crate::devices::remove(
        services,
        &requester.user_id,
        vec![device_id.clone()],
        "logout",
    )
    .await
}

/// `POST /logout/all`: deletes every device of the user.
pub async fn logout_all(services: &Services, requester: &Requester) -> Result<()> {
    // In batches like any other deletion; a device created meanwhile is caught by the next
    // round.
    for _ in 0..3 {
        let devices = services.store.list_devices(&requester.user_id).await?;
        if devices.is_empty() {
            break;
        }
        let ids = devices.into_iter().map(|d| d.device_id).collect();
        crate::devices::remove(services, &requester.user_id, ids, "logout_all").await?;
    }
    Ok(())
}

/// Creates a user from the command line (works while registration is closed).
pub async fn create_user(services: &Services, user_id: &str, password: String) -> Result<String> {
    let server_name = &services.config.server_name;
    let parsed = ids::parse_user_id(user_id)
        .ok_or_else(|| Error::InvalidUsername("not a valid user ID".into()))?;
    if parsed.server_name().as_str() != server_name {
        return Err(Error::InvalidUsername(
            format!("user ID must end in :{server_name}").into(),
        ));
    }
    let localpart = ids::new_localpart(parsed.localpart(), server_name)?;
    let user_id = ids::user_id(&localpart, server_name);
    if password.is_empty() {
        return Err(missing_param("password must not be empty"));
    }
    let password_hash = services.passwords.hash(password).await?;
    services
        .store
        .create_user(
            User {
                user_id: user_id.clone(),
                password_hash: Some(password_hash),
                appservice_id: None,
                deactivated: false,
            },
            None,
            crate::now_ms(),
        )
        .await
        .map_err(user_in_use)?;
    Ok(user_id)
}

pub(crate) async fn ensure_appservice_senders(services: &Services) -> Result<()> {
    for service in services.appservices.all() {
        if services.store.get_user(&service.sender).await?.is_some() {
            continue;
        }
        let created = services
            .store
            .create_user(
                User {
                    user_id: service.sender.clone(),
                    password_hash: None,
                    appservice_id: Some(service.id.clone()),
                    deactivated: false,
                },
                None,
                crate::now_ms(),
            )
            .await;
        match created {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}
