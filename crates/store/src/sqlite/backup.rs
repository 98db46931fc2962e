//! Server-side key backups on SQLite. Every write runs on the single writer, which makes the
//! version check and the write one step (KB-16).

use async_trait::async_trait;

use super::*;
use crate::{
    BackupKey, BackupScope, BackupVersion, BackupWrite, BetterKey, KeyBackupStore,
    backup::scope_params,
};

const KEY_COLUMNS: &str =
    "room_id, session_id, first_message_index, forwarded_count, is_verified, session_data";

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BackupKey> {
    Ok(BackupKey {
        room_id: r.get(0)?,
        session_id: r.get(1)?,
        first_message_index: r.get(2)?,
        forwarded_count: r.get(3)?,
        is_verified: r.get::<_, i64>(4)? != 0,
        session_data: r.get(5)?,
    })
}

fn live(conn: &Connection, user_id: &str, version: u64) -> rusqlite::Result<Option<BackupVersion>> {
    conn.prepare_cached(
        "SELECT v.version, v.algorithm, v.auth_data, v.etag,
                (SELECT COUNT(*) FROM backup_keys k
                 WHERE k.user_id = v.user_id AND k.version = v.version)
         FROM backup_versions v WHERE v.user_id = ?1 AND v.version = ?2 AND v.deleted = 0",
    )?
    .query_row(params![user_id, version as i64], |r| {
        Ok(BackupVersion {
            version: r.get::<_, i64>(0)? as u64,
            algorithm: r.get(1)?,
            auth_data: r.get(2)?,
            etag: r.get::<_, i64>(3)? as u64,
            count: r.get::<_, i64>(4)? as u64,
        })
    })
    .optional()
}

fn current(conn: &Connection, user_id: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached(
        "SELECT MAX(version) FROM backup_versions WHERE user_id = ?1 AND deleted = 0",
    )?
    .query_row([user_id], |r| r.get::<_, Option<i64>>(0))
    .map(|v| v.map(|v| v as u64))
}

/// Moves the etag if something changed, and answers the version's etag and count.
fn written(
    conn: &Connection,
    user_id: &str,
    version: u64,
    changed: bool,
) -> rusqlite::Result<BackupWrite> {
    if changed {
        conn.prepare_cached(
            "UPDATE backup_versions SET etag = etag + 1 WHERE user_id = ?1 AND version = ?2",
        )?
        .execute(params![user_id, version as i64])?;
    }
    Ok(match live(conn, user_id, version)? {
        Some(v) => BackupWrite::Done {
            etag: v.etag,
            count: v.count,
        },
        None => BackupWrite::NotFound,
    })
}

fn put_keys(
    conn: &Connection,
    user_id: &str,
    version: u64,
    keys: &[BackupKey],
    better: BetterKey,
) -> rusqlite::Result<BackupWrite> {
    let current = current(conn, user_id)?;
    if current != Some(version) {
        return Ok(match (live(conn, user_id, version)?, current) {
            (Some(_), Some(current)) => BackupWrite::WrongVersion { current },
            _ => BackupWrite::NotFound,
        });
    }
    let mut stored = conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM backup_keys
         WHERE user_id = ?1 AND version = ?2 AND room_id = ?3 AND session_id = ?4"
    ))?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO backup_keys (user_id, version, room_id, session_id, first_message_index,
                                  forwarded_count, is_verified, session_data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET
             first_message_index = excluded.first_message_index,
             forwarded_count = excluded.forwarded_count,
             is_verified = excluded.is_verified, session_data = excluded.session_data",
    )?;
    let mut changed = false;
    for key in keys {
        let old = stored
            .query_row(
                params![user_id, version as i64, key.room_id, key.session_id],
                key_from_row,
            )
            .optional()?;
        if old.is_some_and(|old| !better(&old, key)) {
            continue;
        }
        upsert.execute(params![
            user_id,
            version as i64,
            key.room_id,
            key.session_id,
            key.first_message_index,
            key.forwarded_count,
            key.is_verified,
            key.session_data
        ])?;
        changed = true;
    }
    written(conn, user_id, version, changed)
}

