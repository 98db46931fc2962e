//! Registration, login, logout, whoami, and the error conventions every endpoint shares
//! (foundation issue; behaviours AU-*, UIA-01, UIA-14, UIA-15).

mod common;

use common::{PASSWORD, TestServer, appservice_file};
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
async fn public_baseurl_is_advertised_without_a_trailing_slash() {
    let server = TestServer::with(|config, _| {
        config.public_baseurl = Some("https://matrix.example.org/".into());
    })
    .await;
    let well_known = server
        .call(Method::GET, "/.well-known/matrix/client", None, None)
        .await;
    assert_eq!(
        well_known.assert_ok()["m.homeserver"]["base_url"],
        "https://matrix.example.org"
    );
    let user = server.register("alice").await;
    let login = server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({"type": "m.login.password", "user": user.localpart, "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        login.assert_ok()["well_known"]["m.homeserver"]["base_url"],
        "https://matrix.example.org"
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

async fn start_register(server: &TestServer, body: serde_json::Value) -> common::Resp {
    server
        .call(Method::POST, "/register", None, Some(body))
        .await
}

#[tokio::test]
async fn uia01_register_without_auth_offers_flows_params_and_session() {
    let server = TestServer::start().await;
    let resp = start_register(&server, json!({})).await;
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(resp.body["flows"], json!([{"stages": ["m.login.dummy"]}]));
    assert_eq!(resp.body["params"], json!({}));
    assert!(resp.body["session"].as_str().is_some_and(|s| s.len() >= 16));
    assert!(resp.body.get("errcode").is_none(), "{}", resp.body);
}

#[tokio::test]
async fn uia14_au08_registration_remembers_the_first_request() {
    let server = TestServer::start().await;
    let first = start_register(
        &server,
        json!({"username": "Carol", "password": PASSWORD, "device_id": "CAROLPHONE",
               "initial_device_display_name": "Carol's phone"}),
    )
    .await;
    assert_eq!(first.status, 401);
    let done = start_register(
        &server,
        json!({"auth": {"type": "m.login.dummy", "session": first.body["session"]}}),
    )
    .await;
    let body = done.assert_ok();
    assert_eq!(
        body["user_id"], "@carol:localhost",
        "capitals are downcased"
    );
    assert_eq!(body["device_id"], "CAROLPHONE");
    let token = body["access_token"].as_str().unwrap();
    let device = server.get("/devices/CAROLPHONE", token).await;
    assert_eq!(device.assert_ok()["display_name"], "Carol's phone");
    // The remembered password is the one that works.
    let login = server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({"type": "m.login.password", "user": "carol", "password": PASSWORD})),
        )
        .await;
    login.assert_ok();
}

#[tokio::test]
async fn au09_inhibit_login_creates_no_device_and_no_token() {
    let server = TestServer::start().await;
    let body = json!({"username": "dave", "password": PASSWORD, "inhibit_login": true});
    let first = start_register(&server, body.clone()).await;
    let mut body = body;
    body["auth"] = json!({"type": "m.login.dummy", "session": first.body["session"]});
    let done = start_register(&server, body).await;
    let done = done.assert_ok();
    assert_eq!(done["user_id"], "@dave:localhost");
    assert!(
        done.get("access_token").is_none() && done.get("device_id").is_none(),
        "{done}"
    );
    let user = common::User {
        user_id: "@dave:localhost".into(),
        localpart: "dave".into(),
        token: String::new(),
        device_id: String::new(),
    };
    let logged_in = server.login(&user, None).await;
    let devices = server.get("/devices", &logged_in.token).await;
    assert_eq!(
        devices.assert_ok()["devices"].as_array().unwrap().len(),
        1,
        "only the login's device"
    );
}

#[tokio::test]
async fn uia15_a_completed_registration_session_returns_the_same_user() {
    let server = TestServer::start().await;
    let first = start_register(&server, json!({"username": "erin", "password": PASSWORD})).await;
    let finish = json!({"auth": {"type": "m.login.dummy", "session": first.body["session"]}});
    let a = start_register(&server, finish.clone()).await;
    let b = start_register(&server, finish).await;
    assert_eq!(a.assert_ok()["user_id"], "@erin:localhost");
    assert_eq!(b.assert_ok()["user_id"], "@erin:localhost");
    assert_ne!(a.body["access_token"], b.body["access_token"]);
}

#[tokio::test]
async fn register_rejects_taken_invalid_and_reserved_names_before_uia() {
    let server = TestServer::with(|config, dir| {
        config.appservices = vec![appservice_file(
            dir,
            "bridge",
            "as_token_bridge_0123456789",
            "",
        )];
    })
    .await;
    server.register("alice").await;
    let taken = start_register(&server, json!({"username": "ALICE", "password": PASSWORD})).await;
    taken.assert_error(400, "M_USER_IN_USE");
    for bad in ["al ice", "al:ice", "ålice", ""] {
        let resp = start_register(&server, json!({"username": bad, "password": PASSWORD})).await;
        resp.assert_error(400, "M_INVALID_USERNAME");
    }
    let reserved = start_register(
        &server,
        json!({"username": "bridge_x", "password": PASSWORD}),
    )
    .await;
    reserved.assert_error(400, "M_EXCLUSIVE");
    let guest = server
        .call(Method::POST, "/register?kind=guest", None, Some(json!({})))
        .await;
    guest.assert_error(403, "M_GUEST_ACCESS_FORBIDDEN");
    let not_json = server
        .call_raw(Method::POST, "/register", None, "{nope")
        .await;
    not_json.assert_error(400, "M_NOT_JSON");
    let not_object = server
        .call_raw(Method::POST, "/register", None, "[1]")
        .await;
    not_object.assert_error(400, "M_BAD_JSON");
    let wrong_type = start_register(&server, json!({"username": 5})).await;
    wrong_type.assert_error(400, "M_BAD_JSON");
}

#[tokio::test]
async fn username_availability() {
    let server = TestServer::start().await;
    server.register("alice").await;
    let free = server
        .call(Method::GET, "/register/available?username=bob", None, None)
        .await;
    assert_eq!(free.assert_ok(), &json!({"available": true}));
    let taken = server
        .call(
            Method::GET,
            "/register/available?username=alice",
            None,
            None,
        )
        .await;
    taken.assert_error(400, "M_USER_IN_USE");
    let invalid = server
        .call(
            Method::GET,
            "/register/available?username=a%20b",
            None,
            None,
        )
        .await;
    invalid.assert_error(400, "M_INVALID_USERNAME");
}

#[tokio::test]
async fn registration_closed_is_forbidden() {
    let server = TestServer::with(|config, _| config.registration.enabled = false).await;
    let resp = start_register(&server, json!({"username": "alice", "password": PASSWORD})).await;
    resp.assert_error(403, "M_FORBIDDEN");
    let available = server
        .call(Method::GET, "/register/available?username=x", None, None)
        .await;
    available.assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn registration_token_stage() {
    let server =
        TestServer::with(|config, _| config.registration.token = Some("s3cret".into())).await;
    let first = start_register(&server, json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(first.status, 401);
    assert_eq!(
        first.body["flows"],
        json!([{"stages": ["m.login.registration_token"]}])
    );
    let session = first.body["session"].clone();
    let dummy = start_register(
        &server,
        json!({"auth": {"type": "m.login.dummy", "session": session}}),
    )
    .await;
    assert_eq!(dummy.status, 401, "dummy is not offered: {}", dummy.body);
    let wrong = start_register(
        &server,
        json!({"auth": {"type": "m.login.registration_token", "token": "guess", "session": session}}),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["errcode"], "M_FORBIDDEN");
    assert_eq!(wrong.body["session"], session);
    let right = start_register(
        &server,
        json!({"auth": {"type": "m.login.registration_token", "token": "s3cret", "session": session}}),
    )
    .await;
    assert_eq!(right.assert_ok()["user_id"], "@alice:localhost");
    let path = "/_matrix/client/v1/register/m.login.registration_token/validity";
    let valid = server
        .call(Method::GET, &format!("{path}?token=s3cret"), None, None)
        .await;
    assert_eq!(valid.assert_ok(), &json!({"valid": true}));
    let invalid = server
        .call(Method::GET, &format!("{path}?token=nope"), None, None)
        .await;
    assert_eq!(invalid.assert_ok(), &json!({"valid": false}));
}

#[tokio::test]
async fn registration_token_validity_is_rate_limited_per_address() {
    let server = TestServer::with(|config, _| {
        config.registration.token = Some("s3cret".into());
        config.rate_limits = myelin_core::config::RateLimitsConfig::default();
    })
    .await;
    let path = "/_matrix/client/v1/register/m.login.registration_token/validity?token=guess";
    // The default allows a burst of 5 checks per address.
    for _ in 0..5 {
        let resp = server.call(Method::GET, path, None, None).await;
        assert_eq!(resp.assert_ok(), &json!({"valid": false}));
    }
    let limited = server.call(Method::GET, path, None, None).await;
    limited.assert_error(429, "M_LIMIT_EXCEEDED");
    assert!(
        limited.body["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0),
        "{}",
        limited.body
    );
}

#[tokio::test]
async fn login_flows_and_identifier_forms() {
    let server = TestServer::start().await;
    let flows = server.call(Method::GET, "/login", None, None).await;
    let types: Vec<&str> = flows.assert_ok()["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["type"].as_str())
        .collect();
    assert!(types.contains(&"m.login.password"), "{types:?}");
    server.register("alice").await;
    // AU-06: localpart, full ID, upper case, and the legacy top-level `user`.
    for body in [
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD}),
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "@alice:localhost"}, "password": PASSWORD}),
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "@ALICE:localhost"}, "password": PASSWORD}),
        json!({"type": "m.login.password", "user": "Alice", "password": PASSWORD}),
    ] {
        let resp = server
            .call(Method::POST, "/login", None, Some(body.clone()))
            .await;
        let resp = resp.assert_ok();
        assert_eq!(resp["user_id"], "@alice:localhost", "{body}");
        assert_eq!(resp["well_known"]["m.homeserver"]["base_url"], server.base);
        let token = resp["access_token"].as_str().unwrap();
        assert_eq!(
            server.get("/account/whoami", token).await.assert_ok()["user_id"],
            "@alice:localhost"
        );
    }
}

