//! Devices and `last_seen` on PostgreSQL.

use async_trait::async_trait;

use super::*;
use crate::DeviceStore;

#[async_trait]
impl DeviceStore for PostgresStore {
    async fn list_devices(&self, user_id: &str) -> StoreResult<Vec<Device>> {
        let rows = sqlx::query(
            "SELECT device_id, display_name, last_seen_ip, last_seen_ts, last_seen_user_agent
             FROM devices WHERE user_id = $1 ORDER BY device_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(device_from_row)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn get_device(&self, user_id: &str, device_id: &str) -> StoreResult<Option<Device>> {
        let row = sqlx::query(
            "SELECT device_id, display_name, last_seen_ip, last_seen_ts, last_seen_user_agent
             FROM devices WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.as_ref()
            .map(device_from_row)
            .transpose()
            .map_err(classify)
    }

    async fn upsert_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<String>,
        create: bool,
        now_ms: i64,
    ) -> StoreResult<DeviceUpsert> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let updated = sqlx::query(
            "UPDATE devices SET display_name = COALESCE($3, display_name)
             WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(&display_name)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let outcome = if updated.rows_affected() > 0 {
            DeviceUpsert::Updated
        } else if !create {
            return Ok(DeviceUpsert::NotFound);
        } else {
            let inserted = sqlx::query(
                "INSERT INTO devices (user_id, device_id, display_name, created_ts)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(&display_name)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if inserted.rows_affected() > 0 {
                DeviceUpsert::Created
            } else {
                DeviceUpsert::Updated
            }
        };
        // DL-02: a rename or a new device changes what `/keys/query` answers.
        let mut notes = Vec::new();
        if outcome == DeviceUpsert::Created || display_name.is_some() {
            notes.push(e2ee::record_device_change(&mut tx, user_id).await?);
        }
        tx.commit().await.map_err(classify)?;
        positions::notify(&self.fast, &notes).await;
        Ok(outcome)
    }

    async fn stale_devices(&self, before_ms: i64, limit: u32) -> StoreResult<Vec<TokenOwner>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT user_id, device_id FROM devices
             WHERE COALESCE(last_seen_ts, created_ts) < $1
             ORDER BY COALESCE(last_seen_ts, created_ts) LIMIT $2",
        )
        .bind(before_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(user_id, device_id)| TokenOwner { user_id, device_id })
            .collect())
    }

    async fn record_last_seen(&self, batch: Vec<LastSeen>) -> StoreResult<()> {
        let mut users = Vec::with_capacity(batch.len());
        let mut devices = Vec::with_capacity(batch.len());
        let mut ips = Vec::with_capacity(batch.len());
        let mut times = Vec::with_capacity(batch.len());
        let mut agents = Vec::with_capacity(batch.len());
        for seen in batch {
            users.push(seen.user_id);
            devices.push(seen.device_id);
            ips.push(seen.ip);
            agents.push(seen.user_agent);
            times.push(seen.ts);
        }
        // Newer wins: a flush from a process that saw the device earlier never overwrites a
        // later observation made by another process. The rows are locked in (user, device)
        // order first, the order units of work lock devices in, so the two never deadlock.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query(
            "SELECT 1 FROM devices d
             JOIN UNNEST($1::TEXT[], $2::TEXT[]) AS v(user_id, device_id)
               ON d.user_id = v.user_id AND d.device_id = v.device_id
             ORDER BY d.user_id, d.device_id FOR NO KEY UPDATE OF d",
        )
        .bind(&users)
        .bind(&devices)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "UPDATE devices d SET last_seen_ts = v.ts, last_seen_ip = COALESCE(v.ip, d.last_seen_ip),
                 last_seen_user_agent = COALESCE(v.ua, d.last_seen_user_agent)
             FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[])
               AS v(user_id, device_id, ip, ts, ua)
             WHERE d.user_id = v.user_id AND d.device_id = v.device_id
               AND (d.last_seen_ts IS NULL OR d.last_seen_ts < v.ts)",
        )
        .bind(&users)
        .bind(&devices)
        .bind(&ips)
        .bind(&times)
        .bind(&agents)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }
}
