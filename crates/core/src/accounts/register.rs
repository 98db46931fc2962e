//! Registration (`registration.yaml`): UIA with `m.login.dummy` or a registration token,
//! appservice users, username availability.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    LOGIN_TYPE_APPSERVICE, Session, parse,
    refresh::{Issued, new_login_tokens},
    user_in_use,
};
use crate::{
    Services,
    appservice::Appservice,
    error::{Error, Result, bad_json, forbidden, limit_exceeded, missing_param},
    ids, ratelimit, uia,
};
use myelin_store::{NewLogin, User};

#[derive(Debug, Default, Deserialize, Serialize)]
struct RegisterBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    initial_device_display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inhibit_login: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<bool>,
    /// The password's argon2id hash: what the UIA session remembers instead of the password
    /// itself, which is never written anywhere. Never taken from a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
}

/// `POST /register`.
pub async fn register(
    services: &Services,
    body: Map<String, Value>,
    kind: Option<&str>,
    as_token: Option<&str>,
    client_ip: Option<&str>,
) -> Result<Session> {
    match kind {
        None | Some("user") => {}
        Some("guest") => return Err(Error::GuestAccessForbidden),
        Some(_) => return Err(Error::InvalidParam("kind must be user or guest".into())),
    }
    let auth = body.get("auth").filter(|a| !a.is_null());
    let stage = auth.and_then(|a| a.get("type")).and_then(Value::as_str);
    // The appservice spec puts the type at the top level (`{"type": "m.login.application_service",
    // "username": ...}`); some clients send it as an `auth` stage. Accept both.
    let top_level = body.get("type").and_then(Value::as_str);
    if stage == Some(LOGIN_TYPE_APPSERVICE) || top_level == Some(LOGIN_TYPE_APPSERVICE) {
        let service = match (as_token, crate::auth::appservice_for(services, as_token)) {
            (None, _) => return Err(Error::MissingToken),
            (Some(_), None) => return Err(Error::UnknownToken),
            (Some(_), Some(service)) => service,
        };
        return register_appservice_user(services, &service, &parse(&body)?).await;
    }

    if !services.registration().enabled {
        return Err(forbidden("Registration is disabled"));
    }
    if let Some(ip) = client_ip {
        services
            .limiters
            .registration_per_address
            .check(&ratelimit::address_key(ip))
            .map_err(limit_exceeded)?;
    }

    // UIA-14: parameters of the first request are remembered; a later round may send only
    // `auth`, and what it does send takes precedence.
    let mut merged = Map::new();
    let mut registered = false;
    if let Some(session_id) = auth.and_then(|a| a.get("session")).and_then(Value::as_str)
        && let Some(session) = services
            .store
            .get_uia_session(session_id, crate::now_ms())
            .await?
    {
        registered = session.result.is_some();
        if let Some(remembered) = session
            .request
            .and_then(|r| serde_json::from_str::<Map<String, Value>>(&r).ok())
        {
            merged = remembered;
        }
    }
    for (key, value) in &body {
        if key != "auth" && key != "password_hash" && key != uia::RESERVED_TOKEN && !value.is_null()
        {
            merged.insert(key.clone(), value.clone());
        }
    }
    let mut request: RegisterBody = parse(&merged)?;

    // The spec requires these checks before UIA.
    // (Skipped when this session already registered the user: see UIA-15 below.)
    let localpart = match &request.username {
        Some(username) if !registered => Some(check_new_username(services, username).await?),
        _ => None,
    };
    if let Some(device_id) = &request.device_id {
        ids::check_device_id(device_id)?;
    }
    crate::devices::check_display_name(
        services,
        request.initial_device_display_name.as_deref(),
        "initial_device_display_name",
    )?;

    let registration = services.registration();
    let flows = if registration.token.is_some() || registration.requires_token {
        vec![vec![uia::REGISTRATION_TOKEN]]
    } else {
        vec![vec![uia::DUMMY]]
    };
    // The session remembers the password only as its hash (costs one hash per round that
    // sends a password; registration is rate-limited per address).
    if let Some(password) = request.password.take() {
        request.password_hash = Some(services.passwords.hash(password).await?);
    }
    let remember = serde_json::to_value(&request).map_err(|e| bad_json(e.to_string()))?;
    let session = uia::authenticate(
        services,
        uia::Operation {
            user_id: None,
            fingerprint: "POST /register".into(),
            flows,
            remember: Some(remember),
        },
        auth,
        client_ip,
    )
    .await?;

    // UIA-15: a completed session registers once; repeating it logs the same user in again.
    if let Some(user_id) = session.result.clone() {
        return issue_session(services, &user_id, &request, client_ip).await;
    }

    let Some(password_hash) = request.password_hash.clone() else {
        return Err(missing_param("password is required"));
    };
    let localpart = match localpart {
        Some(l) => l,
        None => generate_localpart(services).await?,
    };
    let user_id = ids::user_id(&localpart, &services.config.server_name);
    let (login, issued) = new_login(services, &request, client_ip);
    let login = (!request.inhibit_login.unwrap_or(false)).then_some(login);
    let device_id = login.as_ref().map(|l| l.device_id.clone());
    services
        .store
        .create_user(
            User {
                user_id: user_id.clone(),
                password_hash: Some(password_hash),
                appservice_id: None,
                deactivated: false,
            },
            login,
            crate::now_ms(),
        )
        .await
        .map_err(user_in_use)?;
    let reserved = session
        .request
        .as_deref()
        .and_then(|r| serde_json::from_str::<Map<String, Value>>(r).ok())
        .and_then(|r| r.get(uia::RESERVED_TOKEN)?.as_str().map(str::to_owned));
    if let Some(token) = reserved {
        services
            .store
            .complete_registration_token(&token, &session.session_id)
            .await?;
    }
    let mut done = session;
    done.result = Some(user_id.clone());
    services.store.put_uia_session(done).await?;
    tracing::info!(%user_id, "registered");
    Ok(Session::new(
        services,
        user_id,
        device_id.map(|d| (d, issued)),
    ))
}

