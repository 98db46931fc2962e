//! End-to-end-encryption keys (issue 10; behaviours KU-*, KQ-*, KC-*, DD-* of
//! `behaviours-e2ee.md`): upload, query, claim, and what deleting or renaming a device does
//! to them.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User};
use serde_json::{Value, json};

fn device_keys(user: &User, curve: &str) -> Value {
    json!({
        "user_id": user.user_id,
        "device_id": user.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            format!("curve25519:{}", user.device_id): curve,
            format!("ed25519:{}", user.device_id): "ed25519+key",
        },
        "signatures": { user.user_id.clone(): { format!("ed25519:{}", user.device_id): "sig" } },
        "dehydrated": false,
    })
}

fn otk(key: &str) -> Value {
    json!({ "key": key, "signatures": { "@x:localhost": { "ed25519:X": "s" } } })
}

async fn upload(server: &TestServer, user: &User, body: Value) -> common::Resp {
    server.post("/keys/upload", &user.token, body).await
}

async fn query(server: &TestServer, user: &User, body: Value) -> Value {
    server
        .post("/keys/query", &user.token, body)
        .await
        .assert_ok()
        .clone()
}

async fn claim(server: &TestServer, user: &User, target: &User, algorithm: &str) -> Value {
    let body = json!({ "one_time_keys": { target.user_id.clone(): { target.device_id.clone(): algorithm } } });
    server
        .post("/keys/claim", &user.token, body)
        .await
        .assert_ok()
        .clone()
}

#[tokio::test]
async fn ku01_ku04_ku05_upload_answers_counts_with_signed_curve25519_always() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    // KU-05: an empty body is a probe; KU-04: the zero count is there.
    let resp = upload(&server, &alice, json!({})).await;
    assert_eq!(
        resp.assert_ok(),
        &json!({ "one_time_key_counts": { "signed_curve25519": 0 } })
    );
    let body = json!({
        "device_keys": device_keys(&alice, "curve+1"),
        "one_time_keys": {
            "signed_curve25519:AAAA": otk("k1"),
            "signed_curve25519:AAAB": otk("k2"),
            "my_algorithm:my_id_1": "bare-string-key",
        },
    });
    let resp = upload(&server, &alice, body).await;
    assert_eq!(
        resp.assert_ok()["one_time_key_counts"],
        json!({ "signed_curve25519": 2, "my_algorithm": 1 })
    );
}

#[tokio::test]
async fn ku06_ku07_ku08_bad_uploads_are_refused_and_write_nothing() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mut foreign = device_keys(&alice, "c");
    foreign["user_id"] = json!(bob.user_id);
    upload(&server, &alice, json!({ "device_keys": foreign }))
        .await
        .assert_error(400, "M_BAD_JSON");
    let mut other_device = device_keys(&alice, "c");
    other_device["device_id"] = json!("NOTMINE");
    upload(&server, &alice, json!({ "device_keys": other_device }))
        .await
        .assert_error(400, "M_BAD_JSON");
    let mut incomplete = device_keys(&alice, "c");
    incomplete.as_object_mut().unwrap().remove("signatures");
    upload(&server, &alice, json!({ "device_keys": incomplete }))
        .await
        .assert_error(400, "M_BAD_JSON");
    upload(&server, &alice, json!({ "device_keys": null }))
        .await
        .assert_error(400, "M_BAD_JSON");
    // KU-08 and KU-13: a bad key ID refuses the whole request, device keys included.
    let body = json!({
        "device_keys": device_keys(&alice, "c"),
        "one_time_keys": { "no_colon_here": "k" },
    });
    upload(&server, &alice, body)
        .await
        .assert_error(400, "M_BAD_JSON");
    let body = json!({ "one_time_keys": { "a:b:c": "k" } });
    upload(&server, &alice, body)
        .await
        .assert_error(400, "M_BAD_JSON");
    let body = json!({ "fallback_keys": { "alg:1": "k", "alg:2": "k" } });
    upload(&server, &alice, body)
        .await
        .assert_error(400, "M_BAD_JSON");
    let got = query(
        &server,
        &bob,
        json!({ "device_keys": { alice.user_id.clone(): [] } }),
    )
    .await;
    assert_eq!(got["device_keys"][&alice.user_id], json!({}));
}

