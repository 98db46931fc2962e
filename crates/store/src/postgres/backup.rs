//! Server-side key backups on PostgreSQL. Each write is one transaction that first locks the
//! user's row, so the version check and the write cannot interleave with another write of
//! the same user (KB-16).

use async_trait::async_trait;
use sqlx::PgConnection;

use super::*;
use crate::{
    BackupKey, BackupScope, BackupVersion, BackupWrite, BetterKey, KeyBackupStore,
    backup::scope_params,
};

type KeyRow = (String, String, i64, i64, bool, String);

fn key_from_row((room_id, session_id, first, forwarded, verified, data): KeyRow) -> BackupKey {
    BackupKey {
        room_id,
        session_id,
        first_message_index: first,
        forwarded_count: forwarded,
        is_verified: verified,
        session_data: data,
    }
}

async fn live(
    conn: &mut PgConnection,
    user_id: &str,
    version: u64,
) -> StoreResult<Option<BackupVersion>> {
    let row: Option<(i64, String, String, i64, i64)> = sqlx::query_as(
        "SELECT v.version, v.algorithm, v.auth_data, v.etag,
                (SELECT COUNT(*) FROM backup_keys k
                 WHERE k.user_id = v.user_id AND k.version = v.version)
         FROM backup_versions v WHERE v.user_id = $1 AND v.version = $2 AND NOT v.deleted",
    )
    .bind(user_id)
    .bind(version as i64)
    .fetch_optional(conn)
    .await
    .map_err(classify)?;
    Ok(row.map(
        |(version, algorithm, auth_data, etag, count)| BackupVersion {
            version: version as u64,
            algorithm,
            auth_data,
            etag: etag as u64,
            count: count as u64,
        },
    ))
}

async fn current(conn: &mut PgConnection, user_id: &str) -> StoreResult<Option<u64>> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(version) FROM backup_versions WHERE user_id = $1 AND NOT deleted",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await
    .map_err(classify)?;
    Ok(v.map(|v| v as u64))
}

async fn written(
    conn: &mut PgConnection,
    user_id: &str,
    version: u64,
    changed: bool,
) -> StoreResult<BackupWrite> {
    if changed {
        sqlx::query(
            "UPDATE backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2",
        )
        .bind(user_id)
        .bind(version as i64)
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    }
    Ok(match live(conn, user_id, version).await? {
        Some(v) => BackupWrite::Done {
            etag: v.etag,
            count: v.count,
        },
        None => BackupWrite::NotFound,
    })
}

impl PostgresStore {
    /// A transaction holding the user's row, for one backup write.
    async fn backup_tx(&self, user_id: &str) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        lock_user(&mut tx, user_id).await?;
        Ok(tx)
    }
}

