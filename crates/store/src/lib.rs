//! The storage port: one trait, one method per use case, one transaction per method.
//!
//! `core` talks only to [`Store`]; only the binary knows which backend is behind it. Every
//! write method returns after its transaction has committed, so a caller may acknowledge the
//! request as soon as the future resolves. Stream positions (see [`StreamPositions`]) are
//! allocated for the writing transaction and only published once it has committed, so a
//! reader that bounds its query by [`Store::positions`] can never see a gap that later fills.
//!
//! Use cases whose rules span several steps (deleting devices, logging in under a device cap,
//! writing under a quota) are written once, in `core`, over a [`Txn`]: a transaction on one
//! user's data that the backend provides. The rules then cannot drift apart between backends,
//! and everything a device owns (keys, to-device messages, pushers) joins one path.

use async_trait::async_trait;

mod admin;
mod backup;
mod dump;
mod e2ee;
mod ephemeral;
mod media;
pub mod postgres;
mod presence;
mod profile;
mod push;
mod relations;
mod reports;
mod room_directory;
mod room_purge;
mod rooms;
mod search;
pub mod sqlite;
mod streams;

pub use admin::*;
pub use backup::*;
pub use dump::*;
pub use e2ee::*;
pub use ephemeral::*;
pub use media::*;
pub use presence::*;
pub use profile::*;
pub use push::*;
pub use relations::*;
pub use reports::*;
pub use room_directory::*;
pub use room_purge::*;
pub use rooms::*;
pub use search::*;
pub use streams::*;

/// Errors every backend maps its own failures into.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The input cannot be stored: a value the backend refuses (NUL in text, a key too long
    /// for an index). The client's fault, never a server error. `core` checks inputs before
    /// they get here; this is the net under that check, so the two backends answer alike.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A uniqueness rule was broken (for example the user already exists).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The backend failed; the message is for logs only, never for clients.
    #[error("storage backend: {0}")]
    Backend(String),
    /// The store is shutting down and no longer accepts work.
    #[error("storage is closed")]
    Closed,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Milliseconds since the Unix epoch, for the backends' own bookkeeping (migration records,
/// the sweep of expired UIA sessions).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// What a migration does, for the log: its leading comment, up to the first sentence's end.
fn migration_summary(sql: &str) -> String {
    let comment: Vec<&str> = sql
        .lines()
        .map_while(|line| line.strip_prefix("--"))
        .map(str::trim)
        .collect();
    let text = comment.join(" ");
    match text.find(". ") {
        Some(end) => text[..=end].to_owned(),
        None => text,
    }
}

/// A stream position as a query parameter: positions are below 2^63, and a caller's "no
/// bound" (`u64::MAX`) must not wrap to -1.
fn pos_param(pos: u64) -> i64 {
    pos.min(i64::MAX as u64) as i64
}

/// A stored user account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub user_id: String,
    /// `None` for accounts that cannot log in with a password (appservice users).
    pub password_hash: Option<String>,
    pub appservice_id: Option<String>,
    /// A deactivated account keeps only this row, which reserves its ID.
    pub deactivated: bool,
}

/// What to create alongside a new account, or on login: a device and its first token.
#[derive(Debug, Clone)]
pub struct NewLogin {
    pub device_id: String,
    pub display_name: Option<String>,
    pub token_hash: [u8; 32],
    pub ip: Option<String>,
    pub now_ms: i64,
    /// When the access token stops working (`None`: never); set when it comes with a
    /// refresh token.
    pub expires_ts: Option<i64>,
    pub refresh: Option<NewRefresh>,
}

/// A refresh token to issue with an access token.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub token_hash: [u8; 32],
    pub expires_ts: Option<i64>,
}

/// An authenticated session, as resolved from an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub user_id: String,
    pub device_id: String,
}

/// An access token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub owner: TokenOwner,
    pub expires_ts: Option<i64>,
    /// The token came from a refresh and has not been used yet: its first use revokes the
    /// refresh token it was refreshed from ([`AccountStore::first_use`]).
    pub first_use: bool,
    /// An admin locked the account: the token authenticates nothing until it is unlocked.
    pub locked: bool,
    /// An admin suspended the account: it may read but not act (MSC3823).
    pub suspended: bool,
}

/// The outcome of `POST /refresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The new pair was stored; this device's earlier access token no longer works.
    Done(TokenOwner),
    /// No such refresh token (never issued, superseded, or its device deleted).
    Unknown,
    /// The refresh token has expired (and is now deleted).
    Expired,
}

/// A device as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: String,
    pub display_name: Option<String>,
    pub last_seen_ip: Option<String>,
    pub last_seen_ts: Option<i64>,
    pub last_seen_user_agent: Option<String>,
}

/// A batched `last_seen` observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSeen {
    pub user_id: String,
    pub device_id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub ts: i64,
}

/// Outcome of `PUT /devices/{deviceId}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceUpsert {
    Updated,
    Created,
    NotFound,
}

