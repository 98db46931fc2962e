//! Myelin's domain logic: accounts, sessions, devices, account data, UIA and `/sync`.
//!
//! Nothing here knows HTTP or SQL. Handlers call one function of a module here with a
//! [`Services`] and a [`auth::Requester`]; the functions talk to storage only through
//! [`myelin_store::Store`].

use std::sync::Arc;

use myelin_store::Store;

pub mod account_data;
pub mod accounts;
pub mod appservice;
pub mod auth;
pub mod config;
pub mod devices;
pub mod error;
pub mod ids;
pub mod password;
pub mod ratelimit;
pub mod sync;
pub mod uia;

pub use error::{Error, Result};

use appservice::Appservices;
use config::Config;
use password::Passwords;
use ratelimit::KeyedLimiter;

/// Rate limiters, one per kind of action.
pub struct Limiters {
    pub login_failures_per_account: KeyedLimiter,
    pub login_failures_per_address: KeyedLimiter,
    pub registration_per_address: KeyedLimiter,
    pub registration_token_validity_per_address: KeyedLimiter,
    pub appservice_device_creation: KeyedLimiter,
}

/// Everything a request needs, built once at start and shared.
pub struct Services {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub passwords: Passwords,
    pub appservices: Appservices,
    pub limiters: Limiters,
    pub notifier: sync::Notifier,
    pub last_seen: devices::LastSeenTracker,
    pub tokens: auth::TokenCache,
    pub uia_sessions: uia::SessionTracker,
}

impl Services {
    /// Builds the services and makes sure every appservice's sender user exists.
    pub async fn start(config: Config, store: Arc<dyn Store>) -> Result<Arc<Self>, String> {
        config.validate().map_err(|e| e.to_string())?;
        let appservices = Appservices::load(&config.appservices, &config.server_name)?;
        let passwords = Passwords::new(&config.password).map_err(|e| e.to_string())?;
        let limits = &config.rate_limits;
        let limiters = Limiters {
            login_failures_per_account: KeyedLimiter::new(limits.login_failures_per_account),
            login_failures_per_address: KeyedLimiter::new(limits.login_failures_per_address),
            registration_per_address: KeyedLimiter::new(limits.registration_per_address),
            registration_token_validity_per_address: KeyedLimiter::new(
                limits.registration_token_validity_per_address,
            ),
            appservice_device_creation: KeyedLimiter::new(limits.appservice_device_creation),
        };
        let services = Arc::new(Self {
            config,
            store: store.clone(),
            passwords,
            appservices,
            limiters,
            notifier: sync::Notifier::default(),
            last_seen: devices::LastSeenTracker::default(),
            tokens: auth::TokenCache::new(!store.is_shared()),
            uia_sessions: uia::SessionTracker::default(),
        });
        // Changes made by other processes on a shared database wake this one's syncs.
        if let Some(mut wakeups) = services.store.take_wakeups() {
            let weak = Arc::downgrade(&services);
            tokio::spawn(async move {
                while let Some(user_id) = wakeups.recv().await {
                    let Some(services) = weak.upgrade() else {
                        return;
                    };
                    services.notifier.wake(&user_id);
                }
            });
        }
        accounts::ensure_appservice_senders(&services)
            .await
            .map_err(|e| format!("creating appservice sender users: {e}"))?;
        Ok(services)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
