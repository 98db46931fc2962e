//! Cross-signing keys (issue 10; behaviours XS-* of `behaviours-e2ee.md`):
//! `POST /keys/device_signing/upload` and the keys in `/keys/query`.

#![allow(clippy::unwrap_used)]

mod common;

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use common::{TestServer, User};
use ruma_signatures::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

/// An ed25519 key a client would make, with its public half as the spec writes it.
struct SigningKey {
    pair: Ed25519KeyPair,
    public: String,
}

impl SigningKey {
    fn new() -> Self {
        let pair = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "k".into()).unwrap();
        let public = STANDARD_NO_PAD.encode(pair.public_key());
        Self { pair, public }
    }

    /// `object` with this key's signature added under `user_id`.
    fn sign(&self, user_id: &str, mut object: Value) -> Value {
        let mut unsigned = object.clone();
        let fields = unsigned.as_object_mut().unwrap();
        fields.remove("signatures");
        fields.remove("unsigned");
        let canonical: ruma_common::CanonicalJsonObject = serde_json::from_value(unsigned).unwrap();
        let bytes = ruma_signatures::to_canonical_json_string_for_signing(&canonical).unwrap();
        let signature = STANDARD_NO_PAD.encode(self.pair.sign(bytes.as_bytes()).as_bytes());
        let signatures = object
            .as_object_mut()
            .unwrap()
            .entry("signatures")
            .or_insert_with(|| json!({}));
        signatures
            .as_object_mut()
            .unwrap()
            .entry(user_id)
            .or_insert_with(|| json!({}))[format!("ed25519:{}", self.public)] = json!(signature);
        object
    }
}

fn key_object(user_id: &str, usage: &str, key: &SigningKey) -> Value {
    json!({
        "user_id": user_id,
        "usage": [usage],
        "keys": { format!("ed25519:{}", key.public): key.public },
    })
}

/// Master, self-signing and user-signing keys, the last two signed by the first.
struct Keys {
    master: SigningKey,
    body: Value,
}

fn keys_for(user: &User) -> Keys {
    let master = SigningKey::new();
    let (ssk, usk) = (SigningKey::new(), SigningKey::new());
    let id = &user.user_id;
    let body = json!({
        "master_key": key_object(id, "master", &master),
        "self_signing_key": master.sign(id, key_object(id, "self_signing", &ssk)),
        "user_signing_key": master.sign(id, key_object(id, "user_signing", &usk)),
    });
    Keys { master, body }
}

async fn upload(server: &TestServer, user: &User, body: Value) -> common::Resp {
    server
        .post("/keys/device_signing/upload", &user.token, body)
        .await
}

async fn query(server: &TestServer, user: &User, of: &User) -> Value {
    server
        .post(
            "/keys/query",
            &user.token,
            json!({ "device_keys": { of.user_id.clone(): [] } }),
        )
        .await
        .assert_ok()
        .clone()
}

#[tokio::test]
async fn xs01_xs02_first_upload_needs_no_uia_and_is_served_by_query() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let keys = keys_for(&alice);
    upload(&server, &alice, keys.body.clone()).await.assert_ok();
    // XS-02: the same keys again, also with an auth dict, need nothing.
    upload(&server, &alice, keys.body.clone()).await.assert_ok();
    let mut with_auth = keys.body.clone();
    with_auth["auth"] = json!({ "type": "m.login.dummy" });
    upload(&server, &alice, with_auth).await.assert_ok();

    let own = query(&server, &alice, &alice).await;
    assert_eq!(own["master_keys"][&alice.user_id], keys.body["master_key"]);
    assert_eq!(
        own["self_signing_keys"][&alice.user_id],
        keys.body["self_signing_key"]
    );
    assert_eq!(
        own["user_signing_keys"][&alice.user_id],
        keys.body["user_signing_key"]
    );
    // Another user sees the master and self-signing keys, never the user-signing key.
    let theirs = query(&server, &bob, &alice).await;
    assert_eq!(
        theirs["master_keys"][&alice.user_id],
        keys.body["master_key"]
    );
    assert_eq!(
        theirs["self_signing_keys"][&alice.user_id],
        keys.body["self_signing_key"]
    );
    assert_eq!(theirs["user_signing_keys"], json!({}));
    // A user without keys is in none of the maps.
    let none = query(&server, &alice, &bob).await;
    assert!(none["master_keys"].get(&bob.user_id).is_none(), "{none}");
}

