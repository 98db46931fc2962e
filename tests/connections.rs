//! The connection layer under attack and under long-polls: a client that sends its headers or
//! its body too slowly is cut off, connections beyond `limits.max_connections` wait for a free
//! slot, and neither timeout touches a response that takes long (`/sync`).
//!
//! These speak raw HTTP/1.1 over a blocking socket, since an HTTP client library will not
//! send half a request.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use common::TestServer;
use reqwest::Method;
use serde_json::Value;

const READ_TIMEOUT_MS: u64 = 500;

async fn server_with_short_read_timeouts() -> TestServer {
    TestServer::with(|config, _| {
        config.limits.header_read_timeout_ms = READ_TIMEOUT_MS;
        config.limits.body_read_timeout_ms = READ_TIMEOUT_MS;
    })
    .await
}

fn addr(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Connects, writes `sent`, then reads until the server closes the connection (or 10 s pass)
/// and returns what was read and when the connection ended.
async fn send_and_read_to_close(addr: String, sent: &'static str) -> (String, Duration) {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        stream.write_all(sent.as_bytes()).unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                // A reset also ends the connection; a timeout means the server kept it open.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("connection still open after {:?}: {e}", started.elapsed()),
            }
        }
        (
            String::from_utf8_lossy(&received).into_owned(),
            started.elapsed(),
        )
    })
    .await
    .unwrap()
}

#[track_caller]
fn assert_cut_off_by_the_timeout(elapsed: Duration) {
    let timeout = Duration::from_millis(READ_TIMEOUT_MS);
    assert!(
        elapsed >= timeout.mul_f64(0.8) && elapsed < timeout + Duration::from_secs(2),
        "closed after {elapsed:?}, timeout {timeout:?}"
    );
}

#[tokio::test]
async fn slow_headers_are_cut_off_after_the_header_timeout() {
    let server = server_with_short_read_timeouts().await;
    // Half a request line of headers, and then nothing (slowloris).
    let (received, elapsed) = send_and_read_to_close(
        addr(&server),
        "GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n",
    )
    .await;
    assert_eq!(received, "", "no response to a request that never arrived");
    assert_cut_off_by_the_timeout(elapsed);
    // A connection that never sends a byte is closed the same way.
    let (received, elapsed) = send_and_read_to_close(addr(&server), "").await;
    assert_eq!(received, "");
    assert_cut_off_by_the_timeout(elapsed);
}

#[tokio::test]
async fn slow_bodies_get_408_after_the_body_timeout() {
    let server = server_with_short_read_timeouts().await;
    // Headers promising 100 bytes, then 8 of them, then nothing.
    let (received, elapsed) = send_and_read_to_close(
        addr(&server),
        "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":",
    )
    .await;
    assert_cut_off_by_the_timeout(elapsed);
    let (head, body) = received.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 408 "), "{received}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "errcode": "M_UNKNOWN",
            "error": "Timed out reading the request body"
        })
    );
}

#[tokio::test]
async fn complete_requests_and_long_polls_outlast_the_read_timeouts() {
    let server = server_with_short_read_timeouts().await;
    let (received, _) = send_and_read_to_close(
        addr(&server),
        "GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(received.starts_with("HTTP/1.1 200 "), "{received}");
    // A long-poll answers after three times the read timeouts.
    let alice = server.register("alice").await;
    let initial = server.get("/sync", &alice.token).await;
    let since = initial.assert_ok()["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let poll = server
        .get(&format!("/sync?since={since}&timeout=1500"), &alice.token)
        .await;
    poll.assert_ok();
    assert!(started.elapsed() >= Duration::from_millis(1400));
    // A request with a body that arrives promptly is served as always.
    let resp = server
        .call(
            Method::PUT,
            &format!("/user/{}/account_data/m.test", common::enc(&alice.user_id)),
            Some(&alice.token),
            Some(serde_json::json!({"k": "v"})),
        )
        .await;
    resp.assert_ok();
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let server = TestServer::with(|config, _| config.limits.max_connections = 1).await;
    // An idle connection takes the only slot.
    let idle = TcpStream::connect(addr(&server)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let request = server.client.get(server.url("/_matrix/client/versions"));
    let mut waiting = tokio::spawn(TestServer::finish(request));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut waiting)
            .await
            .is_err(),
        "a second connection is not served while the first holds the slot"
    );
    drop(idle);
    let resp = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once the slot is free")
        .unwrap();
    resp.assert_ok();
}

#[tokio::test]
async fn stopping_finishes_a_long_poll_in_flight_and_closes_idle_connections() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let since = server.get("/sync", &alice.token).await.assert_ok()["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    // The client keeps its earlier connections open and idle; this one waits in /sync.
    let request = server
        .client
        .get(server.url(&format!("/sync?since={since}&timeout=30000")))
        .bearer_auth(&alice.token);
    let poll = tokio::spawn(TestServer::finish(request));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("stop does not wait for idle connections or the full long-poll");
    assert!(started.elapsed() < Duration::from_secs(5));
    poll.await.unwrap().assert_ok();
}
