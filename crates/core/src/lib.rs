//! Myelin's domain logic: accounts, sessions, devices, account data, UIA and `/sync`.
//!
//! Nothing here knows HTTP or SQL. Handlers call one function of a module here with a
//! [`Services`] and a [`auth::Requester`]; the functions talk to storage only through
//! [`myelin_store::Store`].

use std::sync::{Arc, Weak};

use myelin_store::{Store, Wakeup};

pub mod account_data;
pub mod accounts;
pub mod admin;
pub mod appservice;
pub mod auth;
pub mod config;
pub mod devices;
pub mod directory;
pub mod e2ee;
pub mod error;
pub mod events;
pub mod health;
pub mod ids;
pub mod keys;
pub mod media;
pub mod password;
pub mod presence;
pub mod profile;
pub mod push;
pub mod ratelimit;
pub mod receipts;
pub mod relations;
pub mod reports;
pub mod rooms;
pub mod search;
pub mod sync;
pub mod tags;
pub mod telemetry;
pub mod typing;
pub mod uia;
pub mod user_directory;
pub mod voip;

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
    pub room_membership_per_user: KeyedLimiter,
    pub reports_per_user: KeyedLimiter,
    pub room_lookups_per_user: KeyedLimiter,
    pub key_backup_per_user: KeyedLimiter,
}

/// Everything a request needs, built once at start and shared.
pub struct Services {
    /// This value's own `Arc`, to hand work that must outlive a request to a task of its own.
    me: Weak<Services>,
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub passwords: Passwords,
    pub appservices: Appservices,
    pub limiters: Limiters,
    pub notifier: sync::Notifier,
    pub last_seen: devices::LastSeenTracker,
    pub tokens: auth::TokenCache,
    pub uia_sessions: uia::SessionTracker,
    /// The key every event this server builds is signed with.
    pub key: keys::SigningKey,
    pub rooms: rooms::Rooms,
    /// Push rules and ignore lists of the members an event is evaluated for.
    pub push_recipients: push::eval::RecipientCache,
    /// Delivery to push gateways (see [`push::gateway`]).
    pub delivery: push::gateway::Delivery,
    pub(crate) typing_here: typing::TypingHere,
    pub(crate) presence: presence::PresenceTracker,
    /// URL previews: the fetcher and the previews made lately.
    pub previews: media::Previews,
    /// Users whose events are served redacted to later joiners.
    pub(crate) erased: rooms::erasure::ErasedUsers,
    /// Nonces of shared-secret registration.
    pub(crate) nonces: admin::Nonces,
    /// The admin API's room deletions, running and done.
    pub(crate) room_deletions: admin::RoomDeletions,
    /// Recent counts of the public room list.
    pub(crate) directory_counts: directory::CountCache,
    /// `registration`, which a configuration reload may change (see [`Services::reload`]).
    registration: std::sync::RwLock<config::RegistrationConfig>,
}

