//! How devices come and go: a login under the device cap, and deletion, the one path through
//! which a device ever disappears (logout, `DELETE /devices`, `/delete_devices`, eviction at
//! the cap, the reaper).
//!
//! The rules are written once, here, over a [`Txn`] from the store: whichever backend runs
//! them, a device is deleted together with everything it owns in one transaction. What a
//! device owns joins [`purge`]: today its tokens and its MSC3890 local notification settings;
//! keys, one-time keys and to-device messages when they exist.
//!
//! A password change signing out the other devices and a deactivation signing out all of
//! them are deletions too, each in the same transaction as the account change it comes with.
//!
//! Every use case here runs [`Services::detached`]: once started it finishes, even if the
//! client hangs up, so a device deleted in storage is never left with a cached token.

use std::{collections::HashMap, slice};

use myelin_store::{NewLogin, Txn};

use crate::{
    Services,
    account_data::TOMBSTONE,
    config::DeviceCapPolicy,
    error::{Error, Result, forbidden},
    ids,
};

/// Devices deleted per transaction, so other users' writes interleave between batches
/// instead of queueing behind 10 000 deletions.
const DELETE_BATCH: usize = 256;

/// MSC3890: a device's local notification settings, which die with it.
fn settings_type(device_id: &str) -> String {
    format!("org.matrix.msc3890.local_notification_settings.{device_id}")
}

/// Deletes, inside `tx`, each of these devices that exists, with everything it owns; returns
/// those it deleted. A few steps for any number of devices, not a few per device.
pub(crate) async fn purge(tx: &mut dyn Txn, device_ids: &[String]) -> Result<Vec<String>> {
    let existing = tx.existing_devices(device_ids).await?;
    if existing.is_empty() {
        return Ok(existing);
    }
    tx.delete_devices(&existing).await?;
    // A tombstone rather than a plain delete tells the user's other devices through /sync.
    // UIA sessions stay until they expire: one completed for deleting a device must still be
    // recognised, so presenting it for another operation is refused (403).
    let settings: Vec<String> = existing.iter().map(|d| settings_type(d)).collect();
    for (data_type, content) in tx.account_data_among(None, &settings).await? {
        if content != TOMBSTONE {
            tx.put_account_data(None, &data_type, TOMBSTONE).await?;
        }
    }
    Ok(existing)
}

/// Issues a token for `login.device_id`, creating the device if it is new, under the device
/// cap. Reusing a device revokes its earlier tokens, as the spec's "Relationship between
/// access tokens and devices" requires.
pub(crate) async fn sign_in(services: &Services, user_id: &str, login: NewLogin) -> Result<()> {
    let devices = &services.config.devices;
    let evict = devices.on_limit == DeviceCapPolicy::EvictOldest;
    if evict && devices.max_per_user.is_some() {
        // Eviction picks the least recently used device from storage: write the pending
        // `last_seen` observations first, or a device in use would look idle since its last
        // flush and be evicted instead of one that really is.
        super::flush_last_seen(services).await;
    }
    let user_id = user_id.to_owned();
    services
        .detached(move |services| async move {
            let device_id = login.device_id.clone();
            let outcome = sign_in_tx(&services, &user_id, &login).await;
            // Drop the cached tokens of the device this login names even if it failed:
            // forgetting is always safe, and storage may have committed before reporting a
            // failure. Evicted devices are only known on success; SQLite reports a failure
            // only when nothing committed, and PostgreSQL deployments cache no tokens.
            let (reused, evicted) = match &outcome {
                Ok(done) => done.clone(),
                Err(_) => (true, Vec::new()),
            };
            if reused {
                services
                    .tokens
                    .forget_devices(&user_id, slice::from_ref(&device_id));
            }
            if !evicted.is_empty() {
                count_deleted("evicted", evicted.len());
                tracing::info!(%user_id, count = evicted.len(), "evicted devices over the cap");
                services.tokens.forget_devices(&user_id, &evicted);
                services.last_seen.forget(&user_id, &evicted);
            }
            // A reused device's old tokens were revoked: wake its waiting syncs so they notice.
            // A new device (or an evicted one) is a device-list change for room-mates too.
            if reused && evicted.is_empty() {
                services.notifier.wake(&user_id);
            } else {
                crate::e2ee::notify_device_change(&services, &user_id).await;
            }
            outcome.map(drop)
        })
        .await
}

