//! The media repository (`authed-content-repo.yaml`, `content-repo.yaml`): uploads, downloads
//! and thumbnails of media of this server (no federation yet, so other servers' media is not
//! found).
//!
//! Bytes are files under `media.path`, `<first two characters>/<media ID>`; an upload is
//! written to a temporary file, flushed to disk and renamed before its record is stored, so a
//! record never names a missing or partial file, and the upload is acknowledged only once
//! both are durable. Thumbnails are made on first request at the spec's recommended sizes,
//! kept under `thumbnails/`, and served from there afterwards.

use std::path::{Path, PathBuf};

use myelin_store::{MediaRecord, ThumbnailRecord};
use tokio::io::AsyncWriteExt;

use crate::{
    Error, Services,
    auth::Requester,
    error::{Result, not_found, too_large},
    ids,
};

const MEDIA_ID_LEN: usize = 24;

/// Thumbnail sizes made (the spec's recommendation): width, height, method.
const SIZES: [(u32, u32, &str); 5] = [
    (32, 32, "crop"),
    (96, 96, "crop"),
    (320, 240, "scale"),
    (640, 480, "scale"),
    (800, 600, "scale"),
];

/// Images larger than this are not decoded for thumbnails (413): a small file can decode to
/// gigabytes.
const MAX_THUMBNAIL_SOURCE_PIXELS: u64 = 40_000_000;

fn internal(err: impl std::fmt::Display) -> Error {
    Error::Internal(format!("media storage: {err}").into())
}

fn file_path(root: &Path, media_id: &str) -> PathBuf {
    root.join(&media_id[..2]).join(media_id)
}

fn thumbnail_path(root: &Path, media_id: &str, width: u32, height: u32, method: &str) -> PathBuf {
    root.join("thumbnails")
        .join(media_id)
        .join(format!("{width}x{height}-{method}"))
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
}

/// `POST /_matrix/media/v3/upload`: starts receiving a file.
pub async fn begin_upload(
    services: &Services,
    requester: &Requester,
    content_type: Option<String>,
    filename: Option<String>,
    declared_length: Option<u64>,
) -> Result<Upload> {
    let max = services.config.media.max_upload_bytes;
    if declared_length.is_some_and(|n| n > max) {
        return Err(too_large(format!("Uploads are limited to {max} bytes")));
    }
    if filename.as_deref().is_some_and(ids::has_nul)
        || content_type.as_deref().is_some_and(ids::has_nul)
    {
        return Err(crate::error::invalid_param(
            "NUL in filename or content type",
        ));
    }
    let media_id = ids::random_alnum(MEDIA_ID_LEN);
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
        uploader: requester.user_id.clone(),
        content_type: content_type.filter(|c| !c.is_empty()),
        filename: filename.filter(|f| !f.is_empty()),
    })
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
        let root = &services.config.media.path;
        let target = file_path(root, &self.media_id);
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(internal)?;
        }
        tokio::fs::rename(&self.temp, &target)
            .await
            .map_err(internal)?;
        services
            .store
            .put_media(MediaRecord {
                media_id: self.media_id.clone(),
                uploader: self.uploader.clone(),
                content_type: self.content_type.clone(),
                filename: self.filename.clone(),
                size: self.size,
                created_ts: crate::now_ms(),
            })
            .await?;
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