#[tokio::test]
async fn xs03_xs04_xs11_changing_a_key_needs_the_password() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let first = keys_for(&alice);
    upload(
        &server,
        &alice,
        json!({ "master_key": first.body["master_key"] }),
    )
    .await
    .assert_ok();
    // XS-04: adding a self-signing key to a stored master is a change.
    let ssk = SigningKey::new();
    let added = json!({
        "master_key": first.body["master_key"],
        "self_signing_key": first.master.sign(&alice.user_id, key_object(&alice.user_id, "self_signing", &ssk)),
    });
    let challenge = upload(&server, &alice, added.clone()).await;
    assert_eq!(challenge.status, 401, "{:?}", challenge.body);
    let session = challenge.body["session"].clone();
    assert!(
        challenge.body["flows"]
            .to_string()
            .contains("m.login.password")
    );
    let mut authed = added.clone();
    authed["auth"] = TestServer::password_auth(&alice, &session);
    // XS-11: the stored master sent again with the new key succeeds once confirmed.
    upload(&server, &alice, authed).await.assert_ok();
    let own = query(&server, &alice, &alice).await;
    assert_eq!(
        own["self_signing_keys"][&alice.user_id],
        added["self_signing_key"]
    );

    // XS-03: a new master key.
    let second = keys_for(&alice);
    let challenge = upload(&server, &alice, second.body.clone()).await;
    assert_eq!(challenge.status, 401);
    let mut wrong = second.body.clone();
    wrong["auth"] = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": alice.user_id },
        "password": "not it",
        "session": challenge.body["session"],
    });
    let refused = upload(&server, &alice, wrong).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.errcode(), "M_FORBIDDEN");
    let own = query(&server, &alice, &alice).await;
    assert_eq!(own["master_keys"][&alice.user_id], first.body["master_key"]);
    let mut authed = second.body.clone();
    authed["auth"] = TestServer::password_auth(&alice, &challenge.body["session"]);
    upload(&server, &alice, authed).await.assert_ok();
    let own = query(&server, &alice, &alice).await;
    assert_eq!(
        own["master_keys"][&alice.user_id],
        second.body["master_key"]
    );
}

#[tokio::test]
async fn xs07_xs08_xs09_xs10_bad_keys_are_refused_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let id = alice.user_id.clone();
    let keys = keys_for(&alice);
    // XS-07: no master in the request nor stored.
    upload(
        &server,
        &alice,
        json!({ "self_signing_key": keys.body["self_signing_key"] }),
    )
    .await
    .assert_error(400, "M_MISSING_PARAM");
    // XS-08: signed by another key than the master.
    let other = SigningKey::new();
    let ssk = SigningKey::new();
    let bad = json!({
        "master_key": keys.body["master_key"],
        "self_signing_key": other.sign(&id, key_object(&id, "self_signing", &ssk)),
    });
    upload(&server, &alice, bad)
        .await
        .assert_error(400, "M_INVALID_SIGNATURE");
    // A tampered key no longer matches its signature.
    let mut tampered = keys.body.clone();
    tampered["self_signing_key"]["usage"] = json!(["self_signing", "extra"]);
    upload(&server, &alice, tampered)
        .await
        .assert_error(400, "M_INVALID_SIGNATURE");
    // XS-09: the key object's own checks.
    let mut foreign = keys.body.clone();
    foreign["master_key"]["user_id"] = json!("@mallory:localhost");
    upload(&server, &alice, foreign)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let mut wrong_usage = keys.body.clone();
    wrong_usage["master_key"]["usage"] = json!(["self_signing"]);
    upload(&server, &alice, wrong_usage)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let mut two_keys = keys.body.clone();
    two_keys["master_key"]["keys"]["ed25519:extra"] = json!("extra");
    upload(&server, &alice, two_keys)
        .await
        .assert_error(400, "M_INVALID_PARAM");
    // XS-10: a key that is a device's ID.
    let device = alice.device_id.clone();
    let taken = json!({
        "master_key": { "user_id": id, "usage": ["master"], "keys": { format!("ed25519:{device}"): device } },
    });
    upload(&server, &alice, taken)
        .await
        .assert_error(403, "M_FORBIDDEN");
    // XS-12: none of it was stored.
    let own = query(&server, &alice, &alice).await;
    assert_eq!(own["master_keys"], json!({}), "{own}");
}

