//! Registration tokens an admin manages (`/_synapse/admin/v1/registration_tokens`, issue 14)
//! and their use by `m.login.registration_token` (`registration.yaml`, behaviour AU-06), and
//! shared-secret registration (`/_synapse/admin/v1/register`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Resp, TestServer, User, enc};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};

const T: &str = "/_synapse/admin/v1/registration_tokens";
const SECRET: &str = "a shared secret of some length";

async fn setup() -> (TestServer, User) {
    let server = TestServer::with(|config, _| {
        config.registration.requires_token = true;
        config.registration.shared_secret = Some(SECRET.into());
    })
    .await;
    let admin = register_as(&server, "admin").await;
    myelin_core::admin::set_admin_flag(server.services(), &admin.user_id, true)
        .await
        .unwrap();
    (server, admin)
}

/// The test kit's registration goes through `m.login.dummy`; here registration needs a token,
/// so the first user comes from shared-secret registration.
async fn register_as(server: &TestServer, username: &str) -> User {
    let resp = shared_secret(server, username, "a password here", false).await;
    let body = resp.assert_ok();
    User {
        user_id: body["user_id"].as_str().unwrap().into(),
        localpart: username.into(),
        token: body["access_token"].as_str().unwrap().into(),
        device_id: body["device_id"].as_str().unwrap().into(),
    }
}

