//! Identifier rules: user IDs, room IDs, device IDs, and the secrets we mint.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::{Rng, distr::Alphanumeric};
use ruma_common::{ServerName, UserId};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, invalid_param};

/// Longest user ID the spec allows, in bytes.
pub const MAX_USER_ID_LEN: usize = 255;
/// Longest client-chosen device ID we accept (Synapse's limit).
pub const MAX_DEVICE_ID_LEN: usize = 512;

/// Validates a requested localpart for a *new* account and normalises it to lower case, as
/// the spec's user-ID grammar only allows lower-case letters for new accounts.
pub fn new_localpart(username: &str, server_name: &str) -> Result<String> {
    let localpart = username.to_lowercase();
    if localpart.is_empty() {
        return Err(Error::InvalidUsername("User ID cannot be empty".into()));
    }
    if !localpart
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+'))
    {
        return Err(Error::InvalidUsername(
            "User ID can only contain characters a-z, 0-9, or '=_-./+'".into(),
        ));
    }
    if localpart.len() + server_name.len() + 2 > MAX_USER_ID_LEN {
        return Err(Error::InvalidUsername("User ID is too long".into()));
    }
    Ok(localpart)
}

pub fn user_id(localpart: &str, server_name: &str) -> String {
    format!("@{localpart}:{server_name}")
}

/// Resolves what a client typed at login (a localpart or a full user ID, in any case) to the
/// canonical local user ID, or `None` if it cannot name a local user.
pub fn login_user_id(input: &str, server_name: &str) -> Option<String> {
    let localpart = if input.starts_with('@') {
        let parsed = <&UserId>::try_from(input).ok()?;
        if parsed.server_name().as_str() != server_name {
            return None;
        }
        parsed.localpart().to_lowercase()
    } else {
        input.to_lowercase()
    };
    if localpart.is_empty()
        || localpart.contains(':')
        || localpart.chars().any(char::is_control)
        || localpart.len() + server_name.len() + 2 > MAX_USER_ID_LEN
    {
        return None;
    }
    Some(user_id(&localpart, server_name))
}

/// Parses a user ID from a path or query and requires it to be syntactically valid.
pub fn parse_user_id(input: &str) -> Option<&UserId> {
    <&UserId>::try_from(input).ok()
}

/// A room ID is `!opaque:server.name`, or (room version 12, MSC4291) `!` followed by 43
/// characters of unpadded URL-safe base64.
pub fn is_valid_room_id(room_id: &str) -> bool {
    let Some(rest) = room_id.strip_prefix('!') else {
        return false;
    };
    if room_id.len() > 255 || room_id.chars().any(char::is_control) {
        return false;
    }
    if rest.len() == 43
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return true;
    }
    match rest.split_once(':') {
        Some((opaque, server)) => !opaque.is_empty() && <&ServerName>::try_from(server).is_ok(),
        None => false,
    }
}

/// Longest event type (and so account-data type) we store, in bytes: the spec's limit for
/// event types, which also keeps every key within the databases' index limits.
pub const MAX_EVENT_TYPE_LEN: usize = 255;

/// PostgreSQL cannot store NUL in text, and no identifier needs one.
pub fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Checks an account-data (event) type taken from a path.
pub fn check_event_type(event_type: &str) -> Result<()> {
    if event_type.is_empty() || event_type.len() > MAX_EVENT_TYPE_LEN {
        return Err(invalid_param(format!(
            "The type must be between 1 and {MAX_EVENT_TYPE_LEN} bytes long"
        )));
    }
    if has_nul(event_type) {
        return Err(invalid_param("The type must not contain NUL characters"));
    }
    Ok(())
}

/// Checks a state key: any string (ST-19), at most 255 bytes (EV-10), without NUL (which one
/// backend cannot store, so neither does).
pub fn check_state_key(state_key: &str) -> Result<()> {
    if state_key.len() > MAX_EVENT_TYPE_LEN {
        return Err(invalid_param(format!(
            "The state key must be at most {MAX_EVENT_TYPE_LEN} bytes long"
        )));
    }
    if has_nul(state_key) {
        return Err(invalid_param(
            "The state key must not contain NUL characters",
        ));
    }
    Ok(())
}