#[tokio::test]
async fn new_cross_signing_keys_reach_room_mates_through_device_lists() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &room).await;
    let since = server.sync(&bob, &[]).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    upload(&server, &alice, keys_for(&alice).body)
        .await
        .assert_ok();
    let sync = server
        .sync(&bob, &[("since", &since), ("timeout", "0")])
        .await;
    assert_eq!(
        sync["device_lists"]["changed"],
        json!([alice.user_id]),
        "{sync}"
    );
}

/// Uploads device keys for the user's device, signed by the device's own ed25519 key.
async fn upload_device_keys(server: &TestServer, user: &User) -> (SigningKey, Value) {
    let device_key = SigningKey::new();
    let device = &user.device_id;
    let keys = device_key.sign(
        &user.user_id,
        json!({
            "user_id": user.user_id,
            "device_id": device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("ed25519:{device}"): device_key.public,
                format!("curve25519:{device}"): "Q2hlY2tpbmcgdGhlIGN1cnZlIGtleQ",
            },
        }),
    );
    // The device's key is named by the device ID, not by its public key.
    let mut keys = keys;
    let sig = keys["signatures"][&user.user_id]
        .as_object_mut()
        .unwrap()
        .remove(&format!("ed25519:{}", device_key.public))
        .unwrap();
    keys["signatures"][&user.user_id][format!("ed25519:{device}")] = sig;
    server
        .post("/keys/upload", &user.token, json!({ "device_keys": keys }))
        .await
        .assert_ok();
    (device_key, keys)
}

/// Signs `object` as a device does: with the key named `ed25519:<device_id>`.
fn device_sign(key: &SigningKey, user: &User, object: Value) -> Value {
    let mut signed = key.sign(&user.user_id, object);
    let sig = signed["signatures"][&user.user_id]
        .as_object_mut()
        .unwrap()
        .remove(&format!("ed25519:{}", key.public))
        .unwrap();
    signed["signatures"][&user.user_id][format!("ed25519:{}", user.device_id)] = sig;
    signed
}

fn without_signatures(mut object: Value) -> Value {
    object.as_object_mut().unwrap().remove("signatures");
    object.as_object_mut().unwrap().remove("unsigned");
    object
}

async fn sign_upload(server: &TestServer, user: &User, body: Value) -> Value {
    server
        .post("/keys/signatures/upload", &user.token, body)
        .await
        .assert_ok()
        .clone()
}

#[tokio::test]
async fn xs13_xs14_xs15_xs19_signatures_are_verified_kept_and_served() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let (device_key, device_keys) = upload_device_keys(&server, &alice).await;
    let ssk = SigningKey::new();
    let master = SigningKey::new();
    let id = alice.user_id.clone();
    let master_object = key_object(&id, "master", &master);
    upload(
        &server,
        &alice,
        json!({
            "master_key": master_object,
            "self_signing_key": master.sign(&id, key_object(&id, "self_signing", &ssk)),
        }),
    )
    .await
    .assert_ok();

    // XS-14: the device signed by the self-signing key; XS-15: the master by the device.
    let signed_device = ssk.sign(&id, without_signatures(device_keys.clone()));
    let signed_master = device_sign(&device_key, &alice, master_object.clone());
    let answer = sign_upload(
        &server,
        &alice,
        json!({ id.clone(): {
            alice.device_id.clone(): signed_device,
            master.public.clone(): signed_master,
        }}),
    )
    .await;
    assert_eq!(answer["failures"], json!({}), "{answer}");

    let seen = query(&server, &bob, &alice).await;
    let device = &seen["device_keys"][&id][&alice.device_id];
    let sigs = device["signatures"][&id].as_object().unwrap();
    assert!(
        sigs.contains_key(&format!("ed25519:{}", alice.device_id)),
        "{device}"
    );
    assert!(
        sigs.contains_key(&format!("ed25519:{}", ssk.public)),
        "{device}"
    );
    let master_sigs = seen["master_keys"][&id]["signatures"][&id]
        .as_object()
        .unwrap();
    assert!(
        master_sigs.contains_key(&format!("ed25519:{}", alice.device_id)),
        "{seen}"
    );

    // XS-19: the device uploading its keys again keeps the signature.
    server
        .post(
            "/keys/upload",
            &alice.token,
            json!({ "device_keys": device_keys }),
        )
        .await
        .assert_ok();
    let seen = query(&server, &bob, &alice).await;
    assert!(
        seen["device_keys"][&id][&alice.device_id]["signatures"][&id]
            .get(format!("ed25519:{}", ssk.public))
            .is_some(),
        "{seen}"
    );

    // Another user's master, by Bob's user-signing key: only Bob sees it (XS-15).
    let bob_master = SigningKey::new();
    let usk = SigningKey::new();
    let bid = bob.user_id.clone();
    upload(
        &server,
        &bob,
        json!({
            "master_key": key_object(&bid, "master", &bob_master),
            "user_signing_key": bob_master.sign(&bid, key_object(&bid, "user_signing", &usk)),
        }),
    )
    .await
    .assert_ok();
    let by_bob = usk.sign(&bid, master_object.clone());
    let answer = sign_upload(
        &server,
        &bob,
        json!({ id.clone(): { master.public.clone(): by_bob } }),
    )
    .await;
    assert_eq!(answer["failures"], json!({}), "{answer}");
    let bobs_view = query(&server, &bob, &alice).await;
    assert!(
        bobs_view["master_keys"][&id]["signatures"][&bid]
            .get(format!("ed25519:{}", usk.public))
            .is_some(),
        "{bobs_view}"
    );
    let alices_view = query(&server, &alice, &alice).await;
    assert!(
        alices_view["master_keys"][&id]["signatures"]
            .get(&bid)
            .is_none(),
        "{alices_view}"
    );
}

