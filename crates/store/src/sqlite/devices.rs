//! Devices and `last_seen` on SQLite.

use async_trait::async_trait;

use super::*;
use crate::DeviceStore;

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn list_devices(&self, user_id: &str) -> StoreResult<Vec<Device>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT device_id, display_name, last_seen_ip, last_seen_ts, last_seen_user_agent
                     FROM devices WHERE user_id = ?1 ORDER BY device_id",
                )
                .and_then(|mut s| {
                    s.query_map([user_id], device_from_row)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(classify)
            })
            .await
    }

    async fn get_device(&self, user_id: &str, device_id: &str) -> StoreResult<Option<Device>> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT device_id, display_name, last_seen_ip, last_seen_ts, last_seen_user_agent
                     FROM devices WHERE user_id = ?1 AND device_id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![user_id, device_id], device_from_row)
                        .optional()
                })
                .map_err(classify)
            })
            .await
    }

    async fn upsert_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<String>,
        create: bool,
        now_ms: i64,
    ) -> StoreResult<DeviceUpsert> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<DeviceUpsert> {
                    let changed = conn
                        .prepare_cached(
                            "UPDATE devices SET display_name = COALESCE(?3, display_name)
                             WHERE user_id = ?1 AND device_id = ?2",
                        )?
                        .execute(params![user_id, device_id, display_name])?;
                    if changed > 0 {
                        // DL-02: a rename changes what `/keys/query` answers.
                        if display_name.is_some() {
                            e2ee::record_device_change(conn, &user_id)?;
                        }
                        return Ok(DeviceUpsert::Updated);
                    }
                    if !create {
                        return Ok(DeviceUpsert::NotFound);
                    }
                    conn.prepare_cached(
                        "INSERT INTO devices (user_id, device_id, display_name, created_ts)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        user_id,
                        device_id,
                        display_name,
                        now_ms
                    ])?;
                    e2ee::record_device_change(conn, &user_id)?;
                    Ok(DeviceUpsert::Created)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn stale_devices(&self, before_ms: i64, limit: u32) -> StoreResult<Vec<TokenOwner>> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT user_id, device_id FROM devices
                     WHERE COALESCE(last_seen_ts, created_ts) < ?1
                     ORDER BY COALESCE(last_seen_ts, created_ts) LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(params![before_ms, limit], |r| {
                        Ok(TokenOwner {
                            user_id: r.get(0)?,
                            device_id: r.get(1)?,
                        })
                    })?
                    .collect::<Result<_, _>>()
                })
                .map_err(classify)
            })
            .await
    }

    async fn record_last_seen(&self, batch: Vec<LastSeen>) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "UPDATE devices SET last_seen_ts = ?3, last_seen_ip = COALESCE(?4, last_seen_ip),
                             last_seen_user_agent = COALESCE(?5, last_seen_user_agent)
                         WHERE user_id = ?1 AND device_id = ?2
                           AND (last_seen_ts IS NULL OR last_seen_ts < ?3)",
                    )
                    .map_err(classify)?;
                for seen in batch {
                    stmt.execute(params![
                        seen.user_id,
                        seen.device_id,
                        seen.ts,
                        seen.ip,
                        seen.user_agent
                    ])
                        .map_err(classify)?;
                }
                Ok(())
            })
            .await
    }
}
