//! End-to-end encryption on PostgreSQL: keys, claims, device-list changes and to-device
//! messages.
//!
//! Device-list and to-device positions are taken inside the writing transaction (see
//! [`super::positions`]): the counter's new value is invisible until the commit, so no
//! in-flight marker is needed, at the price of writers of one stream waiting for each other's
//! commits. Both streams are written far less often than rooms or account data.
//!
//! A claim takes the oldest key with `FOR UPDATE SKIP LOCKED`: two claimers racing for the
//! last key never both get it (KC-02), and neither waits for the other.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{txn::PgTxn, *};
use crate::{
    ClaimedKey, CrossSigningKey, DeviceInbox, DeviceKeyState, DeviceKeys, DeviceListDelta,
    E2eeStore, FallbackKey, KeyClaim, KeyCounts, KeySignature, KeysTxn, OneTimeKey,
    ToDeviceMessage, ToDeviceSend,
    e2ee::{DEVICE_LIST_DELTA, ROOM_MATES, delta_from_rows},
    pos_param,
};

/// The shared SQL of both backends, in PostgreSQL's spelling of parameters.
fn pg_sql(sql: &str) -> String {
    sql.replace('?', "$")
}

/// Takes a device-list position in the transaction and records the change at it; returns
/// the notification to send once the transaction has committed.
pub(super) async fn record_device_change(
    conn: &mut PgConnection,
    user_id: &str,
) -> StoreResult<String> {
    record_change(conn, user_id, None).await
}

/// [`record_device_change`]; with `only_for`, a change only that user hears of.
async fn record_change(
    conn: &mut PgConnection,
    user_id: &str,
    only_for: Option<&str>,
) -> StoreResult<String> {
    let pos: i64 = sqlx::query_scalar(
        "WITH p AS (UPDATE stream_positions SET pos = pos + 1 WHERE stream = $1 RETURNING pos)
         INSERT INTO device_list_changes (pos, user_id, only_for)
         SELECT pos, $2, $3 FROM p RETURNING pos",
    )
    .bind(Stream::DeviceLists.name())
    .bind(user_id)
    .bind(only_for)
    .fetch_one(conn)
    .await
    .map_err(classify)?;
    Ok(positions::device_list_note(pos, user_id))
}

/// Deletes what these devices own for end-to-end encryption.
pub(super) async fn delete_device_keys(
    conn: &mut PgConnection,
    user_id: &str,
    device_ids: &[String],
) -> StoreResult<()> {
    for table in [
        "device_keys",
        "one_time_keys",
        "fallback_keys",
        "to_device",
        "dehydrated_devices",
    ] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE user_id = $1 AND device_id = ANY($2)"
        ))
        .bind(user_id)
        .bind(device_ids)
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    }
    Ok(())
}

