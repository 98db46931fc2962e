//! Who is making a request: access-token resolution and appservice identity assertion.
//!
//! An appservice's `as_token` is recognised by its hash and is never stored as a user token
//! (Tuwunel `1810279ce`: mixing the two let token lookup misidentify the appservice). With it,
//! `?user_id=` names a user in the appservice's namespace and `?device_id=` (MSC4326) one of
//! that user's devices.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use myelin_store::AccessToken;

use crate::{
    Services,
    appservice::Appservice,
    error::{Error, Result, forbidden},
    ids,
};

/// The authenticated party of a request.
#[derive(Debug, Clone)]
pub struct Requester {
    pub user_id: String,
    /// `None` for an appservice acting without `device_id`.
    pub device_id: Option<String>,
    /// Set when the request used an appservice's `as_token`.
    pub appservice: Option<Arc<Appservice>>,
    /// The hash of the user access token, to re-check it after a long wait.
    pub token_hash: Option<[u8; 32]>,
    /// An admin suspended the account (MSC3823): it may read, leave rooms and redact its own
    /// events, but not send, join, invite, knock, create rooms or change its profile.
    pub suspended: bool,
}

impl Requester {
    /// 403 `M_USER_SUSPENDED` for a suspended account.
    pub fn refuse_if_suspended(&self) -> Result<()> {
        if self.suspended {
            Err(Error::UserSuspended)
        } else {
            Ok(())
        }
    }
}

/// What the transport layer extracted from a request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Credentials<'a> {
    pub token: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub device_id: Option<&'a str>,
    pub client_ip: Option<std::net::IpAddr>,
    pub user_agent: Option<&'a str>,
}

pub async fn authenticate(services: &Services, creds: Credentials<'_>) -> Result<Requester> {
    let Some(token) = creds.token else {
        return Err(Error::MissingToken);
    };
    if let Some(service) = services.appservices.by_token(token) {
        return appservice_requester(services, service, creds).await;
    }
    let hash = ids::token_hash(token);
    let now = crate::now_ms();
    let token = match services.tokens.get(&hash) {
        Some(token) => token,
        None => {
            let generation = services.tokens.generation();
            let Some(token) = services.store.access_token(hash).await? else {
                return Err(Error::UnknownToken);
            };
            if !token.first_use {
                services.tokens.insert(generation, hash, &token);
            } else if !expired(&token, now) {
                // The first use of a refreshed token retires the refresh token it came from.
                services.store.first_use(hash).await?;
            }
            token
        }
    };
    if token.locked {
        return Err(Error::UserLocked);
    }
    if expired(&token, now) {
        return Err(Error::SoftLoggedOut);
    }
    let suspended = token.suspended;
    let owner = token.owner;
    services.last_seen.record(
        &owner.user_id,
        &owner.device_id,
        creds.client_ip,
        creds.user_agent,
    );
    Ok(Requester {
        user_id: owner.user_id,
        device_id: Some(owner.device_id),
        appservice: None,
        token_hash: Some(hash),
        suspended,
    })
}

fn expired(token: &AccessToken, now_ms: i64) -> bool {
    token.expires_ts.is_some_and(|t| t <= now_ms)
}

/// Resolves only the appservice, for endpoints (register, login) that take an `as_token` but
/// no identity assertion.
pub fn appservice_for(services: &Services, token: Option<&str>) -> Option<Arc<Appservice>> {
    token.and_then(|t| services.appservices.by_token(t))
}

async fn appservice_requester(
    services: &Services,
    service: Arc<Appservice>,
    creds: Credentials<'_>,
) -> Result<Requester> {
    let user_id = match creds.user_id {
        Some(asserted) => {
            if ids::has_nul(asserted)
                || ids::parse_user_id(asserted).is_none()
                || !service.is_interested_in(asserted)
            {
                return Err(forbidden(
                    "Application service cannot masquerade as this user",
                ));
            }
            if asserted != service.sender {
                match services.store.get_user(asserted).await? {
                    None => {
                        return Err(forbidden(
                            "Application service has not registered this user",
                        ));
                    }
                    Some(user) if user.deactivated => return Err(Error::UserDeactivated),
                    Some(_) => {}
                }
            }
            asserted.to_owned()
        }
        None => service.sender.clone(),
    };
    let device_id = match creds.device_id {
        Some(device_id) => {
            if !ids::could_be_device_id(device_id)
                || services
                    .store
                    .get_device(&user_id, device_id)
                    .await?
                    .is_none()
            {
                return Err(Error::UnknownDevice);
            }
            services
                .last_seen
                .record(&user_id, device_id, creds.client_ip, creds.user_agent);
            Some(device_id.to_owned())
        }
        None => None,
    };
    Ok(Requester {
        user_id,
        device_id,
        appservice: Some(service),
        token_hash: None,
        suspended: false,
    })
}

