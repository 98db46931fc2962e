//! Server configuration: the TOML keys operators and tests rely on, with their defaults.
//!
//! Loading (file plus `MYELIN_*` environment) lives in the binary; this module only defines
//! the shape and checks values that serde cannot, naming the offending key.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The server name in user IDs (`@alice:server_name`).
    pub server_name: String,
    /// `host:port` to listen on; port 0 picks a free port.
    pub listen: String,
    /// Base URL advertised in `/.well-known/matrix/client`; defaults to `http://{listen}`.
    pub public_baseurl: Option<String>,
    pub database: DatabaseConfig,
    pub registration: RegistrationConfig,
    pub password: PasswordConfig,
    pub limits: LimitsConfig,
    pub rate_limits: RateLimitsConfig,
    pub devices: DevicesConfig,
    pub uia: UiaConfig,
    pub tokens: TokensConfig,
    pub sync: SyncConfig,
    pub rooms: RoomsConfig,
    pub voip: VoipConfig,
    pub media: MediaConfig,
    pub push: PushConfig,
    pub profile: ProfileConfig,
    pub presence: PresenceConfig,
    pub user_directory: UserDirectoryConfig,
    pub support: SupportConfig,
    /// Paths to application-service registration files (YAML).
    pub appservices: Vec<PathBuf>,
    /// Addresses of reverse proxies whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Threads serving requests; defaults to the number of cores. Fewer leaves room for the
    /// database writer and password hashing, which tightens tail latency under load.
    pub workers: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "localhost".into(),
            listen: "127.0.0.1:8008".into(),
            public_baseurl: None,
            database: DatabaseConfig::default(),
            registration: RegistrationConfig::default(),
            password: PasswordConfig::default(),
            limits: LimitsConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            devices: DevicesConfig::default(),
            uia: UiaConfig::default(),
            tokens: TokensConfig::default(),
            sync: SyncConfig::default(),
            rooms: RoomsConfig::default(),
            voip: VoipConfig::default(),
            media: MediaConfig::default(),
            push: PushConfig::default(),
            profile: ProfileConfig::default(),
            presence: PresenceConfig::default(),
            user_directory: UserDirectoryConfig::default(),
            support: SupportConfig::default(),
            appservices: Vec::new(),
            trusted_proxies: Vec::new(),
            workers: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// The room version of new rooms when the client names none: 12, as the spec says. The
    /// reference server still uses 11; an operator whose clients are old may too.
    pub default_version: String,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            default_version: "12".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`.
    pub url: String,
    /// Read-only connections kept open (SQLite).
    pub readers: usize,
    /// Connections in the pool (PostgreSQL).
    pub pool_size: u32,
    /// Longest a single statement may run before PostgreSQL cancels it.
    pub statement_timeout_ms: u64,
    /// TLS to PostgreSQL: `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
    pub tls: String,
    /// SQLite `synchronous`: `full` (default: an acknowledged write survives power loss),
    /// `normal` (survives a crash of the process, not of the machine) or `extra`.
    pub synchronous: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://myelin-data/myelin.db".into(),
            readers: 4,
            pool_size: 16,
            statement_timeout_ms: 30_000,
            tls: "prefer".into(),
            synchronous: "full".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// Open registration (with the `m.login.dummy` stage).
    pub enabled: bool,
    /// When set, registration requires the `m.login.registration_token` stage with this token.
    pub token: Option<String>,
}

/// argon2id parameters; the defaults are OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once; each holds `memory_kib` of memory. Defaults to the core count.
    pub max_concurrent_hashes: Option<usize>,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted (MSC4154 proposes 1 MiB).
    pub max_request_bytes: usize,
    /// Largest content of one account-data entry.
    pub account_data_max_bytes: usize,
    /// Total account data one user may keep (type names plus content); none by default.
    pub account_data_quota_bytes: Option<u64>,
    /// Longest device display name, in characters.
    pub device_display_name_max_chars: usize,
    /// Connections served at once; further ones wait in the listen backlog for a free slot.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers (against slowloris), counted
    /// from the connection's start or the end of the previous response; an idle keep-alive
    /// connection is closed after it too.
    pub header_read_timeout_ms: u64,
    /// Longest a client may take to send a request's body, counted once the headers are in.
    /// Neither timeout limits the response, so long-polling `/sync` is unaffected.
    pub body_read_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            account_data_max_bytes: 64 * 1024,
            account_data_quota_bytes: None,
            device_display_name_max_chars: 100,
            max_connections: 10_000,
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 60_000,
        }
    }
}