/// Checks a client's transaction ID.
pub fn check_txn_id(txn_id: &str) -> Result<()> {
    if txn_id.is_empty() || txn_id.len() > MAX_EVENT_TYPE_LEN {
        return Err(invalid_param(format!(
            "The transaction ID must be between 1 and {MAX_EVENT_TYPE_LEN} bytes long"
        )));
    }
    if has_nul(txn_id) {
        return Err(invalid_param(
            "The transaction ID must not contain NUL characters",
        ));
    }
    Ok(())
}

/// Checks an event ID from a path or body: its syntax is the room version's business, but
/// no event ID holds control characters (ruma accepts NUL, one backend cannot store it).
pub fn check_event_id(event_id: &str) -> Result<()> {
    if event_id.is_empty()
        || event_id.len() > MAX_EVENT_TYPE_LEN
        || event_id.chars().any(char::is_control)
    {
        return Err(invalid_param(format!(
            "{} is not a valid event ID",
            event_id.escape_debug()
        )));
    }
    Ok(())
}

/// Random letters and digits, for opaque identifiers (room IDs before v12).
pub fn random_alnum(n: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Whether a device could exist with this ID: every stored device passed
/// [`check_device_id`] or was generated. Lookups of IDs that cannot exist are answered
/// without asking storage.
pub fn could_be_device_id(device_id: &str) -> bool {
    check_device_id(device_id).is_ok()
}

/// Checks a device ID chosen by a client.
pub fn check_device_id(device_id: &str) -> Result<()> {
    if device_id.is_empty() || device_id.len() > MAX_DEVICE_ID_LEN {
        return Err(invalid_param(format!(
            "device_id must be between 1 and {MAX_DEVICE_ID_LEN} bytes"
        )));
    }
    if device_id.chars().any(char::is_control) {
        return Err(invalid_param(
            "device_id must not contain control characters",
        ));
    }
    Ok(())
}

/// A fresh device ID: ten upper-case letters, as most servers hand out.
pub fn new_device_id() -> String {
    let mut rng = rand::rng();
    (0..10)
        .map(|_| char::from(b'A' + rng.random_range(0..26u8)))
        .collect()
}

/// A fresh access token: 256 random bits.
pub fn new_access_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("myl_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A refresh token: as random as an access token, told apart by its prefix.
pub fn new_refresh_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("mylr_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Tokens are stored and looked up by their SHA-256. A token holds 256 random bits, so a fast
/// hash is enough, and looking up the hash rather than comparing tokens leaks no timing about
/// the secret.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh UIA session ID.
pub fn new_session_id() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localparts_are_lowercased_and_checked() {
        assert_eq!(
            new_localpart("Alice", "localhost").ok(),
            Some("alice".into())
        );
        assert!(new_localpart("a b", "localhost").is_err());
        assert!(new_localpart("", "localhost").is_err());
        assert!(new_localpart("é", "localhost").is_err());
        assert!(new_localpart(&"a".repeat(250), "localhost").is_err());
        assert_eq!(
            new_localpart("a.b_c=d-e/f+g", "localhost").ok(),
            Some("a.b_c=d-e/f+g".into())
        );
    }

    #[test]
    fn login_identifiers_resolve_case_insensitively() {
        let me = Some("@alice:localhost".to_owned());
        assert_eq!(login_user_id("alice", "localhost"), me);
        assert_eq!(login_user_id("ALICE", "localhost"), me);
        assert_eq!(login_user_id("@Alice:localhost", "localhost"), me);
        assert_eq!(login_user_id("@alice:elsewhere", "localhost"), None);
        assert_eq!(login_user_id("", "localhost"), None);
        assert_eq!(login_user_id("@broken", "localhost"), None);
    }

    #[test]
    fn room_ids_of_both_forms_are_valid() {
        assert!(is_valid_room_id("!abc:localhost"));
        assert!(is_valid_room_id("!abc:example.org:8448"));
        assert!(is_valid_room_id(&format!("!{}", "A".repeat(43))));
        assert!(!is_valid_room_id("notaroom"));
        assert!(!is_valid_room_id("!abc"));
        assert!(!is_valid_room_id("#a:localhost"));
        assert!(!is_valid_room_id("!:localhost"));
        assert!(!is_valid_room_id(&format!("!{}", "A".repeat(42))));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (new_access_token(), new_access_token());
        assert_ne!(a, b);
        assert!(a.len() >= 4 + 43);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(new_device_id().len(), 10);
    }
}
