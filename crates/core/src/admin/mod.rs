//! Server administration: the use cases behind the reference server's admin API
//! (`/_synapse/admin`), which synapse-admin, Ketesa, synadm and moderation bots speak. The
//! answers keep that API's shapes and quirks (see `operator-anchors.md`), so those tools work
//! unchanged.
//!
//! Nothing here has a rule of its own for what an account or a device is: deleting a device,
//! changing a password, deactivating and editing a profile go through the same paths as the
//! user's own requests ([`crate::devices`], [`crate::accounts`], [`crate::profile`]), so an
//! admin's deletion answers long-polls and notifies device lists just as the user's would.

mod account;
mod devices;
mod media;
mod register;
mod reports;
mod room_delete;
mod rooms;
mod tokens;
mod users;

pub use account::{
    account_data, deactivate, joined_rooms, login_as, memberships, pushers, reset_password, whois,
};
pub use devices::{create_device, delete_device, delete_devices, device, devices, rename_device};
pub use media::{delete_one as delete_media, delete_user_media, user_media};
pub use register::{Nonces, nonce, register};
pub use reports::{delete_event_report, event_report, event_reports};
pub use room_delete::{
    RoomDeletions, delete_room, deletion_status, room_block, room_deletion_status, set_room_block,
    start_room_deletion,
};
pub use rooms::{list_rooms, room_details, room_media, room_members, room_state};
pub use tokens::{
    create_token, delete_token, get_token, is_configured_token, list_tokens,
    registration_token_usable, update_token,
};
pub use users::{
    get_admin, list_users, put_user, set_admin, set_admin_flag, suspend, user, username_available,
};

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, forbidden, invalid_param, not_found},
    ids,
};

use crate::accounts::optional_bool;

/// The reference server's answer for an unknown user on user endpoints.
const USER_NOT_FOUND: &str = "User not found";

/// What `GET /_synapse/admin/v1/server_version` names.
pub fn server_version() -> String {
    format!("Myelin {}", env!("CARGO_PKG_VERSION"))
}

/// Refuses everyone but a server admin.
pub async fn require_admin(services: &Services, requester: &Requester) -> Result<()> {
    let is_admin = services
        .store
        .user_flags(&requester.user_id)
        .await?
        .is_some_and(|f| f.admin);
    if is_admin {
        Ok(())
    } else {
        Err(forbidden("You are not a server admin"))
    }
}

/// The target of an admin call: a valid user ID of this server (400 otherwise, as the
/// reference server answers).
fn local_user(services: &Services, user_id: &str) -> Result<String> {
    let parsed = ids::parse_user_id(user_id)
        .ok_or_else(|| Error::InvalidParam(format!("Invalid user ID: {user_id}").into()))?;
    if parsed.server_name().as_str() != services.config.server_name {
        return Err(Error::Unknown("Can only look up local users".into()));
    }
    Ok(user_id.to_owned())
}

/// [`local_user`], and the account must exist (404 `message` otherwise).
async fn existing_user(
    services: &Services,
    user_id: &str,
    message: &'static str,
) -> Result<String> {
    let user_id = local_user(services, user_id)?;
    match services.store.get_user(&user_id).await? {
        Some(_) => Ok(user_id),
        None => Err(not_found(message)),
    }
}

/// The target acting on its own data, for the paths that check ownership.
fn acting_as(user_id: &str) -> Requester {
    Requester {
        user_id: user_id.to_owned(),
        device_id: None,
        appservice: None,
        token_hash: None,
        suspended: false,
    }
}

fn optional_string<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_json(format!("{field} must be a string"))),
    }
}

/// How the admin UIs page a list: `from` is an offset (react-admin computes it from the page
/// number), `limit` its length, `dir=b` reverses the order.
struct Paging {
    from: usize,
    limit: usize,
    backwards: bool,
}

impl Paging {
    fn parse(params: &HashMap<String, String>) -> Result<Self> {
        let number = |name: &str, default: usize| match params.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| {
                invalid_param(format!(
                    "Query parameter {name} must be a string representing a positive integer."
                ))
            }),
        };
        let backwards = match params.get("dir").map(String::as_str) {
            None | Some("f") => false,
            Some("b") => true,
            Some(_) => return Err(invalid_param("Unknown direction: dir must be f or b")),
        };
        Ok(Self {
            from: number("from", 0)?,
            limit: number("limit", 100)?,
            backwards,
        })
    }

    /// The page of `items` (already in their forward order), and the offset of the next
    /// page if there is one.
    fn page<T>(&self, mut items: Vec<T>) -> (Vec<T>, usize, Option<usize>) {
        if self.backwards {
            items.reverse();
        }
        let total = items.len();
        let next = self.from.saturating_add(self.limit);
        let page = items.into_iter().skip(self.from).take(self.limit).collect();
        (page, total, (next < total).then_some(next))
    }
}