/// Whether the requester's credentials are still valid (used after a long-poll wait, so a
/// device deleted meanwhile is refused as soon as the deletion is acknowledged, and a token
/// that expired meanwhile is a soft logout).
pub async fn still_valid(services: &Services, requester: &Requester) -> Result<()> {
    match (&requester.token_hash, &requester.device_id) {
        (Some(hash), _) => {
            // The cache forgets a token before its revocation is acknowledged (see
            // TokenCache): a token it still holds exists, and every woken long-poll is spared
            // a query.
            let token = match services.tokens.get(hash) {
                Some(token) => Some(token),
                None => services.store.access_token(*hash).await?,
            };
            match token {
                None => Err(Error::UnknownToken),
                Some(token) if token.locked => Err(Error::UserLocked),
                Some(token) if expired(&token, crate::now_ms()) => Err(Error::SoftLoggedOut),
                Some(_) => Ok(()),
            }
        }
        (None, Some(device_id)) => match services
            .store
            .get_device(&requester.user_id, device_id)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(Error::UnknownToken),
        },
        (None, None) => Ok(()),
    }
}

/// Which device each recently used access token belongs to, so that authenticating a request
/// needs no database read. Only used when this process is the only one writing the database
/// (SQLite): with a shared database another process may revoke a token at any moment.
///
/// Invariant: once a revocation has been acknowledged, the cache cannot answer for the
/// revoked token. Revocations remove entries *after* the deleting transaction committed and
/// *before* the caller acknowledges, and bump a generation counter under the same lock. A
/// lookup that read the database before the revocation committed carries the old generation
/// and is not inserted, so it cannot bring the dead token back.
pub struct TokenCache {
    enabled: bool,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    generation: u64,
    owners: HashMap<[u8; 32], AccessToken>,
}

/// Entries kept before the cache starts over (each is about 100 bytes).
const TOKEN_CACHE_CAPACITY: usize = 100_000;

impl TokenCache {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            inner: Mutex::default(),
        }
    }

    fn get(&self, hash: &[u8; 32]) -> Option<AccessToken> {
        if !self.enabled {
            return None;
        }
        self.inner.lock().ok()?.owners.get(hash).cloned()
    }

    fn generation(&self) -> u64 {
        self.inner.lock().map_or(u64::MAX, |i| i.generation)
    }

    fn insert(&self, generation: u64, hash: [u8; 32], token: &AccessToken) {
        if !self.enabled {
            return;
        }
        if let Ok(mut inner) = self.inner.lock()
            && inner.generation == generation
        {
            if inner.owners.len() >= TOKEN_CACHE_CAPACITY {
                inner.owners.clear();
            }
            inner.owners.insert(hash, token.clone());
        }
    }

    /// Forgets every token of the user.
    pub fn forget_user(&self, user_id: &str) {
        if !self.enabled {
            return;
        }
        if let Ok(mut inner) = self.inner.lock() {
            inner.generation += 1;
            inner.owners.retain(|_, t| t.owner.user_id != user_id);
        }
    }

    /// Forgets every token of these devices (called once their tokens are gone from storage).
    pub fn forget_devices(&self, user_id: &str, device_ids: &[String]) {
        if !self.enabled || device_ids.is_empty() {
            return;
        }
        if let Ok(mut inner) = self.inner.lock() {
            inner.generation += 1;
            inner.owners.retain(|_, t| {
                t.owner.user_id != user_id || !device_ids.contains(&t.owner.device_id)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use myelin_store::TokenOwner;

    use super::*;

    fn owner(device: &str) -> AccessToken {
        AccessToken {
            owner: TokenOwner {
                user_id: "@a:x".into(),
                device_id: device.into(),
            },
            expires_ts: None,
            first_use: false,
            locked: false,
            suspended: false,
        }
    }

    #[test]
    fn a_lookup_older_than_a_revocation_is_not_cached() {
        let cache = TokenCache::new(true);
        let stale = cache.generation();
        cache.forget_devices("@a:x", &["D".into()]);
        cache.insert(stale, [1; 32], &owner("D"));
        assert_eq!(cache.get(&[1; 32]), None);
        cache.insert(cache.generation(), [2; 32], &owner("E"));
        assert_eq!(cache.get(&[2; 32]), Some(owner("E")));
        cache.forget_devices("@a:x", &["E".into()]);
        assert_eq!(cache.get(&[2; 32]), None);
    }

    #[test]
    fn a_disabled_cache_never_answers() {
        let cache = TokenCache::new(false);
        cache.insert(cache.generation(), [1; 32], &owner("D"));
        assert_eq!(cache.get(&[1; 32]), None);
    }
}
