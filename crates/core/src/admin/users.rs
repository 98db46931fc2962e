//! Accounts through the admin API: list, details, create or modify, deactivate, password
//! reset, whois, account data, the admin and suspension flags.

use std::{cmp::Ordering, collections::HashMap};

use serde_json::{Map, Value, json};

use super::{
    Paging, USER_NOT_FOUND, acting_as, existing_user, local_user, optional_bool, optional_string,
    require_admin,
};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, invalid_param, not_found},
};
use myelin_store::{FlagsChange, User, UserSummary};

/// A profile field as stored (raw JSON) as the string the admin API shows.
fn profile_string(raw: &Option<String>) -> Value {
    raw.as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
        .filter(Value::is_string)
        .unwrap_or(Value::Null)
}

fn localpart(user_id: &str) -> &str {
    user_id[1..].split(':').next().unwrap_or_default()
}

/// One account as the user list shows it (`creation_ts` in milliseconds).
fn list_entry(u: &UserSummary) -> Value {
    json!({
        "name": u.user_id,
        "user_type": u.flags.user_type,
        "is_guest": false,
        "admin": u.flags.admin,
        "deactivated": u.deactivated,
        "erased": u.erased,
        "shadow_banned": false,
        "displayname": profile_string(&u.displayname),
        "avatar_url": profile_string(&u.avatar_url),
        "creation_ts": u.creation_ts,
        "last_seen_ts": u.last_seen_ts,
        "locked": u.flags.locked,
        "suspended": u.flags.suspended,
    })
}

/// One account as `GET /v2/users/{id}` shows it. `creation_ts` is in seconds here, as the
/// reference server answers and the admin UIs expect (they multiply it by 1000).
fn details(u: &UserSummary) -> Value {
    json!({
        "name": u.user_id,
        "displayname": profile_string(&u.displayname),
        "avatar_url": profile_string(&u.avatar_url),
        "threepids": [],
        "external_ids": [],
        "is_guest": false,
        "admin": u.flags.admin,
        "deactivated": u.deactivated,
        "erased": u.erased,
        "shadow_banned": false,
        "locked": u.flags.locked,
        "suspended": u.flags.suspended,
        "creation_ts": u.creation_ts / 1000,
        "last_seen_ts": u.last_seen_ts,
        "appservice_id": u.appservice_id,
        "user_type": u.flags.user_type,
        "consent_server_notice_sent": null,
        "consent_version": null,
        "consent_ts": null,
    })
}

fn bool_param(params: &HashMap<String, String>, name: &str) -> Result<Option<bool>> {
    match params.get(name).map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(invalid_param(format!(
            "Boolean query parameter {name} must be one of ['true', 'false']"
        ))),
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(needle)
}

/// `GET /_synapse/admin/v2/users` and (`v3`, where `deactivated` absent means no filter)
/// `/v3/users`: filtered, sorted and paged by offset (`from`), as the admin UIs page it.
pub async fn list_users(
    services: &Services,
    requester: &Requester,
    params: &HashMap<String, String>,
    v3: bool,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let paging = Paging::parse(params)?;
    let deactivated = match bool_param(params, "deactivated")? {
        // v2 lists deactivated accounts only when asked, and then beside the others.
        Some(true) if !v3 => None,
        None if !v3 => Some(false),
        other => other,
    };
    let locked = bool_param(params, "locked")?.unwrap_or(false);
    let admins = bool_param(params, "admins")?;
    let suspended = bool_param(params, "suspended")?;
    // Checked, but there are no guest accounts for it to leave out.
    bool_param(params, "guests")?;
    let name = params.get("name").map(|n| n.to_lowercase());
    let user_id = params.get("user_id").map(|n| n.to_lowercase());
    let order_by = params.get("order_by").map_or("name", String::as_str);
    let key: fn(&UserSummary, &UserSummary) -> Ordering = match order_by {
        "name" => |a, b| a.user_id.cmp(&b.user_id),
        "is_guest" | "shadow_banned" => |_, _| Ordering::Equal,
        "admin" => |a, b| a.flags.admin.cmp(&b.flags.admin),
        "user_type" => |a, b| a.flags.user_type.cmp(&b.flags.user_type),
        "deactivated" => |a, b| a.deactivated.cmp(&b.deactivated),
        "displayname" => |a, b| a.displayname.cmp(&b.displayname),
        "avatar_url" => |a, b| a.avatar_url.cmp(&b.avatar_url),
        "creation_ts" => |a, b| a.creation_ts.cmp(&b.creation_ts),
        "last_seen_ts" => |a, b| a.last_seen_ts.cmp(&b.last_seen_ts),
        _ => return Err(invalid_param("Unknown value for order_by")),
    };
    crate::devices::flush_last_seen(services).await;
    let mut users: Vec<UserSummary> = services
        .store
        .user_summaries()
        .await?
        .into_iter()
        .filter(|u| deactivated.is_none_or(|d| u.deactivated == d))
        .filter(|u| locked || !u.flags.locked)
        .filter(|u| admins.is_none_or(|a| u.flags.admin == a))
        .filter(|u| suspended.is_none_or(|s| u.flags.suspended == s))
        .filter(|u| match (&name, &user_id) {
            (Some(name), _) => {
                contains_ci(localpart(&u.user_id), name)
                    || profile_string(&u.displayname)
                        .as_str()
                        .is_some_and(|d| contains_ci(d, name))
            }
            (None, Some(id)) => contains_ci(&u.user_id, id),
            (None, None) => true,
        })
        .collect();
    // Ties fall back to the user ID, so pages never overlap or skip.
    users.sort_by(|a, b| key(a, b).then_with(|| a.user_id.cmp(&b.user_id)));
    let (page, total, next) = paging.page(users);
    let page: Vec<Value> = page.iter().map(list_entry).collect();
    let mut out = json!({ "users": page, "total": total });
    if let Some(next) = next {
        out["next_token"] = json!(next.to_string());
    }
    Ok(out)
}