fn mac(nonce: &str, username: &str, password: &str, admin: bool) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    let admin = if admin { "admin" } else { "notadmin" };
    mac.update(format!("{nonce}\0{username}\0{password}\0{admin}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn nonce(server: &TestServer) -> String {
    let resp = server
        .call(Method::GET, "/_synapse/admin/v1/register", None, None)
        .await;
    resp.assert_ok()["nonce"].as_str().unwrap().to_owned()
}

async fn shared_secret(server: &TestServer, username: &str, password: &str, admin: bool) -> Resp {
    let nonce = nonce(server).await;
    let body = json!({
        "nonce": nonce,
        "username": username,
        "password": password,
        "admin": admin,
        "mac": mac(&nonce, username, password, admin),
    });
    server
        .call(
            Method::POST,
            "/_synapse/admin/v1/register",
            None,
            Some(body),
        )
        .await
}

/// Registers `username` with `token`: the UIA round that starts the session, then the token
/// stage. The final response.
async fn register_with_token(server: &TestServer, username: &str, token: &str) -> Resp {
    let body = json!({ "username": username, "password": "passphrase of theirs" });
    let first = server
        .call(Method::POST, "/register", None, Some(body))
        .await;
    assert_eq!(first.status, 401, "{}", first.body);
    assert_eq!(
        first.body["flows"],
        json!([{ "stages": ["m.login.registration_token"] }])
    );
    let auth = json!({
        "auth": {
            "type": "m.login.registration_token",
            "token": token,
            "session": first.body["session"],
        }
    });
    server
        .call(Method::POST, "/register", None, Some(auth))
        .await
}

async fn validity(server: &TestServer, token: &str) -> bool {
    let resp = server
        .call(
            Method::GET,
            &format!(
                "/_matrix/client/v1/register/m.login.registration_token/validity?token={}",
                enc(token)
            ),
            None,
            None,
        )
        .await;
    resp.assert_ok()["valid"].as_bool().unwrap()
}

#[tokio::test]
async fn a_token_with_one_use_registers_one_account() {
    let (server, admin) = setup().await;
    let created = server
        .post(
            &format!("{T}/new"),
            &admin.token,
            json!({ "token": "once-only", "uses_allowed": 1 }),
        )
        .await;
    assert_eq!(
        created.assert_ok(),
        &json!({
            "token": "once-only", "uses_allowed": 1, "pending": 0, "completed": 0,
            "expiry_time": null,
        })
    );
    assert!(validity(&server, "once-only").await);
    register_with_token(&server, "first", "once-only")
        .await
        .assert_ok();
    let after = server.get(&format!("{T}/once-only"), &admin.token).await;
    let after = after.assert_ok();
    assert_eq!(
        (&after["pending"], &after["completed"]),
        (&json!(0), &json!(1))
    );
    assert!(!validity(&server, "once-only").await);
    let second = register_with_token(&server, "second", "once-only").await;
    assert_eq!(second.status, 401, "{}", second.body);
    assert_eq!(second.body["errcode"], "M_FORBIDDEN");
    // Listed as invalid now.
    let valid = server.get(&format!("{T}?valid=true"), &admin.token).await;
    assert_eq!(valid.assert_ok()["registration_tokens"], json!([]));
    let invalid = server.get(&format!("{T}?valid=false"), &admin.token).await;
    assert_eq!(
        invalid.assert_ok()["registration_tokens"][0]["token"],
        "once-only"
    );
}

#[tokio::test]
async fn tokens_are_generated_updated_and_deleted() {
    let (server, admin) = setup().await;
    let generated = server
        .post(&format!("{T}/new"), &admin.token, json!({ "length": 24 }))
        .await;
    let token = generated.assert_ok()["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 24);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()), "{token}");
    let default = server
        .post(&format!("{T}/new"), &admin.token, json!({}))
        .await;
    assert_eq!(default.assert_ok()["token"].as_str().unwrap().len(), 16);
    let list = server.get(T, &admin.token).await;
    assert_eq!(
        list.assert_ok()["registration_tokens"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // An expiry in the past is refused; a limit can be set and removed.
    let path = format!("{T}/{token}");
    server
        .put(&path, &admin.token, json!({ "expiry_time": 1000 }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
    let updated = server
        .put(&path, &admin.token, json!({ "uses_allowed": 5 }))
        .await;
    assert_eq!(updated.assert_ok()["uses_allowed"], 5);
    let updated = server
        .put(&path, &admin.token, json!({ "uses_allowed": null }))
        .await;
    assert_eq!(updated.assert_ok()["uses_allowed"], Value::Null);
    server
        .call(Method::DELETE, &path, Some(&admin.token), None)
        .await
        .assert_ok();
    let gone = server.get(&path, &admin.token).await;
    gone.assert_error(404, "M_NOT_FOUND");
    assert_eq!(
        gone.body["error"],
        format!("No such registration token: {token}")
    );
    server
        .call(Method::DELETE, &path, Some(&admin.token), None)
        .await
        .assert_error(404, "M_NOT_FOUND");
    server
        .put(&path, &admin.token, json!({ "uses_allowed": 1 }))
        .await
        .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let (server, admin) = setup().await;
    let new = format!("{T}/new");
    for body in [
        json!({ "token": "has space" }),
        json!({ "token": "x".repeat(65) }),
        json!({ "token": 7 }),
        json!({ "uses_allowed": -1 }),
        json!({ "uses_allowed": "two" }),
        json!({ "length": 0 }),
        json!({ "length": 65 }),
        json!({ "expiry_time": 5 }),
    ] {
        server
            .post(&new, &admin.token, body.clone())
            .await
            .assert_error(400, "M_INVALID_PARAM");
    }
    server
        .post(&new, &admin.token, json!({ "token": "taken" }))
        .await
        .assert_ok();
    server
        .post(&new, &admin.token, json!({ "token": "taken" }))
        .await
        .assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn an_expired_token_registers_nobody() {
    let (server, admin) = setup().await;
    let soon = myelin_core::now_ms() + 300;
    server
        .post(
            &format!("{T}/new"),
            &admin.token,
            json!({ "token": "brief", "expiry_time": soon }),
        )
        .await
        .assert_ok();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(!validity(&server, "brief").await);
    let resp = register_with_token(&server, "late", "brief").await;
    assert_eq!(resp.body["errcode"], "M_FORBIDDEN", "{}", resp.body);
}

#[tokio::test]
async fn shared_secret_registration_creates_admins_once_per_nonce() {
    let (server, _) = setup().await;
    let resp = shared_secret(&server, "root", "root password", true).await;
    let body = resp.assert_ok().clone();
    assert_eq!(body["user_id"], "@root:localhost");
    assert_eq!(body["home_server"], "localhost");
    let token = body["access_token"].as_str().unwrap();
    // A server admin at once.
    server
        .get("/_synapse/admin/v2/users", token)
        .await
        .assert_ok();
    // A wrong MAC, a reused nonce, a taken name.
    let nonce = nonce(&server).await;
    let forged = json!({
        "nonce": nonce, "username": "eve", "password": "pw of eve", "admin": true,
        "mac": mac(&nonce, "eve", "pw of eve", false),
    });
    let path = "/_synapse/admin/v1/register";
    server
        .call(Method::POST, path, None, Some(forged))
        .await
        .assert_error(403, "M_FORBIDDEN");
    let honest = json!({
        "nonce": nonce, "username": "eve", "password": "pw of eve", "admin": false,
        "mac": mac(&nonce, "eve", "pw of eve", false),
    });
    // The nonce was used up by the forged attempt.
    server
        .call(Method::POST, path, None, Some(honest))
        .await
        .assert_error(400, "M_UNKNOWN");
    shared_secret(&server, "root", "another", false)
        .await
        .assert_error(400, "M_USER_IN_USE");
}

#[tokio::test]
async fn shared_secret_registration_is_off_without_a_secret() {
    let server = TestServer::start().await;
    server
        .call(Method::GET, "/_synapse/admin/v1/register", None, None)
        .await
        .assert_error(400, "M_UNKNOWN");
}

/// A registration that reserved a token's use and was abandoned gives it back when its UIA
/// session expires, as the reference server counts `pending`.
#[tokio::test]
async fn an_abandoned_registration_gives_its_use_back() {
    let server = TestServer::with(|config, _| {
        config.registration.requires_token = true;
        config.registration.shared_secret = Some(SECRET.into());
        config.uia.session_ttl_secs = 1;
    })
    .await;
    let admin = register_as(&server, "admin").await;
    myelin_core::admin::set_admin_flag(server.services(), &admin.user_id, true)
        .await
        .unwrap();
    server
        .post(
            &format!("{T}/new"),
            &admin.token,
            json!({ "token": "last-use", "uses_allowed": 1 }),
        )
        .await
        .assert_ok();
    // The token stage passes, then the registration fails: no password.
    let first = server
        .call(
            Method::POST,
            "/register",
            None,
            Some(json!({ "username": "gone" })),
        )
        .await;
    let auth = json!({ "auth": {
        "type": "m.login.registration_token", "token": "last-use",
        "session": first.body["session"],
    }});
    server
        .call(Method::POST, "/register", None, Some(auth))
        .await
        .assert_error(400, "M_MISSING_PARAM");
    let held = server.get(&format!("{T}/last-use"), &admin.token).await;
    assert_eq!(held.assert_ok()["pending"], 1);
    assert!(!validity(&server, "last-use").await);
    let refused = register_with_token(&server, "other", "last-use").await;
    assert_eq!(refused.body["errcode"], "M_FORBIDDEN", "{}", refused.body);
    // Once the session expired, the use is free again.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let freed = server.get(&format!("{T}/last-use"), &admin.token).await;
    assert_eq!(freed.assert_ok()["pending"], 0);
    register_with_token(&server, "other", "last-use")
        .await
        .assert_ok();
    let used = server.get(&format!("{T}/last-use"), &admin.token).await;
    let used = used.assert_ok();
    assert_eq!(
        (&used["pending"], &used["completed"]),
        (&json!(0), &json!(1))
    );
}
