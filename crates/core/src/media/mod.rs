//! The media repository (`authed-content-repo.yaml`, `content-repo.yaml`): uploads, downloads
//! and thumbnails ([`thumbnail`]) of media of this server (no federation yet, so other
//! servers' media is not found).
//!
//! Bytes are files under `media.path`, `<first two characters>/<media ID>`; an upload is
//! written to a temporary file, flushed to disk and renamed before its record is stored, so a
//! record never names a missing or partial file, and the upload is acknowledged only once
//! both are durable. An ID may be created first (`POST /_matrix/media/v1/create`) and
//! uploaded to later, once; a download of it waits for the upload. With
//! `media.quota_bytes_per_user`, an upload that would take its uploader over the quota is
//! refused (403).

mod preview;
mod thumbnail;

use std::path::{Path, PathBuf};

use myelin_store::{MediaRecord, MediaWrite};
use tokio::io::AsyncWriteExt;

pub use preview::{FetchError, Fetched, Previews, UrlFetcher, preview_url};
pub use thumbnail::thumbnail;

use crate::{
    Error, Services,
    auth::Requester,
    error::{Result, forbidden, limit_exceeded, not_found, too_large},
    ids,
};

const MEDIA_ID_LEN: usize = 24;

/// The longest a download waits for content not uploaded yet, whatever the client asks.
const MAX_WAIT_MS: u64 = 60_000;
/// The wait when the client names none (the spec's default).
const DEFAULT_WAIT_MS: u64 = 20_000;

pub(crate) fn internal(err: impl std::fmt::Display) -> Error {
    Error::Internal(format!("media storage: {err}").into())
}

pub(crate) fn file_path(root: &Path, media_id: &str) -> PathBuf {
    root.join(&media_id[..2]).join(media_id)
}

/// Where the thumbnails of a media item are kept.
pub(crate) fn thumbnail_dir(root: &Path, media_id: &str) -> PathBuf {
    root.join("thumbnails").join(media_id)
}

pub(crate) fn thumbnail_path(
    root: &Path,
    media_id: &str,
    width: u32,
    height: u32,
    method: &str,
) -> PathBuf {
    thumbnail_dir(root, media_id).join(format!("{width}x{height}-{method}"))
}

/// An upload being received: the bytes go to a temporary file until [`Upload::finish`].
pub struct Upload {
    file: Option<tokio::fs::File>,
    temp: PathBuf,
    size: u64,
    max: u64,
    media_id: String,
    uploader: String,
    content_type: Option<String>,
    filename: Option<String>,
    /// The ID was created beforehand (`/create`), and this upload must take it.
    reserved: bool,
    /// The uploader's quota, checked when the record is stored.
    quota: Option<u64>,
}

fn quota_exceeded() -> Error {
    forbidden("This upload would exceed your media quota")
}

/// `POST /_matrix/media/v1/create`: a new `mxc://` URI to upload to later, and when it
/// expires unused.
pub async fn create(services: &Services, requester: &Requester) -> Result<(String, i64)> {
    let config = &services.config.media;
    let media_id = ids::random_alnum(MEDIA_ID_LEN);
    let now = crate::now_ms();
    let expires =
        now.saturating_add((config.pending_upload_expiry_secs.saturating_mul(1000)) as i64);
    if !services
        .store
        .create_pending_media(
            &media_id,
            &requester.user_id,
            now,
            expires,
            config.max_pending_uploads_per_user,
        )
        .await?
    {
        // The spec's answer to too many pending uploads; one expires or is used first.
        return Err(limit_exceeded(std::time::Duration::from_secs(60)));
    }
    Ok((
        format!("mxc://{}/{media_id}", services.config.server_name),
        expires,
    ))
}

/// `POST /_matrix/media/v3/upload`: starts receiving a file.
pub async fn begin_upload(
    services: &Services,
    requester: &Requester,
    content_type: Option<String>,
    filename: Option<String>,
    declared_length: Option<u64>,
) -> Result<Upload> {
    let media_id = ids::random_alnum(MEDIA_ID_LEN);
    receive(
        services,
        &requester.user_id,
        media_id,
        false,
        content_type,
        filename,
        declared_length,
        services.config.media.quota_bytes_per_user,
    )
    .await
}

/// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`: starts receiving the content of an
/// ID created beforehand: 404 unless it was (and has not expired), 403 for another user,
/// 409 `M_CANNOT_OVERWRITE_MEDIA` once it has content.
pub async fn begin_upload_to(
    services: &Services,
    requester: &Requester,
    server_name: &str,
    media_id: &str,
    content_type: Option<String>,
    filename: Option<String>,
    declared_length: Option<u64>,
) -> Result<Upload> {
    if server_name != services.config.server_name || !valid_media_id(media_id) {
        return Err(not_found("Unknown media ID"));
    }
    if services.store.media(media_id).await?.is_some() {
        return Err(Error::CannotOverwriteMedia);
    }
    match services.store.pending_media(media_id).await? {
        Some(p) if p.expires_ts > crate::now_ms() => {
            if p.uploader != requester.user_id {
                return Err(forbidden("This media ID was created by another user"));
            }
        }
        _ => return Err(not_found("Unknown media ID")),
    }
    receive(
        services,
        &requester.user_id,
        media_id.to_owned(),
        true,
        content_type,
        filename,
        declared_length,
        services.config.media.quota_bytes_per_user,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn receive(
    services: &Services,
    uploader: &str,
    media_id: String,
    reserved: bool,
    content_type: Option<String>,
    filename: Option<String>,
    declared_length: Option<u64>,
    quota: Option<u64>,
) -> Result<Upload> {
    let max = services.config.media.max_upload_bytes;
    if declared_length.is_some_and(|n| n > max) {
        return Err(too_large(format!("Uploads are limited to {max} bytes")));
    }
    if let Some(quota) = quota {
        let used = services.store.media_usage(uploader).await?;
        if used.saturating_add(declared_length.unwrap_or(0)) > quota {
            return Err(quota_exceeded());
        }
    }
    if filename.as_deref().is_some_and(ids::has_nul)
        || content_type.as_deref().is_some_and(ids::has_nul)
    {
        return Err(crate::error::invalid_param(
            "NUL in filename or content type",
        ));
    }
    let temp_dir = services.config.media.path.join("tmp");
    tokio::fs::create_dir_all(&temp_dir)
        .await
        .map_err(internal)?;
    let temp = temp_dir.join(format!("{media_id}.part"));
    let file = tokio::fs::File::create(&temp).await.map_err(internal)?;
    Ok(Upload {
        file: Some(file),
        temp,
        size: 0,
        max,
        media_id,
        uploader: uploader.to_owned(),
        content_type: content_type.filter(|c| !c.is_empty()),
        filename: filename.filter(|f| !f.is_empty()),
        reserved,
        quota,
    })
}

impl Upload {
    /// Media the server stores for nobody in particular (a preview's image): no uploader, no
    /// quota.
    pub(crate) async fn system(
        services: &Services,
        media_id: String,
        content_type: Option<String>,
    ) -> Result<Self> {
        receive(
            services,
            "",
            media_id,
            false,
            content_type,
            None,
            None,
            None,
        )
        .await
    }
}

impl Upload {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.max {
            return Err(too_large(format!(
                "Uploads are limited to {} bytes",
                self.max
            )));
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| internal("upload closed"))?;
        file.write_all(chunk).await.map_err(internal)
    }

    /// Makes the file durable, then its record; answers the `mxc://` URI.
    pub async fn finish(mut self, services: &Services) -> Result<String> {
        let mut file = self.file.take().ok_or_else(|| internal("upload closed"))?;
        file.flush().await.map_err(internal)?;
        file.sync_all().await.map_err(internal)?;
        drop(file);
        // Of two uploads to one created ID, only the one that takes it may write its file.
        if self.reserved
            && !services
                .store
                .claim_pending_media(&self.media_id, &self.uploader, crate::now_ms())
                .await?
        {
            let _ = tokio::fs::remove_file(&self.temp).await;
            return Err(match services.store.media(&self.media_id).await? {
                Some(_) => Error::CannotOverwriteMedia,
                None => not_found("Unknown media ID"),
            });
        }
        let root = &services.config.media.path;
        let target = file_path(root, &self.media_id);
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(internal)?;
        }
        tokio::fs::rename(&self.temp, &target)
            .await
            .map_err(internal)?;
        let written = services
            .store
            .put_media(
                MediaRecord {
                    media_id: self.media_id.clone(),
                    uploader: self.uploader.clone(),
                    content_type: self.content_type.clone(),
                    filename: self.filename.clone(),
                    size: self.size,
                    created_ts: crate::now_ms(),
                },
                self.quota,
            )
            .await;
        match written {
            Ok(MediaWrite::Done) => {}
            Ok(MediaWrite::OverQuota) => {
                let _ = tokio::fs::remove_file(&target).await;
                return Err(quota_exceeded());
            }
            Err(err) => return Err(err.into()),
        }
        Ok(format!(
            "mxc://{}/{}",
            services.config.server_name, self.media_id
        ))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Not finished (refused, or the client went away): the partial file goes.
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// A stored file to serve.
pub struct Served {
    pub path: PathBuf,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub size: u64,
}

pub(crate) fn valid_media_id(media_id: &str) -> bool {
    media_id.len() == MEDIA_ID_LEN && media_id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The record of a media item; for an ID created but not uploaded yet, waits for the upload
/// up to `timeout_ms` (504 `M_NOT_YET_UPLOADED` after).
pub(crate) async fn record(
    services: &Services,
    server_name: &str,
    media_id: &str,
    timeout_ms: Option<u64>,
) -> Result<MediaRecord> {
    if server_name != services.config.server_name || !valid_media_id(media_id) {
        return Err(not_found("Media not found"));
    }
    let wait =
        std::time::Duration::from_millis(timeout_ms.unwrap_or(DEFAULT_WAIT_MS).min(MAX_WAIT_MS));
    let deadline = tokio::time::Instant::now() + wait;
    let mut awaited = false;
    loop {
        if let Some(record) = services.store.media(media_id).await? {
            return Ok(record);
        }
        match services.store.pending_media(media_id).await? {
            Some(p) if p.expires_ts > crate::now_ms() => awaited = true,
            // Once seen pending, a missing reservation is an upload storing its record.
            None if awaited => {}
            _ => return Err(not_found("Media not found")),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::NotYetUploaded);
        }
        // Uploads may finish on another instance: look again shortly.
        tokio::time::sleep(std::time::Duration::from_millis(200).min(wait)).await;
    }
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`.
pub async fn download(
    services: &Services,
    server_name: &str,
    media_id: &str,
    timeout_ms: Option<u64>,
) -> Result<Served> {
    let record = record(services, server_name, media_id, timeout_ms).await?;
    Ok(Served {
        path: file_path(&services.config.media.path, media_id),
        content_type: record.content_type,
        filename: record.filename,
        size: record.size,
    })
}

/// `GET /_matrix/client/v1/media/config`.
pub fn config(services: &Services) -> serde_json::Value {
    serde_json::json!({ "m.upload.size": services.config.media.max_upload_bytes })
}
