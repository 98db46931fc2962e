//! Media metadata on SQLite.

use async_trait::async_trait;

use super::*;
use crate::{MediaRecord, MediaStore, ThumbnailRecord};

#[async_trait]
impl MediaStore for SqliteStore {
    async fn put_media(&self, record: MediaRecord) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO media (media_id, uploader, content_type, filename, size, created_ts)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        record.media_id,
                        record.uploader,
                        record.content_type,
                        record.filename,
                        record.size as i64,
                        record.created_ts
                    ])
                })
                .map(drop)
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
                .and_then(|mut s| {
                    s.query_row([media_id], |r| {
                        Ok(MediaRecord {
                            media_id: r.get(0)?,
                            uploader: r.get(1)?,
                            content_type: r.get(2)?,
                            filename: r.get(3)?,
                            size: r.get::<_, i64>(4)? as u64,
                            created_ts: r.get(5)?,
                        })
                    })
                    .optional()
                })
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
