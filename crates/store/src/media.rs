//! The storage port for media metadata (`content-repo.yaml`, `authed-content-repo.yaml`).
//! The bytes live in files that `core` manages; a record is written only once its file is
//! durable, so a record never names a missing file.

use async_trait::async_trait;

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRecord {
    pub media_id: String,
    pub uploader: String,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub size: u64,
    pub created_ts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailRecord {
    pub media_id: String,
    pub width: u32,
    pub height: u32,
    /// `crop` or `scale`.
    pub method: String,
    pub content_type: String,
    pub size: u64,
}

#[async_trait]
pub trait MediaStore: Send + Sync {
    async fn put_media(&self, record: MediaRecord) -> StoreResult<()>;

    async fn media(&self, media_id: &str) -> StoreResult<Option<MediaRecord>>;

    /// The thumbnails already made of a media item.
    async fn thumbnails(&self, media_id: &str) -> StoreResult<Vec<ThumbnailRecord>>;

    /// Records a thumbnail; one already recorded for the same size and method stays.
    async fn put_thumbnail(&self, record: ThumbnailRecord) -> StoreResult<()>;
}
