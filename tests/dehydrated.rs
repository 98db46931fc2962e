//! Dehydrated devices, MSC3814 (issue 10; behaviours DH-* of `behaviours-e2ee.md`):
//! `/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User, enc, next_batch, txn};
use reqwest::Method;
use serde_json::{Value, json};

const DH: &str = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";

fn body(user: &User, device_id: &str) -> Value {
    json!({
        "device_id": device_id,
        "device_data": { "algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": "encrypted pickle" },
        "initial_device_display_name": "Dehydrated device",
        "device_keys": {
            "user_id": user.user_id,
            "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("curve25519:{device_id}"): "curve",
                format!("ed25519:{device_id}"): "ed",
            },
            "signatures": { user.user_id.clone(): { format!("ed25519:{device_id}"): "sig" } },
            "dehydrated": true,
        },
        "one_time_keys": { "signed_curve25519:AAAA": { "key": "one", "signatures": {} } },
        "fallback_keys": { "signed_curve25519:BBBB": { "key": "fallback", "fallback": true, "signatures": {} } },
    })
}

async fn put(server: &TestServer, user: &User, body: Value) -> common::Resp {
    server.put(DH, &user.token, body).await
}

fn events_path(device_id: &str, from: Option<&str>) -> String {
    let mut path = format!("{DH}/{}/events", enc(device_id));
    if let Some(from) = from {
        path.push_str(&format!("?from={}", enc(from)));
    }
    path
}

async fn send_to(server: &TestServer, from: &User, to: &User, device: &str, n: usize) {
    for i in 0..n {
        server
            .put(
                &format!("/sendToDevice/m.room_key/{}", txn()),
                &from.token,
                json!({ "messages": { to.user_id.clone(): { device: { "n": i } } } }),
            )
            .await
            .assert_ok();
    }
}

