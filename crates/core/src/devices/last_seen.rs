//! `last_seen_ip`/`last_seen_ts`: observed in memory on every authenticated request, written
//! in batches (LS-01), overlaid on reads so clients see them at once.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::Services;
use myelin_store::{Device, LastSeen};

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
                if let Err(err) = super::reap_stale(&services).await {
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
/// (address, user agent, timestamp in ms) of a device's latest request.
type Seen = (Option<IpAddr>, Option<Arc<str>>, i64);

/// The longest user agent kept, in bytes: it is shown to admins, not parsed.
const MAX_USER_AGENT_BYTES: usize = 512;

#[derive(Default)]
pub struct LastSeenTracker {
    /// user ID → device ID → (address, timestamp). Nested so lookups borrow `&str` keys and the
    /// common case (a device seen before) allocates nothing.
    pending: Mutex<HashMap<String, HashMap<String, Seen>>>,
}

impl LastSeenTracker {
    pub fn record(
        &self,
        user_id: &str,
        device_id: &str,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
    ) {
        let now = crate::now_ms();
        let user_agent = user_agent.map(|ua| truncate(ua, MAX_USER_AGENT_BYTES));
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if let Some(entry) = pending.get_mut(user_id).and_then(|d| d.get_mut(device_id)) {
            entry.2 = now;
            if ip.is_some() {
                entry.0 = ip;
            }
            // A client sends the same agent on every request: allocate only when it changes.
            if let Some(ua) = user_agent
                && entry.1.as_deref() != Some(ua)
            {
                entry.1 = Some(ua.into());
            }
            return;
        }
        pending
            .entry(user_id.to_owned())
            .or_default()
            .insert(device_id.to_owned(), (ip, user_agent.map(Into::into), now));
    }

    fn get(&self, user_id: &str, device_id: &str) -> Option<Seen> {
        let pending = self.pending.lock().ok()?;
        pending.get(user_id)?.get(device_id).cloned()
    }

    /// Shows pending observations newer than the stored ones, taking the lock once.
    pub(super) fn overlay(&self, user_id: &str, devices: &mut [Device]) {
        let Ok(pending) = self.pending.lock() else {
            return;
        };
        let Some(seen) = pending.get(user_id) else {
            return;
        };
        for device in devices {
            if let Some((ip, ua, ts)) = seen.get(&device.device_id)
                && device.last_seen_ts.is_none_or(|old| old < *ts)
            {
                device.last_seen_ts = Some(*ts);
                if let Some(ip) = ip {
                    device.last_seen_ip = Some(ip.to_string());
                }
                if let Some(ua) = ua {
                    device.last_seen_user_agent = Some(ua.to_string());
                }
            }
        }
    }

    pub(super) fn seen_since(&self, user_id: &str, device_id: &str, since: i64) -> bool {
        self.get(user_id, device_id)
            .is_some_and(|(_, _, ts)| ts >= since)
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
                    .map(move |(device_id, (ip, ua, ts))| LastSeen {
                        user_id: user_id.clone(),
                        device_id,
                        ip: ip.map(|ip| ip.to_string()),
                        user_agent: ua.map(|ua| ua.to_string()),
                        ts,
                    })
            })
            .collect()
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