/// A token bucket: `burst` events at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Failed logins per account.
    pub login_failures_per_account: RateLimit,
    /// Failed logins per client address.
    pub login_failures_per_address: RateLimit,
    /// Registration attempts per client address.
    pub registration_per_address: RateLimit,
    /// Registration-token validity checks per client address (the spec asks for a limit
    /// against brute force).
    pub registration_token_validity_per_address: RateLimit,
    /// Devices an application service may create (unless its registration says
    /// `rate_limited: false`).
    pub appservice_device_creation: RateLimit,
    /// Joins, leaves, invites, knocks, kicks and bans a user makes (the spec's 429 for
    /// the membership endpoints; appservices are exempt unless `rate_limited`).
    pub room_membership_per_user: RateLimit,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            login_failures_per_account: RateLimit {
                per_second: 0.1,
                burst: 5,
            },
            login_failures_per_address: RateLimit {
                per_second: 0.5,
                burst: 20,
            },
            registration_per_address: RateLimit {
                per_second: 0.2,
                burst: 10,
            },
            registration_token_validity_per_address: RateLimit {
                per_second: 0.1,
                burst: 5,
            },
            appservice_device_creation: RateLimit {
                per_second: 10.0,
                burst: 100,
            },
            room_membership_per_user: RateLimit {
                per_second: 2.0,
                burst: 50,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeviceCapPolicy {
    /// A login beyond the cap fails with 403 `M_FORBIDDEN`.
    #[default]
    Refuse,
    /// A login beyond the cap deletes the device unused for longest.
    EvictOldest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesConfig {
    /// Devices one user may have; none by default.
    pub max_per_user: Option<u32>,
    pub on_limit: DeviceCapPolicy,
    /// Delete devices unused for longer than this many seconds; off by default.
    pub reap_unused_after_secs: Option<u64>,
    /// How often batched `last_seen` updates are written.
    pub last_seen_flush_secs: u64,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self {
            max_per_user: None,
            on_limit: DeviceCapPolicy::Refuse,
            reap_unused_after_secs: None,
            last_seen_flush_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiaConfig {
    /// How long a UIA session stays valid.
    pub session_ttl_secs: u64,
}

/// Lifetimes of tokens issued to clients that ask for a refresh token (`refresh.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// How long an access token issued with a refresh token works.
    pub refreshable_access_token_lifetime_secs: u64,
    /// How long a refresh token works; `None`: until used or its device is deleted.
    pub refresh_token_lifetime_secs: Option<u64>,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            refreshable_access_token_lifetime_secs: 300,
            refresh_token_lifetime_secs: None,
        }
    }
}

impl Default for UiaConfig {
    fn default() -> Self {
        Self {
            session_ttl_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Longest long-poll a client may ask for; longer `timeout`s are shortened.
    pub max_timeout_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: 60_000,
        }
    }
}

/// TURN servers for calls (`GET /voip/turnServer`). With `turn_shared_secret` each user gets
/// time-limited credentials (the TURN REST API that coturn's `use-auth-secret` speaks);
/// otherwise the fixed `turn_username` and `turn_password`. Without `turn_uris` clients are
/// told there is no TURN server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoipConfig {
    pub turn_uris: Vec<String>,
    pub turn_shared_secret: Option<String>,
    pub turn_username: Option<String>,
    pub turn_password: Option<String>,
    /// How long credentials made from the shared secret are valid.
    pub turn_user_lifetime_secs: u64,
}

impl Default for VoipConfig {
    fn default() -> Self {
        Self {
            turn_uris: Vec::new(),
            turn_shared_secret: None,
            turn_username: None,
            turn_password: None,
            turn_user_lifetime_secs: 86_400,
        }
    }
}

/// The media repository: files under `path`, their metadata in the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    pub path: PathBuf,
    /// Largest upload; larger ones are 413 `M_TOO_LARGE`.
    pub max_upload_bytes: u64,
    /// Serve the deprecated unauthenticated `/_matrix/media/v3/download` and `thumbnail`
    /// endpoints; off, they answer 404 `M_NOT_FOUND`, as the spec now allows.
    pub serve_unauthenticated: bool,
    /// Bytes of media one user may have uploaded in all; `None`: no limit.
    pub quota_bytes_per_user: Option<u64>,
    /// Media IDs created (`/create`) and not uploaded yet that one user may hold.
    pub max_pending_uploads_per_user: u32,
    /// How long a created media ID waits for its upload.
    pub pending_upload_expiry_secs: u64,
    pub url_preview: UrlPreviewConfig,
}

/// URL previews (`preview_url`): the server fetches pages its users name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrlPreviewConfig {
    pub enabled: bool,
    /// Fetch from loopback, private and link-local addresses too (never in production).
    pub allow_private: bool,
    /// The most read of a page or its image.
    pub max_bytes: u64,
}

