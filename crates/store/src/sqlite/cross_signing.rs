//! Cross-signing keys on SQLite (see [`crate::E2eeStore::cross_signing_keys`]).

use super::*;
use crate::{CrossSigningKey, KeySignature};

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CrossSigningKey> {
    Ok(CrossSigningKey {
        user_id: r.get(0)?,
        usage: r.get(1)?,
        key_id: r.get(2)?,
        json: r.get(3)?,
    })
}

/// The keys of the users in the JSON array `users` (all users for `None`).
pub(super) fn select(
    conn: &Connection,
    users: Option<&str>,
) -> rusqlite::Result<Vec<CrossSigningKey>> {
    conn.prepare_cached(
        "SELECT user_id, usage, key_id, key_json FROM cross_signing_keys
         WHERE ?1 IS NULL OR user_id IN (SELECT value FROM json_each(?1))
         ORDER BY user_id, usage",
    )?
    .query_map([users], from_row)?
    .collect()
}

pub(super) fn insert(conn: &Connection, key: &CrossSigningKey) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO cross_signing_keys (user_id, usage, key_id, key_json) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user_id, usage) DO UPDATE SET key_id = excluded.key_id,
             key_json = excluded.key_json",
    )?
    .execute(params![key.user_id, key.usage, key.key_id, key.json])?;
    Ok(())
}

fn signature_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeySignature> {
    Ok(KeySignature {
        target_user: r.get(0)?,
        target_key: r.get(1)?,
        signer_user: r.get(2)?,
        signer_key: r.get(3)?,
        signature: r.get(4)?,
    })
}

/// Signatures of the keys of the users in the JSON array `targets` that `viewer` may see
/// (every signature for `None`).
pub(super) fn signatures(
    conn: &Connection,
    targets: Option<(&str, &str)>,
) -> rusqlite::Result<Vec<KeySignature>> {
    let (targets, viewer) = targets.unzip();
    conn.prepare_cached(
        "SELECT target_user, target_key, signer_user, signer_key, signature
         FROM cross_signing_signatures
         WHERE ?1 IS NULL OR (target_user IN (SELECT value FROM json_each(?1))
                              AND (signer_user = target_user OR signer_user = ?2))
         ORDER BY target_user, target_key, signer_user, signer_key",
    )?
    .query_map(params![targets, viewer], signature_from_row)?
    .collect()
}

pub(super) fn insert_signature(conn: &Connection, s: &KeySignature) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO cross_signing_signatures (target_user, target_key, signer_user, signer_key,
                                               signature)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (target_user, target_key, signer_user, signer_key)
             DO UPDATE SET signature = excluded.signature",
    )?
    .execute(params![
        s.target_user,
        s.target_key,
        s.signer_user,
        s.signer_key,
        s.signature
    ])?;
    Ok(())
}
