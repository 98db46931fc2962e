//! Media scenarios: downloading a 1 MiB file and serving a thumbnail that was made before
//! (its first request, which makes it, is setup), over authenticated media
//! (`/_matrix/client/v1/media`).

use std::sync::Arc;

use anyhow::{Context, bail};
use hyper::{Method, body::Bytes};

use crate::{
    Generator, Req, Throughput,
    client::{Conn, Target, User, register},
    load,
};

/// `count` bytes that do not compress (a linear congruential sequence).
fn noise(count: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

fn photo(width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Jpeg)?;
    Ok(bytes.into_inner())
}

/// Uploads `body`; answers the `server/media_id` of its `mxc://` URI.
async fn upload(
    conn: &mut Conn,
    user: &User,
    content_type: &str,
    body: Vec<u8>,
) -> anyhow::Result<String> {
    let (status, answer) = conn
        .upload(
            "/_matrix/media/v3/upload",
            &user.token,
            content_type,
            Bytes::from(body),
        )
        .await?;
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
    if status != 200 {
        bail!("upload: {status} {answer}");
    }
    Ok(answer["content_uri"]
        .as_str()
        .and_then(|u| u.strip_prefix("mxc://"))
        .context("content_uri")?
        .to_owned())
}

pub(crate) async fn run(
    target: &Target,
    run: u64,
    seconds: f64,
    results: &mut Vec<Throughput>,
) -> anyhow::Result<()> {
    let mut conn = target.connect().await?;
    let user = register(&mut conn, &format!("bench{run}media")).await?;
    let file = upload(&mut conn, &user, "application/octet-stream", noise(1 << 20)).await?;
    let image = upload(&mut conn, &user, "image/jpeg", photo(1024, 768)?).await?;
    let thumbnail =
        format!("/_matrix/client/v1/media/thumbnail/{image}?width=96&height=96&method=crop");
    let (status, _) = conn
        .call(Method::GET, &thumbnail, Some(&user.token), None)
        .await?;
    if status != 200 {
        bail!("first thumbnail request: {status}");
    }
    let token = Arc::new(user.token);
    for (name, path) in [
        (
            "GET media download (1 MiB)",
            format!("/_matrix/client/v1/media/download/{file}"),
        ),
        ("GET media thumbnail (96x96 crop, made)", thumbnail),
    ] {
        let token = token.clone();
        let generate: Generator = Arc::new(move |_, _| Req {
            method: Method::GET,
            path: path.clone(),
            token: token.to_string(),
            body: None,
        });
        results.push(load(target, name, 16, seconds, generate).await?);
    }
    Ok(())
}