impl Default for UrlPreviewConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            allow_private: false,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("myelin-data/media"),
            max_upload_bytes: 50 * 1024 * 1024,
            serve_unauthenticated: false,
            quota_bytes_per_user: None,
            max_pending_uploads_per_user: 5,
            pending_upload_expiry_secs: 86_400,
            url_preview: UrlPreviewConfig::default(),
        }
    }
}

/// Push gateways (`POST /pushers/set`): their URLs are fetched by the server, so by default
/// an address on loopback, a private network or a link-local range is refused (PG-04).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Allow gateways on loopback and private addresses (a gateway beside the server).
    pub allow_private_gateways: bool,
    /// Read notifications (`GET /notifications`) are kept this long, then deleted; unread
    /// ones stay.
    pub keep_read_notifications_days: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            allow_private_gateways: false,
            keep_read_notifications_days: 30,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileConfig {
    /// Another user's profile is readable only by users sharing a room with them.
    pub require_shared_room: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// Off: presence is neither tracked nor sent, and setting it changes nothing.
    pub enabled: bool,
    /// Online users with no pro-active event for this long become `unavailable`.
    pub idle_after_secs: u64,
    /// Users who have not synced for this long become `offline`.
    pub offline_after_secs: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            idle_after_secs: 300,
            offline_after_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserDirectoryConfig {
    /// Search every user of the server, not only those sharing a room with the searcher or
    /// in a public room.
    pub search_all_users: bool,
}

/// Who to contact about this server (`GET /.well-known/matrix/support`, `support.yaml`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupportConfig {
    /// A web page for support requests.
    pub page: Option<String>,
    pub contacts: Vec<SupportContact>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SupportContact {
    /// `m.role.admin`, `m.role.security`, or a namespaced role of the operator's.
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
}

/// A configuration value that is well-typed but unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration key `{key}`: {problem}")]
pub struct ConfigError {
    pub key: &'static str,
    pub problem: String,
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        problem: problem.into(),
    }
}

