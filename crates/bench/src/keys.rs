//! End-to-end-encryption keys (issue 10's proof): `/keys/query` of a user with many devices
//! and `/keys/claim` of a key for each of them. Run with `--only keys`.
//!
//! Each device uploads its device keys, one one-time key and a fallback key, so after the
//! first claim every claim is answered with the fallback keys: the steady state of a busy
//! user's devices, and the same work for every server.

use std::{sync::Arc, time::Instant};

use anyhow::{Context, bail};
use hyper::Method;
use serde_json::{Map, Value, json};

use crate::{
    Generator, Req, Throughput,
    client::{API, Target, login, register},
    discovery::setup_requests,
    load,
};

pub(crate) async fn run(
    target: &Target,
    run: u64,
    seconds: f64,
    devices: usize,
    results: &mut Vec<Throughput>,
) -> anyhow::Result<f64> {
    let mut conn = target.connect().await?;
    let started = Instant::now();
    let owner = register(&mut conn, &format!("bench{run}keys")).await?;
    let reader = register(&mut conn, &format!("bench{run}keyreader")).await?;
    eprintln!("keys setup: {devices} devices with keys");
    let mut sessions = Vec::with_capacity(devices);
    for _ in 0..devices {
        let (status, body) = login(&mut conn, &owner).await?;
        if status != 200 {
            bail!("login: {status} {body}");
        }
        let device = body["device_id"].as_str().context("device_id")?.to_owned();
        let token = body["access_token"].as_str().context("token")?.to_owned();
        sessions.push((device, token));
    }
    let user_id = owner.user_id.clone();
    let uploads = Arc::new(sessions.clone());
    setup_requests(
        target,
        devices,
        Arc::new(move |i| {
            let (device, token) = &uploads[i];
            let body = json!({
                "device_keys": {
                    "user_id": user_id, "device_id": device,
                    "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                    "keys": {
                        format!("curve25519:{device}"): format!("curve{i}"),
                        format!("ed25519:{device}"): format!("ed{i}"),
                    },
                    "signatures": { user_id.clone(): { format!("ed25519:{device}"): format!("sig{i}") } },
                },
                "one_time_keys": { format!("signed_curve25519:O{i}"): { "key": format!("otk{i}"), "signatures": {} } },
                "fallback_keys": { format!("signed_curve25519:F{i}"): { "key": format!("fb{i}"), "fallback": true, "signatures": {} } },
            });
            (Method::POST, format!("{API}/keys/upload"), token.clone(), body)
        }),
    )
    .await?;
    let setup_seconds = started.elapsed().as_secs_f64();
    eprintln!("keys setup took {setup_seconds:.1} s");

    let query = json!({ "device_keys": { owner.user_id.clone(): [] } }).to_string();
    let token = reader.token.clone();
    let generate: Generator = Arc::new(move |_, _| Req {
        method: Method::POST,
        path: format!("{API}/keys/query"),
        token: token.clone(),
        body: Some(query.clone().into()),
    });
    let name = format!("POST /keys/query ({devices} devices)");
    results.push(load(target, &name, 8, seconds, generate).await?);

    let wanted: Map<String, Value> = sessions
        .iter()
        .map(|(device, _)| (device.clone(), json!("signed_curve25519")))
        .collect();
    let claim = json!({ "one_time_keys": { owner.user_id.clone(): wanted } }).to_string();
    let token = reader.token.clone();
    let generate: Generator = Arc::new(move |_, _| Req {
        method: Method::POST,
        path: format!("{API}/keys/claim"),
        token: token.clone(),
        body: Some(claim.clone().into()),
    });
    let name = format!("POST /keys/claim ({devices} devices)");
    results.push(load(target, &name, 8, seconds, generate).await?);
    Ok(setup_seconds)
}
