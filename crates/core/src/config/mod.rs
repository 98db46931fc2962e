//! Server configuration: the TOML keys operators and tests rely on, with their defaults.
//!
//! Loading (file plus `MYELIN_*` environment) lives in the binary; this module only defines
//! the shape and checks values that serde cannot, naming the offending key.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

mod sections;

pub use sections::*;

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
    pub metrics: MetricsConfig,
    pub log: LogConfig,
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
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            appservices: Vec::new(),
            trusted_proxies: Vec::new(),
            workers: None,
        }
    }
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
        if let Some(listen) = &self.metrics.listen
            && listen.parse::<SocketAddr>().is_err()
        {
            return Err(invalid(
                "metrics.listen",
                "expected host:port, e.g. 127.0.0.1:9000",
            ));
        }
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
        if !PUBLISH_RULES.contains(&self.rooms.publish_to_directory.as_str()) {
            return Err(invalid(
                "rooms.publish_to_directory",
                "must be one of moderators, members, admins",
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
        if self
            .registration
            .shared_secret
            .as_deref()
            .is_some_and(|s| s.len() < 16)
        {
            return Err(invalid(
                "registration.shared_secret",
                "must be at least 16 characters",
            ));
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
            (
                "rate_limits.reports_per_user",
                self.rate_limits.reports_per_user,
            ),
            (
                "rate_limits.room_lookups_per_user",
                self.rate_limits.room_lookups_per_user,
            ),
            (
                "rate_limits.key_backup_per_user",
                self.rate_limits.key_backup_per_user,
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
