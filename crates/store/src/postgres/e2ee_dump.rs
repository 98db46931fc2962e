//! `myelin db copy` of the end-to-end-encryption tables on PostgreSQL.

use super::*;
use crate::{
    BackupDump, BackupKey, BackupVersion, E2eeDump, FallbackKey, OneTimeKey, ToDeviceMessage,
};

pub(super) async fn export(tx: &mut PgConnection) -> StoreResult<E2eeDump> {
    let device_keys = sqlx::query_as("SELECT user_id, device_id, key_json FROM device_keys")
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
    let otks: Vec<(i64, String, String, String, String, String)> = sqlx::query_as(
        "SELECT seq, user_id, device_id, algorithm, key_id, key_json FROM one_time_keys",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let fallbacks: Vec<(String, String, String, String, String, bool)> = sqlx::query_as(
        "SELECT user_id, device_id, algorithm, key_id, key_json, used FROM fallback_keys",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let changes: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT pos, user_id, only_for FROM device_list_changes")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    let messages: Vec<(String, String, i64, String, String, String)> = sqlx::query_as(
        "SELECT user_id, device_id, pos, sender, event_type, content FROM to_device",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let versions: Vec<(String, i64, String, String, i64, bool)> = sqlx::query_as(
        "SELECT user_id, version, algorithm, auth_data, etag, deleted FROM backup_versions",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    type BackupKeyRow = (String, i64, String, String, i64, i64, bool, String);
    let keys: Vec<BackupKeyRow> = sqlx::query_as(
        "SELECT user_id, version, room_id, session_id, first_message_index, forwarded_count,
                is_verified, session_data FROM backup_keys",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let backups = BackupDump {
        versions: versions
            .into_iter()
            .map(|(u, version, algorithm, auth_data, etag, deleted)| {
                let v = BackupVersion {
                    version: version as u64,
                    algorithm,
                    auth_data,
                    etag: etag as u64,
                    count: 0,
                };
                (u, v, deleted)
            })
            .collect(),
        keys: keys
            .into_iter()
            .map(
                |(u, version, room_id, session_id, first, forwarded, verified, data)| {
                    let key = BackupKey {
                        room_id,
                        session_id,
                        first_message_index: first,
                        forwarded_count: forwarded,
                        is_verified: verified,
                        session_data: data,
                    };
                    (u, version as u64, key)
                },
            )
            .collect(),
    };
    let cross_signing = cross_signing::select(&mut *tx, None).await?;
    let signatures = cross_signing::signatures(&mut *tx, None).await?;
    let dehydrated =
        sqlx::query_as("SELECT user_id, device_id, device_data FROM dehydrated_devices")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    Ok(E2eeDump {
        cross_signing,
        signatures,
        dehydrated,
        backups,
        device_keys,
        one_time_keys: otks
            .into_iter()
            .map(|(seq, u, d, algorithm, key_id, json)| {
                (
                    seq,
                    u,
                    d,
                    OneTimeKey {
                        algorithm,
                        key_id,
                        json,
                    },
                )
            })
            .collect(),
        fallback_keys: fallbacks
            .into_iter()
            .map(|(u, d, algorithm, key_id, json, used)| {
                let key = OneTimeKey {
                    algorithm,
                    key_id,
                    json,
                };
                (u, d, FallbackKey { key, used })
            })
            .collect(),
        device_list_changes: changes
            .into_iter()
            .map(|(p, u, own)| (p as u64, u, own))
            .collect(),
        to_device: messages
            .into_iter()
            .map(|(u, d, pos, sender, event_type, content)| {
                let message = ToDeviceMessage {
                    pos: pos as u64,
                    sender,
                    event_type,
                    content,
                };
                (u, d, message)
            })
            .collect(),
    })
}

pub(super) async fn import(tx: &mut PgConnection, dump: &E2eeDump) -> StoreResult<()> {
    for key in &dump.cross_signing {
        cross_signing::insert(&mut *tx, key).await?;
    }
    for signature in &dump.signatures {
        cross_signing::insert_signature(&mut *tx, signature).await?;
    }
    for (user_id, device_id, data) in &dump.dehydrated {
        sqlx::query(
            "INSERT INTO dehydrated_devices (user_id, device_id, device_data) VALUES ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(data)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (user_id, device_id, json) in &dump.device_keys {
        sqlx::query("INSERT INTO device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(device_id)
            .bind(json)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for (seq, user_id, device_id, key) in &dump.one_time_keys {
        sqlx::query(
            "INSERT INTO one_time_keys (seq, user_id, device_id, algorithm, key_id, key_json)
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(seq)
        .bind(user_id)
        .bind(device_id)
        .bind(&key.algorithm)
        .bind(&key.key_id)
        .bind(&key.json)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    // Keys uploaded after the copy must still come after the copied ones (KC-03).
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('one_time_keys', 'seq'),
                       COALESCE((SELECT MAX(seq) FROM one_time_keys), 0) + 1, false)",
    )
    .execute(&mut *tx)
    .await
    .map_err(classify)?;
    for (user_id, device_id, f) in &dump.fallback_keys {
        sqlx::query(
            "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(&f.key.algorithm)
        .bind(&f.key.key_id)
        .bind(&f.key.json)
        .bind(f.used)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (pos, user_id, only_for) in &dump.device_list_changes {
        sqlx::query("INSERT INTO device_list_changes (pos, user_id, only_for) VALUES ($1, $2, $3)")
            .bind(*pos as i64)
            .bind(user_id)
            .bind(only_for)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for (user_id, device_id, m) in &dump.to_device {
        sqlx::query(
            "INSERT INTO to_device (user_id, device_id, pos, sender, event_type, content)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(m.pos as i64)
        .bind(&m.sender)
        .bind(&m.event_type)
        .bind(&m.content)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (user_id, v, deleted) in &dump.backups.versions {
        sqlx::query(
            "INSERT INTO backup_versions (user_id, version, algorithm, auth_data, etag, deleted)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user_id)
        .bind(v.version as i64)
        .bind(&v.algorithm)
        .bind(&v.auth_data)
        .bind(v.etag as i64)
        .bind(deleted)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (user_id, version, k) in &dump.backups.keys {
        sqlx::query(
            "INSERT INTO backup_keys (user_id, version, room_id, session_id, first_message_index,
                                      forwarded_count, is_verified, session_data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(user_id)
        .bind(*version as i64)
        .bind(&k.room_id)
        .bind(&k.session_id)
        .bind(k.first_message_index)
        .bind(k.forwarded_count)
        .bind(k.is_verified)
        .bind(&k.session_data)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    Ok(())
}