impl Config {
    /// Checks what serde cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if <&ruma_common::ServerName>::try_from(self.server_name.as_str()).is_err() {
            return Err(invalid("server_name", "not a valid Matrix server name"));
        }
        self.listen_addr()?;
        self.public_base_url()?;
        self.database_backend()?;
        if !["disable", "prefer", "require", "verify-ca", "verify-full"]
            .contains(&self.database.tls.as_str())
        {
            return Err(invalid(
                "database.tls",
                "must be one of disable, prefer, require, verify-ca, verify-full",
            ));
        }
        if let Some(uri) = self
            .voip
            .turn_uris
            .iter()
            .find(|u| !(u.starts_with("turn:") || u.starts_with("turns:")))
        {
            return Err(invalid(
                "voip.turn_uris",
                format!("{uri} is not a turn: or turns: URI"),
            ));
        }
        if self.tokens.refreshable_access_token_lifetime_secs == 0 {
            return Err(invalid(
                "tokens.refreshable_access_token_lifetime_secs",
                "must be at least 1",
            ));
        }
        if self.presence.offline_after_secs == 0 || self.presence.idle_after_secs == 0 {
            return Err(invalid(
                "presence.offline_after_secs",
                "presence timeouts must be at least 1 second",
            ));
        }
        if self
            .support
            .contacts
            .iter()
            .any(|c| c.role.is_empty() || (c.matrix_id.is_none() && c.email_address.is_none()))
        {
            return Err(invalid(
                "support.contacts",
                "each contact needs a role and a matrix_id or an email_address",
            ));
        }
        if self.workers == Some(0) {
            return Err(invalid("workers", "must be at least 1"));
        }
        if !crate::events::SUPPORTED_VERSIONS.contains(&self.rooms.default_version.as_str()) {
            return Err(invalid(
                "rooms.default_version",
                "must be one of 10, 11, 12",
            ));
        }
        // One connection listens for other instances' changes for good; requests need another.
        if self.database.pool_size < 2 {
            return Err(invalid("database.pool_size", "must be at least 2"));
        }
        if !myelin_store::sqlite::SYNCHRONOUS_LEVELS.contains(&self.database.synchronous.as_str()) {
            return Err(invalid(
                "database.synchronous",
                "must be one of full, normal, extra",
            ));
        }
        if self.database.readers == 0 {
            return Err(invalid("database.readers", "must be at least 1"));
        }
        if argon2::Params::new(
            self.password.memory_kib,
            self.password.iterations,
            self.password.parallelism,
            None,
        )
        .is_err()
        {
            return Err(invalid(
                "password",
                "memory_kib, iterations and parallelism are not valid argon2id parameters",
            ));
        }
        if self.limits.max_request_bytes < 1024 {
            return Err(invalid("limits.max_request_bytes", "must be at least 1024"));
        }
        for (key, value) in [
            ("limits.max_connections", self.limits.max_connections as u64),
            (
                "limits.header_read_timeout_ms",
                self.limits.header_read_timeout_ms,
            ),
            (
                "limits.body_read_timeout_ms",
                self.limits.body_read_timeout_ms,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.registration.token.as_deref() == Some("") {
            return Err(invalid("registration.token", "must not be empty"));
        }
        for (key, limit) in [
            (
                "rate_limits.login_failures_per_account",
                self.rate_limits.login_failures_per_account,
            ),
            (
                "rate_limits.login_failures_per_address",
                self.rate_limits.login_failures_per_address,
            ),
            (
                "rate_limits.registration_per_address",
                self.rate_limits.registration_per_address,
            ),
            (
                "rate_limits.registration_token_validity_per_address",
                self.rate_limits.registration_token_validity_per_address,
            ),
            (
                "rate_limits.appservice_device_creation",
                self.rate_limits.appservice_device_creation,
            ),
            (
                "rate_limits.room_membership_per_user",
                self.rate_limits.room_membership_per_user,
            ),
        ] {
            if !(limit.per_second > 0.0 && limit.per_second.is_finite()) || limit.burst == 0 {
                return Err(invalid(
                    key,
                    "per_second must be positive and burst at least 1",
                ));
            }
        }
        if self.devices.max_per_user == Some(0) {
            return Err(invalid("devices.max_per_user", "must be at least 1"));
        }
        if self.devices.last_seen_flush_secs == 0 {
            return Err(invalid(
                "devices.last_seen_flush_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|_| invalid("listen", "expected host:port, e.g. 127.0.0.1:8008"))
    }

    /// The base URL to advertise, or `None` to advertise `http://{listen}`. Trailing slashes
    /// are dropped, as the default has none: clients append `/_matrix/...` to it.
    pub fn public_base_url(&self) -> Result<Option<String>, ConfigError> {
        let Some(value) = &self.public_baseurl else {
            return Ok(None);
        };
        // Clients take this for the server's address, so anything they cannot use as one is
        // refused here rather than advertised. The value is not echoed: it may hold credentials.
        let bad = |why: &str| {
            invalid(
                "public_baseurl",
                format!(
                    "expected an absolute http(s) URL such as https://matrix.example.org ({why})"
                ),
            )
        };
        let url = url::Url::parse(value).map_err(|err| bad(&err.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("it must not contain a user name or password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it must not have a query or fragment"));
        }
        Ok(Some(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn database_backend(&self) -> Result<Backend, ConfigError> {
        let url = &self.database.url;
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid("database.url", "sqlite:// needs a path"));
            }
            return Ok(Backend::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres(url.clone()));
        }
        Err(invalid(
            "database.url",
            "expected sqlite://PATH or postgres://USER@HOST/DATABASE",
        ))
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

#[cfg(test)]
mod tests {
    use super::Config;

    fn base_url(value: &str) -> Result<Option<String>, String> {
        let config = Config {
            public_baseurl: Some(value.into()),
            ..Config::default()
        };
        config.public_base_url().map_err(|err| err.to_string())
    }

    #[test]
    fn public_baseurl_is_normalised_without_a_trailing_slash() {
        for (value, advertised) in [
            ("https://matrix.example.org", "https://matrix.example.org"),
            ("https://matrix.example.org/", "https://matrix.example.org"),
            (
                "HTTPS://Matrix.Example.org:443/",
                "https://matrix.example.org",
            ),
            ("http://127.0.0.1:8008", "http://127.0.0.1:8008"),
            ("https://example.org/matrix/", "https://example.org/matrix"),
        ] {
            assert_eq!(base_url(value), Ok(Some(advertised.into())), "{value}");
        }
        assert_eq!(Config::default().public_base_url().ok(), Some(None));
    }

    #[test]
    fn public_baseurl_that_clients_cannot_use_is_refused() {
        for (value, why) in [
            ("not a url", "relative URL without a base"),
            (
                "ftp://matrix.example.org",
                "the scheme must be http or https",
            ),
            ("https://", "empty host"),
            (
                "https://me:pw@matrix.example.org",
                "must not contain a user name or password",
            ),
            (
                "https://matrix.example.org?a=b",
                "must not have a query or fragment",
            ),
        ] {
            let err = base_url(value).unwrap_err();
            assert!(
                err.starts_with("invalid configuration key `public_baseurl`: expected an absolute"),
                "{value}: {err}"
            );
            assert!(err.contains(why), "{value}: {err}");
        }
    }
}