#[async_trait]
impl KeyBackupStore for PostgresStore {
    async fn create_backup(
        &self,
        user_id: &str,
        algorithm: &str,
        auth_data: &str,
    ) -> StoreResult<u64> {
        let mut tx = self.backup_tx(user_id).await?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO backup_versions (user_id, version, algorithm, auth_data, etag, deleted)
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, 0, FALSE
             FROM backup_versions WHERE user_id = $1
             RETURNING version",
        )
        .bind(user_id)
        .bind(algorithm)
        .bind(auth_data)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(version as u64)
    }

    async fn backup_version(
        &self,
        user_id: &str,
        version: Option<u64>,
    ) -> StoreResult<Option<BackupVersion>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        let version = match version {
            Some(v) => v,
            None => match current(&mut conn, user_id).await? {
                Some(v) => v,
                None => return Ok(None),
            },
        };
        live(&mut conn, user_id, version).await
    }

    async fn update_backup(
        &self,
        user_id: &str,
        version: u64,
        auth_data: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.backup_tx(user_id).await?;
        let updated = sqlx::query(
            "UPDATE backup_versions SET auth_data = $3
             WHERE user_id = $1 AND version = $2 AND NOT deleted",
        )
        .bind(user_id)
        .bind(version as i64)
        .bind(auth_data)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(updated.rows_affected() > 0)
    }

    async fn delete_backup(&self, user_id: &str, version: u64) -> StoreResult<bool> {
        let mut tx = self.backup_tx(user_id).await?;
        let existed = sqlx::query(
            "UPDATE backup_versions SET deleted = TRUE WHERE user_id = $1 AND version = $2",
        )
        .bind(user_id)
        .bind(version as i64)
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected()
            > 0;
        sqlx::query("DELETE FROM backup_keys WHERE user_id = $1 AND version = $2")
            .bind(user_id)
            .bind(version as i64)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(existed)
    }

    async fn put_backup_keys(
        &self,
        user_id: &str,
        version: u64,
        keys: Vec<BackupKey>,
        better: BetterKey,
    ) -> StoreResult<BackupWrite> {
        let mut tx = self.backup_tx(user_id).await?;
        let current = current(&mut tx, user_id).await?;
        if current != Some(version) {
            return Ok(match (live(&mut tx, user_id, version).await?, current) {
                (Some(_), Some(current)) => BackupWrite::WrongVersion { current },
                _ => BackupWrite::NotFound,
            });
        }
        let mut changed = false;
        for key in keys {
            let old: Option<KeyRow> = sqlx::query_as(
                "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,
                        session_data
                 FROM backup_keys
                 WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4",
            )
            .bind(user_id)
            .bind(version as i64)
            .bind(&key.room_id)
            .bind(&key.session_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
            if old.is_some_and(|old| !better(&key_from_row(old), &key)) {
                continue;
            }
            sqlx::query(
                "INSERT INTO backup_keys (user_id, version, room_id, session_id,
                     first_message_index, forwarded_count, is_verified, session_data)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET
                     first_message_index = excluded.first_message_index,
                     forwarded_count = excluded.forwarded_count,
                     is_verified = excluded.is_verified, session_data = excluded.session_data",
            )
            .bind(user_id)
            .bind(version as i64)
            .bind(&key.room_id)
            .bind(&key.session_id)
            .bind(key.first_message_index)
            .bind(key.forwarded_count)
            .bind(key.is_verified)
            .bind(&key.session_data)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            changed = true;
        }
        let outcome = written(&mut tx, user_id, version, changed).await?;
        tx.commit().await.map_err(classify)?;
        Ok(outcome)
    }

    async fn backup_keys(
        &self,
        user_id: &str,
        version: u64,
        scope: BackupScope,
    ) -> StoreResult<Option<Vec<BackupKey>>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        if live(&mut conn, user_id, version).await?.is_none() {
            return Ok(None);
        }
        let (room, session) = scope_params(&scope);
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,
                    session_data
             FROM backup_keys
             WHERE user_id = $1 AND version = $2
               AND ($3::TEXT IS NULL OR room_id = $3) AND ($4::TEXT IS NULL OR session_id = $4)
             ORDER BY room_id, session_id",
        )
        .bind(user_id)
        .bind(version as i64)
        .bind(room)
        .bind(session)
        .fetch_all(&mut *conn)
        .await
        .map_err(classify)?;
        Ok(Some(rows.into_iter().map(key_from_row).collect()))
    }

    async fn delete_backup_keys(
        &self,
        user_id: &str,
        version: u64,
        scope: BackupScope,
    ) -> StoreResult<BackupWrite> {
        let mut tx = self.backup_tx(user_id).await?;
        if live(&mut tx, user_id, version).await?.is_none() {
            return Ok(BackupWrite::NotFound);
        }
        let (room, session) = scope_params(&scope);
        let deleted = sqlx::query(
            "DELETE FROM backup_keys WHERE user_id = $1 AND version = $2
               AND ($3::TEXT IS NULL OR room_id = $3) AND ($4::TEXT IS NULL OR session_id = $4)",
        )
        .bind(user_id)
        .bind(version as i64)
        .bind(room)
        .bind(session)
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected();
        let outcome = written(&mut tx, user_id, version, deleted > 0).await?;
        tx.commit().await.map_err(classify)?;
        Ok(outcome)
    }
}
