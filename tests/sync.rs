//! `/sync` delivery of account data, long-poll, filters, and the races a sync token must
//! survive (behaviours SY-*).

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use common::{Resp, TestServer, User, enc};
use reqwest::Method;
use serde_json::{Value, json};

fn global(user: &User, data_type: &str) -> String {
    format!(
        "/user/{}/account_data/{}",
        enc(&user.user_id),
        enc(data_type)
    )
}

async fn put(server: &TestServer, user: &User, data_type: &str, content: Value) {
    let resp = server
        .put(&global(user, data_type), &user.token, content)
        .await;
    assert_eq!(resp.assert_ok(), &json!({}), "PUT {data_type}");
}

/// `GET /sync` with the given query pairs (values are encoded here).
async fn sync(server: &TestServer, user: &User, query: &[(&str, &str)]) -> Resp {
    let query: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    server
        .get(&format!("/sync?{}", query.join("&")), &user.token)
        .await
}

async fn sync_ok(server: &TestServer, user: &User, query: &[(&str, &str)]) -> Value {
    sync(server, user, query).await.assert_ok().clone()
}

async fn initial(server: &TestServer, user: &User) -> Value {
    sync_ok(server, user, &[]).await
}

async fn since(server: &TestServer, user: &User, token: &str) -> Value {
    sync_ok(server, user, &[("since", token)]).await
}

fn next_batch(body: &Value) -> String {
    body["next_batch"]
        .as_str()
        .unwrap_or_else(|| panic!("next_batch is not a string: {body}"))
        .to_owned()
}

/// Global account data of a sync response as `type -> content`; a type twice is a failure.
fn types(body: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(section) = body.get("account_data") {
        let events = section["events"].as_array().unwrap();
        assert!(
            !events.is_empty(),
            "an empty account_data section must be left out: {body}"
        );
        for event in events {
            assert_eq!(
                event.as_object().unwrap().len(),
                2,
                "an account-data event is exactly {{type, content}}: {event}"
            );
            let data_type = event["type"].as_str().unwrap().to_owned();
            // Push rules come in every initial sync (tests/push_rules.rs checks them).
            if data_type == "m.push_rules" {
                continue;
            }
            assert!(event["content"].is_object(), "{event}");
            let previous = out.insert(data_type.clone(), event["content"].clone());
            assert!(previous.is_none(), "{data_type} twice in one sync: {body}");
        }
    }
    out
}

fn map(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[track_caller]
fn assert_nothing_new(body: &Value, next: &str) {
    assert!(body.get("account_data").is_none(), "{body}");
    assert!(body.get("rooms").is_none(), "{body}");
    assert_eq!(next_batch(body), next, "{body}");
}

#[tokio::test]
async fn sy01_initial_sync_has_the_latest_of_every_global_type_once() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let empty = initial(&server, &alice).await;
    // Nothing but the push rules every initial sync carries.
    assert!(types(&empty).is_empty(), "{empty}");
    next_batch(&empty);

    for n in 1..=3 {
        put(&server, &alice, "org.example.a", json!({ "n": n })).await;
    }
    put(&server, &alice, "org.example.b", json!({"b": true})).await;
    put(
        &server,
        &alice,
        "m.direct",
        json!({"@bob:localhost": ["!r:localhost"]}),
    )
    .await;
    put(&server, &alice, "org.example.deleted", json!({"x": 1})).await;
    put(&server, &alice, "org.example.deleted", json!({})).await;

    let body = initial(&server, &alice).await;
    assert_eq!(
        types(&body),
        map(&[
            ("org.example.a", json!({"n": 3})),
            ("org.example.b", json!({"b": true})),
            ("m.direct", json!({"@bob:localhost": ["!r:localhost"]})),
        ])
    );
    // The same answer again, with the same token: an initial sync changes nothing.
    let again = initial(&server, &alice).await;
    assert_eq!(types(&again), types(&body));
    assert_eq!(next_batch(&again), next_batch(&body));
    assert_ne!(next_batch(&body), next_batch(&empty));
}