#[tokio::test]
async fn xs16_xs17_xs18_bad_signatures_fail_alone_and_are_not_kept() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let (_, device_keys) = upload_device_keys(&server, &alice).await;
    let id = alice.user_id.clone();
    let master = SigningKey::new();
    let ssk = SigningKey::new();
    upload(
        &server,
        &alice,
        json!({
            "master_key": key_object(&id, "master", &master),
            "self_signing_key": master.sign(&id, key_object(&id, "self_signing", &ssk)),
        }),
    )
    .await
    .assert_ok();
    // Signed by a key that is not the self-signing key, and a device that does not exist.
    let impostor = SigningKey::new();
    let mut forged = impostor.sign(&id, without_signatures(device_keys.clone()));
    let sig = forged["signatures"][&id]
        .as_object_mut()
        .unwrap()
        .remove(&format!("ed25519:{}", impostor.public))
        .unwrap();
    forged["signatures"][&id][format!("ed25519:{}", ssk.public)] = sig;
    let answer = sign_upload(
        &server,
        &alice,
        json!({ id.clone(): {
            alice.device_id.clone(): forged,
            "NOSUCHDEVICE": ssk.sign(&id, json!({ "device_id": "NOSUCHDEVICE" })),
        }}),
    )
    .await;
    assert_eq!(
        answer["failures"][&id][&alice.device_id]["errcode"], "M_INVALID_SIGNATURE",
        "{answer}"
    );
    assert_eq!(
        answer["failures"][&id]["NOSUCHDEVICE"]["errcode"],
        "M_NOT_FOUND"
    );
    assert!(answer["failures"][&id]["NOSUCHDEVICE"]["error"].is_string());
    let seen = query(&server, &alice, &alice).await;
    assert!(
        seen["device_keys"][&id][&alice.device_id]["signatures"][&id]
            .get(format!("ed25519:{}", ssk.public))
            .is_none(),
        "an unverified signature was kept: {seen}"
    );
    // XS-20: the unstable path answers too.
    let unstable = server
        .post(
            "/_matrix/client/unstable/keys/signatures/upload",
            &alice.token,
            json!({}),
        )
        .await;
    assert_eq!(unstable.assert_ok()["failures"], json!({}));
    // XS-17: a value that is not an object refuses the whole request.
    server
        .post(
            "/keys/signatures/upload",
            &alice.token,
            json!({ id: "nope" }),
        )
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

