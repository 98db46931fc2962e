//! Accounts, access tokens and UIA sessions on PostgreSQL.

use async_trait::async_trait;

use super::*;
use crate::AccountStore;

#[async_trait]
impl AccountStore for PostgresStore {
    async fn create_user(
        &self,
        user: User,
        login: Option<NewLogin>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let inserted = sqlx::query(
            "INSERT INTO users (user_id, password_hash, appservice_id, created_ts)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&user.user_id)
        .bind(&user.password_hash)
        .bind(&user.appservice_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict("user already exists"));
        }
        sqlx::query(
            "INSERT INTO profile_fields (user_id, field, value) VALUES ($1, 'displayname', $2)",
        )
        .bind(&user.user_id)
        .bind(crate::profile::default_displayname(&user.user_id))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let mut notes = Vec::new();
        if let Some(login) = login {
            notes.push(insert_device(&mut tx, &user.user_id, &login).await?);
            insert_token(&mut tx, &user.user_id, &login).await?;
        }
        tx.commit().await.map_err(classify)?;
        positions::notify(&self.fast, &notes).await;
        Ok(())
    }

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>> {
        let row: Option<(String, Option<String>, Option<String>, bool)> = sqlx::query_as(
            "SELECT user_id, password_hash, appservice_id, deactivated
             FROM users WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(
            |(user_id, password_hash, appservice_id, deactivated)| User {
                user_id,
                password_hash,
                appservice_id,
                deactivated,
            },
        ))
    }

    async fn access_token(&self, token_hash: [u8; 32]) -> StoreResult<Option<AccessToken>> {
        let row: Option<(String, String, Option<i64>, bool, bool, bool)> = sqlx::query_as(
            "SELECT t.user_id, t.device_id, t.expires_ts, t.replaces IS NOT NULL, u.locked,
                 u.suspended
             FROM access_tokens t JOIN users u ON u.user_id = t.user_id
             WHERE t.token_hash = $1",
        )
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(
            |(user_id, device_id, expires_ts, first_use, locked, suspended)| AccessToken {
                owner: TokenOwner { user_id, device_id },
                expires_ts,
                first_use,
                locked,
                suspended,
            },
        ))
    }

    async fn erased_users(&self) -> StoreResult<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT user_id, pos FROM erased_users")
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(user, pos)| (user, pos.max(0) as u64))
            .collect())
    }

    async fn first_use(&self, access_hash: [u8; 32]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let replaced: Option<Option<Vec<u8>>> = sqlx::query_scalar(
            "SELECT replaces FROM access_tokens WHERE token_hash = $1 FOR UPDATE",
        )
        .bind(&access_hash[..])
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let Some(replaced) = replaced.flatten() else {
            return Ok(());
        };
        for statement in [
            "DELETE FROM refresh_tokens WHERE token_hash = $1",
            "UPDATE refresh_tokens SET replaces = NULL WHERE replaces = $1",
        ] {
            sqlx::query(statement)
                .bind(&replaced)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        sqlx::query("UPDATE access_tokens SET replaces = NULL WHERE token_hash = $1")
            .bind(&access_hash[..])
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn refresh(&self, old: [u8; 32], login: NewLogin) -> StoreResult<Refreshed> {
        type Row = (String, String, Vec<u8>, Option<Vec<u8>>, Option<i64>);
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // Locked: two refreshes with one token run one after the other.
        let row: Option<Row> = sqlx::query_as(
            "SELECT user_id, device_id, access_hash, replaces, expires_ts
             FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        )
        .bind(&old[..])
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let Some((user_id, device_id, access_hash, replaces, expires_ts)) = row else {
            return Ok(Refreshed::Unknown);
        };
        let delete_refresh = "DELETE FROM refresh_tokens WHERE token_hash = ANY($1)";
        if expires_ts.is_some_and(|t| t <= login.now_ms) {
            sqlx::query(delete_refresh)
                .bind(vec![old.to_vec()])
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            tx.commit().await.map_err(classify)?;
            return Ok(Refreshed::Expired);
        }
        // A pair issued from `old` before, whose answer the client never got.
        let earlier: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT token_hash, access_hash FROM refresh_tokens WHERE replaces = $1",
        )
        .bind(&old[..])
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        // Using `old` proves its predecessor is no longer needed.
        let mut refresh_gone: Vec<Vec<u8>> = replaces.into_iter().collect();
        let mut access_gone = vec![access_hash];
        for (refresh, access) in earlier {
            refresh_gone.push(refresh);
            access_gone.push(access);
        }
        sqlx::query(delete_refresh)
            .bind(&refresh_gone)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("DELETE FROM access_tokens WHERE token_hash = ANY($1)")
            .bind(&access_gone)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let login = NewLogin {
            device_id: device_id.clone(),
            ..login
        };
        insert_pair(&mut tx, &user_id, &login, Some(&old[..])).await?;
        tx.commit().await.map_err(classify)?;
        Ok(Refreshed::Done(TokenOwner { user_id, device_id }))
    }

    async fn put_uia_session(&self, session: UiaSession) -> StoreResult<()> {
        let completed = serde_json::to_string(&session.completed).map_err(backend)?;
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("DELETE FROM uia_sessions WHERE expires_ts < $1")
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query(
            "INSERT INTO uia_sessions (session_id, user_id, operation, request, completed, result, expires_ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (session_id) DO UPDATE SET
               request = excluded.request, completed = excluded.completed,
               result = excluded.result, expires_ts = excluded.expires_ts",
        )
        .bind(&session.session_id)
        .bind(&session.user_id)
        .bind(&session.operation)
        .bind(&session.request)
        .bind(&completed)
        .bind(&session.result)
        .bind(session.expires_ms)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn get_uia_session(
        &self,
        session_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<UiaSession>> {
        type Row = (
            String,
            Option<String>,
            String,
            Option<String>,
            String,
            Option<String>,
            i64,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT session_id, user_id, operation, request, completed, result, expires_ts
             FROM uia_sessions WHERE session_id = $1 AND expires_ts >= $2",
        )
        .bind(session_id)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        let Some((session_id, user_id, operation, request, completed, result, expires_ms)) = row
        else {
            return Ok(None);
        };
        Ok(Some(UiaSession {
            session_id,
            user_id,
            operation,
            request,
            completed: serde_json::from_str(&completed).map_err(backend)?,
            result,
            expires_ms,
        }))
    }
}
