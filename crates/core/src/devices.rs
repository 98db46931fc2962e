//! Device management: list, get, rename, create (appservices, MSC4190) and delete.
//!
//! Deletion is the one path through which a device ever disappears (logout, `DELETE
//! /devices`, `/delete_devices`, the device cap, the reaper): [`remove`]. It deletes in
//! batches, each one transaction that removes the devices together with their tokens and
//! per-device data (see `purge_device` in the storage backend), so other users' writes
//! interleave between batches instead of queueing behind 10 000 deletions.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, field_too_long, missing_param, not_found},
    ids, uia,
};
use myelin_store::{Device, DeviceUpsert, LastSeen};

/// Devices deleted per transaction.
const DELETE_BATCH: usize = 256;

pub async fn list(services: &Services, requester: &Requester) -> Result<Vec<Device>> {
    let mut devices = services.store.list_devices(&requester.user_id).await?;
    services.last_seen.overlay(&requester.user_id, &mut devices);
    Ok(devices)
}

pub async fn get(services: &Services, requester: &Requester, device_id: &str) -> Result<Device> {
    let mut device = services
        .store
        .get_device(&requester.user_id, device_id)
        .await?
        .ok_or_else(|| not_found("Device not found"))?;
    services
        .last_seen
        .overlay(&requester.user_id, std::slice::from_mut(&mut device));
    Ok(device)
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    #[serde(default)]
    display_name: Option<String>,
}

/// `PUT /devices/{deviceId}`: `Ok(true)` when an appservice created the device.
pub async fn update(
    services: &Services,
    requester: &Requester,
    device_id: &str,
    body: Map<String, Value>,
) -> Result<bool> {
    let body: UpdateBody = serde_json::from_value(Value::Object(body))
        .map_err(|e| bad_json(format!("Invalid request body: {e}")))?;
    let max = services.config.limits.device_display_name_max_chars;
    if body
        .display_name
        .as_deref()
        .is_some_and(|n| n.chars().count() > max)
    {
        return Err(field_too_long(format!(
            "Device display name is too long (max {max})"
        )));
    }
    let Some(service) = &requester.appservice else {
        return match services
            .store
            .upsert_device(&requester.user_id, device_id, body.display_name, false, 0)
            .await?
        {
            DeviceUpsert::NotFound => Err(not_found("Device not found")),
            _ => Ok(false),
        };
    };
    // MSC4190: an appservice may create devices for its users, rate-limited.
    ids::check_device_id(device_id)?;
    if services
        .store
        .get_device(&requester.user_id, device_id)
        .await?
        .is_none()
        && service.rate_limited
    {
        services
            .limiters
            .appservice_device_creation
            .check(&service.id)
            .map_err(|wait| Error::LimitExceeded {
                retry_after_ms: wait.as_millis().max(1) as u64,
            })?;
    }
    let outcome = services
        .store
        .upsert_device(
            &requester.user_id,
            device_id,
            body.display_name,
            true,
            crate::now_ms(),
        )
        .await?;
    Ok(outcome == DeviceUpsert::Created)
}

/// `DELETE /devices/{deviceId}`: UIA, except for appservices (spec v1.17).
pub async fn delete(
    services: &Services,
    requester: &Requester,
    device_id: &str,
    body: &Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<()> {
    authorise_deletion(
        services,
        requester,
        format!("DELETE /devices/{device_id}"),
        body,
        client_ip,
    )
    .await?;
    remove(services, &requester.user_id, vec![device_id.to_owned()]).await
}

/// `POST /delete_devices`. The body is checked before UIA, so a malformed request gets its 400
/// rather than a password prompt.
pub async fn delete_many(
    services: &Services,
    requester: &Requester,
    body: &Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<()> {
    let devices = match body.get("devices") {
        None => return Err(missing_param("Missing required field: devices")),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad_json("devices must be a list of strings"))?,
        Some(_) => return Err(bad_json("devices must be a list of strings")),
    };
    let mut fingerprint = devices.clone();
    fingerprint.sort();
    fingerprint.dedup();
    let fingerprint = format!(
        "POST /delete_devices {}",
        serde_json::to_string(&fingerprint).unwrap_or_default()
    );
    authorise_deletion(services, requester, fingerprint, body, client_ip).await?;
    remove(services, &requester.user_id, devices).await
}

async fn authorise_deletion(
    services: &Services,
    requester: &Requester,
    fingerprint: String,
    body: &Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<()> {
    if requester.appservice.is_some() {
        return Ok(());
    }
    // UIA-12: only offer the password stage to accounts that have a password.
    let has_password = services
        .store
        .get_user(&requester.user_id)
        .await?
        .is_some_and(|u| u.password_hash.is_some());
    let flows = if has_password {
        vec![vec![uia::PASSWORD]]
    } else {
        Vec::new()
    };
    uia::authenticate(
        services,
        uia::Operation {
            user_id: Some(&requester.user_id),
            fingerprint,
            flows,
            remember: None,
        },
        body.get("auth").filter(|a| !a.is_null()),
        client_ip,
    )
    .await
    .map(drop)
}

/// Deletes devices of `user_id` with everything attached to them, in batches. Once this
/// returns, no token of these devices is accepted, and long-polls holding one are woken to
/// find out.
pub async fn remove(services: &Services, user_id: &str, mut device_ids: Vec<String>) -> Result<()> {
    device_ids.sort();
    device_ids.dedup();
    let mut deleted = 0;
    for chunk in device_ids.chunks(DELETE_BATCH) {
        let report = match services.store.delete_devices(user_id, chunk.to_vec()).await {
            Ok(report) => report,
            Err(err) => {
                // Dropping cache entries is always safe, and the storage may have applied
                // the deletion even though it reported a failure.
                services.tokens.forget_devices(user_id, chunk);
                return Err(err.into());
            }
        };
        services.tokens.forget_devices(user_id, &report.device_ids);
        services.last_seen.forget(user_id, &report.device_ids);
        deleted += report.device_ids.len();
        // Device keys, one-time keys and to-device messages are deleted by the storage
        // backend in the same transaction; the device-list change notification for other
        // users will be sent from here once device lists exist.
        services.notifier.wake(user_id);
    }
    if deleted > 0 {
        tracing::info!(%user_id, deleted, "deleted devices");
    }
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
            remove(services, &user_id, devices).await?;
        }
    }
}