#[tokio::test]
async fn au07_wrong_password_and_unknown_user_get_the_same_403() {
    let server = TestServer::start().await;
    server.register("alice").await;
    let wrong = server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({"type": "m.login.password", "user": "alice", "password": "nope"})),
        )
        .await;
    let unknown = server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({"type": "m.login.password", "user": "nobody", "password": "nope"})),
        )
        .await;
    wrong.assert_error(403, "M_FORBIDDEN");
    unknown.assert_error(403, "M_FORBIDDEN");
    assert_eq!(wrong.body, unknown.body);
    let bad_type = server
        .call(
            Method::POST,
            "/login",
            None,
            Some(json!({"type": "m.login.magic"})),
        )
        .await;
    bad_type.assert_error(400, "M_UNKNOWN");
    let no_type = server
        .call(Method::POST, "/login", None, Some(json!({"user": "alice"})))
        .await;
    no_type.assert_error(400, "M_BAD_JSON");
    let not_json = server.call_raw(Method::POST, "/login", None, "nope").await;
    not_json.assert_error(400, "M_NOT_JSON");
}

#[tokio::test]
async fn au02_au03_login_with_an_existing_device_id_reuses_it_and_revokes_old_tokens() {
    let server = TestServer::start().await;
    let alice = server
        .register_with(
            "alice",
            json!({"device_id": "FIXED", "initial_device_display_name": "first"}),
        )
        .await;
    let again = server.login(&alice, Some("FIXED")).await;
    assert_eq!(again.device_id, "FIXED");
    server
        .get("/account/whoami", &alice.token)
        .await
        .assert_error(401, "M_UNKNOWN_TOKEN");
    let devices = server.get("/devices", &again.token).await;
    let devices = devices.assert_ok()["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 1);
    assert_eq!(
        devices[0]["display_name"], "first",
        "the reused device keeps its name"
    );
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_account() {
    let server = TestServer::with(|config, _| {
        config.rate_limits.login_failures_per_account = myelin_core::config::RateLimit {
            per_second: 0.01,
            burst: 3,
        };
    })
    .await;
    server.register("alice").await;
    let attempt = |password: &'static str| {
        server.call(
            Method::POST,
            "/login",
            None,
            Some(json!({"type": "m.login.password", "user": "alice", "password": password})),
        )
    };
    for _ in 0..3 {
        attempt("wrong").await.assert_error(403, "M_FORBIDDEN");
    }
    let limited = attempt("wrong").await;
    limited.assert_error(429, "M_LIMIT_EXCEEDED");
    assert!(
        limited.body["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0),
        "{}",
        limited.body
    );
    // While limited, even the right password is refused: guessing cannot continue.
    attempt(PASSWORD)
        .await
        .assert_error(429, "M_LIMIT_EXCEEDED");
}

/// Sends every body to `POST /login` at once and returns the responses.
async fn parallel_logins(server: &TestServer, bodies: Vec<serde_json::Value>) -> Vec<common::Resp> {
    let mut set = tokio::task::JoinSet::new();
    for body in bodies {
        let request = server.client.post(server.url("/login")).json(&body);
        set.spawn(TestServer::finish(request));
    }
    set.join_all().await
}

/// Asserts that every response is a 403 or a 429 with `retry_after_ms`, and returns how many
/// were 403 (password checked and wrong).
#[track_caller]
fn count_checked(responses: &[common::Resp]) -> usize {
    let mut checked = 0;
    for resp in responses {
        if resp.status == 403 {
            resp.assert_error(403, "M_FORBIDDEN");
            checked += 1;
        } else {
            resp.assert_error(429, "M_LIMIT_EXCEEDED");
            assert!(
                resp.body["retry_after_ms"]
                    .as_u64()
                    .is_some_and(|ms| ms > 0),
                "{}",
                resp.body
            );
        }
    }
    checked
}

fn wrong_password(user: &str) -> serde_json::Value {
    json!({"type": "m.login.password", "user": user, "password": "wrong"})
}

#[tokio::test]
async fn parallel_wrong_passwords_cannot_outrun_the_account_limit() {
    let server = TestServer::with(|config, _| {
        config.rate_limits.login_failures_per_account =
            myelin_core::config::RateLimitsConfig::default().login_failures_per_account;
    })
    .await;
    server.register("alice").await;
    let responses = parallel_logins(&server, vec![wrong_password("alice"); 40]).await;
    let checked = count_checked(&responses);
    assert!(
        (1..=5).contains(&checked),
        "burst 5 allows at most 5 password checks, {checked} were made"
    );
}

#[tokio::test]
async fn parallel_wrong_passwords_cannot_outrun_the_address_limit() {
    let server = TestServer::with(|config, _| {
        config.rate_limits.login_failures_per_address = myelin_core::config::RateLimit {
            per_second: 0.1,
            burst: 5,
        };
    })
    .await;
    // Forty accounts (unknown ones are checked like real ones), one address.
    let bodies = (0..40)
        .map(|i| wrong_password(&format!("user{i}")))
        .collect();
    let checked = count_checked(&parallel_logins(&server, bodies).await);
    assert!(
        (1..=5).contains(&checked),
        "burst 5 allows at most 5 password checks, {checked} were made"
    );
}

#[tokio::test]
async fn successful_logins_give_back_what_they_spent() {
    let server = TestServer::with(|config, _| {
        config.rate_limits.login_failures_per_account = myelin_core::config::RateLimit {
            per_second: 0.01,
            burst: 5,
        };
        config.rate_limits.login_failures_per_address = myelin_core::config::RateLimit {
            per_second: 0.01,
            burst: 5,
        };
    })
    .await;
    let alice = server.register("alice").await;
    for _ in 0..4 {
        let resp = server
            .call(Method::POST, "/login", None, Some(wrong_password("alice")))
            .await;
        resp.assert_error(403, "M_FORBIDDEN");
    }
    // One allowance is left; ten correct logins spend it and give it back each time.
    for _ in 0..10 {
        server.login(&alice, None).await;
    }
    let fifth = server
        .call(Method::POST, "/login", None, Some(wrong_password("alice")))
        .await;
    fifth.assert_error(403, "M_FORBIDDEN");
    let sixth = server
        .call(Method::POST, "/login", None, Some(wrong_password("alice")))
        .await;
    sixth.assert_error(429, "M_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_64_prefix() {
    let server = TestServer::with(|config, _| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        config.rate_limits.login_failures_per_address = myelin_core::config::RateLimit {
            per_second: 0.01,
            burst: 3,
        };
    })
    .await;
    let from = |address: &'static str| {
        let request = server
            .client
            .post(server.url("/login"))
            .header("X-Forwarded-For", address)
            .json(&wrong_password("alice"));
        TestServer::finish(request)
    };
    for address in ["2001:db8::1", "2001:db8::2", "2001:db8::3:4"] {
        from(address).await.assert_error(403, "M_FORBIDDEN");
    }
    // Another address in the same /64 shares the drained allowance...
    let same_prefix = from("2001:db8::ffff:1").await;
    same_prefix.assert_error(429, "M_LIMIT_EXCEEDED");
    assert!(
        same_prefix.body["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0)
    );
    // ...while the next /64, and IPv4 addresses, have their own.
    from("2001:db8:0:1::1")
        .await
        .assert_error(403, "M_FORBIDDEN");
    from("203.0.113.1").await.assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn over_long_login_identifiers_are_refused_before_any_limiter() {
    let server = TestServer::with(|config, _| {
        config.rate_limits.login_failures_per_address = myelin_core::config::RateLimit {
            per_second: 0.01,
            burst: 1,
        };
    })
    .await;
    server.register("alice").await;
    let long = "a".repeat(256);
    for body in [
        json!({"type": "m.login.password", "user": long, "password": "x"}),
        json!({"type": "m.login.password", "user": format!("@{long}:localhost"), "password": "x"}),
        json!({"type": "m.login.password",
               "identifier": {"type": "m.id.user", "user": "b".repeat(100_000)}, "password": "x"}),
    ] {
        let resp = server.call(Method::POST, "/login", None, Some(body)).await;
        resp.assert_error(400, "M_TOO_LARGE");
        assert_eq!(
            resp.body["error"], "The user identifier is longer than 255 bytes",
            "{}",
            resp.body
        );
    }
    // The address's single allowance was not spent by any of them.
    server
        .call(Method::POST, "/login", None, Some(wrong_password("alice")))
        .await
        .assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn au14_missing_and_unknown_tokens() {
    let server = TestServer::start().await;
    let missing = server.call(Method::POST, "/logout", None, None).await;
    missing.assert_error(401, "M_MISSING_TOKEN");
    let unknown = server
        .call(Method::POST, "/logout", Some("myl_nope"), None)
        .await;
    unknown.assert_error(401, "M_UNKNOWN_TOKEN");
    assert_eq!(unknown.body["soft_logout"], false);
    let basic = server
        .client
        .get(server.url("/account/whoami"))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
}

#[tokio::test]
async fn access_token_query_parameter_is_accepted() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let path = format!("/account/whoami?access_token={}", alice.token);
    let resp = server.call(Method::GET, &path, None, None).await;
    assert_eq!(resp.assert_ok()["user_id"], "@alice:localhost");
}

#[tokio::test]
async fn appservice_token_acts_as_sender_or_a_namespaced_user() {
    const AS_TOKEN: &str = "as_token_bridge_0123456789";
    let server = TestServer::with(|config, dir| {
        config.appservices = vec![appservice_file(dir, "bridge", AS_TOKEN, "")];
    })
    .await;
    let me = server.get("/account/whoami", AS_TOKEN).await;
    let me = me.assert_ok();
    assert_eq!(me["user_id"], "@bridgebot:localhost");
    assert!(me.get("device_id").is_none(), "{me}");
    // Not registered yet.
    let ghost = server
        .get("/account/whoami?user_id=@bridge_x:localhost", AS_TOKEN)
        .await;
    ghost.assert_error(403, "M_FORBIDDEN");
    let register = server
        .post(
            "/register",
            AS_TOKEN,
            json!({"type": "m.login.application_service", "username": "bridge_x",
                   "auth": {"type": "m.login.application_service"}}),
        )
        .await;
    let register = register.assert_ok();
    assert_eq!(register["user_id"], "@bridge_x:localhost");
    assert!(
        register["access_token"].is_string(),
        "a legacy appservice may still log its users in"
    );
    let ghost = server
        .get("/account/whoami?user_id=@bridge_x:localhost", AS_TOKEN)
        .await;
    assert_eq!(ghost.assert_ok()["user_id"], "@bridge_x:localhost");
    server.register("alice").await;
    let outside = server
        .get("/account/whoami?user_id=@alice:localhost", AS_TOKEN)
        .await;
    outside.assert_error(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn unknown_endpoints_methods_and_big_bodies_get_matrix_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let unknown = server
        .call(Method::GET, "/no/such/endpoint", Some(&alice.token), None)
        .await;
    unknown.assert_error(404, "M_UNRECOGNIZED");
    let method = server
        .call(Method::PATCH, "/devices", Some(&alice.token), None)
        .await;
    method.assert_error(405, "M_UNRECOGNIZED");
    let big = vec![b' '; 2 * 1024 * 1024];
    let resp = server.call_raw(Method::POST, "/login", None, big).await;
    resp.assert_error(413, "M_TOO_LARGE");
    // The legacy r0 prefix serves the same endpoints.
    let r0 = server
        .call(
            Method::GET,
            "/_matrix/client/r0/account/whoami",
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(r0.assert_ok()["user_id"], "@alice:localhost");
}

#[tokio::test]
async fn cors_headers_on_every_response_and_bare_options() {
    let server = TestServer::start().await;
    let preflight = server.call(Method::OPTIONS, "/devices", None, None).await;
    assert_eq!(
        preflight.status, 200,
        "OPTIONS runs no endpoint logic, so needs no token"
    );
    let error = server.call(Method::GET, "/devices", None, None).await;
    for resp in [&preflight, &error] {
        let h = &resp.headers;
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(
            h["access-control-allow-methods"],
            "GET, POST, PUT, DELETE, OPTIONS"
        );
        assert_eq!(
            h["access-control-allow-headers"],
            "X-Requested-With, Content-Type, Authorization"
        );
    }
}

#[tokio::test]
async fn registration_remembers_a_hash_never_the_password() {
    let server = TestServer::start().await;
    let first = start_register(&server, json!({"username": "frank", "password": PASSWORD})).await;
    let session_id = first.body["session"].as_str().unwrap().to_owned();
    let stored = server
        .services()
        .store
        .get_uia_session(&session_id, myelin_core::now_ms())
        .await
        .unwrap()
        .unwrap();
    let remembered = stored.request.unwrap_or_default();
    assert!(
        !remembered.contains(PASSWORD),
        "the password was written down: {remembered}"
    );
    assert!(remembered.contains("$argon2id$"), "{remembered}");
    // A client cannot smuggle in a hash of its own.
    let done = start_register(
        &server,
        json!({"auth": {"type": "m.login.dummy", "session": session_id}, "password_hash": "x"}),
    )
    .await;
    done.assert_ok();
    let user = common::User {
        user_id: "@frank:localhost".into(),
        localpart: "frank".into(),
        token: String::new(),
        device_id: String::new(),
    };
    server.login(&user, None).await;
}

#[tokio::test]
async fn an_appservice_cannot_register_in_another_ones_exclusive_namespace() {
    let server = TestServer::with(|config, dir| {
        let broad = dir.join("broad.yaml");
        std::fs::write(
            &broad,
            "id: broad\nurl: null\nas_token: as_token_broad_0123456789\nhs_token: hs_broad\n\
             sender_localpart: broadbot\nnamespaces:\n  users:\n    - regex: '@.*:localhost'\n      exclusive: false\n",
        )
        .unwrap();
        config.appservices = vec![broad, appservice_file(dir, "bridge", "as_token_bridge_0123456789", "")];
    })
    .await;
    let register = |token: &'static str, username: &'static str| {
        server.post(
            "/register",
            token,
            json!({"type": "m.login.application_service", "username": username, "inhibit_login": true}),
        )
    };
    register("as_token_broad_0123456789", "bridge_x")
        .await
        .assert_error(400, "M_EXCLUSIVE");
    register("as_token_bridge_0123456789", "bridge_x")
        .await
        .assert_ok();
    register("as_token_broad_0123456789", "someone")
        .await
        .assert_ok();
}

#[tokio::test]
async fn support_information_is_served_when_configured() {
    let server = TestServer::start().await;
    server
        .call(Method::GET, "/.well-known/matrix/support", None, None)
        .await
        .assert_error(404, "M_NOT_FOUND");
    let server = TestServer::with(|config, _| {
        config.support.page = Some("https://example.org/help".into());
        config.support.contacts = vec![myelin_core::config::SupportContact {
            role: "m.role.admin".into(),
            matrix_id: Some("@admin:localhost".into()),
            email_address: None,
        }];
    })
    .await;
    let support = server
        .call(Method::GET, "/.well-known/matrix/support", None, None)
        .await;
    assert_eq!(
        support.assert_ok(),
        &json!({
            "contacts": [{ "role": "m.role.admin", "matrix_id": "@admin:localhost" }],
            "support_page": "https://example.org/help",
        })
    );
}
