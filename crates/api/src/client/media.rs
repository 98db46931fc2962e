//! The media repository (`authed-content-repo.yaml`, `content-repo.yaml`).
//!
//! Files are streamed both ways, never held whole in memory. Served content is labelled so a
//! browser never runs it from this origin: `inline` only for the spec's list of safe types,
//! `attachment` otherwise, always with `Content-Security-Policy: sandbox` and `nosniff`.

use axum::{
    Json,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use http_body_util::BodyExt;
use myelin_core::media::{self, Served};
use serde_json::{Value, json};

use crate::{
    AppState,
    error::{ApiError, ApiResult, body_timeout, invalid_param},
    extract::{Auth, QueryParams},
    path::Segments,
};

/// The spec's "Serving inline content" list.
const INLINE_TYPES: &[&str] = &[
    "text/css",
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

/// The spec's recommended policy for media.
const CSP: &str = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; \
                   style-src 'unsafe-inline'; object-src 'self';";

/// `Content-Type` and `Content-Length` of an upload.
fn upload_headers(request: &Request) -> (Option<String>, Option<u64>) {
    let headers = request.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    (content_type, declared)
}

/// Streams the request body into `upload` and stores it.
async fn receive(
    services: &myelin_core::Services,
    mut upload: media::Upload,
    request: Request,
) -> ApiResult<String> {
    let idle = std::time::Duration::from_millis(services.config.limits.body_read_timeout_ms);
    let mut body = request.into_body();
    loop {
        // A deadline per chunk, not for the whole file: large uploads take a while, a
        // stalled one is dropped.
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(body_timeout()),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(invalid_param("The upload was interrupted")),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            upload.write(&data).await?;
        }
    }
    Ok(upload.finish(services).await?)
}

/// # `POST /_matrix/media/v3/upload`
///
/// Streams the file to disk; 413 `M_TOO_LARGE` beyond `media.max_upload_bytes`, 403
/// `M_FORBIDDEN` beyond `media.quota_bytes_per_user`.
pub async fn upload(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(query): QueryParams,
    request: Request,
) -> ApiResult<Json<Value>> {
    let services = &state.0;
    let (content_type, declared) = upload_headers(&request);
    let upload = media::begin_upload(
        services,
        &requester,
        content_type,
        query.get("filename").cloned(),
        declared,
    )
    .await?;
    let content_uri = receive(services, upload, request).await?;
    Ok(Json(json!({ "content_uri": content_uri })))
}

/// # `POST /_matrix/media/v1/create`
///
/// An `mxc://` URI to upload to later, with `unused_expires_at`; 429 `M_LIMIT_EXCEEDED` when
/// the user holds `media.max_pending_uploads_per_user` of them already.
pub async fn create(
    State(state): State<AppState>,
    Auth(requester): Auth,
) -> ApiResult<Json<Value>> {
    let (content_uri, expires) = media::create(&state.0, &requester).await?;
    Ok(Json(
        json!({ "content_uri": content_uri, "unused_expires_at": expires }),
    ))
}

/// # `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`
///
/// The content of an ID from `/create`: 404 for an unknown or expired ID, 403 for another
/// user's, 409 `M_CANNOT_OVERWRITE_MEDIA` once it has content.
pub async fn upload_to(
    State(state): State<AppState>,
    Auth(requester): Auth,
    Segments((server, media_id)): Segments<(String, String)>,
    QueryParams(query): QueryParams,
    request: Request,
) -> ApiResult<Json<Value>> {
    let services = &state.0;
    let (content_type, declared) = upload_headers(&request);
    let upload = media::begin_upload_to(
        services,
        &requester,
        &server,
        &media_id,
        content_type,
        query.get("filename").cloned(),
        declared,
    )
    .await?;
    receive(services, upload, request).await?;
    Ok(Json(json!({})))
}

/// # `GET /_matrix/client/v1/media/preview_url` (and the deprecated `/_matrix/media/v3/preview_url`)
///
/// The OpenGraph data of a public page, its image stored here as media. 404
/// `M_UNRECOGNIZED` unless `media.url_preview.enabled`; 403 for a URL (or redirect) to an
/// address that is not public; 502 when the page cannot be fetched.
pub async fn preview_url(
    State(state): State<AppState>,
    Auth(_requester): Auth,
    QueryParams(query): QueryParams,
) -> ApiResult<Json<Value>> {
    let url = query.get("url").ok_or_else(|| {
        ApiError::from(myelin_core::Error::MissingParam("url is required".into()))
    })?;
    Ok(Json(media::preview_url(&state.0, url).await?))
}

/// The `timeout_ms` a download waits for content not uploaded yet.
fn timeout_ms(query: &QueryParams) -> ApiResult<Option<u64>> {
    Ok(query.number("timeout_ms")?.map(|ms| ms as u64))
}

/// # `GET /_matrix/client/v1/media/config` (and the deprecated `/_matrix/media/v3/config`)
pub async fn config(State(state): State<AppState>, Auth(_requester): Auth) -> Json<Value> {
    Json(media::config(&state.0))
}

/// # `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`
///
/// For an ID created but not uploaded yet, waits up to `timeout_ms` (20 s, at most 60 s),
/// then 504 `M_NOT_YET_UPLOADED`.
pub async fn download(
    State(state): State<AppState>,
    Auth(_requester): Auth,
    Segments((server, media_id)): Segments<(String, String)>,
    query: QueryParams,
) -> ApiResult<Response> {
    let wait = timeout_ms(&query)?;
    serve(
        media::download(&state.0, &server, &media_id, wait).await?,
        None,
    )
    .await
}

/// # `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}`
pub async fn download_named(
    State(state): State<AppState>,
    Auth(_requester): Auth,
    Segments((server, media_id, name)): Segments<(String, String, String)>,
    query: QueryParams,
) -> ApiResult<Response> {
    let wait = timeout_ms(&query)?;
    serve(
        media::download(&state.0, &server, &media_id, wait).await?,
        Some(name),
    )
    .await
}

fn dimension(query: &std::collections::HashMap<String, String>, key: &str) -> ApiResult<u32> {
    let value = query.get(key).ok_or_else(|| {
        ApiError::from(myelin_core::Error::MissingParam(
            format!("Missing parameter: {key}").into(),
        ))
    })?;
    value
        .parse::<u32>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| invalid_param(format!("{key} must be a positive integer")))
}