fn device_ids(devices: &Value) -> Vec<String> {
    let mut ids: Vec<String> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn dh01_dh02_dh03_dh06_none_then_one_with_its_data_and_bad_bodies_refused() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    // Supported, and none yet: 404 M_NOT_FOUND. The old MSC2697 path is unrecognised.
    server
        .get(DH, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .get(
            "/_matrix/client/unstable/org.matrix.msc2697.v2/dehydrated_device",
            &alice.token,
        )
        .await
        .assert_error(404, "M_UNRECOGNIZED");
    for bad in [
        {
            let mut b = body(&alice, "DEHYDRATED");
            b.as_object_mut().unwrap().remove("device_keys");
            b
        },
        {
            let mut b = body(&alice, "DEHYDRATED");
            b["device_data"] = json!({ "no": "algorithm" });
            b
        },
        {
            let mut b = body(&alice, "DEHYDRATED");
            b.as_object_mut().unwrap().remove("device_id");
            b
        },
        {
            // Keys of another device than the one named.
            let mut b = body(&alice, "DEHYDRATED");
            b["device_keys"]["device_id"] = json!("OTHER");
            b
        },
    ] {
        put(&server, &alice, bad)
            .await
            .assert_error(400, "M_BAD_JSON");
    }
    // Nor may it take the ID of a device in use.
    put(&server, &alice, body(&alice, &alice.device_id.clone()))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .get(DH, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");

    let made = put(&server, &alice, body(&alice, "DEHYDRATED")).await;
    assert_eq!(made.assert_ok(), &json!({ "device_id": "DEHYDRATED" }));
    let got = server.get(DH, &alice.token).await;
    assert_eq!(
        got.assert_ok(),
        &json!({
            "device_id": "DEHYDRATED",
            "device_data": { "algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": "encrypted pickle" },
        })
    );
}

#[tokio::test]
async fn dh04_dh07_it_is_a_device_whose_keys_are_queried_and_claimed() {
    let server = TestServer::start().await;
    let (alice, bob, _room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    let since = next_batch(&server.sync(&bob, &[]).await);
    put(&server, &alice, body(&alice, "DEHYDRATED"))
        .await
        .assert_ok();
    // A device of hers (Synapse lists it too; clients hide it by the keys' flag).
    let devices = server.get("/devices", &alice.token).await;
    let mut expected = vec![alice.device_id.clone(), "DEHYDRATED".to_owned()];
    expected.sort();
    assert_eq!(device_ids(devices.assert_ok()), expected);
    // Bob hears of it and finds its keys, with the client's flag kept.
    let sync = server
        .sync(&bob, &[("since", since.as_str()), ("timeout", "0")])
        .await;
    assert_eq!(
        sync["device_lists"]["changed"],
        json!([alice.user_id]),
        "{sync}"
    );
    let keys = server
        .post(
            "/keys/query",
            &bob.token,
            json!({ "device_keys": { alice.user_id.clone(): [] } }),
        )
        .await;
    let device = &keys.assert_ok()["device_keys"][&alice.user_id]["DEHYDRATED"];
    assert_eq!(device["dehydrated"], json!(true), "{device}");
    assert_eq!(
        device["unsigned"]["device_display_name"],
        json!("Dehydrated device")
    );
    // Its one-time key first, then its fallback key.
    let claim = json!({ "one_time_keys": { alice.user_id.clone(): { "DEHYDRATED": "signed_curve25519" } } });
    for expected in ["one", "fallback"] {
        let claimed = server.post("/keys/claim", &bob.token, claim.clone()).await;
        let keys = &claimed.assert_ok()["one_time_keys"][&alice.user_id]["DEHYDRATED"];
        let key = keys.as_object().unwrap().values().next().unwrap();
        assert_eq!(key["key"], json!(expected), "{keys}");
    }
}

#[tokio::test]
async fn dh08_dh09_dh10_dh11_messages_queue_and_are_read_in_pages_without_deleting() {
    let server = TestServer::start().await;
    let (alice, bob, _room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    put(&server, &alice, body(&alice, "DEHYDRATED"))
        .await
        .assert_ok();
    send_to(&server, &bob, &alice, "DEHYDRATED", 105).await;
    // A wildcard send reaches it too.
    send_to(&server, &bob, &alice, "*", 1).await;
    let first = server
        .get(&events_path("DEHYDRATED", None), &alice.token)
        .await;
    let first = first.assert_ok().clone();
    assert_eq!(first["events"].as_array().unwrap().len(), 100);
    assert_eq!(
        first["events"][0],
        json!({ "sender": bob.user_id, "type": "m.room_key", "content": { "n": 0 } })
    );
    // Reading deletes nothing: the same page again.
    let again = server
        .get(&events_path("DEHYDRATED", None), &alice.token)
        .await;
    assert_eq!(again.assert_ok(), &first);
    let token = first["next_batch"].as_str().unwrap();
    let rest = server
        .get(&events_path("DEHYDRATED", Some(token)), &alice.token)
        .await;
    let rest = rest.assert_ok().clone();
    assert_eq!(rest["events"].as_array().unwrap().len(), 6);
    let last = rest["next_batch"].as_str().unwrap();
    let done = server
        .get(&events_path("DEHYDRATED", Some(last)), &alice.token)
        .await;
    assert_eq!(done.assert_ok(), &json!({ "events": [] }));
    // The POST form (ruma's) always has a next_batch.
    let posted = server
        .post(
            &events_path("DEHYDRATED", None),
            &alice.token,
            json!({ "next_batch": last }),
        )
        .await;
    assert_eq!(
        posted.assert_ok(),
        &json!({ "events": [], "next_batch": last })
    );
    let posted = server
        .post(&events_path("DEHYDRATED", None), &alice.token, json!({}))
        .await;
    assert_eq!(posted.assert_ok()["events"].as_array().unwrap().len(), 100);
    // Only one's own current dehydrated device; tokens must be tokens.
    server
        .get(&events_path(&alice.device_id, None), &alice.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .get(&events_path("DEHYDRATED", None), &bob.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    server
        .get(&events_path("DEHYDRATED", Some("nonsense")), &alice.token)
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn dh05_dh12_dh13_a_new_one_replaces_the_old_and_deleting_it_deletes_the_device() {
    let server = TestServer::start().await;
    let (alice, bob, _room) = server
        .alice_and_bob(json!({ "preset": "public_chat" }))
        .await;
    put(&server, &alice, body(&alice, "FIRST"))
        .await
        .assert_ok();
    send_to(&server, &bob, &alice, "FIRST", 2).await;
    let since = next_batch(&server.sync(&bob, &[]).await);
    put(&server, &alice, body(&alice, "SECOND"))
        .await
        .assert_ok();
    // The first is gone with its keys and messages, and Bob hears of the change.
    let devices = server.get("/devices", &alice.token).await;
    let mut expected = vec![alice.device_id.clone(), "SECOND".to_owned()];
    expected.sort();
    assert_eq!(device_ids(devices.assert_ok()), expected);
    let keys = server
        .post(
            "/keys/query",
            &bob.token,
            json!({ "device_keys": { alice.user_id.clone(): ["FIRST"] } }),
        )
        .await;
    assert_eq!(
        keys.assert_ok()["device_keys"][&alice.user_id],
        json!({}),
        "{}",
        keys.body
    );
    server
        .get(&events_path("FIRST", None), &alice.token)
        .await
        .assert_error(403, "M_FORBIDDEN");
    let sync = server
        .sync(&bob, &[("since", since.as_str()), ("timeout", "0")])
        .await;
    assert_eq!(sync["device_lists"]["changed"], json!([alice.user_id]));
    let second = server.get(&events_path("SECOND", None), &alice.token).await;
    assert_eq!(second.assert_ok(), &json!({ "events": [] }));

    // DH-12: deleting it.
    let deleted = server
        .call(Method::DELETE, DH, Some(&alice.token), None)
        .await;
    assert_eq!(deleted.assert_ok(), &json!({ "device_id": "SECOND" }));
    server
        .get(DH, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .call(Method::DELETE, DH, Some(&alice.token), None)
        .await
        .assert_error(404, "M_NOT_FOUND");
    let devices = server.get("/devices", &alice.token).await;
    assert_eq!(
        device_ids(devices.assert_ok()),
        vec![alice.device_id.clone()]
    );

    // DH-13: deleted as any device (with the password), it is no longer the dehydrated one.
    put(&server, &alice, body(&alice, "THIRD"))
        .await
        .assert_ok();
    let path = "/devices/THIRD";
    let challenge = server
        .call(Method::DELETE, path, Some(&alice.token), Some(json!({})))
        .await;
    assert_eq!(challenge.status, 401);
    let auth = TestServer::password_auth(&alice, &challenge.body["session"]);
    server
        .call(
            Method::DELETE,
            path,
            Some(&alice.token),
            Some(json!({ "auth": auth })),
        )
        .await
        .assert_ok();
    server
        .get(DH, &alice.token)
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn the_operator_sees_each_devices_keys_and_which_one_is_dehydrated() {
    let server = TestServer::start().await;
    let admin = server.register("admin").await;
    myelin_core::admin::set_admin_flag(server.services(), &admin.user_id, true)
        .await
        .unwrap();
    let alice = server.register("alice").await;
    put(&server, &alice, body(&alice, "DEHYDRATED"))
        .await
        .assert_ok();
    let path = format!("/_synapse/admin/v2/users/{}/devices", enc(&alice.user_id));
    let list = server.get(&path, &admin.token).await;
    let devices = list.assert_ok()["devices"].as_array().unwrap().clone();
    let of = |id: &str| {
        devices
            .iter()
            .find(|d| d["device_id"] == id)
            .unwrap()
            .clone()
    };
    let dehydrated = of("DEHYDRATED");
    assert_eq!(dehydrated["dehydrated"], json!(true));
    assert_eq!(
        dehydrated["e2ee"],
        json!({
            "device_keys": true,
            "one_time_keys": { "signed_curve25519": 1 },
            "unused_fallback_key_types": ["signed_curve25519"],
        })
    );
    let own = of(&alice.device_id);
    assert_eq!(own["dehydrated"], json!(false));
    assert_eq!(
        own["e2ee"],
        json!({ "device_keys": false, "one_time_keys": {}, "unused_fallback_key_types": [] })
    );
    let one = server
        .get(&format!("{path}/DEHYDRATED"), &admin.token)
        .await;
    assert_eq!(one.assert_ok()["e2ee"]["device_keys"], json!(true));
}