/// The users in `device_lists.changed` of the user's sync since `since`, and the next token.
async fn changed_since(server: &TestServer, user: &User, since: &str) -> (Vec<String>, String) {
    let sync = server
        .sync(user, &[("since", since), ("timeout", "0")])
        .await;
    let mut changed: Vec<String> = sync["device_lists"]["changed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    changed.sort();
    (changed, common::next_batch(&sync))
}

#[tokio::test]
async fn dl04_dl05_user_signing_changes_reach_only_their_owner() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = server
        .create_room(&alice, json!({ "preset": "public_chat" }))
        .await;
    server.join(&bob, &room).await;
    let (a, b) = (alice.user_id.clone(), bob.user_id.clone());
    let master = SigningKey::new();
    let usk = SigningKey::new();
    upload(
        &server,
        &alice,
        json!({
            "master_key": key_object(&a, "master", &master),
            "self_signing_key": master.sign(&a, key_object(&a, "self_signing", &SigningKey::new())),
            "user_signing_key": master.sign(&a, key_object(&a, "user_signing", &usk)),
        }),
    )
    .await
    .assert_ok();
    let bob_master = SigningKey::new();
    let bob_master_object = key_object(&b, "master", &bob_master);
    upload(&server, &bob, json!({ "master_key": bob_master_object }))
        .await
        .assert_ok();
    let alice_since = common::next_batch(&server.sync(&alice, &[]).await);
    let bob_since = common::next_batch(&server.sync(&bob, &[]).await);

    // DL-04: a new user-signing key alone (confirmed with the password).
    let new_usk = SigningKey::new();
    let body =
        json!({ "user_signing_key": master.sign(&a, key_object(&a, "user_signing", &new_usk)) });
    let challenge = upload(&server, &alice, body.clone()).await;
    assert_eq!(challenge.status, 401, "{:?}", challenge.body);
    let mut authed = body;
    authed["auth"] = TestServer::password_auth(&alice, &challenge.body["session"]);
    upload(&server, &alice, authed).await.assert_ok();
    let (seen, bob_since) = changed_since(&server, &bob, &bob_since).await;
    assert!(!seen.contains(&a), "bob must not hear of it: {seen:?}");
    let (seen, alice_since) = changed_since(&server, &alice, &alice_since).await;
    assert_eq!(seen, vec![a.clone()]);

    // DL-05: Alice's user-signing key signs Bob's master key: Alice hears of Bob, Bob of
    // nobody.
    let signed = new_usk.sign(&a, bob_master_object);
    let answer = sign_upload(
        &server,
        &alice,
        json!({ b.clone(): { bob_master.public.clone(): signed } }),
    )
    .await;
    assert_eq!(answer["failures"], json!({}), "{answer}");
    let (seen, _) = changed_since(&server, &alice, &alice_since).await;
    assert_eq!(seen, vec![b.clone()]);
    let (seen, _) = changed_since(&server, &bob, &bob_since).await;
    assert!(seen.is_empty(), "{seen:?}");
    // /keys/changes says the same.
    let changes = server
        .get(
            &format!(
                "/keys/changes?from={}&to={}",
                common::enc(&bob_since),
                common::enc(&common::next_batch(&server.sync(&bob, &[]).await))
            ),
            &bob.token,
        )
        .await;
    assert_eq!(changes.assert_ok()["changed"], json!([]));
}

#[tokio::test]
async fn dd07_dd08_keys_outlive_devices_and_no_device_takes_a_keys_id() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let (device_key, _) = upload_device_keys(&server, &alice).await;
    let keys = keys_for(&alice);
    upload(&server, &alice, keys.body.clone()).await.assert_ok();
    let master = keys.body["master_key"].clone();
    let public = keys.master.public.clone();
    let signed = device_sign(&device_key, &alice, master.clone());
    let answer = sign_upload(
        &server,
        &alice,
        json!({ alice.user_id.clone(): { public.clone(): signed } }),
    )
    .await;
    assert_eq!(answer["failures"], json!({}), "{answer}");
    // DD-08: a login may not name its device after a cross-signing key (400 M_FORBIDDEN,
    // as the reference server answers).
    let refused = server
        .call(
            reqwest::Method::POST,
            "/login",
            None,
            Some(json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": alice.localpart },
                "password": common::PASSWORD,
                "device_id": public,
            })),
        )
        .await;
    refused.assert_error(400, "M_FORBIDDEN");
    // DD-07: deleting the device that signed the master key keeps the cross-signing keys.
    let path = format!("/devices/{}", alice.device_id);
    let challenge = server
        .call(
            reqwest::Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({})),
        )
        .await;
    let auth = TestServer::password_auth(&alice, &challenge.body["session"]);
    server
        .call(
            reqwest::Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({ "auth": auth })),
        )
        .await
        .assert_ok();
    let seen = query(&server, &bob, &alice).await;
    assert_eq!(
        without_signatures(seen["master_keys"][&alice.user_id].clone()),
        master,
        "{seen}"
    );
    assert_eq!(
        seen["self_signing_keys"][&alice.user_id],
        keys.body["self_signing_key"]
    );
}