#[tokio::test]
async fn sy03_incremental_sync_has_only_changed_types_with_final_content() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    put(&server, &alice, "my.unchanging.type", json!({"u": 1})).await;
    put(&server, &alice, "my.changing.type", json!({"c": 0})).await;
    let token = next_batch(&initial(&server, &alice).await);

    put(&server, &alice, "my.changing.type", json!({"c": 1})).await;
    put(&server, &alice, "my.new.type", json!({"new": true})).await;
    put(&server, &alice, "my.changing.type", json!({"c": 2})).await;

    let body = since(&server, &alice, &token).await;
    assert_eq!(
        types(&body),
        map(&[
            ("my.changing.type", json!({"c": 2})),
            ("my.new.type", json!({"new": true})),
        ])
    );
    let next = next_batch(&body);
    assert_ne!(next, token);

    // Nothing new: no account_data key at all, and the same next_batch.
    let quiet = since(&server, &alice, &next).await;
    assert_nothing_new(&quiet, &next);
    let quiet = sync_ok(&server, &alice, &[("since", &next), ("timeout", "0")]).await;
    assert_nothing_new(&quiet, &next);
}

#[tokio::test]
async fn sy09_malformed_sync_parameters_are_400_not_500() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    for bad in [
        "garbage",
        "m1.x",
        "m1.",
        "m1.-1",
        "m1.1.2.3.4.5.6.7.8",
        "m1.99999999999999999999999",
        "s72_0",
        "m1.1 ",
        "",
    ] {
        sync(&server, &alice, &[("since", bad)])
            .await
            .assert_error(400, "M_INVALID_PARAM");
    }
    for (key, value) in [
        ("timeout", "soon"),
        ("timeout", "-1"),
        ("full_state", "yes"),
        ("set_presence", "bogus"),
    ] {
        sync(&server, &alice, &[(key, value)])
            .await
            .assert_error(400, "M_INVALID_PARAM");
    }
    // The valid presence values are accepted.
    for value in ["online", "offline", "unavailable"] {
        sync_ok(&server, &alice, &[("set_presence", value)]).await;
    }
    // And no token at all is a 401 before anything else.
    let resp = server
        .call(Method::GET, "/sync?since=garbage", None, None)
        .await;
    resp.assert_error(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn sy06_sy10_long_poll_wakes_when_another_device_writes() {
    let server = Arc::new(TestServer::start().await);
    let phone = server.register("alice").await;
    let laptop = server.login(&phone, None).await;
    put(&server, &phone, "org.example.old", json!({"old": 1})).await;
    let token = next_batch(&initial(&server, &phone).await);

    let poller = {
        let server = server.clone();
        let phone = phone.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let body = sync_ok(&server, &phone, &[("since", &token), ("timeout", "10000")]).await;
            (started.elapsed(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !poller.is_finished(),
        "the long-poll returned before any write"
    );
    put(&server, &laptop, "org.example.live", json!({"live": true})).await;

    let (elapsed, body) = tokio::time::timeout(Duration::from_secs(5), poller)
        .await
        .expect("the long-poll was not woken")
        .unwrap();
    assert!(
        elapsed >= Duration::from_millis(150) && elapsed < Duration::from_millis(1500),
        "returned after {elapsed:?}"
    );
    assert_eq!(
        types(&body),
        map(&[("org.example.live", json!({"live": true}))])
    );
    assert_ne!(next_batch(&body), token);
}

#[tokio::test]
async fn sy06_long_poll_times_out_with_nothing_and_the_same_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    put(&server, &alice, "org.example.a", json!({"a": 1})).await;
    let token = next_batch(&initial(&server, &alice).await);
    let started = Instant::now();
    let body = sync_ok(&server, &alice, &[("since", &token), ("timeout", "700")]).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(650) && elapsed < Duration::from_millis(3000),
        "returned after {elapsed:?}"
    );
    assert_nothing_new(&body, &token);
}

#[tokio::test]
async fn sy06_another_users_write_neither_wakes_nor_reaches_the_sync() {
    let server = Arc::new(TestServer::start().await);
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let token = next_batch(&initial(&server, &alice).await);

    let poller = {
        let server = server.clone();
        let alice = alice.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let body = sync_ok(&server, &alice, &[("since", &token), ("timeout", "1500")]).await;
            (started.elapsed(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    put(&server, &bob, "org.example.bobs", json!({"bob": 1})).await;
    let (elapsed, body) = poller.await.unwrap();
    assert!(
        elapsed >= Duration::from_millis(1400),
        "alice's sync returned after {elapsed:?}: {body}"
    );
    assert!(body.get("account_data").is_none(), "{body}");
    // Neither the response nor a later sync from it ever shows bob's data.
    let later = since(&server, &alice, &next_batch(&body)).await;
    assert!(later.get("account_data").is_none(), "{later}");
    let later = since(&server, &alice, &token).await;
    assert!(later.get("account_data").is_none(), "{later}");
    // Bob, of course, sees it.
    assert_eq!(
        types(&initial(&server, &bob).await),
        map(&[("org.example.bobs", json!({"bob": 1}))])
    );
}

#[tokio::test]
async fn sy07_inline_filter_applies_types_not_types_and_limit() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    put(&server, &alice, "a.one", json!({"n": 1})).await;
    put(&server, &alice, "a.two", json!({"n": 2})).await;
    put(&server, &alice, "a.secret", json!({"n": 3})).await;
    put(&server, &alice, "b.other", json!({"n": 4})).await;

    let filter = json!({"account_data": {"types": ["a.*"]}}).to_string();
    let body = sync_ok(&server, &alice, &[("filter", &filter)]).await;
    assert_eq!(
        types(&body),
        map(&[
            ("a.one", json!({"n": 1})),
            ("a.two", json!({"n": 2})),
            ("a.secret", json!({"n": 3})),
        ])
    );

    let filter = json!({"account_data": {"types": ["a.*"], "not_types": ["*.secret"]}}).to_string();
    let body = sync_ok(&server, &alice, &[("filter", &filter)]).await;
    assert_eq!(
        types(&body),
        map(&[("a.one", json!({"n": 1})), ("a.two", json!({"n": 2}))])
    );

    let filter = json!({"account_data": {"not_types": ["a.*"]}}).to_string();
    let body = sync_ok(&server, &alice, &[("filter", &filter)]).await;
    assert_eq!(types(&body), map(&[("b.other", json!({"n": 4}))]));

    // `types: []` suppresses account data entirely.
    let filter = json!({"account_data": {"types": []}}).to_string();
    let body = sync_ok(&server, &alice, &[("filter", &filter)]).await;
    assert!(body.get("account_data").is_none(), "{body}");

    // `limit` does not truncate account data (the reference server ignores it too): account
    // data is state, and a truncated section with a `next_batch` past it would lose changes.
    let filter = json!({"account_data": {"limit": 2}}).to_string();
    let body = sync_ok(&server, &alice, &[("filter", &filter)]).await;
    assert_eq!(types(&body), types(&initial(&server, &alice).await));
    assert_eq!(types(&body).len(), 4, "{body}");

    // The filter applies to incremental syncs as well.
    let token = next_batch(&body);
    put(&server, &alice, "a.one", json!({"n": 10})).await;
    put(&server, &alice, "b.other", json!({"n": 40})).await;
    let filter = json!({"account_data": {"types": ["a.*"]}}).to_string();
    let body = sync_ok(&server, &alice, &[("since", &token), ("filter", &filter)]).await;
    assert_eq!(types(&body), map(&[("a.one", json!({"n": 10}))]));
}

#[tokio::test]
async fn sy07_account_data_limit_never_loses_a_change() {
    // Three changes, then incremental syncs with `limit: 1`: every change must arrive, and
    // `next_batch` must never move past one that was not sent.
    for filter in [
        json!({"account_data": {"limit": 1}}),
        json!({"room": {"account_data": {"limit": 1}}}),
    ] {
        let server = TestServer::start().await;
        let alice = server.register("alice").await;
        let token = next_batch(&initial(&server, &alice).await);
        put(&server, &alice, "x.one", json!({"n": 1})).await;
        put(&server, &alice, "x.two", json!({"n": 2})).await;
        put(&server, &alice, "x.three", json!({"n": 3})).await;
        let filter = filter.to_string();
        let mut seen = BTreeMap::new();
        let mut token = token;
        for _ in 0..4 {
            let body = sync_ok(&server, &alice, &[("since", &token), ("filter", &filter)]).await;
            seen.extend(types(&body));
            token = next_batch(&body);
        }
        assert_eq!(
            seen,
            map(&[
                ("x.one", json!({"n": 1})),
                ("x.two", json!({"n": 2})),
                ("x.three", json!({"n": 3})),
            ]),
            "filter {filter}"
        );
    }
}

#[tokio::test]
async fn sy07_stored_filter_round_trips_and_applies_to_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    put(&server, &alice, "a.one", json!({"n": 1})).await;
    put(&server, &alice, "a.secret", json!({"n": 2})).await;
    put(&server, &alice, "b.other", json!({"n": 3})).await;

    let definition = json!({"account_data": {"types": ["a.*"], "not_types": ["a.secret"]}});
    let filter_path = format!("/user/{}/filter", enc(&alice.user_id));
    let resp = server
        .post(&filter_path, &alice.token, definition.clone())
        .await;
    let filter_id = resp.assert_ok()["filter_id"]
        .as_str()
        .unwrap_or_else(|| panic!("filter_id must be a string: {}", resp.body))
        .to_owned();
    assert!(!filter_id.is_empty());
    // A second filter gets another ID.
    let resp = server
        .post(
            &filter_path,
            &alice.token,
            json!({"account_data": {"types": ["b.*"]}}),
        )
        .await;
    let second_id = resp.assert_ok()["filter_id"].as_str().unwrap().to_owned();
    assert_ne!(second_id, filter_id);

    let resp = server
        .get(&format!("{filter_path}/{}", enc(&filter_id)), &alice.token)
        .await;
    assert_eq!(resp.assert_ok(), &definition);

    let body = sync_ok(&server, &alice, &[("filter", &filter_id)]).await;
    assert_eq!(types(&body), map(&[("a.one", json!({"n": 1}))]));
    let body = sync_ok(&server, &alice, &[("filter", &second_id)]).await;
    assert_eq!(types(&body), map(&[("b.other", json!({"n": 3}))]));

    // Filters are per user: bob cannot read alice's, through her path or his own.
    let resp = server
        .get(&format!("{filter_path}/{}", enc(&filter_id)), &bob.token)
        .await;
    resp.assert_error(403, "M_FORBIDDEN");
    let resp = server
        .post(&filter_path, &bob.token, json!({"account_data": {}}))
        .await;
    resp.assert_error(403, "M_FORBIDDEN");
    // Bob has no filters, so alice's ID means nothing in his namespace.
    let bobs_path = format!("/user/{}/filter", enc(&bob.user_id));
    let resp = server
        .get(&format!("{bobs_path}/{}", enc(&filter_id)), &bob.token)
        .await;
    resp.assert_error(404, "M_NOT_FOUND");
    for unknown in ["9999", "not-a-number", "-1"] {
        let resp = server
            .get(&format!("{filter_path}/{unknown}"), &alice.token)
            .await;
        resp.assert_error(404, "M_NOT_FOUND");
    }
    // A sync naming a filter that does not exist is a client error, never a 500 or a 200.
    let resp = sync(&server, &alice, &[("filter", "9999")]).await;
    // The reference server's answer: the filter parameter is invalid.
    resp.assert_error(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn sy07_stored_filter_is_returned_as_uploaded() {
    // Clients (matrix-js-sdk's getOrCreateFilter) download a stored filter and compare it with
    // the one they want; a server that drops fields makes them create a new filter every time.
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let filter_path = format!("/user/{}/filter", enc(&alice.user_id));
    let definition = json!({
        "account_data": {"types": ["m.*"], "limit": 5},
        "presence": {"not_types": ["*"]},
        "event_fields": ["type", "content.body"],
        "event_format": "client",
        "room": {
            "rooms": ["!r:localhost"],
            "include_leave": false,
            "state": {"lazy_load_members": true, "include_redundant_members": false},
            "timeline": {"limit": 10, "contains_url": true, "unread_thread_notifications": true},
            "ephemeral": {"not_types": ["m.receipt"]},
            "account_data": {"not_rooms": ["!x:localhost"]}
        }
    });
    let resp = server
        .post(&filter_path, &alice.token, definition.clone())
        .await;
    let filter_id = resp.assert_ok()["filter_id"].as_str().unwrap().to_owned();
    let resp = server
        .get(&format!("{filter_path}/{}", enc(&filter_id)), &alice.token)
        .await;
    assert_eq!(resp.assert_ok(), &definition);
    // And it is usable.
    put(&server, &alice, "m.direct", json!({"d": 1})).await;
    put(&server, &alice, "org.example.x", json!({"x": 1})).await;
    let body = sync_ok(&server, &alice, &[("filter", &filter_id)]).await;
    assert_eq!(types(&body), map(&[("m.direct", json!({"d": 1}))]));
}

#[tokio::test]
async fn sy08_invalid_filters_are_rejected() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let filter_path = format!("/user/{}/filter", enc(&alice.user_id));
    let bad_shapes = [
        json!({"room": {"account_data": "x"}}),
        json!({"account_data": "x"}),
        json!({"account_data": {"types": "a.*"}}),
        json!({"account_data": {"types": [1]}}),
        json!({"account_data": {"limit": "ten"}}),
        json!({"account_data": {"limit": 0}}),
        json!({"account_data": {"limit": -1}}),
        json!({"room": {"rooms": "!r:localhost"}}),
        json!({"event_format": "xml"}),
        json!([]),
        json!("filter"),
    ];
    for shape in &bad_shapes {
        let resp = server.post(&filter_path, &alice.token, shape.clone()).await;
        assert_eq!(
            (resp.status.as_u16(), resp.errcode()),
            (400, "M_BAD_JSON"),
            "{shape} → {}",
            resp.body
        );
        // The same shapes inline in /sync are refused the same way.
        if shape.is_object() {
            let resp = sync(&server, &alice, &[("filter", &shape.to_string())]).await;
            assert_eq!(
                (resp.status.as_u16(), resp.errcode()),
                (400, "M_BAD_JSON"),
                "inline {shape} → {}",
                resp.body
            );
        }
    }
    let resp = server
        .call_raw(Method::POST, &filter_path, Some(&alice.token), "{not json")
        .await;
    resp.assert_error(400, "M_NOT_JSON");
    // Nothing invalid was stored: the first filter created now gets the first ID, and unknown
    // keys are tolerated.
    let resp = server
        .post(
            &filter_path,
            &alice.token,
            json!({"org.example.future": true}),
        )
        .await;
    resp.assert_ok();
    let resp = server.get(&format!("{filter_path}/0"), &alice.token).await;
    resp.assert_ok();
    let resp = server.get(&format!("{filter_path}/1"), &alice.token).await;
    resp.assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn sy11_full_state_returns_the_full_set_like_an_initial_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    put(&server, &alice, "org.example.a", json!({"a": 1})).await;
    put(&server, &alice, "org.example.b", json!({"b": 1})).await;
    put(&server, &alice, "org.example.c", json!({"c": 1})).await;
    put(&server, &alice, "org.example.c", json!({})).await;
    let token = next_batch(&initial(&server, &alice).await);
    put(&server, &alice, "org.example.b", json!({"b": 2})).await;

    let full = sync_ok(
        &server,
        &alice,
        &[("since", &token), ("full_state", "true")],
    )
    .await;
    let fresh = initial(&server, &alice).await;
    assert_eq!(
        types(&full),
        map(&[
            ("org.example.a", json!({"a": 1})),
            ("org.example.b", json!({"b": 2})),
        ])
    );
    assert_eq!(types(&full), types(&fresh));
    assert_eq!(next_batch(&full), next_batch(&fresh));

    // Even with nothing new, full_state answers at once with everything.
    let started = Instant::now();
    let again = sync_ok(
        &server,
        &alice,
        &[
            ("since", &next_batch(&full)),
            ("full_state", "true"),
            ("timeout", "5000"),
        ],
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(types(&again), types(&fresh));
    // full_state=false is an ordinary incremental sync.
    let plain = sync_ok(
        &server,
        &alice,
        &[("since", &next_batch(&full)), ("full_state", "false")],
    )
    .await;
    assert_nothing_new(&plain, &next_batch(&full));
}

#[tokio::test]
async fn sy04_room_account_data_is_not_synced_without_a_joined_room() {
    // Per-room account data is delivered only for joined rooms. Myelin has no rooms yet, so no
    // one is joined anywhere: room data must stay out of /sync, initial and incremental, and
    // must not masquerade as global account data.
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let token = next_batch(&initial(&server, &alice).await);
    let path = format!(
        "/user/{}/rooms/{}/account_data/{}",
        enc(&alice.user_id),
        enc("!room:localhost"),
        "org.example.r"
    );
    let resp = server.put(&path, &alice.token, json!({"r": 1})).await;
    assert_eq!(resp.assert_ok(), &json!({}));
    let body = initial(&server, &alice).await;
    assert!(body.get("rooms").is_none(), "{body}");
    assert!(types(&body).is_empty(), "{body}");
    let body = since(&server, &alice, &token).await;
    assert!(body.get("rooms").is_none(), "{body}");
    assert!(body.get("account_data").is_none(), "{body}");
}

/// SY-09 (1): many concurrent writers while a reader loops incremental syncs. Everything the
/// reader saw adds up to the final state, nothing goes backwards, nothing is delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sy09_concurrent_writers_are_seen_exactly_by_an_incremental_reader() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 50;
    let server = Arc::new(TestServer::start().await);
    let alice = server.register("alice").await;
    let reader = server.login(&alice, None).await;
    let start = next_batch(&initial(&server, &reader).await);

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = {
        let server = server.clone();
        let reader = reader.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut token = start;
            let mut responses = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let body = since(&server, &reader, &token).await;
                token = next_batch(&body);
                responses.push(types(&body));
                if finished {
                    return (token, responses);
                }
            }
        })
    };

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let server = server.clone();
        let alice = server.login(&alice, None).await;
        writers.push(tokio::spawn(async move {
            for j in 0..PER_WRITER {
                put(
                    &server,
                    &alice,
                    &format!("w{w}.t{j}"),
                    json!({"w": w, "j": j}),
                )
                .await;
                // A type this writer updates over and over: its counter only grows.
                put(&server, &alice, &format!("counter.{w}"), json!({"n": j})).await;
                // A type every writer fights over.
                if j % 5 == 0 {
                    put(&server, &alice, "shared", json!({"w": w, "j": j})).await;
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let (last_token, responses) = reading.await.unwrap();

    // The final state, from an initial sync.
    let final_state = types(&initial(&server, &alice).await);
    assert_eq!(final_state.len(), WRITERS * PER_WRITER + WRITERS + 1);

    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    let mut counters: HashMap<String, i64> = HashMap::new();
    for response in &responses {
        for (data_type, content) in response {
            *deliveries.entry(data_type.clone()).or_default() += 1;
            if let Some(counter) = data_type.strip_prefix("counter.") {
                let n = content["n"].as_i64().unwrap();
                let previous = counters.insert(counter.to_owned(), n);
                assert!(
                    previous.is_none_or(|p| p < n),
                    "counter.{counter} went from {previous:?} to {n}: stale or repeated"
                );
            }
            seen.insert(data_type.clone(), content.clone());
        }
    }
    // The union of what the reader saw, latest wins, is exactly the final state.
    assert_eq!(seen, final_state);
    // Types written once were delivered once.
    for (data_type, count) in &deliveries {
        if data_type.starts_with('w') {
            assert_eq!(*count, 1, "{data_type} delivered {count} times");
        }
    }
    // And nothing is left behind the last token.
    let tail = since(&server, &reader, &last_token).await;
    assert_nothing_new(&tail, &last_token);
}

/// SY-09 (2): a long-poll loop while writes land at random moments: no write is missed, none
/// is delivered twice, and each arrives promptly (the poll is woken, not left to time out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sy09_long_poll_loop_misses_no_write_and_repeats_none() {
    const WRITES: usize = 60;
    let server = Arc::new(TestServer::start().await);
    let alice = server.register("alice").await;
    let writer_device = server.login(&alice, None).await;
    let start = next_batch(&initial(&server, &alice).await);

    let writing = {
        let server = server.clone();
        tokio::spawn(async move {
            // xorshift, seeded from the clock: random gaps of 0..40 ms, often none.
            let mut state = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1;
            let mut written_at = Vec::with_capacity(WRITES);
            for k in 0..WRITES {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let gap = state % 60;
                if gap < 40 {
                    tokio::time::sleep(Duration::from_millis(gap)).await;
                }
                put(
                    &server,
                    &writer_device,
                    &format!("live.{k}"),
                    json!({"k": k}),
                )
                .await;
                written_at.push(Instant::now());
            }
            written_at
        })
    };

    let mut token = start;
    let mut deliveries: HashMap<usize, Vec<Instant>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries.len() < WRITES {
        assert!(
            Instant::now() < deadline,
            "writes never delivered: {:?}",
            (0..WRITES)
                .filter(|k| !deliveries.contains_key(k))
                .collect::<Vec<_>>()
        );
        let body = sync_ok(&server, &alice, &[("since", &token), ("timeout", "10000")]).await;
        let received = Instant::now();
        let next = next_batch(&body);
        let got = types(&body);
        if got.is_empty() {
            assert_eq!(next, token, "empty response moved the token: {body}");
        }
        for (data_type, content) in got {
            let k: usize = data_type.strip_prefix("live.").unwrap().parse().unwrap();
            assert_eq!(content, json!({ "k": k }));
            deliveries.entry(k).or_default().push(received);
        }
        token = next;
    }
    let written_at = writing.await.unwrap();
    let repeated: Vec<_> = deliveries
        .iter()
        .filter(|(_, times)| times.len() > 1)
        .map(|(k, times)| (k, times.len()))
        .collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    for (k, times) in &deliveries {
        let lag = times[0].saturating_duration_since(written_at[*k]);
        assert!(
            lag < Duration::from_millis(1500),
            "live.{k} arrived {lag:?} after its write: the poll was not woken"
        );
    }
    let tail = sync_ok(&server, &alice, &[("since", &token), ("timeout", "0")]).await;
    assert_nothing_new(&tail, &token);
}

/// SY-09: a write that commits while a long-poll is between reading the watermark and
/// starting to wait must still wake it. Each round races one poll against one write; a lost
/// wake-up shows as a poll that sits out its whole timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sy09_write_racing_a_sync_is_never_lost() {
    const ROUNDS: usize = 300;
    let server = Arc::new(TestServer::start().await);
    let alice = server.register("alice").await;
    let writer = server.login(&alice, None).await;
    let mut token = next_batch(&initial(&server, &alice).await);
    for round in 0..ROUNDS {
        let poll = {
            let server = server.clone();
            let alice = alice.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let body =
                    sync_ok(&server, &alice, &[("since", &token), ("timeout", "8000")]).await;
                (started.elapsed(), body)
            })
        };
        // Vary which of the two reaches the server first.
        if round % 3 == 1 {
            tokio::task::yield_now().await;
        } else if round % 3 == 2 {
            tokio::time::sleep(Duration::from_micros(300)).await;
        }
        put(
            &server,
            &writer,
            &format!("race.{round}"),
            json!({ "round": round }),
        )
        .await;
        let (elapsed, body) = poll.await.unwrap();
        assert!(
            elapsed < Duration::from_secs(2),
            "round {round}: the write was missed, the poll waited {elapsed:?}: {body}"
        );
        assert_eq!(
            types(&body),
            map(&[(&format!("race.{round}"), json!({ "round": round }))]),
            "round {round}"
        );
        token = next_batch(&body);
    }
    let tail = since(&server, &alice, &token).await;
    assert_nothing_new(&tail, &token);
}

/// SY-09: tokens stay valid across a restart. A watermark that restarted from zero would make
/// every old `since` look like the future, and writes after the restart would be skipped.
#[tokio::test]
async fn sy09_tokens_survive_a_restart() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    put(&server, &alice, "org.example.a", json!({"a": 1})).await;
    put(&server, &alice, "org.example.b", json!({"b": 1})).await;
    let old = next_batch(&initial(&server, &alice).await);
    put(&server, &alice, "org.example.b", json!({"b": 2})).await;
    // The same database again (SQLite file or PostgreSQL database).
    let config = server.services().config.clone();
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, config).await;
    let body = since(&server, &alice, &old).await;
    assert_eq!(types(&body), map(&[("org.example.b", json!({"b": 2}))]));
    let token = next_batch(&body);
    assert_nothing_new(&since(&server, &alice, &token).await, &token);

    put(&server, &alice, "org.example.c", json!({"c": 1})).await;
    let body = since(&server, &alice, &token).await;
    assert_eq!(types(&body), map(&[("org.example.c", json!({"c": 1}))]));
    assert_eq!(
        types(&initial(&server, &alice).await),
        map(&[
            ("org.example.a", json!({"a": 1})),
            ("org.example.b", json!({"b": 2})),
            ("org.example.c", json!({"c": 1})),
        ])
    );
}