/// `GET /_synapse/admin/v2/users/{userId}`.
pub async fn user(services: &Services, requester: &Requester, user_id: &str) -> Result<Value> {
    require_admin(services, requester).await?;
    let user_id = local_user(services, user_id)?;
    crate::devices::flush_last_seen(services).await;
    let summary = services.store.user_summary(&user_id).await?;
    summary
        .as_ref()
        .map(details)
        .ok_or_else(|| not_found(USER_NOT_FOUND))
}

/// `PUT /_synapse/admin/v2/users/{userId}`: creates the account (`Ok((true, _))`, 201) or
/// changes what the body names; answers the account's details either way.
pub async fn put_user(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: Map<String, Value>,
) -> Result<(bool, Value)> {
    require_admin(services, requester).await?;
    let user_id = local_user(services, user_id)?;
    let password = match body.get("password") {
        None | Some(Value::Null) => None,
        Some(_) => Some(crate::accounts::new_password(&rename(&body, "password"))?),
    };
    let logout_devices = optional_bool(&body, "logout_devices")?.unwrap_or(true);
    let displayname = optional_string(&body, "displayname")?;
    let avatar_url = optional_string(&body, "avatar_url")?;
    let admin = optional_bool(&body, "admin")?;
    let deactivated = optional_bool(&body, "deactivated")?;
    let locked = optional_bool(&body, "locked")?;
    let user_type = match body.get("user_type") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(t)) => Some(Some(t.clone())),
        Some(_) => return Err(bad_json("user_type must be a string or null")),
    };
    for list in ["threepids", "external_ids"] {
        match body.get(list) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.is_empty() => {}
            Some(Value::Array(_)) if list == "threepids" => {
                return Err(Error::ThreepidMediumNotSupported(
                    "This server binds no third-party identifiers".into(),
                ));
            }
            Some(Value::Array(_)) => {
                return Err(invalid_param(
                    "This server has no external identity providers",
                ));
            }
            Some(_) => return Err(bad_json(format!("{list} must be a list"))),
        }
    }
    if deactivated == Some(true) && locked == Some(true) {
        return Err(Error::Unknown(
            "An user can't be deactivated and locked".into(),
        ));
    }
    if user_id == requester.user_id && admin == Some(false) {
        return Err(Error::Unknown("You may not demote yourself.".into()));
    }
    let hash = match password {
        Some(p) => Some(services.passwords.hash(p).await?),
        None => None,
    };
    let existing = services.store.get_user(&user_id).await?;
    let created = existing.is_none();
    match existing {
        None => {
            let wanted = localpart(&user_id);
            if crate::ids::new_localpart(wanted, &services.config.server_name)? != wanted {
                return Err(Error::InvalidUsername(
                    "User ID can only contain characters a-z, 0-9, or '=_-./+'".into(),
                ));
            }
            services
                .store
                .create_user(
                    User {
                        user_id: user_id.clone(),
                        password_hash: hash.clone(),
                        appservice_id: None,
                        deactivated: false,
                    },
                    None,
                    crate::now_ms(),
                )
                .await
                .map_err(|e| match e {
                    myelin_store::StoreError::Conflict(_) => Error::UserInUse,
                    other => other.into(),
                })?;
            tracing::info!(%user_id, by = %requester.user_id, "admin created user");
        }
        Some(user) => {
            if user.deactivated && deactivated == Some(false) {
                let Some(hash) = &hash else {
                    return Err(Error::Unknown(
                        "Must provide a password to re-activate an account.".into(),
                    ));
                };
                services.store.reactivate(&user_id, Some(hash)).await?;
                services.erased.forget();
                tracing::info!(%user_id, by = %requester.user_id, "admin reactivated user");
            } else if let Some(hash) = hash {
                crate::devices::change_password(services, &user_id, hash, logout_devices, None)
                    .await?;
                tracing::info!(%user_id, by = %requester.user_id, "admin set password");
            }
            if !user.deactivated && deactivated == Some(true) {
                super::account::deactivate_now(services, &user_id, false).await?;
                tracing::info!(%user_id, by = %requester.user_id, "admin deactivated user");
            }
        }
    }
    let me = acting_as(&user_id);
    for (field, value) in [("displayname", displayname), ("avatar_url", avatar_url)] {
        match value {
            None => {}
            Some("") => crate::profile::delete_field(services, &me, &user_id, field).await?,
            Some(v) => {
                let body = Map::from_iter([(field.to_owned(), Value::from(v))]);
                crate::profile::set_field(services, &me, &user_id, field, body).await?;
            }
        }
    }
    set_flags(
        services,
        &user_id,
        FlagsChange {
            admin,
            locked,
            suspended: None,
            user_type,
        },
    )
    .await?;
    let summary = services.store.user_summary(&user_id).await?;
    let summary = summary.ok_or_else(|| not_found(USER_NOT_FOUND))?;
    Ok((created, details(&summary)))
}