/// The login's transaction: `(reused, evicted)`.
async fn sign_in_tx(
    services: &Services,
    user_id: &str,
    login: &NewLogin,
) -> Result<(bool, Vec<String>)> {
    let devices = &services.config.devices;
    let mut tx = services.store.begin(user_id).await?;
    // Under the lock on the user: a deactivation committed after the caller checked the
    // password cannot be followed by a new device.
    if tx.is_deactivated().await? {
        return Err(Error::UserDeactivated);
    }
    let reused = !tx
        .existing_devices(slice::from_ref(&login.device_id))
        .await?
        .is_empty();
    let mut evicted = Vec::new();
    if reused {
        tx.revoke_tokens(&login.device_id).await?;
        tx.touch_device(login).await?;
    } else {
        if let Some(max) = devices.max_per_user {
            let count = tx.count_devices().await?;
            if count >= u64::from(max) {
                if devices.on_limit != DeviceCapPolicy::EvictOldest {
                    return Err(forbidden(
                        "Too many devices: delete one of your devices before logging in again",
                    ));
                }
                let victims = tx.least_recently_used(count - u64::from(max) + 1).await?;
                evicted = purge(tx.as_mut(), &victims).await?;
            }
        }
        tx.create_device(login).await?;
    }
    tx.add_token(login).await?;
    tx.commit().await?;
    Ok((reused, evicted))
}

/// Deletes devices of `user_id` with everything attached to them, in batches. Once this
/// returns, no token of these devices is accepted, and long-polls holding one are woken to
/// find out. `reason` labels the deletion in the metrics (`user`, `logout`, `admin`, ...).
pub async fn remove(
    services: &Services,
    user_id: &str,
    device_ids: Vec<String>,
    reason: &'static str,
) -> Result<()> {
    let user_id = user_id.to_owned();
    services
        .detached(move |services| async move {
            remove_now(&services, &user_id, device_ids, reason).await
        })
        .await
}

/// Counts deleted devices in `myelin_devices_deleted_total`.
fn count_deleted(reason: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("myelin_devices_deleted_total", "reason" => reason).increment(n as u64);
    }
}

async fn remove_now(
    services: &Services,
    user_id: &str,
    mut device_ids: Vec<String>,
    reason: &'static str,
) -> Result<()> {
    // An ID that cannot name a device names none: no need to ask storage.
    device_ids.retain(|d| ids::could_be_device_id(d));
    device_ids.sort();
    device_ids.dedup();
    let mut deleted = 0;
    for chunk in device_ids.chunks(DELETE_BATCH) {
        let outcome = async {
            let mut tx = services.store.begin(user_id).await?;
            let gone = purge(tx.as_mut(), chunk).await?;
            tx.commit().await?;
            Ok::<_, Error>(gone)
        }
        .await;
        // Every requested device, not only those reported deleted: dropping cache entries is
        // always safe, and storage may have committed even though it reported a failure.
        services.tokens.forget_devices(user_id, chunk);
        let gone = outcome?;
        services.last_seen.forget(user_id, &gone);
        count_deleted(reason, gone.len());
        deleted += gone.len();
        // Long-polls holding a deleted token wake to be refused; room-mates learn of the
        // device-list change (DD-04).
        crate::e2ee::notify_device_change(services, user_id).await;
    }
    if deleted > 0 {
        tracing::info!(%user_id, deleted, "deleted devices");
    }
    Ok(())
}

/// What an account change does to the devices in its transaction.
#[derive(Clone, Copy)]
enum AccountChange<'a> {
    /// A new password hash; with `keep`, every other device is deleted (`keep: None` deletes
    /// none).
    Password {
        hash: &'a str,
        sign_out_all_but: Option<Option<&'a str>>,
    },
    /// Deactivation: every device goes; with `erase`, the user's events are served redacted
    /// to those who join their rooms later.
    Deactivate { erase: bool },
}

