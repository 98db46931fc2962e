//! Media metadata on PostgreSQL.

use async_trait::async_trait;

use super::*;
use crate::{MediaRecord, MediaStore, MediaWrite, PendingMedia, ThumbnailRecord};

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
    async fn put_media(&self, record: MediaRecord, quota: Option<u64>) -> StoreResult<MediaWrite> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        if let Some(quota) = quota {
            // Uploads of one user are checked one after the other.
            lock_user(&mut tx, &record.uploader).await?;
            let used = usage(&mut tx, &record.uploader).await?;
            if used.saturating_add(record.size) > quota {
                return Ok(MediaWrite::OverQuota);
            }
        }
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
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(MediaWrite::Done)
    }

    async fn media_usage(&self, uploader: &str) -> StoreResult<u64> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        usage(&mut conn, uploader).await
    }

    async fn create_pending_media(
        &self,
        media_id: &str,
        uploader: &str,
        now_ms: i64,
        expires_ts: i64,
        max_pending: u32,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        lock_user(&mut tx, uploader).await?;
        sqlx::query("DELETE FROM media_pending WHERE uploader = $1 AND expires_ts <= $2")
            .bind(uploader)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM media_pending WHERE uploader = $1")
                .bind(uploader)
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
        if pending >= i64::from(max_pending) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO media_pending (media_id, uploader, created_ts, expires_ts)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(media_id)
        .bind(uploader)
        .bind(now_ms)
        .bind(expires_ts)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn pending_media(&self, media_id: &str) -> StoreResult<Option<PendingMedia>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT uploader, expires_ts FROM media_pending WHERE media_id = $1")
                .bind(media_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
        Ok(row.map(|(uploader, expires_ts)| PendingMedia {
            uploader,
            expires_ts,
        }))
    }

    async fn claim_pending_media(
        &self,
        media_id: &str,
        uploader: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM media_pending WHERE media_id = $1 AND uploader = $2 AND expires_ts > $3",
        )
        .bind(media_id)
        .bind(uploader)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() > 0)
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

    async fn media_of(&self, uploader: &str) -> StoreResult<Vec<MediaRecord>> {
        let rows: Vec<MediaRow> = sqlx::query_as(
            "SELECT media_id, uploader, content_type, filename, size, created_ts
             FROM media WHERE uploader = $1 ORDER BY created_ts, media_id",
        )
        .bind(uploader)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows.into_iter().map(media_from_row).collect())
    }

    async fn delete_media(&self, media_ids: &[String]) -> StoreResult<Vec<String>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("DELETE FROM media_thumbnails WHERE media_id = ANY($1)")
            .bind(media_ids)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let deleted: Vec<String> =
            sqlx::query_scalar("DELETE FROM media WHERE media_id = ANY($1) RETURNING media_id")
                .bind(media_ids)
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(deleted)
    }
}

async fn usage(conn: &mut PgConnection, uploader: &str) -> StoreResult<u64> {
    let used: i64 =
        sqlx::query_scalar("SELECT COALESCE(SUM(size), 0)::BIGINT FROM media WHERE uploader = $1")
            .bind(uploader)
            .fetch_one(conn)
            .await
            .map_err(classify)?;
    Ok(used.max(0) as u64)
}