#[tokio::test]
async fn ku11_ku12_reuploads_are_idempotent_and_conflicts_refused_whole() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let first = json!({ "one_time_keys": {
        "signed_curve25519:A": otk("a"), "signed_curve25519:B": otk("b"), "signed_curve25519:C": otk("c"),
    }});
    upload(&server, &alice, first).await.assert_ok();
    // KU-11: overlapping sets count each key once; signatures do not matter.
    let mut b = otk("b");
    b["signatures"] = json!({});
    let overlap = json!({ "one_time_keys": {
        "signed_curve25519:B": b, "signed_curve25519:C": otk("c"), "signed_curve25519:D": otk("d"),
    }});
    let resp = upload(&server, &alice, overlap).await;
    assert_eq!(
        resp.assert_ok()["one_time_key_counts"]["signed_curve25519"],
        4
    );
    // KU-12: a different key under a known ID is refused, with the text clients match, and
    // the new key beside it is not stored either (KU-13).
    let conflict = json!({ "one_time_keys": {
        "signed_curve25519:A": otk("other"), "signed_curve25519:E": otk("e"),
    }});
    let resp = upload(&server, &alice, conflict).await;
    resp.assert_error(400, "M_UNKNOWN");
    assert!(
        resp.body["error"]
            .as_str()
            .unwrap()
            .starts_with("One time key signed_curve25519:A already exists"),
        "{}",
        resp.body
    );
    let resp = upload(&server, &alice, json!({})).await;
    assert_eq!(
        resp.assert_ok()["one_time_key_counts"]["signed_curve25519"],
        4
    );
}

#[tokio::test]
async fn kq01_kq03_kq05_kq07_kq13_query_answers_uploaded_keys_with_names() {
    let server = TestServer::start().await;
    let alice = server
        .register_with("alice", json!({ "initial_device_display_name": "Phone" }))
        .await;
    let alice2 = server.login(&alice, None).await;
    let bob = server.register("bob").await;
    let keys = device_keys(&alice, "curve+1");
    upload(&server, &alice, json!({ "device_keys": keys.clone() }))
        .await
        .assert_ok();
    let got = query(
        &server,
        &bob,
        json!({ "device_keys": {
            alice.user_id.clone(): [],
            bob.user_id.clone(): [],
            "@nobody:localhost": [],
            "@carol:elsewhere.example": [],
            "not a user id": [],
        }}),
    )
    .await;
    // KQ-07: the second device uploaded nothing and is left out; KU-10: fields kept.
    let mut expected = keys.clone();
    expected["unsigned"] = json!({ "device_display_name": "Phone" });
    assert_eq!(
        got["device_keys"][&alice.user_id],
        json!({ alice.device_id.clone(): expected })
    );
    // KQ-03: a user without keys is an empty object; an unknown user is absent.
    assert_eq!(got["device_keys"][&bob.user_id], json!({}));
    assert!(got["device_keys"].get("@nobody:localhost").is_none());
    // KQ-13: remote servers are failures, without federation.
    assert_eq!(got["failures"], json!({ "elsewhere.example": {} }));
    // KQ-02 and KQ-05: listed devices only; an unnamed device has no display name.
    upload(
        &server,
        &alice2,
        json!({ "device_keys": device_keys(&alice2, "c2") }),
    )
    .await
    .assert_ok();
    let got = query(
        &server,
        &bob,
        json!({ "device_keys": { alice.user_id.clone(): [alice2.device_id.clone(), "GONE"] } }),
    )
    .await;
    let devices = got["device_keys"][&alice.user_id].as_object().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[&alice2.device_id]["unsigned"], json!({}));
    // KQ-04: device lists must be lists of strings.
    server
        .post(
            "/keys/query",
            &bob.token,
            json!({ "device_keys": { alice.user_id.clone(): { "D": true } } }),
        )
        .await
        .assert_error(400, "M_BAD_JSON");
    server
        .post("/keys/query", &bob.token, json!({}))
        .await
        .assert_error(400, "M_MISSING_PARAM");
}

#[tokio::test]
async fn dd05_a_rename_shows_in_the_next_query() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    upload(
        &server,
        &alice,
        json!({ "device_keys": device_keys(&alice, "c") }),
    )
    .await
    .assert_ok();
    server
        .put(
            &format!("/devices/{}", alice.device_id),
            &alice.token,
            json!({ "display_name": "Laptop" }),
        )
        .await
        .assert_ok();
    let got = query(
        &server,
        &alice,
        json!({ "device_keys": { alice.user_id.clone(): [] } }),
    )
    .await;
    assert_eq!(
        got["device_keys"][&alice.user_id][&alice.device_id]["unsigned"]["device_display_name"],
        "Laptop"
    );
}

