//! URL previews (`preview_url`, issue 12): off by default, never fetched from internal
//! addresses, OpenGraph data with the image stored as media, cached.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use common::{TestServer, User, enc};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 200, 255])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// A web site on loopback: `/page` (HTML with OpenGraph tags), `/cat.png`, and `/moved`
/// (a redirect to `/page`). Answers its address and a count of requests served.
async fn site() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = vec![0; 4096];
                let n = stream.read(&mut request).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&request[..n]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (head, body): (String, Vec<u8>) = match path.as_str() {
                    "/page" => (
                        "200 OK\r\nContent-Type: text/html; charset=utf-8".into(),
                        br#"<html><head><title>Fallback</title>
                            <meta property="og:title" content="Cats &amp; dogs">
                            <meta name="description" content="All about pets">
                            <meta property="og:image" content="/cat.png"></head></html>"#
                            .to_vec(),
                    ),
                    "/cat.png" => ("200 OK\r\nContent-Type: image/png".into(), png(64, 48)),
                    "/moved" => ("302 Found\r\nLocation: /page".into(), Vec::new()),
                    _ => (
                        "404 Not Found\r\nContent-Type: text/plain".into(),
                        b"no".to_vec(),
                    ),
                };
                let head = format!(
                    "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    (format!("http://{addr}"), hits)
}

async fn preview(server: &TestServer, user: &User, url: &str) -> common::Resp {
    server
        .get(
            &format!("/_matrix/client/v1/media/preview_url?url={}", enc(url)),
            &user.token,
        )
        .await
}

#[tokio::test]
async fn previews_are_off_by_default() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    preview(&server, &alice, "https://example.org/")
        .await
        .assert_error(404, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn internal_addresses_are_never_fetched() {
    let server = TestServer::with(|c, _| c.media.url_preview.enabled = true).await;
    let alice = server.register("alice").await;
    let (base, hits) = site().await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("{base}/page"),
        format!("http://localhost:{port}/page"),
        format!("http://[::1]:{port}/page"),
        format!("http://[::ffff:127.0.0.1]:{port}/page"),
        "http://10.1.2.3/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        preview(&server, &alice, &url)
            .await
            .assert_error(403, "M_FORBIDDEN");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing may reach the site");
    preview(&server, &alice, "ftp://example.org/")
        .await
        .assert_error(400, "M_INVALID_PARAM");
    server
        .get("/_matrix/client/v1/media/preview_url", &alice.token)
        .await
        .assert_error(400, "M_MISSING_PARAM");
}

#[tokio::test]
async fn a_page_is_previewed_with_its_image_stored_here_and_cached() {
    let server = TestServer::with(|c, _| {
        c.media.url_preview.enabled = true;
        c.media.url_preview.allow_private = true;
    })
    .await;
    let alice = server.register("alice").await;
    let (base, hits) = site().await;
    let first = preview(&server, &alice, &format!("{base}/moved")).await;
    let body: Value = first.assert_ok().clone();
    assert_eq!(body["og:title"], "Cats & dogs");
    assert_eq!(body["og:description"], "All about pets");
    assert_eq!(body["og:image:type"], "image/png");
    assert_eq!(body["og:image:width"], 64);
    assert_eq!(body["og:image:height"], 48);
    let uri = body["og:image"].as_str().unwrap();
    let image = server
        .client
        .get(format!(
            "{}/_matrix/client/v1/media/download/{}",
            server.base,
            uri.strip_prefix("mxc://").unwrap()
        ))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.bytes().await.unwrap().to_vec(), png(64, 48));
    assert_eq!(body["matrix:image:size"], png(64, 48).len());
    // The redirect, the page and the image.
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let again = preview(&server, &alice, &format!("{base}/moved")).await;
    assert_eq!(again.assert_ok(), &body);
    assert_eq!(hits.load(Ordering::SeqCst), 3, "served from the cache");
    // A page that is not there.
    let missing = preview(&server, &alice, &format!("{base}/nowhere")).await;
    missing.assert_error(502, "M_UNKNOWN");
}
