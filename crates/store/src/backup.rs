//! The storage port for server-side key backups (`key_backup.yaml`).
//!
//! Every write checks the version it targets and writes in one transaction, and writes of
//! one user run one after another (KB-16), so a backup created meanwhile never receives keys
//! meant for the old one. Versions are numbers, never reused, even after a deletion (KB-01);
//! a deleted version stays as a marker so that deleting it again answers 200 (KB-07).

use async_trait::async_trait;

use crate::StoreResult;

/// A backup version as `GET /room_keys/version` shows it. `algorithm` and `auth_data` are
/// kept as the client sent them (KB-02).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupVersion {
    pub version: u64,
    pub algorithm: String,
    pub auth_data: String,
    pub etag: u64,
    pub count: u64,
}

/// One session's backed-up key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupKey {
    pub room_id: String,
    pub session_id: String,
    pub first_message_index: i64,
    pub forwarded_count: i64,
    pub is_verified: bool,
    /// Opaque JSON (KB-15).
    pub session_data: String,
}

/// The outcome of a write to a backup's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupWrite {
    Done {
        etag: u64,
        count: u64,
    },
    /// The version does not exist (or was deleted).
    NotFound,
    /// The version exists but is not the current one (KB-09).
    WrongVersion {
        current: u64,
    },
}

/// Which keys of a version a read or a deletion is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupScope {
    All,
    Room(String),
    Session(String, String),
}

/// Whether `new` should replace `stored` (the spec's rule, kept in `core`).
pub type BetterKey = fn(stored: &BackupKey, new: &BackupKey) -> bool;

/// A user's backups, for `myelin db copy`: (user_id, version, deleted) and (user_id,
/// version, key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupDump {
    pub versions: Vec<(String, BackupVersion, bool)>,
    pub keys: Vec<(String, u64, BackupKey)>,
}

#[async_trait]
pub trait KeyBackupStore: Send + Sync {
    /// Creates the next version, which becomes the current one.
    async fn create_backup(
        &self,
        user_id: &str,
        algorithm: &str,
        auth_data: &str,
    ) -> StoreResult<u64>;

    /// A version that was not deleted; `None` asks for the current (numerically latest).
    async fn backup_version(
        &self,
        user_id: &str,
        version: Option<u64>,
    ) -> StoreResult<Option<BackupVersion>>;

    /// Replaces a live version's `auth_data`; false when there is no such version.
    async fn update_backup(
        &self,
        user_id: &str,
        version: u64,
        auth_data: &str,
    ) -> StoreResult<bool>;

    /// Deletes a version and its keys; false when the version never existed.
    async fn delete_backup(&self, user_id: &str, version: u64) -> StoreResult<bool>;

    /// Stores keys in the current version, each only where `better` says it beats the stored
    /// one; the etag moves only when something was stored (KB-12).
    async fn put_backup_keys(
        &self,
        user_id: &str,
        version: u64,
        keys: Vec<BackupKey>,
        better: BetterKey,
    ) -> StoreResult<BackupWrite>;

    /// Keys of a live version (any version, not only the current one, KB-13); `None` when
    /// the version does not exist.
    async fn backup_keys(
        &self,
        user_id: &str,
        version: u64,
        scope: BackupScope,
    ) -> StoreResult<Option<Vec<BackupKey>>>;

    /// Deletes keys of a live version.
    async fn delete_backup_keys(
        &self,
        user_id: &str,
        version: u64,
        scope: BackupScope,
    ) -> StoreResult<BackupWrite>;
}

/// The scope as SQL conditions on `room_id` (`?3`) and `session_id` (`?4`), both backends.
pub(crate) fn scope_params(scope: &BackupScope) -> (Option<&str>, Option<&str>) {
    match scope {
        BackupScope::All => (None, None),
        BackupScope::Room(room) => (Some(room), None),
        BackupScope::Session(room, session) => (Some(room), Some(session)),
    }
}