async fn record(services: &Services, server_name: &str, media_id: &str) -> Result<MediaRecord> {
    let valid =
        media_id.len() == MEDIA_ID_LEN && media_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if server_name != services.config.server_name || !valid {
        return Err(not_found("Media not found"));
    }
    services
        .store
        .media(media_id)
        .await?
        .ok_or_else(|| not_found("Media not found"))
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`.
pub async fn download(services: &Services, server_name: &str, media_id: &str) -> Result<Served> {
    let record = record(services, server_name, media_id).await?;
    Ok(Served {
        path: file_path(&services.config.media.path, media_id),
        content_type: record.content_type,
        filename: record.filename,
        size: record.size,
    })
}

/// The format a thumbnail of this content is made in, if it can be made at all.
fn thumbnail_format(content_type: Option<&str>) -> Option<(image::ImageFormat, &'static str)> {
    let source = match content_type?.split(';').next()?.trim() {
        "image/png" => image::ImageFormat::Png,
        "image/jpeg" | "image/jpg" => image::ImageFormat::Jpeg,
        "image/gif" => image::ImageFormat::Gif,
        "image/webp" => image::ImageFormat::WebP,
        _ => return None,
    };
    Some(match source {
        image::ImageFormat::Jpeg => (image::ImageFormat::Jpeg, "image/jpeg"),
        _ => (image::ImageFormat::Png, "image/png"),
    })
}

/// `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`: a thumbnail at least as
/// large as asked for, or the original when it is no larger than that.
pub async fn thumbnail(
    services: &Services,
    server_name: &str,
    media_id: &str,
    width: u32,
    height: u32,
    method: &str,
) -> Result<Served> {
    let record = record(services, server_name, media_id).await?;
    let root = services.config.media.path.clone();
    let original = Served {
        path: file_path(&root, media_id),
        content_type: record.content_type.clone(),
        filename: record.filename.clone(),
        size: record.size,
    };
    let Some((format, content_type)) = thumbnail_format(record.content_type.as_deref()) else {
        return Err(Error::Unknown(
            "Cannot generate thumbnails for the requested content".into(),
        ));
    };
    // The smallest standard size that is not smaller than asked, preferring the method asked.
    let Some(&(w, h, m)) = SIZES
        .iter()
        .filter(|(w, h, _)| *w >= width && *h >= height)
        .min_by_key(|(w, h, m)| (*m != method, w * h))
    else {
        return Ok(original);
    };
    let path = thumbnail_path(&root, media_id, w, h, m);
    if let Some(made) = services
        .store
        .thumbnails(media_id)
        .await?
        .into_iter()
        .find(|t| t.width == w && t.height == h && t.method == m)
    {
        return Ok(Served {
            path,
            content_type: Some(made.content_type),
            filename: None,
            size: made.size,
        });
    }
    let source = original.path.clone();
    let target = path.clone();
    let made =
        tokio::task::spawn_blocking(move || make_thumbnail(&source, &target, w, h, m, format))
            .await
            .map_err(internal)??;
    let Some(size) = made else {
        // The original is no larger than the thumbnail would be.
        return Ok(original);
    };
    services
        .store
        .put_thumbnail(ThumbnailRecord {
            media_id: media_id.to_owned(),
            width: w,
            height: h,
            method: m.to_owned(),
            content_type: content_type.to_owned(),
            size,
        })
        .await?;
    Ok(Served {
        path,
        content_type: Some(content_type.to_owned()),
        filename: None,
        size,
    })
}

/// Decodes, resizes and writes a thumbnail; `None` when the image is no larger than the
/// thumbnail (never upscale).
fn make_thumbnail(
    source: &Path,
    target: &Path,
    width: u32,
    height: u32,
    method: &str,
    format: image::ImageFormat,
) -> Result<Option<u64>> {
    let mut reader = image::ImageReader::open(source)
        .map_err(internal)?
        .with_guessed_format()
        .map_err(internal)?;
    let (w, h) = reader.into_dimensions().map_err(|_| {
        Error::Unknown("Cannot generate thumbnails for the requested content".into())
    })?;
    if u64::from(w) * u64::from(h) > MAX_THUMBNAIL_SOURCE_PIXELS {
        return Err(too_large("Content is too large to thumbnail"));
    }
    if w <= width && h <= height {
        return Ok(None);
    }
    reader = image::ImageReader::open(source)
        .map_err(internal)?
        .with_guessed_format()
        .map_err(internal)?;
    let image = reader.decode().map_err(|_| {
        Error::Unknown("Cannot generate thumbnails for the requested content".into())
    })?;
    let filter = image::imageops::FilterType::Triangle;
    let thumb = if method == "crop" {
        image.resize_to_fill(width.min(w), height.min(h), filter)
    } else {
        // Scale: the aspect kept, both sides at least as asked where the image allows.
        let ratio = f64::max(
            f64::from(width) / f64::from(w),
            f64::from(height) / f64::from(h),
        );
        let (tw, th) = (
            ((f64::from(w) * ratio).ceil() as u32).clamp(1, w),
            ((f64::from(h) * ratio).ceil() as u32).clamp(1, h),
        );
        image.resize_exact(tw, th, filter)
    };
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(internal)?;
    }
    let temp = target.with_extension("part");
    let thumb = match format {
        // JPEG has no alpha channel.
        image::ImageFormat::Jpeg => image::DynamicImage::ImageRgb8(thumb.to_rgb8()),
        _ => thumb,
    };
    thumb.save_with_format(&temp, format).map_err(internal)?;
    std::fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(internal)?;
    std::fs::rename(&temp, target).map_err(internal)?;
    let size = std::fs::metadata(target).map_err(internal)?.len();
    Ok(Some(size))
}

/// `GET /_matrix/client/v1/media/config`.
pub fn config(services: &Services) -> serde_json::Value {
    serde_json::json!({ "m.upload.size": services.config.media.max_upload_bytes })
}