/// SY-09 (3): the same `since` twice returns the same set; a sync does not consume changes.
#[tokio::test]
async fn sy09_same_since_twice_returns_the_same_set() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    put(&server, &alice, "before", json!({"b": 1})).await;
    let token = next_batch(&initial(&server, &alice).await);
    put(&server, &alice, "x", json!({"x": 1})).await;
    put(&server, &alice, "y", json!({"y": 1})).await;
    put(&server, &alice, "x", json!({"x": 2})).await;
    put(&server, &alice, "before", json!({})).await;

    // The other device logs in first: a login is a device-list change, part of the answer.
    let other = server.login(&alice, None).await;
    let first = since(&server, &alice, &token).await;
    let second = since(&server, &alice, &token).await;
    let expected = map(&[
        ("x", json!({"x": 2})),
        ("y", json!({"y": 1})),
        ("before", json!({})),
    ]);
    assert_eq!(types(&first), expected);
    assert_eq!(types(&second), expected);
    assert_eq!(next_batch(&first), next_batch(&second));
    // From another device, the same answer: account data is per user, not per device.
    let third = since(&server, &other, &token).await;
    assert_eq!(types(&third), expected);
    assert_eq!(next_batch(&third), next_batch(&first));

    // Concurrent syncs with one since, while nothing is written, agree too.
    let (a, b) = tokio::join!(
        since(&server, &alice, &token),
        since(&server, &other, &token)
    );
    assert_eq!(types(&a), expected);
    assert_eq!(types(&b), expected);

    // Later writes extend what the old token returns; they never hide what it returned.
    put(&server, &alice, "z", json!({"z": 1})).await;
    let later = since(&server, &alice, &token).await;
    let mut extended = expected.clone();
    extended.insert("z".to_owned(), json!({"z": 1}));
    assert_eq!(types(&later), extended);
}

