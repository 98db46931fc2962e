//! Thumbnails: made on first request at the spec's recommended sizes, kept under
//! `thumbnails/`, and served from there afterwards.

use std::path::Path;

use myelin_store::ThumbnailRecord;

use super::{Served, file_path, internal, record, thumbnail_path};
use crate::{
    Error, Services,
    error::{Result, too_large},
};

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
    timeout_ms: Option<u64>,
) -> Result<Served> {
    let record = record(services, server_name, media_id, timeout_ms).await?;
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