async fn key_counts(
    conn: &mut PgConnection,
    user_id: &str,
    device_id: &str,
) -> StoreResult<KeyCounts> {
    let one_time: Vec<(String, i64)> = sqlx::query_as(
        "SELECT algorithm, COUNT(*) FROM one_time_keys
         WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm",
    )
    .bind(user_id)
    .bind(device_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(classify)?;
    let unused_fallback = sqlx::query_scalar(
        "SELECT algorithm FROM fallback_keys
         WHERE user_id = $1 AND device_id = $2 AND NOT used ORDER BY algorithm",
    )
    .bind(user_id)
    .bind(device_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(classify)?;
    Ok(KeyCounts {
        one_time: one_time.into_iter().map(|(a, n)| (a, n as u64)).collect(),
        unused_fallback,
    })
}

impl PostgresStore {
    async fn claim_one(&self, claim: &KeyClaim) -> StoreResult<Option<OneTimeKey>> {
        let taken: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM one_time_keys WHERE seq = (
                 SELECT seq FROM one_time_keys
                 WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
                 ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING key_id, key_json",
        )
        .bind(&claim.user_id)
        .bind(&claim.device_id)
        .bind(&claim.algorithm)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        let taken = match taken {
            Some(found) => Some(found),
            // KC-05: the fallback key goes out on every claim until it is replaced.
            None => sqlx::query_as(
                "UPDATE fallback_keys SET used = TRUE
                 WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
                 RETURNING key_id, key_json",
            )
            .bind(&claim.user_id)
            .bind(&claim.device_id)
            .bind(&claim.algorithm)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?,
        };
        Ok(taken.map(|(key_id, json)| OneTimeKey {
            algorithm: claim.algorithm.clone(),
            key_id,
            json,
        }))
    }
}

#[async_trait]
impl E2eeStore for PostgresStore {
    async fn device_keys(
        &self,
        query: Vec<(String, Vec<String>)>,
    ) -> StoreResult<(Vec<DeviceKeys>, Vec<String>)> {
        let users: Vec<String> = query.iter().map(|(u, _)| u.clone()).collect();
        let existing: Vec<String> =
            sqlx::query_scalar("SELECT user_id FROM users WHERE user_id = ANY($1)")
                .bind(&users)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT k.user_id, k.device_id, k.key_json, d.display_name FROM device_keys k
             JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
             WHERE k.user_id = ANY($1) ORDER BY k.user_id, k.device_id",
        )
        .bind(&existing)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let found = rows
            .into_iter()
            .filter(|(user_id, device_id, _, _)| {
                query
                    .iter()
                    .any(|(u, ds)| u == user_id && (ds.is_empty() || ds.contains(device_id)))
            })
            .map(|(user_id, device_id, json, display_name)| DeviceKeys {
                user_id,
                device_id,
                json,
                display_name,
            })
            .collect();
        Ok((found, existing))
    }

    async fn claim_keys(&self, claims: Vec<KeyClaim>) -> StoreResult<Vec<ClaimedKey>> {
        let mut claimed = Vec::new();
        for claim in claims {
            if let Some(key) = self.claim_one(&claim).await? {
                claimed.push(ClaimedKey {
                    user_id: claim.user_id,
                    device_id: claim.device_id,
                    key,
                });
            }
        }
        Ok(claimed)
    }

    async fn send_to_device(&self, send: ToDeviceSend) -> StoreResult<Option<Vec<String>>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let fresh = sqlx::query(
            "INSERT INTO txn_ids (user_id, device_id, scope, event_id, created_ts)
             VALUES ($1, $2, $3, '', $4) ON CONFLICT DO NOTHING",
        )
        .bind(&send.sender)
        .bind(&send.sender_device)
        .bind(&send.scope)
        .bind(send.now_ms)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if fresh.rows_affected() == 0 {
            return Ok(None);
        }
        let pos: i64 = sqlx::query_scalar(
            "UPDATE stream_positions SET pos = pos + 1 WHERE stream = $1 RETURNING pos",
        )
        .bind(Stream::ToDevice.name())
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        let mut users = Vec::with_capacity(send.messages.len());
        let mut devices = Vec::with_capacity(send.messages.len());
        let mut contents = Vec::with_capacity(send.messages.len());
        for (user, device, content) in send.messages {
            users.push(user);
            devices.push(device);
            contents.push(content);
        }
        // TD-10, TD-11: `*` reaches every current device, an unknown device nothing.
        let reached: Vec<(String, String)> = sqlx::query_as(
            "INSERT INTO to_device (user_id, device_id, pos, sender, event_type, content)
             SELECT d.user_id, d.device_id, $1, $2, $3, m.content
             FROM UNNEST($4::TEXT[], $5::TEXT[], $6::TEXT[]) AS m(user_id, device_id, content)
             JOIN devices d ON d.user_id = m.user_id
                           AND (m.device_id IS NULL OR d.device_id = m.device_id)
             ON CONFLICT DO NOTHING
             RETURNING user_id, device_id",
        )
        .bind(pos)
        .bind(&send.sender)
        .bind(&send.event_type)
        .bind(&users)
        .bind(&devices)
        .bind(&contents)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let (reached_users, reached_devices): (Vec<String>, Vec<String>) =
            reached.into_iter().unzip();
        sqlx::query(
            "DELETE FROM to_device t
             USING (SELECT DISTINCT u, d FROM UNNEST($1::TEXT[], $2::TEXT[]) AS x(u, d)) x
             WHERE t.user_id = x.u AND t.device_id = x.d AND t.pos <= (
                 SELECT pos FROM to_device WHERE user_id = x.u AND device_id = x.d
                 ORDER BY pos DESC LIMIT 1 OFFSET $3)",
        )
        .bind(&reached_users)
        .bind(&reached_devices)
        .bind(pos_param(send.max_pending))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let mut reached_users = reached_users;
        reached_users.sort();
        reached_users.dedup();
        let notes: Vec<String> = reached_users
            .iter()
            .map(|u| positions::to_device_note(pos, u))
            .collect();
        positions::notify(&self.fast, &notes).await;
        Ok(Some(reached_users))
    }

    async fn device_inbox(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
        upto: u64,
        limit: u32,
    ) -> StoreResult<DeviceInbox> {
        let messages: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT pos, sender, event_type, content FROM to_device
             WHERE user_id = $1 AND device_id = $2 AND pos > $3 AND pos <= $4
             ORDER BY pos LIMIT $5",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(pos_param(after))
        .bind(pos_param(upto))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let acknowledged_left: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM to_device
                            WHERE user_id = $1 AND device_id = $2 AND pos <= $3)",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(pos_param(after))
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok(DeviceInbox {
            messages: messages
                .into_iter()
                .map(|(pos, sender, event_type, content)| ToDeviceMessage {
                    pos: pos as u64,
                    sender,
                    event_type,
                    content,
                })
                .collect(),
            acknowledged_left,
            counts: {
                let mut conn = self.pool.acquire().await.map_err(classify)?;
                key_counts(&mut conn, user_id, device_id).await?
            },
        })
    }

    async fn acknowledge_to_device(
        &self,
        user_id: &str,
        device_id: &str,
        upto: u64,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM to_device WHERE user_id = $1 AND device_id = $2 AND pos <= $3")
            .bind(user_id)
            .bind(device_id)
            .bind(pos_param(upto))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn device_list_delta(
        &self,
        user_id: &str,
        from: StreamPositions,
        upto: StreamPositions,
    ) -> StoreResult<DeviceListDelta> {
        let rows: Vec<(String, String)> = sqlx::query_as(&pg_sql(DEVICE_LIST_DELTA))
            .bind(user_id)
            .bind(pos_param(from.get(Stream::DeviceLists)))
            .bind(pos_param(upto.get(Stream::DeviceLists)))
            .bind(pos_param(from.get(Stream::RoomEvents)))
            .bind(pos_param(upto.get(Stream::RoomEvents)))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(delta_from_rows(rows))
    }

    async fn cross_signing_keys(&self, users: Vec<String>) -> StoreResult<Vec<CrossSigningKey>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        cross_signing::select(&mut conn, Some(&users)).await
    }

    async fn key_signatures(
        &self,
        targets: Vec<String>,
        viewer: &str,
    ) -> StoreResult<Vec<KeySignature>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        cross_signing::signatures(&mut conn, Some((&targets, viewer))).await
    }

    async fn room_mates(&self, user_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(&pg_sql(ROOM_MATES))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
    }

    async fn dehydrated_device(&self, user_id: &str) -> StoreResult<Option<(String, String)>> {
        sqlx::query_as("SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }

    async fn key_states(&self, user_id: &str) -> StoreResult<Vec<DeviceKeyState>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let devices: Vec<(String, bool)> = sqlx::query_as(
            "SELECT d.device_id, EXISTS (SELECT 1 FROM device_keys k
                                         WHERE k.user_id = d.user_id AND k.device_id = d.device_id)
             FROM devices d WHERE d.user_id = $1 ORDER BY d.device_id",
        )
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let mut states = Vec::with_capacity(devices.len());
        for (device_id, has_device_keys) in devices {
            let counts = key_counts(&mut tx, user_id, &device_id).await?;
            states.push(DeviceKeyState {
                device_id,
                has_device_keys,
                counts,
            });
        }
        tx.commit().await.map_err(classify)?;
        Ok(states)
    }
}

