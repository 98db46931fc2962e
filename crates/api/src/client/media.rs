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

/// # `POST /_matrix/media/v3/upload`
pub async fn upload(
    State(state): State<AppState>,
    Auth(requester): Auth,
    QueryParams(query): QueryParams,
    request: Request,
) -> ApiResult<Json<Value>> {
    let services = &state.0;
    let headers = request.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut upload = media::begin_upload(
        services,
        &requester,
        content_type,
        query.get("filename").cloned(),
        declared,
    )
    .await?;
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
    let content_uri = upload.finish(services).await?;
    Ok(Json(json!({ "content_uri": content_uri })))
}

/// # `GET /_matrix/client/v1/media/config` (and the deprecated `/_matrix/media/v3/config`)
pub async fn config(State(state): State<AppState>, Auth(_requester): Auth) -> Json<Value> {
    Json(media::config(&state.0))
}

/// # `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`
pub async fn download(
    State(state): State<AppState>,
    Auth(_requester): Auth,
    Segments((server, media_id)): Segments<(String, String)>,
) -> ApiResult<Response> {
    serve(media::download(&state.0, &server, &media_id).await?, None).await
}

/// # `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}`
pub async fn download_named(
    State(state): State<AppState>,
    Auth(_requester): Auth,
    Segments((server, media_id, name)): Segments<(String, String, String)>,
) -> ApiResult<Response> {
    serve(
        media::download(&state.0, &server, &media_id).await?,
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
    QueryParams(query): QueryParams,
) -> ApiResult<Response> {
    thumbnail_of(&state, &server, &media_id, &query).await
}

async fn thumbnail_of(
    state: &AppState,
    server: &str,
    media_id: &str,
    query: &std::collections::HashMap<String, String>,
) -> ApiResult<Response> {
    let (width, height) = (dimension(query, "width")?, dimension(query, "height")?);
    let method = match query.get("method").map(String::as_str) {
        None | Some("scale") => "scale",
        Some("crop") => "crop",
        Some(_) => return Err(invalid_param("method must be crop or scale")),
    };
    let served = media::thumbnail(&state.0, server, media_id, width, height, method).await?;
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
) -> ApiResult<Response> {
    legacy_allowed(&state)?;
    serve(media::download(&state.0, &server, &media_id).await?, None).await
}

/// # `GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}` (deprecated)
pub async fn legacy_download_named(
    State(state): State<AppState>,
    Segments((server, media_id, name)): Segments<(String, String, String)>,
) -> ApiResult<Response> {
    legacy_allowed(&state)?;
    serve(
        media::download(&state.0, &server, &media_id).await?,
        Some(name),
    )
    .await
}

/// # `GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}` (deprecated)
pub async fn legacy_thumbnail(
    State(state): State<AppState>,
    Segments((server, media_id)): Segments<(String, String)>,
    QueryParams(query): QueryParams,
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
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
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