#[tokio::test]
async fn sy09_writes_cancelled_by_the_client_never_hold_back_later_syncs() {
    // Clients that send a write and hang up at once: whatever each write's fate, none may
    // leave a stream position in flight, so a later write still reaches a waiting sync at once.
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let start = next_batch(&initial(&server, &alice).await);
    for i in 0..30 {
        let body = format!("{{\"n\":{i}}}");
        let request = format!(
            "PUT /_matrix/client/v3/user/{}/account_data/cancelled.{i} HTTP/1.1\r\n\
             Host: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            enc(&alice.user_id),
            alice.token,
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = {
        let url = server.url(&format!("/sync?since={start}&timeout=10000"));
        let (client, token) = (server.client.clone(), alice.token.clone());
        tokio::spawn(async move {
            let resp = TestServer::finish(client.get(url).bearer_auth(token)).await;
            (resp, Instant::now())
        })
    };
    let started = Instant::now();
    put(&server, &alice, "after", json!({"v": 1})).await;
    let (resp, answered) = waiting.await.unwrap();
    assert!(
        answered.duration_since(started) < Duration::from_secs(1),
        "answered after {:?}",
        answered.duration_since(started)
    );
    // Whatever landed is delivered, once, with the later write.
    let mut all = types(resp.assert_ok());
    let mut token = next_batch(&resp.body);
    while !all.contains_key("after") {
        let body = since(&server, &alice, &token).await;
        all.extend(types(&body));
        token = next_batch(&body);
    }
    let stored = types(&initial(&server, &alice).await);
    assert_eq!(all, stored);
}
