//! Media metadata on SQLite.

use async_trait::async_trait;

use super::*;
use crate::{MediaRecord, MediaStore, MediaWrite, PendingMedia, ThumbnailRecord};

pub(super) fn media_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MediaRecord> {
    Ok(MediaRecord {
        media_id: r.get(0)?,
        uploader: r.get(1)?,
        content_type: r.get(2)?,
        filename: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        created_ts: r.get(5)?,
    })
}

#[async_trait]
impl MediaStore for SqliteStore {
    async fn put_media(&self, record: MediaRecord, quota: Option<u64>) -> StoreResult<MediaWrite> {
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<MediaWrite> {
                    if let Some(quota) = quota {
                        let used = usage(conn, &record.uploader)?;
                        if used.saturating_add(record.size) > quota {
                            return Ok(MediaWrite::OverQuota);
                        }
                    }
                    conn.prepare_cached(
                        "INSERT INTO media (media_id, uploader, content_type, filename, size, created_ts)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        record.media_id,
                        record.uploader,
                        record.content_type,
                        record.filename,
                        record.size as i64,
                        record.created_ts
                    ])?;
                    Ok(MediaWrite::Done)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn media_usage(&self, uploader: &str) -> StoreResult<u64> {
        let uploader = uploader.to_owned();
        self.pool
            .read(move |conn| usage(conn, &uploader).map_err(classify))
            .await
    }

    async fn create_pending_media(
        &self,
        media_id: &str,
        uploader: &str,
        now_ms: i64,
        expires_ts: i64,
        max_pending: u32,
    ) -> StoreResult<bool> {
        let (media_id, uploader) = (media_id.to_owned(), uploader.to_owned());
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<bool> {
                    conn.prepare_cached(
                        "DELETE FROM media_pending WHERE uploader = ?1 AND expires_ts <= ?2",
                    )?
                    .execute(params![uploader, now_ms])?;
                    let pending: i64 = conn
                        .prepare_cached("SELECT COUNT(*) FROM media_pending WHERE uploader = ?1")?
                        .query_row([&uploader], |r| r.get(0))?;
                    if pending >= i64::from(max_pending) {
                        return Ok(false);
                    }
                    conn.prepare_cached(
                        "INSERT INTO media_pending (media_id, uploader, created_ts, expires_ts)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![media_id, uploader, now_ms, expires_ts])?;
                    Ok(true)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn pending_media(&self, media_id: &str) -> StoreResult<Option<PendingMedia>> {
        let media_id = media_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT uploader, expires_ts FROM media_pending WHERE media_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([media_id], |r| {
                        Ok(PendingMedia {
                            uploader: r.get(0)?,
                            expires_ts: r.get(1)?,
                        })
                    })
                    .optional()
                })
                .map_err(classify)
            })
            .await
    }

    async fn claim_pending_media(
        &self,
        media_id: &str,
        uploader: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let (media_id, uploader) = (media_id.to_owned(), uploader.to_owned());
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM media_pending
                     WHERE media_id = ?1 AND uploader = ?2 AND expires_ts > ?3",
                )
                .and_then(|mut s| s.execute(params![media_id, uploader, now_ms]))
                .map(|n| n > 0)
                .map_err(classify)
            })
            .await
    }

    async fn media(&self, media_id: &str) -> StoreResult<Option<MediaRecord>> {
        let media_id = media_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT media_id, uploader, content_type, filename, size, created_ts
                     FROM media WHERE media_id = ?1",
                )
                .and_then(|mut s| s.query_row([media_id], media_from_row).optional())
                .map_err(classify)
            })
            .await
    }

    async fn thumbnails(&self, media_id: &str) -> StoreResult<Vec<ThumbnailRecord>> {
        let media_id = media_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT media_id, width, height, method, content_type, size
                     FROM media_thumbnails WHERE media_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_map([media_id], thumbnail_from_row)?
                        .collect::<Result<_, _>>()
                })
                .map_err(classify)
            })
            .await
    }

    async fn put_thumbnail(&self, record: ThumbnailRecord) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO media_thumbnails
                         (media_id, width, height, method, content_type, size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        record.media_id,
                        record.width,
                        record.height,
                        record.method,
                        record.content_type,
                        record.size as i64
                    ])
                })
                .map(drop)
                .map_err(classify)
            })
            .await
    }

    async fn media_of(&self, uploader: &str) -> StoreResult<Vec<MediaRecord>> {
        let uploader = uploader.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT media_id, uploader, content_type, filename, size, created_ts
                     FROM media WHERE uploader = ?1 ORDER BY created_ts, media_id",
                )
                .and_then(|mut s| s.query_map([uploader], media_from_row)?.collect())
                .map_err(classify)
            })
            .await
    }

    async fn delete_media(&self, media_ids: &[String]) -> StoreResult<Vec<String>> {
        let media_ids = media_ids.to_vec();
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<Vec<String>> {
                    let mut deleted = Vec::new();
                    for id in media_ids {
                        conn.prepare_cached("DELETE FROM media_thumbnails WHERE media_id = ?1")?
                            .execute([&id])?;
                        let gone = conn
                            .prepare_cached("DELETE FROM media WHERE media_id = ?1")?
                            .execute([&id])?;
                        if gone > 0 {
                            deleted.push(id);
                        }
                    }
                    Ok(deleted)
                };
                run().map_err(classify)
            })
            .await
    }
}

pub(super) fn thumbnail_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ThumbnailRecord> {
    Ok(ThumbnailRecord {
        media_id: r.get(0)?,
        width: r.get(1)?,
        height: r.get(2)?,
        method: r.get(3)?,
        content_type: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
    })
}

fn usage(conn: &Connection, uploader: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT COALESCE(SUM(size), 0) FROM media WHERE uploader = ?1")?
        .query_row([uploader], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}
