//! Server administration on PostgreSQL: account flags, the admin user list, registration
//! tokens.

use async_trait::async_trait;

use super::*;
use crate::{
    AdminDump, AdminStore, FlagsChange, POPULATION, Population, RegistrationToken, TokenChange,
    UserFlags, UserSummary,
};

const SUMMARY: &str = "SELECT u.user_id, u.admin, u.locked, u.suspended, u.user_type, u.deactivated,
        e.user_id IS NOT NULL, u.appservice_id, u.created_ts,
        (SELECT value FROM profile_fields p WHERE p.user_id = u.user_id AND p.field = 'displayname'),
        (SELECT value FROM profile_fields p WHERE p.user_id = u.user_id AND p.field = 'avatar_url'),
        (SELECT MAX(last_seen_ts) FROM devices d WHERE d.user_id = u.user_id)
    FROM users u LEFT JOIN erased_users e ON e.user_id = u.user_id";

fn summary_from_row(r: &sqlx::postgres::PgRow) -> Result<UserSummary, sqlx::Error> {
    Ok(UserSummary {
        user_id: r.try_get(0)?,
        flags: UserFlags {
            admin: r.try_get(1)?,
            locked: r.try_get(2)?,
            suspended: r.try_get(3)?,
            user_type: r.try_get(4)?,
        },
        deactivated: r.try_get(5)?,
        erased: r.try_get(6)?,
        appservice_id: r.try_get(7)?,
        creation_ts: r.try_get(8)?,
        displayname: r.try_get(9)?,
        avatar_url: r.try_get(10)?,
        last_seen_ts: r.try_get(11)?,
    })
}

/// `pending` counts the reservations not yet expired.
const TOKEN: &str = "SELECT token, uses_allowed,
        (SELECT COUNT(*) FROM registration_token_reservations r
         WHERE r.token = t.token
           AND r.expires_ts > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT),
        completed, expiry_time
    FROM registration_tokens t";

type TokenRow = (String, Option<i64>, i64, i64, Option<i64>);

fn token_from_row(
    (token, uses_allowed, pending, completed, expiry_time): TokenRow,
) -> RegistrationToken {
    RegistrationToken {
        token,
        uses_allowed: uses_allowed.map(|n| n as u64),
        pending: pending as u64,
        completed: completed as u64,
        expiry_time,
    }
}

type FlagsRow = (bool, bool, bool, Option<String>);

fn flags_from_row((admin, locked, suspended, user_type): FlagsRow) -> UserFlags {
    UserFlags {
        admin,
        locked,
        suspended,
        user_type,
    }
}

async fn insert_token(tx: &mut PgConnection, t: &RegistrationToken) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO registration_tokens (token, uses_allowed, pending, completed, expiry_time)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&t.token)
    .bind(t.uses_allowed.map(|n| n as i64))
    .bind(t.pending as i64)
    .bind(t.completed as i64)
    .bind(t.expiry_time)
    .execute(tx)
    .await
    .map_err(classify)?;
    Ok(done.rows_affected() > 0)
}