/// Runs the `last_seen` flusher and the reaper until `stop` resolves, then flushes once more.
pub async fn background(services: Arc<Services>, stop: impl Future<Output = ()>) {
    let flush_every = Duration::from_secs(services.config.devices.last_seen_flush_secs);
    let mut flush = tokio::time::interval(flush_every);
    let mut reap = tokio::time::interval(Duration::from_secs(60));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = flush.tick() => flush_last_seen(&services).await,
            _ = reap.tick() => {
                if let Err(err) = reap_stale(&services).await {
                    tracing::error!(error = %err, "device reaper failed");
                }
            }
        }
    }
    flush_last_seen(&services).await;
}

pub async fn flush_last_seen(services: &Services) {
    let batch = services.last_seen.take();
    if batch.is_empty() {
        return;
    }
    let count = batch.len();
    if let Err(err) = services.store.record_last_seen(batch).await {
        tracing::error!(error = %err, count, "writing last_seen failed");
    }
}

/// `last_seen_ip`/`last_seen_ts` observed since the last flush. Every authenticated request
/// records here in memory; the batch is written every few seconds and at shutdown, never one
/// write per request (LS-01). Reads overlay these pending values so clients see them at once.
/// (address, timestamp in ms) of a device's latest request.
type Seen = (Option<IpAddr>, i64);

#[derive(Default)]
pub struct LastSeenTracker {
    /// user ID → device ID → (address, timestamp). Nested so lookups borrow `&str` keys and the
    /// common case (a device seen before) allocates nothing.
    pending: Mutex<HashMap<String, HashMap<String, Seen>>>,
}

impl LastSeenTracker {
    pub fn record(&self, user_id: &str, device_id: &str, ip: Option<IpAddr>) {
        let now = crate::now_ms();
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if let Some(entry) = pending.get_mut(user_id).and_then(|d| d.get_mut(device_id)) {
            entry.1 = now;
            if ip.is_some() {
                entry.0 = ip;
            }
            return;
        }
        pending
            .entry(user_id.to_owned())
            .or_default()
            .insert(device_id.to_owned(), (ip, now));
    }

    fn get(&self, user_id: &str, device_id: &str) -> Option<Seen> {
        let pending = self.pending.lock().ok()?;
        pending.get(user_id)?.get(device_id).cloned()
    }

    /// Shows pending observations newer than the stored ones, taking the lock once.
    fn overlay(&self, user_id: &str, devices: &mut [Device]) {
        let Ok(pending) = self.pending.lock() else {
            return;
        };
        let Some(seen) = pending.get(user_id) else {
            return;
        };
        for device in devices {
            if let Some((ip, ts)) = seen.get(&device.device_id)
                && device.last_seen_ts.is_none_or(|old| old < *ts)
            {
                device.last_seen_ts = Some(*ts);
                if let Some(ip) = ip {
                    device.last_seen_ip = Some(ip.to_string());
                }
            }
        }
    }

    fn seen_since(&self, user_id: &str, device_id: &str, since: i64) -> bool {
        self.get(user_id, device_id)
            .is_some_and(|(_, ts)| ts >= since)
    }

    pub(crate) fn forget(&self, user_id: &str, device_ids: &[String]) {
        if let Ok(mut pending) = self.pending.lock()
            && let Some(devices) = pending.get_mut(user_id)
        {
            for device_id in device_ids {
                devices.remove(device_id);
            }
            if devices.is_empty() {
                pending.remove(user_id);
            }
        }
    }

    fn take(&self) -> Vec<LastSeen> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        std::mem::take(&mut *pending)
            .into_iter()
            .flat_map(|(user_id, devices)| {
                devices
                    .into_iter()
                    .map(move |(device_id, (ip, ts))| LastSeen {
                        user_id: user_id.clone(),
                        device_id,
                        ip: ip.map(|ip| ip.to_string()),
                        ts,
                    })
            })
            .collect()
    }
}
