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

/// The outcome of storing a media record under a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaWrite {
    Done,
    /// The uploader's media would exceed the quota; nothing was stored.
    OverQuota,
}

/// A media ID created for a later upload (`POST /_matrix/media/v1/create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMedia {
    pub uploader: String,
    pub expires_ts: i64,
}

#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores the record unless the uploader's media, this one included, would exceed
    /// `quota` bytes; the check and the insert are one transaction.
    async fn put_media(&self, record: MediaRecord, quota: Option<u64>) -> StoreResult<MediaWrite>;

    /// Bytes of media the user uploaded.
    async fn media_usage(&self, uploader: &str) -> StoreResult<u64>;

    /// Reserves a media ID for a later upload by `uploader`, unless they already have
    /// `max_pending` unexpired reservations (`false`). Their expired ones are dropped.
    async fn create_pending_media(
        &self,
        media_id: &str,
        uploader: &str,
        now_ms: i64,
        expires_ts: i64,
        max_pending: u32,
    ) -> StoreResult<bool>;

    async fn pending_media(&self, media_id: &str) -> StoreResult<Option<PendingMedia>>;

    /// Takes an unexpired reservation of `uploader` for its upload; of two uploads to one ID
    /// only one gets `true`.
    async fn claim_pending_media(
        &self,
        media_id: &str,
        uploader: &str,
        now_ms: i64,
    ) -> StoreResult<bool>;

    async fn media(&self, media_id: &str) -> StoreResult<Option<MediaRecord>>;

    /// The thumbnails already made of a media item.
    async fn thumbnails(&self, media_id: &str) -> StoreResult<Vec<ThumbnailRecord>>;

    /// Records a thumbnail; one already recorded for the same size and method stays.
    async fn put_thumbnail(&self, record: ThumbnailRecord) -> StoreResult<()>;

    /// The media a user uploaded, oldest first (the admin API).
    async fn media_of(&self, uploader: &str) -> StoreResult<Vec<MediaRecord>>;

    /// Deletes these media records with their thumbnails' records, in one transaction;
    /// returns the IDs that existed. The files are `core`'s to remove.
    async fn delete_media(&self, media_ids: &[String]) -> StoreResult<Vec<String>>;
}