/// The body with `field` as `new_password`, for the password rules of `/account/password`.
fn rename(body: &Map<String, Value>, field: &str) -> Map<String, Value> {
    Map::from_iter(
        body.get(field)
            .map(|v| ("new_password".to_owned(), v.clone())),
    )
}

async fn set_flags(services: &Services, user_id: &str, change: FlagsChange) -> Result<()> {
    if change == FlagsChange::default() {
        return Ok(());
    }
    let locking = change.locked.is_some() || change.suspended.is_some();
    if !services.store.set_user_flags(user_id, change).await? {
        return Err(not_found(USER_NOT_FOUND));
    }
    if locking {
        // Cached tokens carry the lock as it was when they were read; waiting syncs look
        // again and a locked account's are answered `M_USER_LOCKED`.
        services.tokens.forget_user(user_id);
        services.notifier.wake(user_id);
    }
    Ok(())
}

/// `GET /_synapse/admin/v1/users/{userId}/admin`.
pub async fn get_admin(services: &Services, requester: &Requester, user_id: &str) -> Result<bool> {
    require_admin(services, requester).await?;
    let user_id = local_user(services, user_id)?;
    let flags = services.store.user_flags(&user_id).await?;
    Ok(flags.ok_or_else(|| not_found(USER_NOT_FOUND))?.admin)
}

/// `PUT /_synapse/admin/v1/users/{userId}/admin`; an admin cannot demote themself.
pub async fn set_admin(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: Map<String, Value>,
) -> Result<()> {
    require_admin(services, requester).await?;
    let user_id = local_user(services, user_id)?;
    let admin = optional_bool(&body, "admin")?
        .ok_or_else(|| Error::MissingParam("Missing key 'admin' in body".into()))?;
    if user_id == requester.user_id && !admin {
        return Err(Error::Unknown("You may not demote yourself.".into()));
    }
    let change = FlagsChange {
        admin: Some(admin),
        ..FlagsChange::default()
    };
    set_flags(services, &user_id, change).await
}

/// `PUT /_synapse/admin/v1/suspend/{userId}` (`{"suspend": bool}`).
pub async fn suspend(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: Map<String, Value>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    let suspend = optional_bool(&body, "suspend")?
        .ok_or_else(|| Error::MissingParam("Missing key 'suspend' in body".into()))?;
    let change = FlagsChange {
        suspended: Some(suspend),
        ..FlagsChange::default()
    };
    set_flags(services, &user_id, change).await?;
    tracing::info!(%user_id, suspend, by = %requester.user_id, "admin changed suspension");
    Ok(json!({ format!("user_{user_id}_suspended"): suspend }))
}

/// `GET /_synapse/admin/v1/username_available?username=`: whether an admin could create it.
pub async fn username_available(
    services: &Services,
    requester: &Requester,
    username: Option<&str>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let username =
        username.ok_or_else(|| Error::MissingParam("Missing username parameter".into()))?;
    crate::accounts::check_new_username(services, username).await?;
    Ok(json!({ "available": true }))
}

/// Grants or revokes the admin flag from the command line (`myelin user set-admin`), where
/// whoever can read the configuration is trusted.
pub async fn set_admin_flag(services: &Services, user_id: &str, admin: bool) -> Result<()> {
    let user_id = local_user(services, user_id)?;
    let change = FlagsChange {
        admin: Some(admin),
        ..FlagsChange::default()
    };
    set_flags(services, &user_id, change).await
}
