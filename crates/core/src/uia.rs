//! User-Interactive Authentication (the spec's "User-interactive authentication API").
//!
//! A session is bound to one user (or, while registering, to nobody) and to one *operation*:
//! a fingerprint of the method, path and arguments. Completing a session for "delete device A"
//! and presenting it for "delete device B" is refused with 403 (UIA-07). A password stage
//! proves the identity of the account it names; it is refused with 403 when that account is
//! not the requester's (UIA-06), and never passes for an account without a password (UIA-12).
//! Every challenge carries `flows`, `params` (always an object) and `session` (UIA-01).
//!
//! What a session costs is bounded: the fingerprint is stored as its SHA-256, whatever the
//! arguments (a `/delete_devices` list can be a megabyte), and one user may have at most
//! [`MAX_SESSIONS_PER_USER`] sessions in progress; starting another drops the oldest.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{
    Services,
    error::{Error, Result, field_too_long, forbidden},
    ids,
};
use myelin_store::UiaSession;

pub const PASSWORD: &str = "m.login.password";
pub const DUMMY: &str = "m.login.dummy";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";

/// Where a registration session remembers the admin-created token it reserved a use of.
pub const RESERVED_TOKEN: &str = "reserved_registration_token";

/// UIA sessions one user may have in progress at once.
pub const MAX_SESSIONS_PER_USER: usize = 16;

/// The sessions this process started for each user, oldest first, to enforce
/// [`MAX_SESSIONS_PER_USER`].
///
/// Counted in memory rather than in the store: taking a slot under one lock is atomic where
/// count-then-insert in the database is not, and the store needs no new query. The price is
/// that the cap holds per process: after a restart, or with several instances on one
/// database, a user can have up to the cap per process, each session still expiring after
/// `uia.session_ttl_secs`.
#[derive(Default)]
pub struct SessionTracker {
    state: Mutex<TrackerState>,
}

#[derive(Default)]
struct TrackerState {
    /// `(session_id, expires_ms)` per user, in the order the sessions were started.
    users: HashMap<String, VecDeque<(String, i64)>>,
    /// Users with no live session are forgotten when the map reaches this size.
    sweep_at: usize,
}

impl SessionTracker {
    /// Records a new session of `user_id` and returns the sessions it pushes over the cap,
    /// oldest first.
    fn start(&self, user_id: &str, session_id: &str, expires_ms: i64, now_ms: i64) -> Vec<String> {
        // Only bookkeeping lives behind this lock; after a panic elsewhere it is still sound.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.users.len() >= state.sweep_at.max(1024) {
            state.users.retain(|_, live| {
                live.retain(|(_, expires)| *expires >= now_ms);
                !live.is_empty()
            });
            state.sweep_at = state.users.len() * 2;
        }
        let live = state.users.entry(user_id.to_owned()).or_default();
        live.retain(|(_, expires)| *expires >= now_ms);
        live.push_back((session_id.to_owned(), expires_ms));
        let excess = live.len().saturating_sub(MAX_SESSIONS_PER_USER);
        live.drain(..excess).map(|(id, _)| id).collect()
    }
}

