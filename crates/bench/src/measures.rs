//! One-off measures: the wake-up of a waiting `/sync` by a write, and `/delete_devices` of
//! a user with many devices (with the logins that give it those devices).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hyper::Method;
use serde_json::json;

use crate::{
    BulkDelete, WakeUp,
    client::{API, PASSWORD, Target, User, login_token},
    percentile,
};

/// Logs `user` in `count` more times (four at once), each login a new device.
pub(crate) async fn add_devices(target: &Target, user: &User, count: usize) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (target, user, next) = (target.clone(), user.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = target.connect().await?;
            while (next.fetch_add(1, Ordering::Relaxed) as usize) < count {
                login_token(&mut conn, &user).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

pub(crate) async fn wake_up(target: &Target, user: &User, trials: usize) -> anyhow::Result<WakeUp> {
    // With several instances, the write goes to the first and the sync waits on the last.
    let mut writer = target.connect_to(0).await?;
    let sync_token = login_token(&mut writer, user).await?;
    let mut reader = target.connect_to(target.last()).await?;
    let (_, initial) = reader
        .json(
            Method::GET,
            &format!("{API}/sync?timeout=0"),
            Some(&sync_token),
            None,
        )
        .await?;
    let mut since = initial["next_batch"]
        .as_str()
        .context("next_batch")?
        .to_owned();
    let mut samples = Vec::with_capacity(trials);
    for trial in 0..trials {
        let path = format!("{API}/sync?since={since}&timeout=30000");
        let token = sync_token.clone();
        let mut conn = reader;
        let waiting = tokio::spawn(async move {
            let result = conn.json(Method::GET, &path, Some(&token), None).await;
            (conn, result, Instant::now())
        });
        // Let the sync reach the server and start waiting.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let started = Instant::now();
        let put = format!("{API}/user/{}/account_data/bench.wake", user.user_id);
        let (status, body) = writer
            .json(
                Method::PUT,
                &put,
                Some(&user.token),
                Some(&json!({"trial": trial})),
            )
            .await?;
        if status != 200 {
            bail!("wake-up PUT: {status} {body}");
        }
        let (conn, result, returned) = waiting.await?;
        reader = conn;
        let (status, body) = result?;
        if status != 200 {
            bail!("wake-up sync: {status} {body}");
        }
        let found = body["account_data"]["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["content"]["trial"] == trial));
        if !found {
            bail!("the sync returned without the change: {body}");
        }
        since = body["next_batch"]
            .as_str()
            .context("next_batch")?
            .to_owned();
        samples.push(returned.saturating_duration_since(started).as_micros() as u32);
    }
    samples.sort_unstable();
    Ok(WakeUp {
        trials,
        median_ms: percentile(&samples, 50.0),
        p90_ms: percentile(&samples, 90.0),
        max_ms: percentile(&samples, 100.0),
    })
}

pub(crate) async fn bulk_delete(target: &Target, user: &User) -> anyhow::Result<BulkDelete> {
    let mut conn = target.connect().await?;
    let (_, list) = conn
        .json(
            Method::GET,
            &format!("{API}/devices"),
            Some(&user.token),
            None,
        )
        .await?;
    let (_, me) = conn
        .json(
            Method::GET,
            &format!("{API}/account/whoami"),
            Some(&user.token),
            None,
        )
        .await?;
    let own = me["device_id"].as_str().unwrap_or_default().to_owned();
    let devices: Vec<String> = list["devices"]
        .as_array()
        .context("devices")?
        .iter()
        .filter_map(|d| d["device_id"].as_str())
        .filter(|d| *d != own)
        .map(str::to_owned)
        .collect();
    let path = format!("{API}/delete_devices");
    let (status, challenge) = conn
        .json(
            Method::POST,
            &path,
            Some(&user.token),
            Some(&json!({"devices": devices})),
        )
        .await?;
    if status != 401 {
        bail!("/delete_devices without auth: expected 401, got {status}");
    }
    let session = challenge["session"].clone();
    let auth = |password: &str| {
        json!({"devices": devices, "auth": {
            "type": "m.login.password", "session": session,
            "identifier": {"type": "m.id.user", "user": user.user_id},
            "password": password}})
    };
    // The cost of the password check alone: the same request with a wrong password.
    let t0 = Instant::now();
    let (status, _) = conn
        .json(
            Method::POST,
            &path,
            Some(&user.token),
            Some(&auth("wrong password")),
        )
        .await?;
    let password_check_ms = t0.elapsed().as_secs_f64() * 1000.0;
    if status != 401 {
        bail!("/delete_devices with a wrong password: expected 401, got {status}");
    }
    let t0 = Instant::now();
    let (status, body) = conn
        .json(
            Method::POST,
            &path,
            Some(&user.token),
            Some(&auth(PASSWORD)),
        )
        .await?;
    let total_ms = t0.elapsed().as_secs_f64() * 1000.0;
    if status != 200 {
        bail!("/delete_devices: {status} {body}");
    }
    let (_, after) = conn
        .json(
            Method::GET,
            &format!("{API}/devices"),
            Some(&user.token),
            None,
        )
        .await?;
    Ok(BulkDelete {
        devices: devices.len(),
        total_ms,
        password_check_ms,
        beyond_password_ms: (total_ms - password_check_ms).max(0.0),
        devices_left: after["devices"].as_array().map_or(0, Vec::len),
    })
}