/// # `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`
pub async fn thumbnail(
    State(state): State<AppState>,
    Auth(_requester): Auth,
    Segments((server, media_id)): Segments<(String, String)>,
    query: QueryParams,
) -> ApiResult<Response> {
    thumbnail_of(&state, &server, &media_id, &query).await
}

async fn thumbnail_of(
    state: &AppState,
    server: &str,
    media_id: &str,
    query: &QueryParams,
) -> ApiResult<Response> {
    let (width, height) = (
        dimension(&query.0, "width")?,
        dimension(&query.0, "height")?,
    );
    let method = match query.0.get("method").map(String::as_str) {
        None | Some("scale") => "scale",
        Some("crop") => "crop",
        Some(_) => return Err(invalid_param("method must be crop or scale")),
    };
    let wait = timeout_ms(query)?;
    let served = media::thumbnail(&state.0, server, media_id, width, height, method, wait).await?;
    serve(served, None).await
}

fn legacy_allowed(state: &AppState) -> ApiResult<()> {
    if state.0.config.media.serve_unauthenticated {
        Ok(())
    } else {
        Err(myelin_core::error::not_found(
            "Unauthenticated media is not served here: use /_matrix/client/v1/media",
        )
        .into())
    }
}

/// # `GET /_matrix/media/v3/download/{serverName}/{mediaId}` (deprecated, no token)
///
/// 404 `M_NOT_FOUND` unless `media.serve_unauthenticated` is on.
pub async fn legacy_download(
    State(state): State<AppState>,
    Segments((server, media_id)): Segments<(String, String)>,
    query: QueryParams,
) -> ApiResult<Response> {
    legacy_allowed(&state)?;
    let wait = timeout_ms(&query)?;
    serve(
        media::download(&state.0, &server, &media_id, wait).await?,
        None,
    )
    .await
}

/// # `GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}` (deprecated)
pub async fn legacy_download_named(
    State(state): State<AppState>,
    Segments((server, media_id, name)): Segments<(String, String, String)>,
    query: QueryParams,
) -> ApiResult<Response> {
    legacy_allowed(&state)?;
    let wait = timeout_ms(&query)?;
    serve(
        media::download(&state.0, &server, &media_id, wait).await?,
        Some(name),
    )
    .await
}

/// # `GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}` (deprecated)
pub async fn legacy_thumbnail(
    State(state): State<AppState>,
    Segments((server, media_id)): Segments<(String, String)>,
    query: QueryParams,
) -> ApiResult<Response> {
    legacy_allowed(&state)?;
    thumbnail_of(&state, &server, &media_id, &query).await
}

/// `"name"` for a header, or RFC 5987's form for names that are not plain ASCII.
fn disposition(kind: &str, name: Option<&str>) -> String {
    match name {
        Some(name)
            if name.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                && !name.contains(['"', '\\']) =>
        {
            format!("{kind}; filename=\"{name}\"")
        }
        Some(name) => {
            let encoded: String = name
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{kind}; filename*=utf-8''{encoded}")
        }
        None => kind.to_owned(),
    }
}

async fn serve(served: Served, name: Option<String>) -> ApiResult<Response> {
    let file = tokio::fs::File::open(&served.path).await.map_err(|err| {
        tracing::error!(path = %served.path.display(), error = %err, "media file missing");
        ApiError::from(myelin_core::error::not_found("Media not found"))
    })?;
    let content_type = served
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let kind = if INLINE_TYPES.contains(&essence.as_str()) {
        "inline"
    } else {
        "attachment"
    };
    let name = name.or(served.filename);
    // 64 KiB reads: the default 4 KiB made a 1 MiB download 256 trips through the body.
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    let value = |s: &str| {
        HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("application/octet-stream"))
    };
    headers.insert(header::CONTENT_TYPE, value(&content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(served.size));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition(kind, name.as_deref()))
            .unwrap_or(HeaderValue::from_static("attachment")),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Clients on other origins show images from here.
    headers.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    Ok(response)
}