#[async_trait]
impl KeysTxn for PgTxn {
    async fn device_keys_of(&mut self, device_id: &str) -> StoreResult<Option<String>> {
        let user_id = self.user_id().to_owned();
        sqlx::query_scalar("SELECT key_json FROM device_keys WHERE user_id = $1 AND device_id = $2")
            .bind(user_id)
            .bind(device_id)
            .fetch_optional(self.conn())
            .await
            .map_err(classify)
    }

    async fn put_device_keys(&mut self, device_id: &str, json: &str) -> StoreResult<()> {
        let user_id = self.user_id().to_owned();
        sqlx::query(
            "INSERT INTO device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json",
        )
        .bind(&user_id)
        .bind(device_id)
        .bind(json)
        .execute(self.conn())
        .await
        .map_err(classify)?;
        let note = record_device_change(self.conn(), &user_id).await?;
        self.note(note);
        Ok(())
    }

    async fn one_time_keys_among(
        &mut self,
        device_id: &str,
        key_ids: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        let user_id = self.user_id().to_owned();
        sqlx::query_as(
            "SELECT key_id, key_json FROM one_time_keys
             WHERE user_id = $1 AND device_id = $2 AND key_id = ANY($3)",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(key_ids)
        .fetch_all(self.conn())
        .await
        .map_err(classify)
    }

    async fn add_one_time_keys(
        &mut self,
        device_id: &str,
        keys: Vec<OneTimeKey>,
        keep: u64,
    ) -> StoreResult<()> {
        let user_id = self.user_id().to_owned();
        let (mut algorithms, mut ids, mut jsons) = (Vec::new(), Vec::new(), Vec::new());
        for key in keys {
            algorithms.push(key.algorithm);
            ids.push(key.key_id);
            jsons.push(key.json);
        }
        // WITH ORDINALITY keeps the upload's own order in `seq`.
        sqlx::query(
            "INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key_json)
             SELECT $1, $2, k.a, k.i, k.j
             FROM UNNEST($3::TEXT[], $4::TEXT[], $5::TEXT[]) WITH ORDINALITY AS k(a, i, j, n)
             ORDER BY k.n
             ON CONFLICT DO NOTHING",
        )
        .bind(&user_id)
        .bind(device_id)
        .bind(&algorithms)
        .bind(&ids)
        .bind(&jsons)
        .execute(self.conn())
        .await
        .map_err(classify)?;
        sqlx::query(
            "DELETE FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND seq <= (
                 SELECT seq FROM one_time_keys WHERE user_id = $1 AND device_id = $2
                 ORDER BY seq DESC LIMIT 1 OFFSET $3)",
        )
        .bind(&user_id)
        .bind(device_id)
        .bind(pos_param(keep))
        .execute(self.conn())
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn fallback_keys_of(&mut self, device_id: &str) -> StoreResult<Vec<FallbackKey>> {
        let user_id = self.user_id().to_owned();
        let rows: Vec<(String, String, String, bool)> = sqlx::query_as(
            "SELECT algorithm, key_id, key_json, used FROM fallback_keys
             WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_all(self.conn())
        .await
        .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(algorithm, key_id, json, used)| FallbackKey {
                key: OneTimeKey {
                    algorithm,
                    key_id,
                    json,
                },
                used,
            })
            .collect())
    }

