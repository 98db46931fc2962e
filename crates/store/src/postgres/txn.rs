//! A unit of work on PostgreSQL: one transaction on one user's data, driven by `core`.
//!
//! Lock order, the same for every unit of work, so two of them never deadlock: the user's
//! row first ([`super::lock_user`]), then devices in device-ID order ([`Txn::existing_devices`]), and the stream's
//! counter last. Positions are taken inside the transaction (see [`super::positions`]): the
//! new counter is invisible until the commit, so no in-flight marker is needed, and other
//! writers of the stream wait for this commit.

use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Transaction};

use super::{
    classify, insert_device, insert_token, lock_user,
    positions::{account_data_note, devices_note, notify},
    upsert_account_data,
};
use crate::{NewLogin, StoreResult, Stream, Txn};

pub(super) struct PgTxn {
    user_id: String,
    tx: Transaction<'static, Postgres>,
    fast: PgPool,
    notes: Vec<String>,
    started: std::time::Instant,
}

impl PgTxn {
    pub(super) async fn begin(pool: &PgPool, fast: &PgPool, user_id: &str) -> StoreResult<Self> {
        let started = std::time::Instant::now();
        let mut tx = pool.begin().await.map_err(classify)?;
        lock_user(&mut tx, user_id).await?;
        Ok(Self {
            user_id: user_id.to_owned(),
            tx,
            fast: fast.clone(),
            notes: Vec::new(),
            started,
        })
    }

    pub(super) fn user_id(&self) -> &str {
        &self.user_id
    }

