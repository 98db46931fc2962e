//! Account management (`password_management.yaml`, `account_deactivation.yaml`): changing the
//! password and deactivating the account, both confirmed with the current password through
//! UIA.
//!
//! Both sign devices out through the one deletion path of `device_management.yaml`
//! ([`crate::devices`]), in the same transaction as the account change, so no device survives
//! a change that should have ended it, and every long-poll holding a deleted token is answered
//! 401 at once.

use serde_json::{Map, Value};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, forbidden, invalid_param, missing_param},
    uia,
};

/// The longest password accepted, in bytes: hashing is the costly part of a login, and no
/// passphrase needs more.
const MAX_PASSWORD_BYTES: usize = 512;

/// A boolean field that may be absent or `null`.
pub(crate) fn optional_bool(body: &Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad_json(format!("{field} must be a boolean"))),
    }
}

pub(crate) fn new_password(body: &Map<String, Value>) -> Result<String> {
    match body.get("new_password") {
        None | Some(Value::Null) => Err(missing_param("new_password is required")),
        Some(Value::String(p)) if p.is_empty() => {
            Err(Error::WeakPassword("The password must not be empty".into()))
        }
        Some(Value::String(p)) if p.len() > MAX_PASSWORD_BYTES => Err(invalid_param(format!(
            "The password is limited to {MAX_PASSWORD_BYTES} bytes"
        ))),
        Some(Value::String(p)) => Ok(p.clone()),
        Some(_) => Err(bad_json("new_password must be a string")),
    }
}

/// `POST /account/password`: the requester's own token stays valid; with `logout_devices`
/// (the default) every other device is deleted.
pub async fn change_password(
    services: &Services,
    requester: &Requester,
    body: Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<()> {
    // The body is checked before UIA, so a bad request never costs a password round.
    let password = new_password(&body)?;
    let sign_out_others = optional_bool(&body, "logout_devices")?.unwrap_or(true);
    if requester.appservice.is_some() {
        return Err(forbidden(
            "Application service users log in through their service, not with a password",
        ));
    }
    uia::confirm_with_password(
        services,
        requester,
        "POST /account/password".into(),
        &body,
        client_ip,
    )
    .await?;
    let hash = services.passwords.hash(password).await?;
    crate::devices::change_password(
        services,
        &requester.user_id,
        hash,
        sign_out_others,
        requester.device_id.clone(),
    )
    .await?;
    tracing::info!(user_id = %requester.user_id, sign_out_others, "password changed");
    Ok(())
}

/// `POST /account/deactivate`. The account keeps only the row that reserves its ID: its
/// devices, password, profile, account data and key backups are deleted in one transaction,
/// then it leaves every room. With `erase`, whoever joins one of its rooms later is served
/// its events redacted ([`crate::rooms::erasure`]).
pub async fn deactivate(
    services: &Services,
    requester: &Requester,
    body: Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<()> {
    match body.get("id_server") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(_) => return Err(bad_json("id_server must be a string")),
    }
    let erase = optional_bool(&body, "erase")?.unwrap_or(false);
    uia::confirm_with_password(
        services,
        requester,
        "POST /account/deactivate".into(),
        &body,
        client_ip,
    )
    .await?;
    let user_id = &requester.user_id;
    crate::devices::deactivate(services, user_id, erase).await?;
    crate::rooms::membership::leave_everywhere(services, user_id).await?;
    tracing::info!(%user_id, erase, "deactivated");
    Ok(())
}