    async fn put_fallback_key(&mut self, device_id: &str, key: OneTimeKey) -> StoreResult<()> {
        let user_id = self.user_id().to_owned();
        sqlx::query(
            "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
             VALUES ($1, $2, $3, $4, $5, FALSE)
             ON CONFLICT (user_id, device_id, algorithm) DO UPDATE
             SET key_id = excluded.key_id, key_json = excluded.key_json, used = FALSE",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(&key.algorithm)
        .bind(&key.key_id)
        .bind(&key.json)
        .execute(self.conn())
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn cross_signing_keys_of(&mut self) -> StoreResult<Vec<CrossSigningKey>> {
        let users = vec![self.user_id().to_owned()];
        cross_signing::select(self.conn(), Some(&users)).await
    }

    async fn put_cross_signing_keys(&mut self, keys: Vec<CrossSigningKey>) -> StoreResult<()> {
        for key in &keys {
            cross_signing::insert(self.conn(), key).await?;
        }
        let user_id = self.user_id().to_owned();
        let heard_by = crate::keys_heard_by(&keys, &user_id);
        let note = record_change(self.conn(), &user_id, heard_by).await?;
        self.note(note);
        Ok(())
    }

    async fn put_key_signatures(&mut self, signatures: Vec<KeySignature>) -> StoreResult<()> {
        for signature in &signatures {
            cross_signing::insert_signature(self.conn(), signature).await?;
        }
        let user_id = self.user_id().to_owned();
        for (changed, only_for) in crate::signature_changes(&signatures, &user_id) {
            let note = record_change(self.conn(), changed, only_for).await?;
            self.note(note);
        }
        Ok(())
    }

    async fn dehydrated_device_of(&mut self) -> StoreResult<Option<(String, String)>> {
        let user_id = self.user_id().to_owned();
        sqlx::query_as("SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.conn())
            .await
            .map_err(classify)
    }

    async fn set_dehydrated_device(
        &mut self,
        device_id: &str,
        device_data: &str,
    ) -> StoreResult<()> {
        let user_id = self.user_id().to_owned();
        sqlx::query(
            "INSERT INTO dehydrated_devices (user_id, device_id, device_data) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE
             SET device_id = excluded.device_id, device_data = excluded.device_data",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(device_data)
        .execute(self.conn())
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn key_counts(&mut self, device_id: &str) -> StoreResult<KeyCounts> {
        let user_id = self.user_id().to_owned();
        key_counts(self.conn(), &user_id, device_id).await
    }
}