#[async_trait]
impl KeyBackupStore for SqliteStore {
    async fn create_backup(
        &self,
        user_id: &str,
        algorithm: &str,
        auth_data: &str,
    ) -> StoreResult<u64> {
        let (user_id, algorithm, auth_data) = (
            user_id.to_owned(),
            algorithm.to_owned(),
            auth_data.to_owned(),
        );
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO backup_versions
                         (user_id, version, algorithm, auth_data, etag, deleted)
                     SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2, ?3, 0, 0
                     FROM backup_versions WHERE user_id = ?1
                     RETURNING version",
                )
                .and_then(|mut s| {
                    s.query_row(params![user_id, algorithm, auth_data], |r| {
                        r.get::<_, i64>(0)
                    })
                })
                .map(|v| v as u64)
                .map_err(classify)
            })
            .await
    }

    async fn backup_version(
        &self,
        user_id: &str,
        version: Option<u64>,
    ) -> StoreResult<Option<BackupVersion>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<Option<BackupVersion>> {
                    let version = match version {
                        Some(v) => v,
                        None => match current(conn, &user_id)? {
                            Some(v) => v,
                            None => return Ok(None),
                        },
                    };
                    live(conn, &user_id, version)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn update_backup(
        &self,
        user_id: &str,
        version: u64,
        auth_data: &str,
    ) -> StoreResult<bool> {
        let (user_id, auth_data) = (user_id.to_owned(), auth_data.to_owned());
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE backup_versions SET auth_data = ?3
                     WHERE user_id = ?1 AND version = ?2 AND deleted = 0",
                )
                .and_then(|mut s| s.execute(params![user_id, version as i64, auth_data]))
                .map(|n| n > 0)
                .map_err(classify)
            })
            .await
    }

    async fn delete_backup(&self, user_id: &str, version: u64) -> StoreResult<bool> {
        let user_id = user_id.to_owned();
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<bool> {
                    let existed = conn
                        .prepare_cached(
                            "UPDATE backup_versions SET deleted = 1
                             WHERE user_id = ?1 AND version = ?2",
                        )?
                        .execute(params![user_id, version as i64])?
                        > 0;
                    conn.prepare_cached(
                        "DELETE FROM backup_keys WHERE user_id = ?1 AND version = ?2",
                    )?
                    .execute(params![user_id, version as i64])?;
                    Ok(existed)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn put_backup_keys(
        &self,
        user_id: &str,
        version: u64,
        keys: Vec<BackupKey>,
        better: BetterKey,
    ) -> StoreResult<BackupWrite> {
        let user_id = user_id.to_owned();
        self.pool
            .write(move |conn| put_keys(conn, &user_id, version, &keys, better).map_err(classify))
            .await
    }

    async fn backup_keys(
        &self,
        user_id: &str,
        version: u64,
        scope: BackupScope,
    ) -> StoreResult<Option<Vec<BackupKey>>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<Option<Vec<BackupKey>>> {
                    if live(conn, &user_id, version)?.is_none() {
                        return Ok(None);
                    }
                    let (room, session) = scope_params(&scope);
                    conn.prepare_cached(&format!(
                        "SELECT {KEY_COLUMNS} FROM backup_keys
                         WHERE user_id = ?1 AND version = ?2
                           AND (?3 IS NULL OR room_id = ?3) AND (?4 IS NULL OR session_id = ?4)
                         ORDER BY room_id, session_id"
                    ))?
                    .query_map(
                        params![user_id, version as i64, room, session],
                        key_from_row,
                    )?
                    .collect::<Result<_, _>>()
                    .map(Some)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn delete_backup_keys(
        &self,
        user_id: &str,
        version: u64,
        scope: BackupScope,
    ) -> StoreResult<BackupWrite> {
        let user_id = user_id.to_owned();
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<BackupWrite> {
                    if live(conn, &user_id, version)?.is_none() {
                        return Ok(BackupWrite::NotFound);
                    }
                    let (room, session) = scope_params(&scope);
                    let deleted = conn
                        .prepare_cached(
                            "DELETE FROM backup_keys WHERE user_id = ?1 AND version = ?2
                               AND (?3 IS NULL OR room_id = ?3) AND (?4 IS NULL OR session_id = ?4)",
                        )?
                        .execute(params![user_id, version as i64, room, session])?;
                    written(conn, &user_id, version, deleted > 0)
                };
                run().map_err(classify)
            })
            .await
    }
}
