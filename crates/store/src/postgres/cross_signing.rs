//! Cross-signing keys on PostgreSQL (see [`crate::E2eeStore::cross_signing_keys`]).

use sqlx::PgConnection;

use super::*;
use crate::{CrossSigningKey, KeySignature};

type Row = (String, String, String, String);

fn from_row((user_id, usage, key_id, json): Row) -> CrossSigningKey {
    CrossSigningKey {
        user_id,
        usage,
        key_id,
        json,
    }
}

/// The keys of these users (all users for `None`).
pub(super) async fn select(
    conn: &mut PgConnection,
    users: Option<&[String]>,
) -> StoreResult<Vec<CrossSigningKey>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT user_id, usage, key_id, key_json FROM cross_signing_keys
         WHERE $1::TEXT[] IS NULL OR user_id = ANY($1) ORDER BY user_id, usage",
    )
    .bind(users)
    .fetch_all(conn)
    .await
    .map_err(classify)?;
    Ok(rows.into_iter().map(from_row).collect())
}

pub(super) async fn insert(conn: &mut PgConnection, key: &CrossSigningKey) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO cross_signing_keys (user_id, usage, key_id, key_json) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, usage) DO UPDATE SET key_id = excluded.key_id,
             key_json = excluded.key_json",
    )
    .bind(&key.user_id)
    .bind(&key.usage)
    .bind(&key.key_id)
    .bind(&key.json)
    .execute(conn)
    .await
    .map_err(classify)?;
    Ok(())
}

type SignatureRow = (String, String, String, String, String);

/// Signatures of these users' keys that `viewer` may see (every signature for `None`).
pub(super) async fn signatures(
    conn: &mut PgConnection,
    targets: Option<(&[String], &str)>,
) -> StoreResult<Vec<KeySignature>> {
    let (targets, viewer) = targets.unzip();
    let rows: Vec<SignatureRow> = sqlx::query_as(
        "SELECT target_user, target_key, signer_user, signer_key, signature
         FROM cross_signing_signatures
         WHERE $1::TEXT[] IS NULL OR (target_user = ANY($1)
                                      AND (signer_user = target_user OR signer_user = $2))
         ORDER BY target_user, target_key, signer_user, signer_key",
    )
    .bind(targets)
    .bind(viewer)
    .fetch_all(conn)
    .await
    .map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(
            |(target_user, target_key, signer_user, signer_key, signature)| KeySignature {
                target_user,
                target_key,
                signer_user,
                signer_key,
                signature,
            },
        )
        .collect())
}

pub(super) async fn insert_signature(conn: &mut PgConnection, s: &KeySignature) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO cross_signing_signatures (target_user, target_key, signer_user, signer_key,
                                               signature)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (target_user, target_key, signer_user, signer_key)
             DO UPDATE SET signature = excluded.signature",
    )
    .bind(&s.target_user)
    .bind(&s.target_key)
    .bind(&s.signer_user)
    .bind(&s.signer_key)
    .bind(&s.signature)
    .execute(conn)
    .await
    .map_err(classify)?;
    Ok(())
}
