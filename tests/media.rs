//! The media repository (issue 12; `authed-content-repo.yaml`, `content-repo.yaml`): upload,
//! download, thumbnails, config, and content served so a browser never runs it.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, User};
use reqwest::StatusCode;
use serde_json::json;

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

async fn upload(
    server: &TestServer,
    user: &User,
    content_type: &str,
    body: Vec<u8>,
    name: Option<&str>,
) -> reqwest::Response {
    let mut url = format!("{}/_matrix/media/v3/upload", server.base);
    if let Some(name) = name {
        url.push_str(&format!("?filename={}", common::enc(name)));
    }
    server
        .client
        .post(url)
        .bearer_auth(&user.token)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get(server: &TestServer, user: Option<&User>, path: &str) -> reqwest::Response {
    let mut request = server.client.get(format!("{}{path}", server.base));
    if let Some(user) = user {
        request = request.bearer_auth(&user.token);
    }
    request.send().await.unwrap()
}

fn media_path(uri: &str) -> String {
    uri.strip_prefix("mxc://").unwrap().to_owned()
}

#[tokio::test]
async fn an_upload_downloads_byte_for_byte_with_safe_headers() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let bytes = b"hello, media".to_vec();
    let resp = upload(
        &server,
        &alice,
        "text/plain",
        bytes.clone(),
        Some("notes.txt"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let uri = resp.json::<serde_json::Value>().await.unwrap()["content_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(uri.starts_with("mxc://localhost/"), "{uri}");
    let got = get(
        &server,
        Some(&bob),
        &format!("/_matrix/client/v1/media/download/{}", media_path(&uri)),
    )
    .await;
    assert_eq!(got.status(), StatusCode::OK);
    let headers = got.headers().clone();
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(
        headers["content-disposition"],
        "inline; filename=\"notes.txt\""
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
    // A name in the path wins; HTML is never inline.
    let html = upload(
        &server,
        &alice,
        "text/html",
        b"<script>alert(1)</script>".to_vec(),
        None,
    )
    .await;
    let html_uri = html.json::<serde_json::Value>().await.unwrap()["content_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = get(
        &server,
        Some(&bob),
        &format!(
            "/_matrix/client/v1/media/download/{}/page.html",
            media_path(&html_uri)
        ),
    )
    .await;
    assert_eq!(
        got.headers()["content-disposition"],
        "attachment; filename=\"page.html\""
    );
    // Without a token: 401; unknown media and other servers' media: 404.
    let anonymous = get(
        &server,
        None,
        &format!("/_matrix/client/v1/media/download/{}", media_path(&uri)),
    )
    .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    for path in [
        "localhost/AAAAAAAAAAAAAAAAAAAAAAAA",
        "elsewhere.example/abc",
        "localhost/..%2F..%2Fetc",
    ] {
        let got = get(
            &server,
            Some(&bob),
            &format!("/_matrix/client/v1/media/download/{path}"),
        )
        .await;
        assert_eq!(got.status(), StatusCode::NOT_FOUND, "{path}");
        let body: serde_json::Value = got.json().await.unwrap();
        assert_eq!(body["errcode"], "M_NOT_FOUND");
    }
    // The deprecated unauthenticated endpoint answers 404 M_NOT_FOUND.
    let legacy = get(
        &server,
        None,
        &format!("/_matrix/media/v3/download/{}", media_path(&uri)),
    )
    .await;
    assert_eq!(legacy.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        legacy.json::<serde_json::Value>().await.unwrap()["errcode"],
        "M_NOT_FOUND"
    );
}

#[tokio::test]
async fn uploads_over_the_limit_are_413_and_config_says_the_limit() {
    let server = TestServer::with(|c, _| c.media.max_upload_bytes = 1000).await;
    let alice = server.register("alice").await;
    let resp = upload(
        &server,
        &alice,
        "application/octet-stream",
        vec![7; 1001],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["errcode"],
        "M_TOO_LARGE"
    );
    let ok = upload(
        &server,
        &alice,
        "application/octet-stream",
        vec![7; 1000],
        None,
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    for path in [
        "/_matrix/client/v1/media/config",
        "/_matrix/media/v3/config",
    ] {
        let config = get(&server, Some(&alice), path).await;
        assert_eq!(
            config.json::<serde_json::Value>().await.unwrap(),
            json!({ "m.upload.size": 1000 })
        );
    }
    // Nothing of the refused upload is left behind.
    let leftovers = std::fs::read_dir(server.dir.path().join("media").join("tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn thumbnails_are_made_once_never_upscaled_and_refused_for_non_images() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let resp = upload(
        &server,
        &alice,
        "image/png",
        png(1000, 500),
        Some("big.png"),
    )
    .await;
    let uri = resp.json::<serde_json::Value>().await.unwrap()["content_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = media_path(&uri);
    for (query, at_least) in [
        ("width=32&height=32&method=crop", (32, 32)),
        ("width=300&height=200&method=scale", (320, 240)),
    ] {
        let got = get(
            &server,
            Some(&alice),
            &format!("/_matrix/client/v1/media/thumbnail/{path}?{query}"),
        )
        .await;
        assert_eq!(got.status(), StatusCode::OK, "{query}");
        assert_eq!(got.headers()["content-type"], "image/png");
        let thumb = image::load_from_memory(&got.bytes().await.unwrap()).unwrap();
        assert!(
            thumb.width() >= at_least.0 && thumb.height() >= at_least.1,
            "{query}: {}x{}",
            thumb.width(),
            thumb.height()
        );
        assert!(thumb.width() < 1000, "a thumbnail, not the original");
        if query.contains("crop") {
            assert_eq!((thumb.width(), thumb.height()), (32, 32));
        }
    }
    // Kept: the second request is served from the file made by the first.
    let thumbs = server.dir.path().join("media").join("thumbnails");
    assert_eq!(
        std::fs::read_dir(thumbs.join(&path[path.find('/').unwrap() + 1..]))
            .unwrap()
            .count(),
        2
    );
    // Larger than every thumbnail size: the original, never an upscale.
    let small = upload(&server, &alice, "image/png", png(20, 20), None).await;
    let small_uri = small.json::<serde_json::Value>().await.unwrap()["content_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = get(
        &server,
        Some(&alice),
        &format!(
            "/_matrix/client/v1/media/thumbnail/{}?width=96&height=96",
            media_path(&small_uri)
        ),
    )
    .await;
    let thumb = image::load_from_memory(&got.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (20, 20));
    // Not an image: 400; bad dimensions: 400.
    let text = upload(&server, &alice, "text/plain", b"x".to_vec(), None).await;
    let text_uri = text.json::<serde_json::Value>().await.unwrap()["content_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = get(
        &server,
        Some(&alice),
        &format!(
            "/_matrix/client/v1/media/thumbnail/{}?width=32&height=32",
            media_path(&text_uri)
        ),
    )
    .await;
    assert_eq!(got.status(), StatusCode::BAD_REQUEST);
    let got = get(
        &server,
        Some(&alice),
        &format!("/_matrix/client/v1/media/thumbnail/{path}?width=-1&height=32"),
    )
    .await;
    assert_eq!(got.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        got.json::<serde_json::Value>().await.unwrap()["errcode"],
        "M_INVALID_PARAM"
    );
}

async fn create(server: &TestServer, user: &User) -> reqwest::Response {
    server
        .client
        .post(format!("{}/_matrix/media/v1/create", server.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap()
}

async fn put_content(server: &TestServer, user: &User, uri: &str, body: &[u8]) -> common::Resp {
    TestServer::finish(
        server
            .client
            .put(format!(
                "{}/_matrix/media/v3/upload/{}",
                server.base,
                media_path(uri)
            ))
            .bearer_auth(&user.token)
            .header("Content-Type", "text/plain")
            .body(body.to_vec()),
    )
    .await
}

#[tokio::test]
async fn a_created_id_takes_one_upload_and_its_download_waits_for_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let created = create(&server, &alice).await;
    assert_eq!(created.status(), StatusCode::OK);
    let body: serde_json::Value = created.json().await.unwrap();
    let uri = body["content_uri"].as_str().unwrap().to_owned();
    let expires = body["unused_expires_at"].as_i64().unwrap();
    let day_ms = 86_400_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((expires - now - day_ms).abs() < 60_000, "{expires}");

    let download = format!("/_matrix/client/v1/media/download/{}", media_path(&uri));
    // Not uploaded yet: a short wait ends in 504.
    let early = get(&server, Some(&bob), &format!("{download}?timeout_ms=300")).await;
    assert_eq!(early.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        early.json::<serde_json::Value>().await.unwrap()["errcode"],
        "M_NOT_YET_UPLOADED"
    );
    // A download waiting while the upload arrives gets the content.
    let waiting = {
        let request = server
            .client
            .get(format!("{}{download}?timeout_ms=10000", server.base))
            .bearer_auth(&bob.token);
        tokio::spawn(async move { request.send().await.unwrap() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    put_content(&server, &bob, &uri, b"not bob's")
        .await
        .assert_error(403, "M_FORBIDDEN");
    assert_eq!(
        put_content(&server, &alice, &uri, b"later")
            .await
            .assert_ok(),
        &json!({})
    );
    let got = waiting.await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"later");
    put_content(&server, &alice, &uri, b"again")
        .await
        .assert_error(409, "M_CANNOT_OVERWRITE_MEDIA");
    let still = get(&server, Some(&bob), &download).await;
    assert_eq!(still.bytes().await.unwrap().as_ref(), b"later");

    // IDs never created are not found, also for an upload.
    let unknown = format!("mxc://localhost/{}", "A".repeat(24));
    put_content(&server, &alice, &unknown, b"x")
        .await
        .assert_error(404, "M_NOT_FOUND");
    put_content(
        &server,
        &alice,
        "mxc://elsewhere.org/AAAAAAAAAAAAAAAAAAAAAAAA",
        b"x",
    )
    .await
    .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn pending_ids_per_user_are_limited_and_expire() {
    let server = TestServer::with(|c, _| {
        c.media.max_pending_uploads_per_user = 2;
        c.media.pending_upload_expiry_secs = 1;
    })
    .await;
    let alice = server.register("alice").await;
    let first: serde_json::Value = create(&server, &alice).await.json().await.unwrap();
    assert_eq!(create(&server, &alice).await.status(), StatusCode::OK);
    let third = create(&server, &alice).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        third.json::<serde_json::Value>().await.unwrap()["errcode"],
        "M_LIMIT_EXCEEDED"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Expired: no longer counted, and no longer uploadable.
    assert_eq!(create(&server, &alice).await.status(), StatusCode::OK);
    put_content(
        &server,
        &alice,
        first["content_uri"].as_str().unwrap(),
        b"late",
    )
    .await
    .assert_error(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn uploads_beyond_the_quota_are_refused_and_leave_nothing() {
    let server = TestServer::with(|c, _| c.media.quota_bytes_per_user = Some(1500)).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let ok = upload(&server, &alice, "text/plain", vec![1; 1000], None).await;
    assert_eq!(ok.status(), StatusCode::OK);
    // Declared too large for what is left, and streamed without a length.
    let over = upload(&server, &alice, "text/plain", vec![1; 600], None).await;
    assert_eq!(over.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        over.json::<serde_json::Value>().await.unwrap()["errcode"],
        "M_FORBIDDEN"
    );
    // Chunked, so no length is declared: refused when the record would pass the quota.
    let streamed = chunked_upload(&server, &alice, &[vec![b'a'; 300], vec![b'b'; 300]]).await;
    assert!(streamed.starts_with("HTTP/1.1 403"), "{streamed}");
    assert!(streamed.contains("M_FORBIDDEN"), "{streamed}");
    // The quota is per user.
    let theirs = upload(&server, &bob, "text/plain", vec![1; 1000], None).await;
    assert_eq!(theirs.status(), StatusCode::OK);
    let used = server
        .services()
        .store
        .media_usage(&alice.user_id)
        .await
        .unwrap();
    assert_eq!(used, 1000);
    let files: usize = std::fs::read_dir(server.dir.path().join("media"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|d| d.file_name() != "tmp" && d.path().is_dir())
        .map(|d| std::fs::read_dir(d.path()).unwrap().count())
        .sum();
    assert_eq!(files, 2, "only the two accepted uploads are stored");
}

/// `POST /upload` with `Transfer-Encoding: chunked` over a plain connection; the raw answer.
async fn chunked_upload(server: &TestServer, user: &User, chunks: &[Vec<u8>]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        user.token
    )
    .into_bytes();
    for chunk in chunks {
        request.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        request.extend(chunk);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}
