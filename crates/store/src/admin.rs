//! What server administration stores: the flags an admin sets on accounts, the accounts as
//! the admin API lists them, and registration tokens.

use async_trait::async_trait;

use crate::StoreResult;

/// Flags an admin sets on an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFlags {
    /// A server admin: may call the admin API.
    pub admin: bool,
    /// No request of the account authenticates and it cannot log in, until unlocked.
    pub locked: bool,
    /// The account may read but not act in rooms or change its profile (MSC3823).
    pub suspended: bool,
    /// `None` for a regular user; `bot`, `support` or a type of the operator's.
    pub user_type: Option<String>,
}

/// A change of [`UserFlags`]; `None` leaves a flag as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagsChange {
    pub admin: Option<bool>,
    pub locked: Option<bool>,
    pub suspended: Option<bool>,
    /// `Some(None)` clears the type.
    pub user_type: Option<Option<String>>,
}

/// One account as the admin API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSummary {
    pub user_id: String,
    pub flags: UserFlags,
    pub deactivated: bool,
    pub erased: bool,
    pub appservice_id: Option<String>,
    pub creation_ts: i64,
    /// Raw JSON values of the profile fields.
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    /// The latest `last_seen_ts` of its devices.
    pub last_seen_ts: Option<i64>,
}

/// A registration token an admin created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationToken {
    pub token: String,
    /// `None`: any number of registrations.
    pub uses_allowed: Option<u64>,
    /// Registrations that presented the token and have neither completed nor expired.
    pub pending: u64,
    pub completed: u64,
    /// Milliseconds since the epoch after which the token is refused; `None`: never.
    pub expiry_time: Option<i64>,
}

impl RegistrationToken {
    /// Whether one more registration may present it at `now_ms`.
    pub fn usable(&self, now_ms: i64) -> bool {
        self.uses_allowed
            .is_none_or(|allowed| self.pending + self.completed < allowed)
            && self.expiry_time.is_none_or(|t| t > now_ms)
    }
}

/// A change of a registration token; `None` leaves a field as it is, `Some(None)` removes
/// the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenChange {
    pub uses_allowed: Option<Option<u64>>,
    pub expiry_time: Option<Option<i64>>,
}

/// How many accounts and devices there are, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Population {
    pub active_users: u64,
    pub deactivated_users: u64,
    pub locked_users: u64,
    pub suspended_users: u64,
    pub devices: u64,
    /// Devices seen since the time asked about.
    pub active_devices: u64,
}

/// The counts of [`Population`] in one statement both backends understand (`?` is the
/// time since which a device counts as active).
pub(crate) const POPULATION: &str = "SELECT
    (SELECT COUNT(*) FROM users WHERE NOT deactivated),
    (SELECT COUNT(*) FROM users WHERE deactivated),
    (SELECT COUNT(*) FROM users WHERE locked),
    (SELECT COUNT(*) FROM users WHERE suspended),
    (SELECT COUNT(*) FROM devices),
    (SELECT COUNT(*) FROM devices WHERE last_seen_ts >= $1)";

/// The admin API's use cases.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// `None` if there is no such account.
    async fn user_flags(&self, user_id: &str) -> StoreResult<Option<UserFlags>>;

    /// Applies the change; `false` if there is no such account.
    async fn set_user_flags(&self, user_id: &str, change: FlagsChange) -> StoreResult<bool>;

    /// Every account, in user-ID order (the admin API filters, sorts and pages them).
    async fn user_summaries(&self) -> StoreResult<Vec<UserSummary>>;

    async fn user_summary(&self, user_id: &str) -> StoreResult<Option<UserSummary>>;

    /// Undoes a deactivation: the account is active again with this password and its
    /// localpart as display name, and no longer erased.
    async fn reactivate(&self, user_id: &str, password_hash: Option<&str>) -> StoreResult<()>;

    async fn registration_tokens(&self) -> StoreResult<Vec<RegistrationToken>>;

    async fn registration_token(&self, token: &str) -> StoreResult<Option<RegistrationToken>>;

    /// `Conflict` if the token exists.
    async fn create_registration_token(&self, token: RegistrationToken) -> StoreResult<()>;

    /// `None` if there is no such token.
    async fn update_registration_token(
        &self,
        token: &str,
        change: TokenChange,
    ) -> StoreResult<Option<RegistrationToken>>;

    /// `false` if there was no such token.
    async fn delete_registration_token(&self, token: &str) -> StoreResult<bool>;

    /// The registration of UIA session `session_id` presents the token: if it is usable now,
    /// the session holds one of its uses until `expires_ts` (its expiry) and this returns
    /// `true`, in one transaction, so two registrations cannot both take its last use. A
    /// session that holds a use already keeps it.
    async fn reserve_registration_token(
        &self,
        token: &str,
        session_id: &str,
        now_ms: i64,
        expires_ts: i64,
    ) -> StoreResult<bool>;

    /// The registration of `session_id` created its account: its use of the token counts as
    /// completed.
    async fn complete_registration_token(&self, token: &str, session_id: &str) -> StoreResult<()>;

    /// Every room this server knows, in room-ID order.
    async fn room_ids(&self) -> StoreResult<Vec<String>>;

    /// Accounts and devices, with the devices seen since `active_since_ms`.
    async fn population(&self, active_since_ms: i64) -> StoreResult<Population>;
}

/// The administration part of a [`crate::Dump`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminDump {
    /// (user_id, flags) of the accounts whose flags are not the defaults.
    pub user_flags: Vec<(String, UserFlags)>,
    pub registration_tokens: Vec<RegistrationToken>,
}