async fn set_flags(
    tx: &mut PgConnection,
    user_id: &str,
    change: &FlagsChange,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE users SET admin = COALESCE($2, admin), locked = COALESCE($3, locked),
             suspended = COALESCE($4, suspended),
             user_type = CASE WHEN $5 THEN $6 ELSE user_type END
         WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(change.admin)
    .bind(change.locked)
    .bind(change.suspended)
    .bind(change.user_type.is_some())
    .bind(change.user_type.clone().flatten())
    .execute(tx)
    .await
    .map_err(classify)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn export_admin(tx: &mut PgConnection) -> StoreResult<AdminDump> {
    let flags: Vec<(String, bool, bool, bool, Option<String>)> = sqlx::query_as(
        "SELECT user_id, admin, locked, suspended, user_type FROM users
         WHERE admin OR locked OR suspended OR user_type IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let tokens: Vec<TokenRow> = sqlx::query_as(TOKEN)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
    Ok(AdminDump {
        user_flags: flags
            .into_iter()
            .map(|(user_id, a, l, s, t)| (user_id, flags_from_row((a, l, s, t))))
            .collect(),
        registration_tokens: tokens.into_iter().map(token_from_row).collect(),
    })
}

pub(super) async fn import_admin(tx: &mut PgConnection, dump: &AdminDump) -> StoreResult<()> {
    for (user_id, flags) in &dump.user_flags {
        let change = FlagsChange {
            admin: Some(flags.admin),
            locked: Some(flags.locked),
            suspended: Some(flags.suspended),
            user_type: Some(flags.user_type.clone()),
        };
        set_flags(tx, user_id, &change).await?;
    }
    for token in &dump.registration_tokens {
        insert_token(tx, token).await?;
    }
    Ok(())
}

async fn get_token(
    conn: &mut PgConnection,
    token: &str,
    lock: bool,
) -> StoreResult<Option<RegistrationToken>> {
    let suffix = if lock { " FOR UPDATE OF t" } else { "" };
    let row: Option<TokenRow> = sqlx::query_as(&format!("{TOKEN} WHERE t.token = $1{suffix}"))
        .bind(token)
        .fetch_optional(conn)
        .await
        .map_err(classify)?;
    Ok(row.map(token_from_row))
}

#[async_trait]
impl AdminStore for PostgresStore {
    async fn user_flags(&self, user_id: &str) -> StoreResult<Option<UserFlags>> {
        let row: Option<FlagsRow> = sqlx::query_as(
            "SELECT admin, locked, suspended, user_type FROM users WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(flags_from_row))
    }

    async fn set_user_flags(&self, user_id: &str, change: FlagsChange) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        set_flags(&mut conn, user_id, &change).await
    }

    async fn user_summaries(&self) -> StoreResult<Vec<UserSummary>> {
        let rows = sqlx::query(&format!("{SUMMARY} ORDER BY u.user_id"))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter()
            .map(summary_from_row)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn user_summary(&self, user_id: &str) -> StoreResult<Option<UserSummary>> {
        let row = sqlx::query(&format!("{SUMMARY} WHERE u.user_id = $1"))
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref()
            .map(summary_from_row)
            .transpose()
            .map_err(classify)
    }

    async fn reactivate(&self, user_id: &str, password_hash: Option<&str>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        lock_user(&mut tx, user_id).await?;
        sqlx::query("UPDATE users SET deactivated = FALSE, password_hash = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(password_hash)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("DELETE FROM erased_users WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let localpart = user_id[1..].split(':').next().unwrap_or_default();
        sqlx::query(
            "INSERT INTO profile_fields (user_id, field, value)
             VALUES ($1, 'displayname', $2) ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(serde_json::Value::from(localpart).to_string())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn registration_tokens(&self) -> StoreResult<Vec<RegistrationToken>> {
        let rows: Vec<TokenRow> = sqlx::query_as(&format!("{TOKEN} ORDER BY t.token"))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(rows.into_iter().map(token_from_row).collect())
    }

    async fn registration_token(&self, token: &str) -> StoreResult<Option<RegistrationToken>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        get_token(&mut conn, token, false).await
    }

    async fn create_registration_token(&self, token: RegistrationToken) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        match insert_token(&mut conn, &token).await? {
            true => Ok(()),
            false => Err(StoreError::Conflict("registration token exists")),
        }
    }

    async fn update_registration_token(
        &self,
        token: &str,
        change: TokenChange,
    ) -> StoreResult<Option<RegistrationToken>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        let done = sqlx::query(
            "UPDATE registration_tokens SET
                 uses_allowed = CASE WHEN $2 THEN $3 ELSE uses_allowed END,
                 expiry_time = CASE WHEN $4 THEN $5 ELSE expiry_time END
             WHERE token = $1",
        )
        .bind(token)
        .bind(change.uses_allowed.is_some())
        .bind(change.uses_allowed.flatten().map(|n| n as i64))
        .bind(change.expiry_time.is_some())
        .bind(change.expiry_time.flatten())
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        get_token(&mut conn, token, false).await
    }

    async fn delete_registration_token(&self, token: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM registration_tokens WHERE token = $1")
            .bind(token)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    async fn reserve_registration_token(
        &self,
        token: &str,
        session_id: &str,
        now_ms: i64,
        expires_ts: i64,
    ) -> StoreResult<bool> {
        // The token's row lock makes the check and the reservation one step for concurrent
        // registrations.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let Some(found) = get_token(&mut tx, token, true).await? else {
            return Ok(false);
        };
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM registration_token_reservations
                            WHERE session_id = $1 AND token = $2 AND expires_ts > $3)",
        )
        .bind(session_id)
        .bind(token)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        let usable = held || found.usable(now_ms);
        if usable {
            sqlx::query(
                "INSERT INTO registration_token_reservations (session_id, token, expires_ts)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (session_id) DO UPDATE SET
                     token = excluded.token, expires_ts = excluded.expires_ts",
            )
            .bind(session_id)
            .bind(token)
            .bind(expires_ts)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        sqlx::query(
            "DELETE FROM registration_token_reservations WHERE token = $1 AND expires_ts <= $2",
        )
        .bind(token)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(usable)
    }

    async fn complete_registration_token(&self, token: &str, session_id: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("DELETE FROM registration_token_reservations WHERE session_id = $1")
            .bind(session_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("UPDATE registration_tokens SET completed = completed + 1 WHERE token = $1")
            .bind(token)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn room_ids(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT room_id FROM rooms ORDER BY room_id")
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
    }

    async fn population(&self, active_since_ms: i64) -> StoreResult<Population> {
        let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(POPULATION)
            .bind(active_since_ms)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(Population {
            active_users: row.0 as u64,
            deactivated_users: row.1 as u64,
            locked_users: row.2 as u64,
            suspended_users: row.3 as u64,
            devices: row.4 as u64,
            active_devices: row.5 as u64,
        })
    }
}