    pub(super) fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }

    /// A notification to send once the transaction has committed.
    pub(super) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn devices_changed(&mut self) {
        let note = devices_note(&self.user_id);
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

#[async_trait]
impl Txn for PgTxn {
    async fn existing_devices(&mut self, device_ids: &[String]) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT device_id FROM devices WHERE user_id = $1 AND device_id = ANY($2)
             ORDER BY device_id FOR UPDATE",
        )
        .bind(&self.user_id)
        .bind(device_ids)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(classify)
    }

    async fn count_devices(&mut self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE user_id = $1")
            .bind(&self.user_id)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(classify)?;
        Ok(n as u64)
    }

    async fn device_ids(&mut self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT device_id FROM devices WHERE user_id = $1 ORDER BY device_id FOR UPDATE",
        )
        .bind(&self.user_id)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(classify)
    }

    async fn is_deactivated(&mut self) -> StoreResult<bool> {
        let deactivated: Option<bool> =
            sqlx::query_scalar("SELECT deactivated FROM users WHERE user_id = $1")
                .bind(&self.user_id)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(classify)?;
        Ok(deactivated.unwrap_or(false))
    }

    async fn set_password_hash(&mut self, hash: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_hash = $2 WHERE user_id = $1")
            .bind(&self.user_id)
            .bind(hash)
            .execute(&mut *self.tx)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn deactivate(&mut self, erase: bool) -> StoreResult<()> {
        if erase {
            sqlx::query(
                "INSERT INTO erased_users (user_id, pos)
                 SELECT $1, pos FROM stream_positions WHERE stream = 'room_events'
                 ON CONFLICT (user_id) DO NOTHING",
            )
            .bind(&self.user_id)
            .execute(&mut *self.tx)
            .await
            .map_err(classify)?;
            // Erased words are not found again. Erasure is rare: the scan of events by
            // sender is not worth an index kept on every append.
            sqlx::query(
                "DELETE FROM event_search s USING events e
                 WHERE e.pos = s.pos AND e.sender = $1",
            )
            .bind(&self.user_id)
            .execute(&mut *self.tx)
            .await
            .map_err(classify)?;
        }
        for statement in [
            "UPDATE users SET deactivated = TRUE, password_hash = NULL WHERE user_id = $1",
            "DELETE FROM profile_fields WHERE user_id = $1",
            "DELETE FROM account_data WHERE user_id = $1",
            "DELETE FROM backup_keys WHERE user_id = $1",
            "DELETE FROM backup_versions WHERE user_id = $1",
        ] {
            sqlx::query(statement)
                .bind(&self.user_id)
                .execute(&mut *self.tx)
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn least_recently_used(&mut self, n: u64) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT device_id FROM devices WHERE user_id = $1
             ORDER BY COALESCE(last_seen_ts, created_ts) ASC, device_id LIMIT $2",
        )
        .bind(&self.user_id)
        .bind(n as i64)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(classify)
    }

    async fn create_device(&mut self, login: &NewLogin) -> StoreResult<()> {
        let note = insert_device(&mut self.tx, &self.user_id, login).await?;
        self.notes.push(note);
        self.devices_changed();
        Ok(())
    }

    async fn touch_device(&mut self, login: &NewLogin) -> StoreResult<()> {
        sqlx::query(
            "UPDATE devices SET last_seen_ts = $3, last_seen_ip = COALESCE($4, last_seen_ip)
             WHERE user_id = $1 AND device_id = $2",
        )
        .bind(&self.user_id)
        .bind(&login.device_id)
        .bind(login.now_ms)
        .bind(&login.ip)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn revoke_tokens(&mut self, device_id: &str) -> StoreResult<()> {
        for statement in [
            "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2",
            "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2",
        ] {
            sqlx::query(statement)
                .bind(&self.user_id)
                .bind(device_id)
                .execute(&mut *self.tx)
                .await
                .map_err(classify)?;
        }
        // Syncs on other processes holding one of these tokens re-check it.
        self.devices_changed();
        Ok(())
    }

    async fn add_token(&mut self, login: &NewLogin) -> StoreResult<()> {
        insert_token(&mut self.tx, &self.user_id, login).await
    }

    async fn delete_devices(&mut self, device_ids: &[String]) -> StoreResult<()> {
        sqlx::query("DELETE FROM lazy_members WHERE user_id = $1 AND device_id = ANY($2)")
            .bind(&self.user_id)
            .bind(device_ids)
            .execute(&mut *self.tx)
            .await
            .map_err(classify)?;
        super::e2ee::delete_device_keys(&mut self.tx, &self.user_id, device_ids).await?;
        super::pushers::delete_for_devices(&mut self.tx, &self.user_id, device_ids).await?;
        // The devices' tokens go with them (ON DELETE CASCADE).
        sqlx::query("DELETE FROM devices WHERE user_id = $1 AND device_id = ANY($2)")
            .bind(&self.user_id)
            .bind(device_ids)
            .execute(&mut *self.tx)
            .await
            .map_err(classify)?;
        if !device_ids.is_empty() {
            let note = super::e2ee::record_device_change(&mut self.tx, &self.user_id).await?;
            self.notes.push(note);
        }
        self.devices_changed();
        Ok(())
    }

    async fn account_data_among(
        &mut self,
        room_id: Option<&str>,
        data_types: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        sqlx::query_as(
            "SELECT data_type, content FROM account_data
             WHERE user_id = $1 AND room_id = $2 AND data_type = ANY($3)",
        )
        .bind(&self.user_id)
        .bind(room_id.unwrap_or(""))
        .bind(data_types)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(classify)
    }

    async fn account_data_bytes_except(
        &mut self,
        room_id: Option<&str>,
        data_type: &str,
    ) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(OCTET_LENGTH(content) + OCTET_LENGTH(data_type)), 0)::BIGINT
             FROM account_data
             WHERE user_id = $1 AND NOT (room_id = $2 AND data_type = $3)",
        )
        .bind(&self.user_id)
        .bind(room_id.unwrap_or(""))
        .bind(data_type)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(n as u64)
    }

    async fn put_account_data(
        &mut self,
        room_id: Option<&str>,
        data_type: &str,
        content: &str,
    ) -> StoreResult<u64> {
        let pos: i64 = sqlx::query_scalar(
            "UPDATE stream_positions SET pos = pos + 1 WHERE stream = $1 RETURNING pos",
        )
        .bind(Stream::AccountData.name())
        .fetch_one(&mut *self.tx)
        .await
        .map_err(classify)?;
        upsert_account_data(
            &mut *self.tx,
            &self.user_id,
            room_id.unwrap_or(""),
            data_type,
            content,
            pos,
        )
        .await?;
        self.notes.push(account_data_note(pos, &self.user_id));
        Ok(pos as u64)
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let Self {
            tx,
            fast,
            notes,
            started,
            ..
        } = *self;
        tx.commit().await.map_err(classify)?;
        // A unit of work from its pool connection to its commit (the user's lock included).
        metrics::histogram!(
            "myelin_db_transaction_duration_seconds",
            "backend" => "postgres",
            "operation" => "unit_of_work"
        )
        .record(started.elapsed().as_secs_f64());
        notify(&fast, &notes).await;
        Ok(())
    }
}