/// What a session stores of its operation: the SHA-256 of the fingerprint, in hex, so its size
/// does not grow with the request's arguments.
fn operation_digest(fingerprint: &str) -> String {
    Sha256::digest(fingerprint.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Flow {
    pub stages: Vec<String>,
}

/// The body of a 401 UIA response.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UiaChallenge {
    pub flows: Vec<Flow>,
    pub params: Map<String, Value>,
    pub session: String,
    pub completed: Vec<String>,
    /// Set after a failed stage: (`errcode`, `error`).
    #[serde(skip)]
    pub error: Option<(&'static str, String)>,
}

/// Flows offered for an operation, each a list of stages to complete in order.
pub type Flows = Vec<Vec<&'static str>>;

/// Whether `stage` may be completed next: some flow must start with the stages already
/// completed (in order) and continue with `stage`.
pub fn stage_allowed(flows: &Flows, completed: &[String], stage: &str) -> bool {
    flows.iter().any(|flow| {
        flow.len() > completed.len()
            && flow.iter().zip(completed).all(|(a, b)| a == b)
            && flow[completed.len()] == stage
    })
}

/// Whether the completed stages finish some flow.
pub fn flow_complete(flows: &Flows, completed: &[String]) -> bool {
    flows.iter().any(|flow| {
        flow.len() == completed.len() && flow.iter().zip(completed).all(|(a, b)| a == b)
    })
}

/// What the requester is doing, for binding the session.
pub struct Operation<'a> {
    /// The user the session belongs to; `None` for registration.
    pub user_id: Option<&'a str>,
    pub fingerprint: String,
    pub flows: Flows,
    /// Parameters to remember from the first request (registration).
    pub remember: Option<Value>,
}

/// Drives one round of UIA. `Ok(session)` once a flow is complete; otherwise the error is a
/// 401 challenge, or 403 when the session or the credentials belong to someone else.
pub async fn authenticate(
    services: &Services,
    op: Operation<'_>,
    auth: Option<&Value>,
    client_ip: Option<&str>,
) -> Result<UiaSession> {
    let now = crate::now_ms();
    let auth = auth.and_then(Value::as_object);
    let session_id = auth.and_then(|a| a.get("session")).and_then(Value::as_str);
    let stage = auth.and_then(|a| a.get("type")).and_then(Value::as_str);
    let operation = operation_digest(&op.fingerprint);

    let mut session = match session_id {
        Some(id) => {
            let Some(found) = services.store.get_uia_session(id, now).await? else {
                return Err(Error::InvalidParam("Unknown or expired UIA session".into()));
            };
            if found.user_id.as_deref() != op.user_id || found.operation != operation {
                return Err(forbidden(
                    "This session was started for a different operation or user",
                ));
            }
            found
        }
        None => start_session(services, op.user_id, operation, op.remember.as_ref(), now).await?,
    };

    let challenge = |session: &UiaSession, error: Option<(&'static str, String)>| {
        Error::Uia(Box::new(UiaChallenge {
            flows: op
                .flows
                .iter()
                .map(|f| Flow {
                    stages: f.iter().map(|s| (*s).to_owned()).collect(),
                })
                .collect(),
            params: Map::new(),
            session: session.session_id.clone(),
            completed: session.completed.clone(),
            error,
        }))
    };

    if flow_complete(&op.flows, &session.completed) {
        return Ok(session);
    }
    let Some(stage) = stage else {
        return Err(challenge(&session, None));
    };
    if !stage_allowed(&op.flows, &session.completed, stage) {
        return Err(challenge(
            &session,
            Some((
                "M_UNRECOGNIZED",
                format!("Stage {stage} is not offered here"),
            )),
        ));
    }
    let auth = auth.cloned().unwrap_or_default();
    match check_stage(services, &op, &session, stage, &auth, client_ip).await? {
        StageResult::Passed => {}
        StageResult::PassedWithToken(token) => {
            let mut request = session
                .request
                .as_deref()
                .and_then(|r| serde_json::from_str::<Map<String, Value>>(r).ok())
                .unwrap_or_default();
            request.insert(RESERVED_TOKEN.to_owned(), Value::String(token));
            session.request = Some(Value::Object(request).to_string());
        }
        StageResult::Failed(errcode, message) => {
            return Err(challenge(&session, Some((errcode, message))));
        }
    }
    session.completed.push(stage.to_owned());
    services.store.put_uia_session(session.clone()).await?;
    if flow_complete(&op.flows, &session.completed) {
        Ok(session)
    } else {
        Err(challenge(&session, None))
    }
}

/// Stores a new session; for a user, drops the sessions it pushes over the per-user cap.
async fn start_session(
    services: &Services,
    user_id: Option<&str>,
    operation: String,
    remember: Option<&Value>,
    now: i64,
) -> Result<UiaSession> {
    let session = UiaSession {
        session_id: ids::new_session_id(),
        user_id: user_id.map(str::to_owned),
        operation,
        request: remember.map(Value::to_string),
        completed: Vec::new(),
        result: None,
        expires_ms: now + services.config.uia.session_ttl_secs as i64 * 1000,
    };
    services.store.put_uia_session(session.clone()).await?;
    // Registration sessions belong to nobody; registration is rate-limited per address.
    let Some(user_id) = user_id else {
        return Ok(session);
    };
    let dropped =
        services
            .uia_sessions
            .start(user_id, &session.session_id, session.expires_ms, now);
    for session_id in dropped {
        // Dropping is writing the session back already expired: `get_uia_session` no longer
        // finds it and the next write sweeps it, so the store needs no delete method.
        services
            .store
            .put_uia_session(UiaSession {
                session_id,
                user_id: Some(user_id.to_owned()),
                operation: String::new(),
                request: None,
                completed: Vec::new(),
                result: None,
                expires_ms: 0,
            })
            .await?;
    }
    Ok(session)
}

enum StageResult {
    Passed,
    /// Passed with a registration token an admin created, whose use the session remembers
    /// (under [`RESERVED_TOKEN`] in its request) until the account exists.
    PassedWithToken(String),
    Failed(&'static str, String),
}

async fn check_stage(
    services: &Services,
    op: &Operation<'_>,
    session: &UiaSession,
    stage: &str,
    auth: &Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<StageResult> {
    match stage {
        DUMMY => Ok(StageResult::Passed),
        REGISTRATION_TOKEN => {
            let given = auth.get("token").and_then(Value::as_str).unwrap_or("");
            if crate::admin::is_configured_token(services, given) {
                return Ok(StageResult::Passed);
            }
            // An admin's token: one of its uses is reserved now, and counted as completed
            // when the account is created (see `crate::admin::tokens`).
            let reserved = !given.is_empty()
                && given.len() <= 64
                && services
                    .store
                    .reserve_registration_token(
                        given,
                        &session.session_id,
                        crate::now_ms(),
                        session.expires_ms,
                    )
                    .await?;
            Ok(if reserved {
                StageResult::PassedWithToken(given.to_owned())
            } else {
                StageResult::Failed("M_FORBIDDEN", "Invalid registration token".into())
            })
        }
        PASSWORD => {
            let named = login_identifier(auth)?
                .and_then(|u| ids::login_user_id(u, &services.config.server_name));
            let password = auth.get("password").and_then(Value::as_str);
            let (Some(named), Some(password)) = (named, password) else {
                return Ok(StageResult::Failed(
                    "M_FORBIDDEN",
                    "Invalid username or password".into(),
                ));
            };
            let ok = crate::accounts::check_password(services, &named, password, client_ip).await?;
            if !ok {
                return Ok(StageResult::Failed(
                    "M_FORBIDDEN",
                    "Invalid username or password".into(),
                ));
            }
            if Some(named.as_str()) != op.user_id {
                return Err(forbidden(
                    "The authenticated user does not own this session",
                ));
            }
            Ok(StageResult::Passed)
        }
        _ => Ok(StageResult::Failed(
            "M_UNRECOGNIZED",
            format!("Stage {stage} is not offered here"),
        )),
    }
}

/// The user named by an `m.id.user` identifier, or by the legacy top-level `user` field.
///
/// One longer than any user ID may be (255 bytes) is refused here, before it can reach the
/// database or become a rate-limiter key: every failed login leaves its key in memory.
pub fn login_identifier(body: &Map<String, Value>) -> Result<Option<&str>> {
    let named = match body.get("identifier").and_then(Value::as_object) {
        Some(identifier) => {
            if identifier.get("type").and_then(Value::as_str) != Some("m.id.user") {
                return Ok(None);
            }
            identifier.get("user").and_then(Value::as_str)
        }
        None => body.get("user").and_then(Value::as_str),
    };
    if named.is_some_and(|n| n.len() > ids::MAX_USER_ID_LEN) {
        return Err(field_too_long(format!(
            "The user identifier is longer than {} bytes",
            ids::MAX_USER_ID_LEN
        )));
    }
    Ok(named)
}

/// The one confirmation a signed-in user gives for a sensitive change (deleting devices,
/// replacing cross-signing keys): their password, where they have one; an appservice
/// acting for its user needs none.
pub async fn confirm_with_password(
    services: &Services,
    requester: &crate::auth::Requester,
    fingerprint: String,
    body: &Map<String, Value>,
    client_ip: Option<&str>,
) -> Result<()> {
    if requester.appservice.is_some() {
        return Ok(());
    }
    // UIA-12: only offer the password stage to accounts that have a password.
    let has_password = services
        .store
        .get_user(&requester.user_id)
        .await?
        .is_some_and(|u| u.password_hash.is_some());
    let flows = if has_password {
        vec![vec![PASSWORD]]
    } else {
        Vec::new()
    };
    authenticate(
        services,
        Operation {
            user_id: Some(&requester.user_id),
            fingerprint,
            flows,
            remember: None,
        },
        body.get("auth").filter(|a| !a.is_null()),
        client_ip,
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(stages: &[&str]) -> Vec<String> {
        stages.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn stages_must_follow_flow_order() {
        let flows: Flows = vec![vec![REGISTRATION_TOKEN, DUMMY], vec![PASSWORD]];
        assert!(stage_allowed(&flows, &[], REGISTRATION_TOKEN));
        assert!(stage_allowed(&flows, &[], PASSWORD));
        assert!(
            !stage_allowed(&flows, &[], DUMMY),
            "dummy only after the token"
        );
        assert!(stage_allowed(&flows, &done(&[REGISTRATION_TOKEN]), DUMMY));
        assert!(!stage_allowed(&flows, &done(&[PASSWORD]), DUMMY));
    }

    #[test]
    fn a_flow_completes_only_when_all_its_stages_are_done() {
        let flows: Flows = vec![vec![REGISTRATION_TOKEN, DUMMY]];
        assert!(!flow_complete(&flows, &[]));
        assert!(!flow_complete(&flows, &done(&[REGISTRATION_TOKEN])));
        assert!(flow_complete(&flows, &done(&[REGISTRATION_TOKEN, DUMMY])));
        assert!(
            !flow_complete(&vec![], &[]),
            "no flow offered: never complete"
        );
    }

    #[test]
    fn identifiers_accept_m_id_user_and_legacy_user() {
        let body = |v: Value| v.as_object().cloned().unwrap_or_default();
        let id = body(serde_json::json!({"identifier": {"type": "m.id.user", "user": "alice"}}));
        assert_eq!(login_identifier(&id).ok(), Some(Some("alice")));
        let legacy = body(serde_json::json!({"user": "@alice:localhost"}));
        assert_eq!(
            login_identifier(&legacy).ok(),
            Some(Some("@alice:localhost"))
        );
        let phone = body(serde_json::json!({"identifier": {"type": "m.id.phone", "number": "1"}}));
        assert_eq!(login_identifier(&phone).ok(), Some(None));
    }

    #[test]
    fn the_oldest_live_sessions_are_dropped_beyond_the_cap() {
        let tracker = SessionTracker::default();
        for i in 0..MAX_SESSIONS_PER_USER {
            assert!(tracker.start("@a:x", &format!("s{i}"), 1000, 0).is_empty());
        }
        assert_eq!(tracker.start("@a:x", "new", 1000, 0), vec!["s0".to_owned()]);
        assert!(
            tracker.start("@b:x", "b0", 1000, 0).is_empty(),
            "users are counted apart"
        );
        // Once they have expired, sessions no longer count.
        assert!(tracker.start("@a:x", "later", 3000, 2000).is_empty());
    }

    #[test]
    fn operation_digests_have_a_fixed_size_and_tell_operations_apart() {
        let small = operation_digest("DELETE /devices/A");
        let large = operation_digest(&"x".repeat(1 << 20));
        assert_eq!((small.len(), large.len()), (64, 64));
        assert_ne!(small, operation_digest("DELETE /devices/B"));
    }

    #[test]
    fn identifiers_longer_than_a_user_id_may_be_are_refused() {
        let body = |user: String| {
            serde_json::json!({"identifier": {"type": "m.id.user", "user": user}})
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        let longest = format!("@{}:localhost", "a".repeat(255 - 11));
        assert_eq!(
            login_identifier(&body(longest.clone())).ok(),
            Some(Some(&*longest))
        );
        assert!(matches!(
            login_identifier(&body(format!("{longest}x"))),
            Err(Error::FieldTooLong(_))
        ));
    }
}
