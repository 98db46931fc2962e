//! Media metadata on PostgreSQL.

use async_trait::async_trait;

use super::*;
use crate::{MediaRecord, MediaStore, ThumbnailRecord};

pub(super) type MediaRow = (String, String, Option<String>, Option<String>, i64, i64);
pub(super) type ThumbnailRow = (String, i64, i64, String, String, i64);

pub(super) fn media_from_row(r: MediaRow) -> MediaRecord {
    MediaRecord {
        media_id: r.0,
        uploader: r.1,
        content_type: r.2,
        filename: r.3,
        size: r.4 as u64,
        created_ts: r.5,
    }
}

pub(super) fn thumbnail_from_row(r: ThumbnailRow) -> ThumbnailRecord {
    ThumbnailRecord {
        media_id: r.0,
        width: r.1 as u32,
        height: r.2 as u32,
        method: r.3,
        content_type: r.4,
        size: r.5 as u64,
    }
}

#[async_trait]
impl MediaStore for PostgresStore {
    async fn put_media(&self, record: MediaRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO media (media_id, uploader, content_type, filename, size, created_ts)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&record.media_id)
        .bind(&record.uploader)
        .bind(&record.content_type)
        .bind(&record.filename)
        .bind(record.size as i64)
        .bind(record.created_ts)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn media(&self, media_id: &str) -> StoreResult<Option<MediaRecord>> {
        let row: Option<MediaRow> = sqlx::query_as(
            "SELECT media_id, uploader, content_type, filename, size, created_ts
             FROM media WHERE media_id = $1",
        )
        .bind(media_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(media_from_row))
    }

    async fn thumbnails(&self, media_id: &str) -> StoreResult<Vec<ThumbnailRecord>> {
        let rows: Vec<ThumbnailRow> = sqlx::query_as(
            "SELECT media_id, width, height, method, content_type, size
             FROM media_thumbnails WHERE media_id = $1",
        )
        .bind(media_id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows.into_iter().map(thumbnail_from_row).collect())
    }

    async fn put_thumbnail(&self, record: ThumbnailRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO media_thumbnails (media_id, width, height, method, content_type, size)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&record.media_id)
        .bind(i64::from(record.width))
        .bind(i64::from(record.height))
        .bind(&record.method)
        .bind(&record.content_type)
        .bind(record.size as i64)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }
}