impl Services {
    /// Builds the services and makes sure every appservice's sender user exists.
    pub async fn start(config: Config, store: Arc<dyn Store>) -> Result<Arc<Self>, String> {
        config.validate().map_err(|e| e.to_string())?;
        let appservices = Appservices::load(&config.appservices, &config.server_name)?;
        let passwords = Passwords::new(&config.password).map_err(|e| e.to_string())?;
        let pool_size = config.database.pool_size as usize;
        let key = keys::SigningKey::load(store.as_ref())
            .await
            .map_err(|e| format!("loading the signing key: {e}"))?;
        let limits = &config.rate_limits;
        let limiters = Limiters {
            login_failures_per_account: KeyedLimiter::new(limits.login_failures_per_account),
            login_failures_per_address: KeyedLimiter::new(limits.login_failures_per_address),
            registration_per_address: KeyedLimiter::new(limits.registration_per_address),
            registration_token_validity_per_address: KeyedLimiter::new(
                limits.registration_token_validity_per_address,
            ),
            appservice_device_creation: KeyedLimiter::new(limits.appservice_device_creation),
            room_membership_per_user: KeyedLimiter::new(limits.room_membership_per_user),
            reports_per_user: KeyedLimiter::new(limits.reports_per_user),
            room_lookups_per_user: KeyedLimiter::new(limits.room_lookups_per_user),
            key_backup_per_user: KeyedLimiter::new(limits.key_backup_per_user),
        };
        let registration = config.registration.clone();
        let services = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            config,
            store: store.clone(),
            passwords,
            appservices,
            limiters,
            notifier: sync::Notifier::default(),
            last_seen: devices::LastSeenTracker::default(),
            tokens: auth::TokenCache::new(!store.is_shared()),
            uia_sessions: uia::SessionTracker::default(),
            key,
            rooms: rooms::Rooms::new(pool_size),
            push_recipients: push::eval::RecipientCache::new(!store.is_shared()),
            delivery: push::gateway::Delivery::default(),
            typing_here: typing::TypingHere::default(),
            presence: presence::PresenceTracker::default(),
            previews: media::Previews::default(),
            erased: rooms::erasure::ErasedUsers::default(),
            nonces: admin::Nonces::default(),
            room_deletions: admin::RoomDeletions::default(),
            directory_counts: directory::CountCache::default(),
            registration: std::sync::RwLock::new(registration),
        });
        tokio::spawn(typing::expire(Arc::downgrade(&services)));
        tokio::spawn(presence::sweep(Arc::downgrade(&services)));
        tokio::spawn(push::prune(Arc::downgrade(&services)));
        tokio::spawn(telemetry::population(Arc::downgrade(&services)));
        // Changes made by other processes on a shared database wake this one's syncs.
        if let Some(mut wakeups) = services.store.take_wakeups() {
            let weak = Arc::downgrade(&services);
            tokio::spawn(async move {
                while let Some(wakeup) = wakeups.recv().await {
                    let Some(services) = weak.upgrade() else {
                        return;
                    };
                    match wakeup {
                        Wakeup::User(user_id) => services.notifier.wake(&user_id),
                        Wakeup::Room(room_id) => rooms::wake_members(&services, &room_id).await,
                        Wakeup::RoomMates(user_id) => {
                            sync::wake_room_mates(&services, &user_id).await
                        }
                        Wakeup::All => services.notifier.wake_all(),
                    }
                }
            });
        }
        directory::backfill_summaries(&services)
            .await
            .map_err(|e| format!("summarising rooms for the directory: {e}"))?;
        accounts::ensure_appservice_senders(&services)
            .await
            .map_err(|e| format!("creating appservice sender users: {e}"))?;
        Ok(services)
    }
}

/// What a configuration reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Sections now in force.
    pub applied: Vec<&'static str>,
    /// Sections that changed but take effect only after a restart.
    pub need_restart: Vec<&'static str>,
    /// What could not be applied, and why (the running setting stays).
    pub refused: Vec<String>,
}

