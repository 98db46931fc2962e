//! End-to-end encryption on SQLite: keys, claims, device-list changes and to-device messages.
//!
//! Every write runs on the single writer, so a claim's "oldest key, then delete it" can never
//! hand one key to two claimers (KC-02), and a send stores all its recipients at one position
//! together with its transaction ID (TD-16).

use async_trait::async_trait;

use super::{txn::SqliteTxn, *};
use crate::pos_param;
use crate::{
    ClaimedKey, CrossSigningKey, DeviceInbox, DeviceKeyState, DeviceKeys, DeviceListDelta,
    E2eeStore, FallbackKey, KeyClaim, KeyCounts, KeySignature, KeysTxn, OneTimeKey,
    ToDeviceMessage, ToDeviceSend,
    e2ee::{DEVICE_LIST_DELTA, ROOM_MATES, delta_from_rows},
};

/// Records that `user_id`'s devices changed, at a new device-list position.
pub(super) fn record_device_change(conn: &Connection, user_id: &str) -> rusqlite::Result<u64> {
    record_change(conn, user_id, None)
}

/// [`record_device_change`]; with `only_for`, a change only that user hears of.
fn record_change(
    conn: &Connection,
    user_id: &str,
    only_for: Option<&str>,
) -> rusqlite::Result<u64> {
    let pos = next_pos(conn, Stream::DeviceLists)?;
    conn.prepare_cached(
        "INSERT INTO device_list_changes (pos, user_id, only_for) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![pos as i64, user_id, only_for])?;
    Ok(pos)
}

/// Deletes what a device owns for end-to-end encryption.
pub(super) fn delete_device_keys(
    conn: &Connection,
    user_id: &str,
    device_id: &str,
) -> rusqlite::Result<()> {
    for table in [
        "device_keys",
        "one_time_keys",
        "fallback_keys",
        "to_device",
        "dehydrated_devices",
    ] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE user_id = ?1 AND device_id = ?2"
        ))?
        .execute(params![user_id, device_id])?;
    }
    Ok(())
}

