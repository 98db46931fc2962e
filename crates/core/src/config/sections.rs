//! The configuration's sections, one struct per TOML table, with their defaults.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// The room version of new rooms when the client names none: 12, as the spec says. The
    /// reference server still uses 11; an operator whose clients are old may too.
    pub default_version: String,
    /// Who may list a room in the public room directory (`PUT /directory/list/room`,
    /// `createRoom` with `visibility: public`): `moderators` (users who may change the
    /// room's canonical alias, and server admins), `members` (any joined member) or
    /// `admins` (server admins only).
    pub publish_to_directory: String,
}

/// The values `rooms.publish_to_directory` accepts.
pub const PUBLISH_RULES: &[&str] = &["moderators", "members", "admins"];

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            default_version: "12".into(),
            publish_to_directory: "moderators".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`.
    pub url: String,
    /// A file holding `url` (its first line), so a password in it stays out of the
    /// environment and the configuration file.
    pub url_file: Option<PathBuf>,
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
            url_file: None,
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
    /// Registration requires the `m.login.registration_token` stage with a token an admin
    /// created (`/_synapse/admin/v1/registration_tokens`) or `token`.
    pub requires_token: bool,
    /// Enables shared-secret registration (`/_synapse/admin/v1/register`): whoever knows it
    /// can create accounts, admins included, even while registration is closed.
    pub shared_secret: Option<String>,
    /// Files holding `token` and `shared_secret` (their first line).
    pub token_file: Option<PathBuf>,
    pub shared_secret_file: Option<PathBuf>,
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
    /// Reports of events, rooms and users a user makes (the spec's 429 for
    /// `report_content.yaml`).
    pub reports_per_user: RateLimit,
    /// The heavier reads of rooms a user makes: `/search`, `/hierarchy`, `/threads`,
    /// `timestamp_to_event`, `mutual_rooms` and a room's aliases (the spec's 429 for them).
    pub room_lookups_per_user: RateLimit,
    /// Key-backup requests a user makes (the spec's 429 for `key_backup.yaml`): generous,
    /// as a client uploads its room keys in many batches.
    pub key_backup_per_user: RateLimit,
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
            reports_per_user: RateLimit {
                per_second: 0.1,
                burst: 10,
            },
            room_lookups_per_user: RateLimit {
                per_second: 20.0,
                burst: 200,
            },
            key_backup_per_user: RateLimit {
                per_second: 50.0,
                burst: 500,
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
    /// A file holding `turn_shared_secret` (its first line).
    pub turn_shared_secret_file: Option<PathBuf>,
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
            turn_shared_secret_file: None,
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

/// Prometheus metrics, on a listener of their own so that scrapes still work while the
/// client listener is saturated.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` serving `GET /metrics`; off when unset.
    pub listen: Option<String>,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, and one line per request (target `myelin::access`).
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// Which lines are logged, in `RUST_LOG`'s syntax (`RUST_LOG` wins when set); a reload
    /// (SIGHUP) applies a new one.
    pub filter: Option<String>,
}
