//! Registration, login, logout, whoami, and the error conventions every endpoint shares
//! (foundation issue; behaviours AU-*, UIA-01, UIA-14, UIA-15).

mod common;

use common::TestServer;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn versions_and_well_known() {
    let server = TestServer::start().await;
    let versions = server
        .call(Method::GET, "/_matrix/client/versions", None, None)
        .await;
    let body = versions.assert_ok();
    let list: Vec<&str> = body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(list.contains(&"v1.17"), "{body}");
    assert!(
        !list.contains(&"v1.20"),
        "v1.20 drops ?access_token=, which we still serve"
    );
    let well_known = server
        .call(Method::GET, "/.well-known/matrix/client", None, None)
        .await;
    assert_eq!(
        well_known.assert_ok()["m.homeserver"]["base_url"],
        server.base
    );
}

#[tokio::test]
async fn new_user_registers_logs_in_twice_and_logs_out() {
    let server = TestServer::start().await;
    let first = server.register("alice").await;
    assert_eq!(first.user_id, "@alice:localhost");
    let second = server.login(&first, None).await;
    assert_ne!(first.device_id, second.device_id);
    for user in [&first, &second] {
        let me = server.get("/account/whoami", &user.token).await;
        assert_eq!(
            me.assert_ok(),
            &json!({"user_id": "@alice:localhost", "device_id": user.device_id, "is_guest": false})
        );
    }
    // AU-12: logout deletes the device; its token is refused, the other still works.
    server
        .post("/logout", &first.token, json!({}))
        .await
        .assert_ok();
    server
        .get("/account/whoami", &first.token)
        .await
        .assert_error(401, "M_UNKNOWN_TOKEN");
    server
        .get("/account/whoami", &second.token)
        .await
        .assert_ok();
    let devices = server.get("/devices", &second.token).await;
    assert_eq!(devices.assert_ok()["devices"].as_array().unwrap().len(), 1);
    // AU-13: logout/all needs no UIA and kills every token, the caller's included.
    let third = server.login(&first, None).await;
    server
        .post("/logout/all", &second.token, json!({}))
        .await
        .assert_ok();
    for user in [&second, &third] {
        let resp = server.get("/account/whoami", &user.token).await;
        resp.assert_error(401, "M_UNKNOWN_TOKEN");
        assert_eq!(resp.body["soft_logout"], false);
    }
}