fn new_login(
    services: &Services,
    request: &RegisterBody,
    client_ip: Option<&str>,
) -> (NewLogin, Issued) {
    new_login_tokens(
        services,
        request.device_id.clone().unwrap_or_else(ids::new_device_id),
        request.initial_device_display_name.clone(),
        client_ip,
        request.refresh_token.unwrap_or(false),
    )
}

async fn issue_session(
    services: &Services,
    user_id: &str,
    request: &RegisterBody,
    client_ip: Option<&str>,
) -> Result<Session> {
    if request.inhibit_login.unwrap_or(false) {
        return Ok(Session::new(services, user_id.to_owned(), None));
    }
    let (login, issued) = new_login(services, request, client_ip);
    let device_id = login.device_id.clone();
    crate::devices::sign_in(services, user_id, login).await?;
    Ok(Session::new(
        services,
        user_id.to_owned(),
        Some((device_id, issued)),
    ))
}

pub(crate) async fn check_new_username(services: &Services, username: &str) -> Result<String> {
    let server_name = &services.config.server_name;
    let localpart = ids::new_localpart(username, server_name)?;
    let user_id = ids::user_id(&localpart, server_name);
    if services.appservices.exclusive_owner(&user_id).is_some() {
        return Err(Error::Exclusive(
            "This user ID is reserved by an application service".into(),
        ));
    }
    if services.store.get_user(&user_id).await?.is_some() {
        return Err(Error::UserInUse);
    }
    Ok(localpart)
}

async fn generate_localpart(services: &Services) -> Result<String> {
    for _ in 0..8 {
        let candidate = ids::new_session_id().to_lowercase();
        if let Ok(localpart) = check_new_username(services, &candidate).await {
            return Ok(localpart);
        }
    }
    Err(Error::Internal("could not pick a free user ID".into()))
}

async fn register_appservice_user(
    services: &Services,
    service: &Arc<Appservice>,
    request: &RegisterBody,
) -> Result<Session> {
    let Some(username) = &request.username else {
        return Err(missing_param("username is required"));
    };
    let server_name = &services.config.server_name;
    let localpart = ids::new_localpart(username, server_name)?;
    let user_id = ids::user_id(&localpart, server_name);
    let claimed_by_another = services
        .appservices
        .exclusive_owner(&user_id)
        .is_some_and(|owner| owner.id != service.id);
    if !service.is_interested_in(&user_id) || claimed_by_another {
        return Err(Error::Exclusive(
            "Invalid user localpart for this application service".into(),
        ));
    }
    let inhibit_login = request.inhibit_login.unwrap_or(false);
    // MSC4190 (spec v1.17): such an appservice manages devices itself, so it may not obtain
    // a token this way. Refuse before creating anything (unlike Synapse, which creates the
    // user first and then answers 400).
    if service.msc4190 && !inhibit_login {
        return Err(Error::AppserviceLoginUnsupported);
    }
    if let Some(device_id) = &request.device_id {
        ids::check_device_id(device_id)?;
    }
    crate::devices::check_display_name(
        services,
        request.initial_device_display_name.as_deref(),
        "initial_device_display_name",
    )?;
    let (login, issued) = new_login(services, request, None);
    let login = (!inhibit_login).then_some(login);
    let device_id = login.as_ref().map(|l| l.device_id.clone());
    services
        .store
        .create_user(
            User {
                user_id: user_id.clone(),
                password_hash: None,
                appservice_id: Some(service.id.clone()),
                deactivated: false,
            },
            login,
            crate::now_ms(),
        )
        .await
        .map_err(user_in_use)?;
    tracing::info!(%user_id, appservice = %service.id, "registered appservice user");
    Ok(Session::new(
        services,
        user_id,
        device_id.map(|d| (d, issued)),
    ))
}

/// `GET /register/available`.
pub async fn username_available(services: &Services, username: &str) -> Result<()> {
    if !services.registration().enabled {
        return Err(forbidden("Registration is disabled"));
    }
    check_new_username(services, username).await.map(drop)
}

/// `GET /register/m.login.registration_token/validity`, rate-limited per client address
/// (an unlimited oracle would let a token be guessed).
pub async fn registration_token_valid(
    services: &Services,
    token: &str,
    client_ip: Option<&str>,
) -> Result<bool> {
    if let Some(ip) = client_ip {
        services
            .limiters
            .registration_token_validity_per_address
            .check(&ratelimit::address_key(ip))
            .map_err(limit_exceeded)?;
    }
    if !services.registration().enabled {
        return Ok(false);
    }
    crate::admin::registration_token_usable(services, token).await
}