/// A UIA session as persisted between the rounds of an interactive authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiaSession {
    pub session_id: String,
    /// The user the session belongs to; `None` while registering.
    pub user_id: Option<String>,
    /// Fingerprint of the operation the session authorises (method, path, arguments).
    pub operation: String,
    /// Parameters remembered from the first request (registration), as JSON.
    pub request: Option<String>,
    /// Stages completed so far.
    pub completed: Vec<String>,
    /// Result of the operation once it has run (registration's `user_id`), for idempotency.
    pub result: Option<String>,
    pub expires_ms: i64,
}

/// A change of one account-data entry. `content` is raw JSON; `{}` is a deletion tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDataChange {
    pub room_id: Option<String>,
    pub data_type: String,
    pub content: String,
    pub pos: u64,
}

/// The whole storage port: every area's use cases, the units of work, and moving a
/// deployment. `core` holds an `Arc<dyn Store>`; the area traits split the methods the way
/// the backends split their files.
#[async_trait]
pub trait Store:
    AccountStore
    + DeviceStore
    + AccountDataStore
    + SyncStore
    + RoomStore
    + RoomDirectoryStore
    + RoomPurgeStore
    + RelationStore
    + ReportStore
    + SearchStore
    + E2eeStore
    + KeyBackupStore
    + ProfileStore
    + MediaStore
    + EphemeralStore
    + PushStore
    + PresenceStore
    + AdminStore
    + 'static
{
    /// Opens a transaction on one user's data (see [`Txn`]). Units of work on the same user
    /// run one after another; the backend locks the user first, so two of them can never
    /// deadlock on that user's rows.
    async fn begin(&self, user_id: &str) -> StoreResult<Box<dyn Txn>>;

    /// Reads everything (one consistent snapshot).
    async fn export(&self) -> StoreResult<Dump>;

    /// Writes a dump into this store, which must hold no users; one transaction.
    async fn import(&self, dump: Dump) -> StoreResult<()>;

    /// Runs a trivial statement where writes run (SQLite's writer, a PostgreSQL connection):
    /// `Ok` means the database answers now (the readiness check).
    async fn ping(&self) -> StoreResult<()>;

    /// Finishes queued writes and closes the database.
    async fn close(&self);
}

/// Accounts, access tokens and UIA sessions.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates the account, with its localpart as display name, and, unless `login` is
    /// `None`, its first device and token, in one transaction. `Conflict` if the user ID is
    /// taken.
    async fn create_user(
        &self,
        user: User,
        login: Option<NewLogin>,
        now_ms: i64,
    ) -> StoreResult<()>;

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>>;

    async fn access_token(&self, token_hash: [u8; 32]) -> StoreResult<Option<AccessToken>>;

    /// Every erased user, with the room-event position of the erasure.
    async fn erased_users(&self) -> StoreResult<Vec<(String, u64)>>;

    /// The first use of an access token issued by a refresh: the refresh token it was
    /// refreshed from stops working (`refresh.yaml`), in one transaction.
    async fn first_use(&self, access_hash: [u8; 32]) -> StoreResult<()>;

    /// `POST /refresh` in one transaction: the refresh token `old` (unless unknown or
    /// expired) yields the pair in `login` (`token_hash` and `refresh`), for the same device.
    /// The device's access token issued with `old` and any pair issued earlier from `old`
    /// are revoked; `old` itself stays valid until the new pair is first used, and its own
    /// predecessor goes now.
    async fn refresh(&self, old: [u8; 32], login: NewLogin) -> StoreResult<Refreshed>;

    async fn put_uia_session(&self, session: UiaSession) -> StoreResult<()>;

    async fn get_uia_session(
        &self,
        session_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<UiaSession>>;
}

/// Devices and their `last_seen`.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    async fn list_devices(&self, user_id: &str) -> StoreResult<Vec<Device>>;

    async fn get_device(&self, user_id: &str, device_id: &str) -> StoreResult<Option<Device>>;

    /// Renames a device (`display_name: None` leaves the name as it is) or, with `create`,
    /// creates it; either records a device-list change (a call that changes nothing does
    /// not).
    async fn upsert_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<String>,
        create: bool,
        now_ms: i64,
    ) -> StoreResult<DeviceUpsert>;

    /// Devices not seen since `before_ms`, oldest first, at most `limit`.
    async fn stale_devices(&self, before_ms: i64, limit: u32) -> StoreResult<Vec<TokenOwner>>;

    /// Writes a batch of observations; an older observation never overwrites a newer one.
    async fn record_last_seen(&self, batch: Vec<LastSeen>) -> StoreResult<()>;
}