fn key_counts(conn: &Connection, user_id: &str, device_id: &str) -> rusqlite::Result<KeyCounts> {
    let one_time = conn
        .prepare_cached(
            "SELECT algorithm, COUNT(*) FROM one_time_keys
             WHERE user_id = ?1 AND device_id = ?2 GROUP BY algorithm",
        )?
        .query_map(params![user_id, device_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<_, _>>()?;
    let unused_fallback = conn
        .prepare_cached(
            "SELECT algorithm FROM fallback_keys
             WHERE user_id = ?1 AND device_id = ?2 AND used = 0 ORDER BY algorithm",
        )?
        .query_map(params![user_id, device_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(KeyCounts {
        one_time,
        unused_fallback,
    })
}

fn claim_one(conn: &Connection, claim: &KeyClaim) -> rusqlite::Result<Option<OneTimeKey>> {
    let args = params![claim.user_id, claim.device_id, claim.algorithm];
    let taken = conn
        .prepare_cached(
            "DELETE FROM one_time_keys WHERE seq = (
                 SELECT seq FROM one_time_keys
                 WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3
                 ORDER BY seq LIMIT 1)
             RETURNING key_id, key_json",
        )?
        .query_row(args, |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let taken = match taken {
        Some(found) => Some(found),
        // KC-05: the fallback key goes out on every claim until it is replaced.
        None => conn
            .prepare_cached(
                "UPDATE fallback_keys SET used = 1
                 WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3
                 RETURNING key_id, key_json",
            )?
            .query_row(args, |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    };
    Ok(taken.map(|(key_id, json)| OneTimeKey {
        algorithm: claim.algorithm.clone(),
        key_id,
        json,
    }))
}

fn store_send(conn: &Connection, send: &ToDeviceSend) -> rusqlite::Result<Option<Vec<String>>> {
    let fresh = conn
        .prepare_cached(
            "INSERT INTO txn_ids (user_id, device_id, scope, event_id, created_ts)
             VALUES (?1, ?2, ?3, '', ?4) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            send.sender,
            send.sender_device,
            send.scope,
            send.now_ms
        ])?;
    if fresh == 0 {
        return Ok(None);
    }
    let pos = next_pos(conn, Stream::ToDevice)? as i64;
    let mut all_devices =
        conn.prepare_cached("SELECT device_id FROM devices WHERE user_id = ?1")?;
    let mut one_device =
        conn.prepare_cached("SELECT device_id FROM devices WHERE user_id = ?1 AND device_id = ?2")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO to_device (user_id, device_id, pos, sender, event_type, content)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
    )?;
    let mut trim = conn.prepare_cached(
        "DELETE FROM to_device WHERE user_id = ?1 AND device_id = ?2 AND pos <= (
             SELECT pos FROM to_device WHERE user_id = ?1 AND device_id = ?2
             ORDER BY pos DESC LIMIT 1 OFFSET ?3)",
    )?;
    let mut reached = Vec::new();
    for (user_id, device, content) in &send.messages {
        let devices: Vec<String> = match device {
            None => all_devices
                .query_map([user_id], |r| r.get(0))?
                .collect::<Result<_, _>>()?,
            // TD-11: a device that does not exist gets nothing.
            Some(device) => one_device
                .query_map(params![user_id, device], |r| r.get(0))?
                .collect::<Result<_, _>>()?,
        };
        for device_id in devices {
            insert.execute(params![
                user_id,
                device_id,
                pos,
                send.sender,
                send.event_type,
                content
            ])?;
            trim.execute(params![user_id, device_id, send.max_pending as i64])?;
            reached.push(user_id.clone());
        }
    }
    reached.sort();
    reached.dedup();
    Ok(Some(reached))
}

#[async_trait]
impl E2eeStore for SqliteStore {
    async fn device_keys(
        &self,
        query: Vec<(String, Vec<String>)>,
    ) -> StoreResult<(Vec<DeviceKeys>, Vec<String>)> {
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<(Vec<DeviceKeys>, Vec<String>)> {
                    let mut exists =
                        conn.prepare_cached("SELECT 1 FROM users WHERE user_id = ?1")?;
                    let mut keys = conn.prepare_cached(
                        "SELECT k.device_id, k.key_json, d.display_name FROM device_keys k
                         JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
                         WHERE k.user_id = ?1 ORDER BY k.device_id",
                    )?;
                    let (mut found, mut users) = (Vec::new(), Vec::new());
                    for (user_id, devices) in query {
                        if exists
                            .query_row([&user_id], |_| Ok(()))
                            .optional()?
                            .is_none()
                        {
                            continue;
                        }
                        let rows = keys.query_map([&user_id], |r| {
                            Ok(DeviceKeys {
                                user_id: user_id.clone(),
                                device_id: r.get(0)?,
                                json: r.get(1)?,
                                display_name: r.get(2)?,
                            })
                        })?;
                        for row in rows {
                            let row = row?;
                            if devices.is_empty() || devices.contains(&row.device_id) {
                                found.push(row);
                            }
                        }
                        users.push(user_id);
                    }
                    Ok((found, users))
                };
                run().map_err(classify)
            })
            .await
    }

    async fn claim_keys(&self, claims: Vec<KeyClaim>) -> StoreResult<Vec<ClaimedKey>> {
        self.pool
            .write(move |conn| {
                let mut claimed = Vec::new();
                for claim in claims {
                    if let Some(key) = claim_one(conn, &claim).map_err(classify)? {
                        claimed.push(ClaimedKey {
                            user_id: claim.user_id,
                            device_id: claim.device_id,
                            key,
                        });
                    }
                }
                Ok(claimed)
            })
            .await
    }

    async fn send_to_device(&self, send: ToDeviceSend) -> StoreResult<Option<Vec<String>>> {
        self.pool
            .write(move |conn| store_send(conn, &send).map_err(classify))
            .await
    }

    async fn device_inbox(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
        upto: u64,
        limit: u32,
    ) -> StoreResult<DeviceInbox> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<DeviceInbox> {
                    let messages = conn
                        .prepare_cached(
                            "SELECT pos, sender, event_type, content FROM to_device
                             WHERE user_id = ?1 AND device_id = ?2 AND pos > ?3 AND pos <= ?4
                             ORDER BY pos LIMIT ?5",
                        )?
                        .query_map(
                            params![user_id, device_id, pos_param(after), pos_param(upto), limit],
                            |r| {
                                Ok(ToDeviceMessage {
                                    pos: r.get::<_, i64>(0)? as u64,
                                    sender: r.get(1)?,
                                    event_type: r.get(2)?,
                                    content: r.get(3)?,
                                })
                            },
                        )?
                        .collect::<Result<_, _>>()?;
                    let acknowledged_left = conn
                        .prepare_cached(
                            "SELECT 1 FROM to_device
                             WHERE user_id = ?1 AND device_id = ?2 AND pos <= ?3 LIMIT 1",
                        )?
                        .query_row(params![user_id, device_id, pos_param(after)], |_| Ok(()))
                        .optional()?
                        .is_some();
                    Ok(DeviceInbox {
                        messages,
                        acknowledged_left,
                        counts: key_counts(conn, &user_id, &device_id)?,
                    })
                };
                pool::snapshot(conn, run).map_err(classify)
            })
            .await
    }

    async fn acknowledge_to_device(
        &self,
        user_id: &str,
        device_id: &str,
        upto: u64,
    ) -> StoreResult<()> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM to_device WHERE user_id = ?1 AND device_id = ?2 AND pos <= ?3",
                )
                .and_then(|mut s| s.execute(params![user_id, device_id, pos_param(upto)]))
                .map(drop)
                .map_err(classify)
            })
            .await
    }

    async fn device_list_delta(
        &self,
        user_id: &str,
        from: StreamPositions,
        upto: StreamPositions,
    ) -> StoreResult<DeviceListDelta> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(DEVICE_LIST_DELTA)
                    .and_then(|mut s| {
                        s.query_map(
                            params![
                                user_id,
                                pos_param(from.get(Stream::DeviceLists)),
                                pos_param(upto.get(Stream::DeviceLists)),
                                pos_param(from.get(Stream::RoomEvents)),
                                pos_param(upto.get(Stream::RoomEvents)),
                            ],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )?
                        .collect::<Result<Vec<_>, _>>()
                    })
                    .map(delta_from_rows)
                    .map_err(classify)
            })
            .await
    }

    async fn cross_signing_keys(&self, users: Vec<String>) -> StoreResult<Vec<CrossSigningKey>> {
        let users = serde_json::Value::from(users).to_string();
        self.pool
            .read(move |conn| cross_signing::select(conn, Some(&users)).map_err(classify))
            .await
    }

    async fn key_signatures(
        &self,
        targets: Vec<String>,
        viewer: &str,
    ) -> StoreResult<Vec<KeySignature>> {
        let (targets, viewer) = (
            serde_json::Value::from(targets).to_string(),
            viewer.to_owned(),
        );
        self.pool
            .read(move |conn| {
                cross_signing::signatures(conn, Some((&targets, &viewer))).map_err(classify)
            })
            .await
    }

    async fn room_mates(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(ROOM_MATES)
                    .and_then(|mut s| {
                        s.query_map([user_id], |r| r.get(0))?
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(classify)
            })
            .await
    }

    async fn dehydrated_device(&self, user_id: &str) -> StoreResult<Option<(String, String)>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| dehydrated_of(conn, &user_id).map_err(classify))
            .await
    }

    async fn key_states(&self, user_id: &str) -> StoreResult<Vec<DeviceKeyState>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                // One read transaction: every device's counts of the same moment.
                conn.execute_batch("BEGIN").map_err(classify)?;
                let states = key_states(conn, &user_id).map_err(classify);
                let _ = conn.execute_batch("COMMIT");
                states
            })
            .await
    }
}