#[tokio::test]
async fn kc01_kc03_kc04_kc05_claims_go_oldest_first_then_fallback_for_ever() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    upload(
        &server,
        &alice,
        json!({ "one_time_keys": { "signed_curve25519:ZZZ": otk("first") } }),
    )
    .await
    .assert_ok();
    upload(
        &server,
        &alice,
        json!({ "one_time_keys": { "signed_curve25519:AAA": otk("second") } }),
    )
    .await
    .assert_ok();
    // KC-03: upload order, not key-ID order; KC-01: exactly the uploaded value.
    let got = claim(&server, &bob, &alice, "signed_curve25519").await;
    assert_eq!(
        got,
        json!({
            "one_time_keys": { alice.user_id.clone(): { alice.device_id.clone(): {
                "signed_curve25519:ZZZ": otk("first") } } },
            "failures": {},
        })
    );
    let got = claim(&server, &bob, &alice, "signed_curve25519").await;
    assert_eq!(
        got["one_time_keys"][&alice.user_id][&alice.device_id],
        json!({ "signed_curve25519:AAA": otk("second") })
    );
    // KC-04: nothing left and no fallback key: the user is left out entirely.
    let got = claim(&server, &bob, &alice, "signed_curve25519").await;
    assert_eq!(got["one_time_keys"], json!({}));
    // KC-05: a fallback key goes out on every claim and is then marked used.
    let fallback = json!({ "key": "fb", "fallback": true, "signatures": {} });
    upload(
        &server,
        &alice,
        json!({ "fallback_keys": { "signed_curve25519:FB": fallback.clone() } }),
    )
    .await
    .assert_ok();
    let sync = server.sync(&alice, &[]).await;
    assert_eq!(
        sync["device_unused_fallback_key_types"],
        json!(["signed_curve25519"])
    );
    for _ in 0..2 {
        let got = claim(&server, &bob, &alice, "signed_curve25519").await;
        assert_eq!(
            got["one_time_keys"][&alice.user_id][&alice.device_id],
            json!({ "signed_curve25519:FB": fallback.clone() })
        );
    }
    let sync = server.sync(&alice, &[]).await;
    assert_eq!(sync["device_unused_fallback_key_types"], json!([]));
    // KU-15: the same fallback key again keeps its "used" mark; a new one is unused.
    upload(
        &server,
        &alice,
        json!({ "fallback_keys": { "signed_curve25519:FB": fallback } }),
    )
    .await
    .assert_ok();
    let sync = server.sync(&alice, &[]).await;
    assert_eq!(sync["device_unused_fallback_key_types"], json!([]));
    let newer = json!({ "key": "fb2", "fallback": true, "signatures": {} });
    upload(
        &server,
        &alice,
        json!({ "fallback_keys": { "signed_curve25519:FB2": newer } }),
    )
    .await
    .assert_ok();
    let sync = server.sync(&alice, &[]).await;
    assert_eq!(
        sync["device_unused_fallback_key_types"],
        json!(["signed_curve25519"])
    );
}

#[tokio::test]
async fn kc02_racing_claims_never_share_a_key() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let keys: serde_json::Map<String, Value> = (0..20)
        .map(|i| (format!("signed_curve25519:K{i:02}"), otk(&format!("k{i}"))))
        .collect();
    upload(&server, &alice, json!({ "one_time_keys": keys }))
        .await
        .assert_ok();
    let claimers: Vec<User> = {
        let mut users = Vec::new();
        for i in 0..8 {
            users.push(server.register(&format!("claimer{i}")).await);
        }
        users
    };
    let mut tasks = Vec::new();
    for claimer in claimers {
        for _ in 0..4 {
            let (server_base, client, claimer, alice) = (
                server.base.clone(),
                server.client.clone(),
                claimer.clone(),
                alice.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let body = json!({ "one_time_keys": { alice.user_id.clone(): { alice.device_id.clone(): "signed_curve25519" } } });
                let resp: Value = client
                    .post(format!("{server_base}/_matrix/client/v3/keys/claim"))
                    .bearer_auth(&claimer.token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                resp["one_time_keys"][&alice.user_id][&alice.device_id]
                    .as_object()
                    .and_then(|m| m.keys().next().cloned())
            }));
        }
    }
    let mut got = Vec::new();
    for task in tasks {
        if let Some(key) = task.await.unwrap() {
            got.push(key);
        }
    }
    let total = got.len();
    got.sort();
    got.dedup();
    assert_eq!(
        (total, got.len()),
        (20, 20),
        "each key exactly once: {got:?}"
    );
}

