//! The storage port: one trait, one method per use case, one transaction per method.
//!
//! `core` talks only to [`Store`]; only the binary knows which backend is behind it. Every
//! write method returns after its transaction has committed, so a caller may acknowledge the
//! request as soon as the future resolves. Stream positions (see [`StreamPositions`]) are
//! allocated inside the writing transaction and only published once it has committed, so a
//! reader that bounds its query by [`Store::positions`] can never see a gap that later fills.

use async_trait::async_trait;

pub mod postgres;
pub mod sqlite;

/// Errors every backend maps its own failures into.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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

/// A stored user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: String,
    /// `None` for accounts that cannot log in with a password (appservice users).
    pub password_hash: Option<String>,
    pub appservice_id: Option<String>,
}

/// What to create alongside a new account, or on login: a device and its first token.
#[derive(Debug, Clone)]
pub struct NewLogin {
    pub device_id: String,
    pub display_name: Option<String>,
    pub token_hash: [u8; 32],
    pub ip: Option<String>,
    pub now_ms: i64,
}

/// Options that shape how a login treats the user's existing devices.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceCap {
    /// Maximum number of devices a user may hold; `None` means no cap.
    pub max_devices: Option<u32>,
    /// When the cap is reached, delete the device unused for longest instead of refusing.
    pub evict_oldest: bool,
}

/// The result of a login's device handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A token was issued; `created` tells whether the device is new.
    /// `evicted` lists devices removed to respect the device cap.
    Issued { created: bool, evicted: Vec<String> },
    /// The device cap is reached and eviction is off.
    DeviceCapReached,
}

/// An authenticated session, as resolved from an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub user_id: String,
    pub device_id: String,
}

/// A device as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: String,
    pub display_name: Option<String>,
    pub last_seen_ip: Option<String>,
    pub last_seen_ts: Option<i64>,
}

/// A batched `last_seen` observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSeen {
    pub user_id: String,
    pub device_id: String,
    pub ip: Option<String>,
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

/// Committed positions of every stream. Everything at or below a position is visible to
/// readers; nothing above it has been acknowledged yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamPositions {
    pub account_data: u64,
}

/// What a device deletion removed, so callers can invalidate caches and wake waiters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedDevices {
    pub device_ids: Vec<String>,
}

/// Outcome of an account-data write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountDataWrite {
    Written(u64),
    /// The user's quota would be exceeded; nothing was written.
    QuotaExceeded,
}

/// Everything a deployment keeps, for moving it from one backend to another
/// (`myelin db copy`). UIA sessions are transient and not included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    /// (user, created_ts)
    pub users: Vec<(User, i64)>,
    /// (user_id, device, created_ts)
    pub devices: Vec<(String, Device, i64)>,
    /// (token_hash, user_id, device_id, created_ts)
    pub access_tokens: Vec<(Vec<u8>, String, String, i64)>,
    /// (user_id, change)
    pub account_data: Vec<(String, AccountDataChange)>,
    /// (user_id, filter_id, filter)
    pub filters: Vec<(String, i64, String)>,
    pub positions: StreamPositions,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- accounts and sessions ---------------------------------------------------------

    /// Creates the account and, unless `login` is `None`, its first device and token, in one
    /// transaction. `Conflict` if the user ID is taken.
    async fn create_user(
        &self,
        user: User,
        login: Option<NewLogin>,
        now_ms: i64,
    ) -> StoreResult<()>;

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>>;

    /// Issues a token for `device_id`, creating the device if it is new. Reusing a device
    /// revokes its earlier tokens, as the spec's "Relationship between access tokens and
    /// devices" requires.
    async fn login(
        &self,
        user_id: &str,
        login: NewLogin,
        cap: DeviceCap,
    ) -> StoreResult<LoginOutcome>;

    async fn token_owner(&self, token_hash: [u8; 32]) -> StoreResult<Option<TokenOwner>>;

    // --- devices ---------------------------------------------------------------------

    async fn list_devices(&self, user_id: &str) -> StoreResult<Vec<Device>>;

    async fn get_device(&self, user_id: &str, device_id: &str) -> StoreResult<Option<Device>>;

    /// Renames a device (`display_name: None` leaves the name as it is) or, with `create`,
    /// creates it.
    async fn upsert_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<String>,
        create: bool,
        now_ms: i64,
    ) -> StoreResult<DeviceUpsert>;

    /// Deletes these devices of the user and everything that hangs off them, in one
    /// transaction. Unknown IDs are ignored.
    async fn delete_devices(
        &self,
        user_id: &str,
        device_ids: Vec<String>,
    ) -> StoreResult<DeletedDevices>;

    /// Devices not seen since `before_ms`, oldest first, at most `limit`.
    async fn stale_devices(&self, before_ms: i64, limit: u32) -> StoreResult<Vec<TokenOwner>>;

    /// Writes a batch of observations; an older observation never overwrites a newer one.
    async fn record_last_seen(&self, batch: Vec<LastSeen>) -> StoreResult<()>;

    // --- user-interactive authentication ------------------------------------------------

    async fn put_uia_session(&self, session: UiaSession) -> StoreResult<()>;

    async fn get_uia_session(
        &self,
        session_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<UiaSession>>;

    // --- account data ----------------------------------------------------------------

    /// Stores the latest content of one type and returns its new stream position. A
    /// `quota_bytes` of `Some(n)` refuses the write when the user's total would exceed `n`.
    async fn put_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
        content: &str,
        quota_bytes: Option<u64>,
    ) -> StoreResult<AccountDataWrite>;

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

    // --- filters ---------------------------------------------------------------------

    async fn create_filter(&self, user_id: &str, filter: &str) -> StoreResult<u64>;

    async fn get_filter(&self, user_id: &str, filter_id: u64) -> StoreResult<Option<String>>;

    // --- streams ---------------------------------------------------------------------

    /// The committed watermark of every stream: every change at or below it is visible to
    /// readers, and none above it has been acknowledged.
    async fn positions(&self) -> StoreResult<StreamPositions>;

    /// Users whose data changed through *another* process sharing this database (and, on
    /// backends that deliver them, this one's own changes too). Yields once; `None` for a
    /// backend that only one process can use.
    fn take_wakeups(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        None
    }

    /// Whether other processes may change this database. A process may cache what only it
    /// can change (such as which token belongs to which device) only when this is false.
    fn is_shared(&self) -> bool {
        false
    }

    // --- moving deployments ------------------------------------------------------------

    /// Reads everything (one consistent snapshot).
    async fn export(&self) -> StoreResult<Dump>;

    /// Writes a dump into this store, which must hold no users; one transaction.
    async fn import(&self, dump: Dump) -> StoreResult<()>;

    /// Finishes queued writes and closes the database.
    async fn close(&self);
}