fn key_states(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<DeviceKeyState>> {
    let devices: Vec<(String, bool)> = conn
        .prepare_cached(
            "SELECT d.device_id, EXISTS (SELECT 1 FROM device_keys k
                                         WHERE k.user_id = d.user_id AND k.device_id = d.device_id)
             FROM devices d WHERE d.user_id = ?1 ORDER BY d.device_id",
        )?
        .query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    devices
        .into_iter()
        .map(|(device_id, has_device_keys)| {
            let counts = key_counts(conn, user_id, &device_id)?;
            Ok(DeviceKeyState {
                device_id,
                has_device_keys,
                counts,
            })
        })
        .collect()
}

fn dehydrated_of(conn: &Connection, user_id: &str) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached("SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = ?1")?
        .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

#[async_trait]
impl KeysTxn for SqliteTxn {
    async fn device_keys_of(&mut self, device_id: &str) -> StoreResult<Option<String>> {
        let device_id = device_id.to_owned();
        self.run(move |conn, user_id| {
            conn.prepare_cached(
                "SELECT key_json FROM device_keys WHERE user_id = ?1 AND device_id = ?2",
            )?
            .query_row(params![user_id, device_id], |r| r.get(0))
            .optional()
        })
        .await
    }

    async fn put_device_keys(&mut self, device_id: &str, json: &str) -> StoreResult<()> {
        let (device_id, json) = (device_id.to_owned(), json.to_owned());
        self.run(move |conn, user_id| {
            conn.prepare_cached(
                "INSERT INTO device_keys (user_id, device_id, key_json) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json",
            )?
            .execute(params![user_id, device_id, json])?;
            record_device_change(conn, user_id).map(drop)
        })
        .await
    }