#[tokio::test]
async fn dd01_dd02_kc10_deleting_a_device_deletes_its_keys() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let phone = server.login(&alice, None).await;
    let bob = server.register("bob").await;
    let body = json!({
        "device_keys": device_keys(&phone, "c"),
        "one_time_keys": { "signed_curve25519:A": otk("a") },
        "fallback_keys": { "signed_curve25519:F": { "key": "f", "fallback": true } },
    });
    upload(&server, &phone, body).await.assert_ok();
    server
        .post("/logout", &phone.token, json!({}))
        .await
        .assert_ok();
    let got = query(
        &server,
        &bob,
        json!({ "device_keys": { alice.user_id.clone(): [] } }),
    )
    .await;
    assert_eq!(got["device_keys"][&alice.user_id], json!({}));
    assert_eq!(
        claim(&server, &bob, &phone, "signed_curve25519").await["one_time_keys"],
        json!({})
    );
    // DD-06: the same device ID logged in again starts without keys.
    let again = server.login(&alice, Some(&phone.device_id)).await;
    let resp = upload(&server, &again, json!({})).await;
    assert_eq!(
        resp.assert_ok()["one_time_key_counts"],
        json!({ "signed_curve25519": 0 })
    );
}

#[tokio::test]
async fn kc06_kc09_a_claim_an_otk_answers_leaves_the_fallback_unused_and_own_keys_are_claimed() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let fallback = json!({ "key": "fb", "fallback": true, "signatures": {} });
    upload(
        &server,
        &alice,
        json!({
            "one_time_keys": { "signed_curve25519:A": otk("one") },
            "fallback_keys": { "signed_curve25519:F": fallback },
        }),
    )
    .await
    .assert_ok();
    // KC-09: a user claims their own device's key.
    let claimed = claim(&server, &alice, &alice, "signed_curve25519").await;
    let key = &claimed["one_time_keys"][&alice.user_id][&alice.device_id]["signed_curve25519:A"];
    assert_eq!(key["key"], json!("one"), "{claimed}");
    // KC-06: the one-time key answered it; the fallback key is still unused.
    let sync = server.sync(&alice, &[]).await;
    assert_eq!(
        sync["device_unused_fallback_key_types"],
        json!(["signed_curve25519"]),
        "{sync}"
    );
    assert_eq!(
        sync["device_one_time_keys_count"],
        json!({ "signed_curve25519": 0 })
    );
}

#[tokio::test]
async fn ku16_ku18_fallback_keys_are_not_counted_and_a_device_keeps_its_newest_100() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    // KU-18: 120 keys in two uploads; the 20 oldest are dropped.
    for batch in 0..2 {
        let keys: serde_json::Map<String, Value> = (0..60)
            .map(|i| {
                let n = batch * 60 + i;
                (
                    format!("signed_curve25519:K{n:03}"),
                    otk(&format!("key{n}")),
                )
            })
            .collect();
        upload(&server, &alice, json!({ "one_time_keys": keys }))
            .await
            .assert_ok();
    }
    // KU-16: a fallback key adds nothing to the counts.
    let fallback = json!({ "key": "fb", "fallback": true, "signatures": {} });
    let resp = upload(
        &server,
        &alice,
        json!({ "fallback_keys": { "signed_curve25519:F": fallback } }),
    )
    .await;
    assert_eq!(
        resp.assert_ok()["one_time_key_counts"],
        json!({ "signed_curve25519": 100 })
    );
    let sync = server.sync(&alice, &[]).await;
    assert_eq!(
        sync["device_one_time_keys_count"],
        json!({ "signed_curve25519": 100 })
    );
    // The first claim gets the oldest key kept: number 20.
    let claimed = claim(&server, &bob, &alice, "signed_curve25519").await;
    let keys = &claimed["one_time_keys"][&alice.user_id][&alice.device_id];
    assert!(keys.get("signed_curve25519:K020").is_some(), "{claimed}");
}