impl Services {
    /// The registration settings in force.
    pub fn registration(&self) -> config::RegistrationConfig {
        self.registration
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies what can change while the server runs (SIGHUP): `registration`,
    /// `rate_limits` and the appservice registration files (read again, the senders of new
    /// ones created). `new` has been validated; the other sections are compared only to say
    /// which changes wait for a restart.
    pub async fn reload(&self, new: &Config) -> Reloaded {
        let mut done = Reloaded::default();
        let differs =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        if differs(&self.registration(), &new.registration) {
            *self
                .registration
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = new.registration.clone();
            done.applied.push("registration");
        }
        let limits = &new.rate_limits;
        let limiters = [
            (
                &self.limiters.login_failures_per_account,
                limits.login_failures_per_account,
            ),
            (
                &self.limiters.login_failures_per_address,
                limits.login_failures_per_address,
            ),
            (
                &self.limiters.registration_per_address,
                limits.registration_per_address,
            ),
            (
                &self.limiters.registration_token_validity_per_address,
                limits.registration_token_validity_per_address,
            ),
            (
                &self.limiters.appservice_device_creation,
                limits.appservice_device_creation,
            ),
            (
                &self.limiters.room_membership_per_user,
                limits.room_membership_per_user,
            ),
            (&self.limiters.reports_per_user, limits.reports_per_user),
            (
                &self.limiters.room_lookups_per_user,
                limits.room_lookups_per_user,
            ),
            (
                &self.limiters.key_backup_per_user,
                limits.key_backup_per_user,
            ),
        ];
        let mut limits_changed = false;
        for (limiter, limit) in limiters {
            if differs(&limiter.limit(), &limit) {
                limiter.set_limit(limit);
                limits_changed = true;
            }
        }
        if limits_changed {
            done.applied.push("rate_limits");
        }
        match Appservices::load(&new.appservices, &self.config.server_name) {
            Ok(loaded) => {
                let describe = |services: Vec<Arc<appservice::Appservice>>| {
                    let mut all: Vec<String> = services.iter().map(|s| format!("{s:?}")).collect();
                    all.sort();
                    all
                };
                if describe(loaded.all()) != describe(self.appservices.all()) {
                    self.appservices.replace(loaded);
                    done.applied.push("appservices");
                    if let Err(err) = accounts::ensure_appservice_senders(self).await {
                        done.refused
                            .push(format!("creating appservice sender users: {err}"));
                    }
                }
            }
            Err(err) => done.refused.push(err),
        }
        let old = &self.config;
        let fixed: [(&'static str, &dyn std::fmt::Debug, &dyn std::fmt::Debug); 21] = [
            ("server_name", &old.server_name, &new.server_name),
            ("listen", &old.listen, &new.listen),
            ("public_baseurl", &old.public_baseurl, &new.public_baseurl),
            ("database", &old.database, &new.database),
            ("password", &old.password, &new.password),
            ("limits", &old.limits, &new.limits),
            ("devices", &old.devices, &new.devices),
            ("uia", &old.uia, &new.uia),
            ("tokens", &old.tokens, &new.tokens),
            ("sync", &old.sync, &new.sync),
            ("rooms", &old.rooms, &new.rooms),
            ("voip", &old.voip, &new.voip),
            ("media", &old.media, &new.media),
            ("push", &old.push, &new.push),
            ("profile", &old.profile, &new.profile),
            ("presence", &old.presence, &new.presence),
            ("user_directory", &old.user_directory, &new.user_directory),
            ("support", &old.support, &new.support),
            ("metrics", &old.metrics, &new.metrics),
            (
                "trusted_proxies",
                &old.trusted_proxies,
                &new.trusted_proxies,
            ),
            ("workers", &old.workers, &new.workers),
        ];
        for (name, a, b) in fixed {
            if differs(a, b) {
                done.need_restart.push(name);
            }
        }
        done
    }
}

impl Services {
    /// Runs `work` to its end on a task of its own, even if the request that started it is
    /// cancelled (the client hung up): a write and what must follow it (dropping cached
    /// tokens, ending the flight of stream positions, waking syncs) happen all or not at all.
    pub async fn detached<T, Fut>(&self, work: impl FnOnce(Arc<Services>) -> Fut) -> Result<T>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| Error::Internal("the server is shutting down".into()))?;
        tokio::spawn(work(me))
            .await
            .map_err(|e| Error::Internal(format!("detached work failed: {e}").into()))?
    }

    /// Starts `work` on a task of its own and does not wait for it (the admin API's
    /// background jobs, whose progress is asked for separately).
    pub(crate) fn spawn<Fut>(&self, work: impl FnOnce(Arc<Services>) -> Fut) -> Result<()>
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| Error::Internal("the server is shutting down".into()))?;
        tokio::spawn(work(me));
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