    async fn one_time_keys_among(
        &mut self,
        device_id: &str,
        key_ids: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        let (device_id, key_ids) = (device_id.to_owned(), key_ids.to_vec());
        self.run(move |conn, user_id| {
            let mut stmt = conn.prepare_cached(
                "SELECT key_json FROM one_time_keys
                 WHERE user_id = ?1 AND device_id = ?2 AND key_id = ?3",
            )?;
            let mut found = Vec::new();
            for key_id in key_ids {
                if let Some(json) = stmt
                    .query_row(params![user_id, device_id, key_id], |r| r.get(0))
                    .optional()?
                {
                    found.push((key_id, json));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn add_one_time_keys(
        &mut self,
        device_id: &str,
        keys: Vec<OneTimeKey>,
        keep: u64,
    ) -> StoreResult<()> {
        let device_id = device_id.to_owned();
        self.run(move |conn, user_id| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key_json)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )?;
            for key in &keys {
                insert.execute(params![
                    user_id,
                    device_id,
                    key.algorithm,
                    key.key_id,
                    key.json
                ])?;
            }
            conn.prepare_cached(
                "DELETE FROM one_time_keys WHERE user_id = ?1 AND device_id = ?2 AND seq <= (
                     SELECT seq FROM one_time_keys WHERE user_id = ?1 AND device_id = ?2
                     ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
            )?
            .execute(params![user_id, device_id, pos_param(keep)])?;
            Ok(())
        })
        .await
    }

    async fn fallback_keys_of(&mut self, device_id: &str) -> StoreResult<Vec<FallbackKey>> {
        let device_id = device_id.to_owned();
        self.run(move |conn, user_id| {
            conn.prepare_cached(
                "SELECT algorithm, key_id, key_json, used FROM fallback_keys
                 WHERE user_id = ?1 AND device_id = ?2",
            )?
            .query_map(params![user_id, device_id], |r| {
                Ok(FallbackKey {
                    key: OneTimeKey {
                        algorithm: r.get(0)?,
                        key_id: r.get(1)?,
                        json: r.get(2)?,
                    },
                    used: r.get::<_, i64>(3)? != 0,
                })
            })?
            .collect()
        })
        .await
    }

    async fn put_fallback_key(&mut self, device_id: &str, key: OneTimeKey) -> StoreResult<()> {
        let device_id = device_id.to_owned();
        self.run(move |conn, user_id| {
            conn.prepare_cached(
                "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)
                 ON CONFLICT (user_id, device_id, algorithm) DO UPDATE
                 SET key_id = excluded.key_id, key_json = excluded.key_json, used = 0",
            )?
            .execute(params![
                user_id,
                device_id,
                key.algorithm,
                key.key_id,
                key.json
            ])?;
            Ok(())
        })
        .await
    }

    async fn cross_signing_keys_of(&mut self) -> StoreResult<Vec<CrossSigningKey>> {
        self.run(move |conn, user_id| {
            let users = serde_json::Value::from(vec![user_id.to_owned()]).to_string();
            cross_signing::select(conn, Some(&users))
        })
        .await
    }

    async fn put_cross_signing_keys(&mut self, keys: Vec<CrossSigningKey>) -> StoreResult<()> {
        self.run(move |conn, user_id| {
            for key in &keys {
                cross_signing::insert(conn, key)?;
            }
            record_change(conn, user_id, crate::keys_heard_by(&keys, user_id)).map(drop)
        })
        .await
    }

    async fn put_key_signatures(&mut self, signatures: Vec<KeySignature>) -> StoreResult<()> {
        self.run(move |conn, user_id| {
            for signature in &signatures {
                cross_signing::insert_signature(conn, signature)?;
            }
            for (changed, only_for) in crate::signature_changes(&signatures, user_id) {
                record_change(conn, changed, only_for)?;
            }
            Ok(())
        })
        .await
    }

    async fn dehydrated_device_of(&mut self) -> StoreResult<Option<(String, String)>> {
        self.run(dehydrated_of).await
    }

    async fn set_dehydrated_device(
        &mut self,
        device_id: &str,
        device_data: &str,
    ) -> StoreResult<()> {
        let (device_id, device_data) = (device_id.to_owned(), device_data.to_owned());
        self.run(move |conn, user_id| {
            conn.prepare_cached(
                "INSERT INTO dehydrated_devices (user_id, device_id, device_data) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id) DO UPDATE
                 SET device_id = excluded.device_id, device_data = excluded.device_data",
            )?
            .execute(params![user_id, device_id, device_data])?;
            Ok(())
        })
        .await
    }

    async fn key_counts(&mut self, device_id: &str) -> StoreResult<KeyCounts> {
        let device_id = device_id.to_owned();
        self.run(move |conn, user_id| key_counts(conn, user_id, &device_id))
            .await
    }
}
