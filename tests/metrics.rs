//! Prometheus metrics on their own listener (issue 14): every documented metric present after
//! some traffic, and request counts that match the requests sent. One test in this binary:
//! the recorder is the process's, so counts would add up across tests.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, next_batch};
use reqwest::Method;

/// Every metric the README documents.
const DOCUMENTED: &[&str] = &[
    "myelin_http_requests_total",
    "myelin_http_request_duration_seconds",
    "myelin_http_sync_duration_seconds",
    "myelin_http_requests_in_flight",
    "myelin_sync_waiters",
    "myelin_db_transaction_duration_seconds",
    "myelin_password_hashes_waiting",
    "myelin_password_hash_duration_seconds",
    "myelin_users",
    "myelin_devices",
    "myelin_active_sessions",
    "myelin_build_info",
    "myelin_logins_total",
    "myelin_devices_deleted_total",
    "process_resident_memory_bytes",
];

/// The value of the sample `name{labels}` (labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_are_served_and_count_what_was_sent() {
    let server = TestServer::with(|config, _| {
        config.metrics.listen = Some("127.0.0.1:0".into());
    })
    .await;
    let addr = server.metrics_addr().expect("no metrics listener");
    let alice = server.register("alice").await;
    // A login is a unit of work on PostgreSQL too (a transaction on the user).
    server.login(&alice, Some("SECOND")).await;
    for _ in 0..5 {
        server
            .get("/account/whoami", &alice.token)
            .await
            .assert_ok();
    }
    server
        .call(Method::GET, "/account/whoami", None, None)
        .await
        .assert_error(401, "M_MISSING_TOKEN");
    server
        .call(
            Method::GET,
            "/_matrix/client/v3/no/such/endpoint",
            None,
            None,
        )
        .await
        .assert_error(404, "M_UNRECOGNIZED");
    // A device deleted by its owner's logout.
    let third = server.login(&alice, Some("THIRD")).await;
    server
        .post("/logout", &third.token, serde_json::json!({}))
        .await
        .assert_ok();
    let since = next_batch(&server.sync(&alice, &[]).await);
    server
        .sync(&alice, &[("since", &since), ("timeout", "50")])
        .await;

    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in DOCUMENTED {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{text}"
        );
    }
    if !server.services().store.is_shared() {
        assert!(text.contains("myelin_db_write_batch_size_bucket"), "{text}");
    }
    let whoami = r#"route="/_matrix/client/v3/account/whoami""#;
    let ok = format!(r#"myelin_http_requests_total{{method="GET",{whoami},status="200"}}"#);
    assert_eq!(sample(&text, &ok), Some(5.0), "{text}");
    let refused = format!(r#"myelin_http_requests_total{{method="GET",{whoami},status="401"}}"#);
    assert_eq!(sample(&text, &refused), Some(1.0), "{text}");
    let unmatched = r#"myelin_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    assert_eq!(sample(&text, unmatched), Some(1.0), "{text}");
    // Latency histograms with explicit buckets, /sync apart.
    let bucket = format!(
        r#"myelin_http_request_duration_seconds_bucket{{method="GET",{whoami},status="200",le="+Inf"}}"#
    );
    assert_eq!(sample(&text, &bucket), Some(5.0), "{text}");
    assert!(text.contains(r#"le="0.005""#), "{text}");
    let syncs = r#"myelin_http_sync_duration_seconds_count{method="GET",route="/_matrix/client/v3/sync",status="200"}"#;
    assert_eq!(sample(&text, syncs), Some(2.0), "{text}");
    assert!(
        !text.contains(r#"myelin_http_request_duration_seconds_count{method="GET",route="/_matrix/client/v3/sync""#),
        "{text}"
    );
    // The test kit's registration sends the password in both UIA rounds, each hashed; the
    // two logins check it.
    assert_eq!(
        sample(&text, "myelin_password_hash_duration_seconds_count"),
        Some(4.0),
        "{text}"
    );
    assert_eq!(sample(&text, "myelin_sync_waiters"), Some(0.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"myelin_logins_total{type="password",result="success"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"myelin_devices_deleted_total{reason="logout"}"#),
        Some(1.0),
        "{text}"
    );
    // Nothing identifies a user or a token.
    assert!(
        !text.contains("alice") && !text.contains(&alice.token),
        "{text}"
    );
    // The client listener does not serve metrics.
    server
        .call(Method::GET, "/_matrix/metrics", None, None)
        .await
        .assert_error(404, "M_UNRECOGNIZED");
}

/// The Grafana dashboard in `contrib/` only queries metrics that exist.
#[test]
fn the_dashboard_queries_documented_metrics() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contrib/grafana/myelin.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !(word.starts_with("myelin_") || word.starts_with("process_")) {
                    continue;
                }
                let name = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .unwrap_or(word);
                let known = DOCUMENTED.contains(&name)
                    || name == "myelin_db_write_batch_size"
                    || name == "process_cpu_seconds_total";
                assert!(known, "the dashboard queries {name}, which is not served");
                queried += 1;
            }
        }
    }
    assert!(queried >= 12, "{queried}");
}