/// `POST /account/password`: stores the new hash and, when `sign_out_others`, deletes every
/// device of the user but `keep`, in one transaction. Refused for a deactivated account.
pub(crate) async fn change_password(
    services: &Services,
    user_id: &str,
    hash: String,
    sign_out_others: bool,
    keep: Option<String>,
) -> Result<()> {
    let user_id = user_id.to_owned();
    services
        .detached(move |services| async move {
            let change = AccountChange::Password {
                hash: &hash,
                sign_out_all_but: sign_out_others.then_some(keep.as_deref()),
            };
            account_change(&services, &user_id, change).await
        })
        .await
}

/// `POST /account/deactivate`, the part that is one transaction: the account is marked
/// deactivated, its password, profile, account data and key backups deleted, and every
/// device with them.
pub(crate) async fn deactivate(services: &Services, user_id: &str, erase: bool) -> Result<()> {
    let user_id = user_id.to_owned();
    services
        .detached(move |services| async move {
            account_change(&services, &user_id, AccountChange::Deactivate { erase }).await?;
            if erase {
                services.erased.forget();
            }
            // Its push rules and ignore list are gone with the account data.
            services.push_recipients.forget(&user_id);
            Ok(())
        })
        .await
}

async fn account_change(
    services: &Services,
    user_id: &str,
    change: AccountChange<'_>,
) -> Result<()> {
    let outcome = async {
        let mut tx = services.store.begin(user_id).await?;
        if tx.is_deactivated().await? {
            return Err(Error::UserDeactivated);
        }
        let doomed = match change {
            AccountChange::Password {
                hash,
                sign_out_all_but,
            } => {
                tx.set_password_hash(hash).await?;
                match sign_out_all_but {
                    None => Vec::new(),
                    Some(keep) => {
                        let mut all = tx.device_ids().await?;
                        all.retain(|d| Some(d.as_str()) != keep);
                        all
                    }
                }
            }
            AccountChange::Deactivate { erase } => {
                tx.deactivate(erase).await?;
                tx.device_ids().await?
            }
        };
        let gone = purge(tx.as_mut(), &doomed).await?;
        tx.commit().await?;
        Ok((doomed, gone))
    }
    .await;
    let (doomed, gone) = match outcome {
        Ok(done) => done,
        Err(err) => {
            // Storage may have committed even though it reported a failure: forgetting every
            // cached token of the user is always safe.
            services.tokens.forget_user(user_id);
            return Err(err);
        }
    };
    services.tokens.forget_devices(user_id, &doomed);
    services.last_seen.forget(user_id, &gone);
    let reason = match change {
        AccountChange::Password { .. } => "password_change",
        AccountChange::Deactivate { .. } => "deactivation",
    };
    count_deleted(reason, gone.len());
    if !gone.is_empty() {
        tracing::info!(%user_id, deleted = gone.len(), "signed out devices");
    }
    // Long-polls holding a deleted token wake to be refused (DD-04 for room-mates).
    crate::e2ee::notify_device_change(services, user_id).await;
    Ok(())
}

/// Deletes devices unused for longer than `devices.reap_unused_after_secs`, logging them.
pub async fn reap_stale(services: &Services) -> Result<usize> {
    let Some(age) = services.config.devices.reap_unused_after_secs else {
        return Ok(0);
    };
    let before = crate::now_ms() - (age as i64).saturating_mul(1000);
    let mut total = 0;
    loop {
        let stale = services.store.stale_devices(before, 500).await?;
        if stale.is_empty() {
            return Ok(total);
        }
        let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
        for owner in stale {
            if services
                .last_seen
                .seen_since(&owner.user_id, &owner.device_id, before)
            {
                continue;
            }
            by_user
                .entry(owner.user_id)
                .or_default()
                .push(owner.device_id);
        }
        if by_user.is_empty() {
            return Ok(total);
        }
        for (user_id, devices) in by_user {
            tracing::info!(%user_id, devices = ?devices, "reaping devices unused for {age} s");
            total += devices.len();
            remove(services, &user_id, devices, "stale").await?;
        }
    }
}