/// Account data, global and per room.
#[async_trait]
pub trait AccountDataStore: Send + Sync {
    /// Stores the latest content of one type and returns its new stream position, in the
    /// cheapest transaction the backend has (the common write; rules that must read first,
    /// such as a quota, use a [`Txn`]).
    async fn put_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
        content: &str,
    ) -> StoreResult<u64>;

    /// The current content, including a `{}` tombstone (callers decide what it means).
    async fn get_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
    ) -> StoreResult<Option<String>>;

    /// Entries whose position is in `(after, upto]`; `after = None` means all of them.
    async fn account_data_changes(
        &self,
        user_id: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<AccountDataChange>>;
}

/// What `/sync` reads besides the areas' data: filters, stream watermarks and wake-ups.
#[async_trait]
pub trait SyncStore: Send + Sync {
    async fn create_filter(&self, user_id: &str, filter: &str) -> StoreResult<u64>;

    async fn get_filter(&self, user_id: &str, filter_id: u64) -> StoreResult<Option<String>>;

    /// The committed watermark of every stream: every change at or below it is visible to
    /// readers, and none above it has been acknowledged.
    async fn positions(&self) -> StoreResult<StreamPositions>;

    /// Users whose data changed through *another* process sharing this database (and, on
    /// backends that deliver them, this one's own changes too). Yields once; `None` for a
    /// backend that only one process can use.
    fn take_wakeups(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Wakeup>> {
        None
    }

    /// Whether other processes may change this database. A process may cache what only it
    /// can change (such as which token belongs to which device) only when this is false.
    fn is_shared(&self) -> bool {
        false
    }
}

/// A transaction on one user's data, for use cases whose rules live in `core`. Nothing is
/// visible to others before [`Txn::commit`] returns `Ok`; dropping a `Txn` without committing
/// rolls it back and releases any stream position it took.
///
/// While a `Txn` is open its holder must not wait for another write to the store: on SQLite
/// the single writer is busy with this transaction until it ends.
#[async_trait]
pub trait Txn: KeysTxn + Send {
    /// Which of these devices of the user exist, in device-ID order (rows locked in that
    /// order, so concurrent units of work never lock two devices in opposite orders).
    async fn existing_devices(&mut self, device_ids: &[String]) -> StoreResult<Vec<String>>;

    async fn count_devices(&mut self) -> StoreResult<u64>;

    /// Every device of the user, in device-ID order.
    async fn device_ids(&mut self) -> StoreResult<Vec<String>>;

    /// Whether the account is deactivated, read under this transaction's lock on the user: a
    /// login that checks it here cannot slip in beside a deactivation.
    async fn is_deactivated(&mut self) -> StoreResult<bool>;

    async fn set_password_hash(&mut self, hash: &str) -> StoreResult<()>;

    /// Marks the account deactivated and deletes its password, profile, account data and key
    /// backups. Its devices go through [`Txn::delete_devices`]. With `erase`, the user is
    /// recorded as erased at the current room-event position.
    async fn deactivate(&mut self, erase: bool) -> StoreResult<()>;

    /// The `n` devices unused for longest (by `last_seen_ts`, else creation time).
    async fn least_recently_used(&mut self, n: u64) -> StoreResult<Vec<String>>;

    /// Creates the device a login asked for, seen now, and records a device-list change.
    async fn create_device(&mut self, login: &NewLogin) -> StoreResult<()>;

    /// Marks an existing device used now (a login reusing it).
    async fn touch_device(&mut self, login: &NewLogin) -> StoreResult<()>;

    /// Revokes every access token of the device.
    async fn revoke_tokens(&mut self, device_id: &str) -> StoreResult<()>;

    async fn add_token(&mut self, login: &NewLogin) -> StoreResult<()>;

    /// Deletes these devices' rows and tokens, with their keys, one-time and fallback keys,
    /// to-device messages and lazy-loading records, and records a device-list change. Data
    /// whose removal is a rule of `core` (account data) goes through the other methods.
    /// Methods take many items at once so that a large deletion is a few steps, not a few per
    /// device.
    async fn delete_devices(&mut self, device_ids: &[String]) -> StoreResult<()>;

    /// The current content of those of these types that are stored, as `(type, content)`.
    async fn account_data_among(
        &mut self,
        room_id: Option<&str>,
        data_types: &[String],
    ) -> StoreResult<Vec<(String, String)>>;

    /// Bytes of the user's account data (type names plus content), leaving out one entry.
    async fn account_data_bytes_except(
        &mut self,
        room_id: Option<&str>,
        data_type: &str,
    ) -> StoreResult<u64>;

    /// Stores content and gives it a new position of the account-data stream.
    async fn put_account_data(
        &mut self,
        room_id: Option<&str>,
        data_type: &str,
        content: &str,
    ) -> StoreResult<u64>;

    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_migration_is_summed_up_by_its_leading_comment() {
        let sql =
            "-- Server administration: who is an admin. More detail\n-- here.\nCREATE TABLE x ();";
        assert_eq!(
            super::migration_summary(sql),
            "Server administration: who is an admin."
        );
        assert_eq!(super::migration_summary("CREATE TABLE x ();"), "");
    }
}
