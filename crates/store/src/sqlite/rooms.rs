//! Rooms on SQLite: the reads, and the trait's entry points. Appends are in
//! [`super::room_append`].

use async_trait::async_trait;

use super::*;
use crate::{
    Append, LazyMembers, MembershipChange, PendingAppend, RoomInfo, RoomLock, RoomSnapshot,
    RoomStore, StateRow, StoredEvent,
};

pub(super) const EVENT_COLUMNS: &str = "e.pos, e.event_id, e.room_id, e.event_type, e.state_key, \
     e.sender, e.json, e.replaces, e.redacted_by, e.txn_device, e.txn_id";

pub(super) fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    event_from_row_at(r, 0)
}

/// An event whose [`EVENT_COLUMNS`] start at column `at`.
pub(super) fn event_from_row_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredEvent> {
    let device: Option<String> = r.get(at + 9)?;
    let txn_id: Option<String> = r.get(at + 10)?;
    Ok(StoredEvent {
        pos: r.get::<_, i64>(at)? as u64,
        event_id: r.get(at + 1)?,
        room_id: r.get(at + 2)?,
        event_type: r.get(at + 3)?,
        state_key: r.get(at + 4)?,
        sender: r.get(at + 5)?,
        json: r.get(at + 6)?,
        replaces: r.get(at + 7)?,
        redacted_by: r.get(at + 8)?,
        txn: device.zip(txn_id),
    })
}

pub(super) fn state_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StateRow> {
    Ok(StateRow {
        event_type: r.get(0)?,
        state_key: r.get(1)?,
        event_id: r.get(2)?,
        from_pos: r.get::<_, i64>(3)? as u64,
        to_pos: r.get::<_, Option<i64>>(4)?.map(|p| p as u64),
    })
}

fn room_info(conn: &Connection, room_id: &str) -> StoreResult<Option<RoomInfo>> {
    conn.prepare_cached("SELECT room_id, version, creator, published FROM rooms WHERE room_id = ?1")
        .and_then(|mut s| {
            s.query_row([room_id], |r| {
                Ok(RoomInfo {
                    room_id: r.get(0)?,
                    version: r.get(1)?,
                    creator: r.get(2)?,
                    published: r.get(3)?,
                })
            })
            .optional()
        })
        .map_err(classify)
}

fn room_snapshot_tx(conn: &Connection, room_id: &str) -> StoreResult<Option<RoomSnapshot>> {
    let Some(info) = room_info(conn, room_id)? else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM room_state s JOIN events e ON e.event_id = s.event_id
         WHERE s.room_id = ?1 AND s.to_pos IS NULL ORDER BY s.from_pos"
    );
    let state = query_events(conn, &sql, [room_id])?;
    let rows: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT event_id, depth FROM room_extremities WHERE room_id = ?1 ORDER BY event_id",
        )
        .and_then(|mut s| {
            s.query_map([room_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(classify)?;
    let depth = rows.iter().map(|(_, d)| *d).max().unwrap_or(0);
    Ok(Some(RoomSnapshot {
        info,
        state,
        extremities: rows.into_iter().map(|(id, _)| id).collect(),
        depth,
    }))
}

fn query_events(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> StoreResult<Vec<StoredEvent>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_map(args, event_from_row)?.collect())
        .map_err(classify)
}

#[async_trait]
impl RoomStore for SqliteStore {
    fn append_events(&self, append: Append, _lock: Option<Box<dyn RoomLock>>) -> PendingAppend {
        let submitted = self
            .pool
            .submit(move |conn| room_append::append_tx(conn, &append));
        Box::pin(async move { submitted?.await.map_err(|_| StoreError::Closed)? })
    }

    fn orders_appends(&self) -> bool {
        true
    }

    async fn flush(&self) -> StoreResult<()> {
        // The writer runs jobs in order: this one commits after every earlier append.
        self.pool.write(|_| Ok(())).await
    }

    async fn extremities(&self, room_id: &str) -> StoreResult<Vec<String>> {
        let room_id = room_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached("SELECT event_id FROM room_extremities WHERE room_id = ?1")
                    .and_then(|mut s| s.query_map([room_id], |r| r.get(0))?.collect())
                    .map_err(classify)
            })
            .await
    }

    async fn room(&self, room_id: &str) -> StoreResult<Option<RoomInfo>> {
        let room_id = room_id.to_owned();
        self.pool.read(move |conn| room_info(conn, &room_id)).await
    }

    async fn room_snapshot(&self, room_id: &str) -> StoreResult<Option<RoomSnapshot>> {
        let room_id = room_id.to_owned();
        self.pool
            .read(move |conn| {
                // One read transaction: the state and the extremities of the same moment.
                conn.execute_batch("BEGIN").map_err(classify)?;
                let snapshot = room_snapshot_tx(conn, &room_id);
                let _ = conn.execute_batch("COMMIT");
                snapshot
            })
            .await
    }

    async fn event(&self, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        let event_id = event_id.to_owned();
        self.pool
            .read(move |conn| {
                let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.event_id = ?1");
                Ok(query_events(conn, &sql, [event_id])?.pop())
            })
            .await
    }

    async fn events_by_id(&self, event_ids: &[String]) -> StoreResult<Vec<StoredEvent>> {
        let event_ids = event_ids.to_vec();
        self.pool
            .read(move |conn| {
                let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.event_id = ?1");
                let mut found = Vec::with_capacity(event_ids.len());
                for id in event_ids {
                    found.extend(query_events(conn, &sql, [id])?);
                }
                Ok(found)
            })
            .await
    }

    async fn room_events(
        &self,
        room_id: &str,
        after: Option<u64>,
        upto: u64,
        limit: usize,
        backward: bool,
    ) -> StoreResult<Vec<StoredEvent>> {
        let room_id = room_id.to_owned();
        self.pool
            .read(move |conn| {
                let order = if backward { "DESC" } else { "ASC" };
                // The limit is written into the statement, not bound: SQLite plans with a
                // bound LIMIT's value, so such a statement was parsed and planned again on
                // every execution (a quarter of a woken sync's CPU). The few limits callers
                // use each get a cached statement.
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM events e
                     WHERE e.room_id = ?1 AND e.pos > ?2 AND e.pos <= ?3
                     ORDER BY e.pos {order} LIMIT {limit}"
                );
                query_events(
                    conn,
                    &sql,
                    params![
                        room_id,
                        after.map_or(-1, crate::pos_param),
                        crate::pos_param(upto)
                    ],
                )
            })
            .await
    }

    async fn events_near_time(
        &self,
        room_id: &str,
        ts: i64,
        forward: bool,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEvent>> {
        let room_id = room_id.to_owned();
        let (cmp, order) = if forward {
            (">=", "ASC")
        } else {
            ("<=", "DESC")
        };
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events e
                     WHERE e.room_id = ?1 AND e.origin_ts {cmp} ?2 AND e.pos <= ?3
                     ORDER BY e.origin_ts {order}, e.pos {order} LIMIT ?4"
                ))
                .and_then(|mut s| {
                    s.query_map(
                        params![room_id, ts, crate::pos_param(upto), limit as i64],
                        event_from_row,
                    )?
                    .collect()
                })
                .map_err(classify)
            })
            .await
    }

    async fn rooms_with_events(&self, after: u64, upto: u64) -> StoreResult<Vec<(String, u64)>> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT room_id, MAX(pos) FROM events WHERE pos > ?1 AND pos <= ?2
                     GROUP BY room_id",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![crate::pos_param(after), crate::pos_param(upto)],
                        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
                    )?
                    .collect()
                })
                .map_err(classify)
            })
            .await
    }

    async fn member_events_between(&self, after: u64, upto: u64) -> StoreResult<bool> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM events WHERE pos > ?1 AND pos <= ?2
                                      AND event_type = 'm.room.member')",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![crate::pos_param(after), crate::pos_param(upto)],
                        |r| r.get(0),
                    )
                })
                .map_err(classify)
            })
            .await
    }

    async fn state_at(
        &self,
        room_id: &str,
        at: Option<u64>,
        event_type: Option<&str>,
    ) -> StoreResult<Vec<StoredEvent>> {
        let (room_id, event_type) = (room_id.to_owned(), event_type.map(str::to_owned));
        self.pool
            .read(move |conn| match at {
                None => {
                    let sql = format!(
                        "SELECT {EVENT_COLUMNS} FROM room_state s
                         JOIN events e ON e.event_id = s.event_id
                         WHERE s.room_id = ?1 AND s.to_pos IS NULL
                           AND (?2 IS NULL OR s.event_type = ?2)
                         ORDER BY s.from_pos"
                    );
                    query_events(conn, &sql, params![room_id, event_type])
                }
                Some(at) => {
                    let sql = format!(
                        "SELECT {EVENT_COLUMNS} FROM room_state s
                         JOIN events e ON e.event_id = s.event_id
                         WHERE s.room_id = ?1 AND s.from_pos <= ?3
                           AND (s.to_pos IS NULL OR s.to_pos > ?3)
                           AND (?2 IS NULL OR s.event_type = ?2)
                         ORDER BY s.from_pos"
                    );
                    query_events(
                        conn,
                        &sql,
                        params![room_id, event_type, crate::pos_param(at)],
                    )
                }
            })
            .await
    }

    async fn state_window(
        &self,
        room_id: &str,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<StateRow>> {
        let room_id = room_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT event_type, state_key, event_id, from_pos, to_pos FROM room_state
                     WHERE room_id = ?1 AND ((from_pos > ?2 AND from_pos <= ?3)
                                          OR (to_pos > ?2 AND to_pos <= ?3))
                     ORDER BY from_pos",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![room_id, crate::pos_param(after), crate::pos_param(upto)],
                        state_row,
                    )?
                    .collect()
                })
                .map_err(classify)
            })
            .await
    }

    async fn state_key_history(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        upto: u64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let (room_id, event_type, state_key) = (
            room_id.to_owned(),
            event_type.to_owned(),
            state_key.to_owned(),
        );
        self.pool
            .read(move |conn| {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM room_state s JOIN events e ON e.event_id = s.event_id
                     WHERE s.room_id = ?1 AND s.event_type = ?2 AND s.state_key = ?3
                       AND s.from_pos <= ?4
                     ORDER BY s.from_pos"
                );
                query_events(conn, &sql, params![room_id, event_type, state_key, crate::pos_param(upto)])
            })
            .await
    }

    async fn memberships(&self, user_id: &str, upto: u64) -> StoreResult<Vec<MembershipChange>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT room_id, membership, event_id, pos FROM membership_log
                     WHERE user_id = ?1 AND pos <= ?2 ORDER BY pos",
                )
                .and_then(|mut s| {
                    s.query_map(params![user_id, crate::pos_param(upto)], |r| {
                        Ok(MembershipChange {
                            room_id: r.get(0)?,
                            membership: r.get(1)?,
                            event_id: r.get(2)?,
                            pos: r.get::<_, i64>(3)? as u64,
                        })
                    })?
                    .collect()
                })
                .map_err(classify)
            })
            .await
    }

    async fn members_with(&self, room_id: &str, memberships: &[&str]) -> StoreResult<Vec<String>> {
        let room_id = room_id.to_owned();
        let memberships: Vec<String> = memberships.iter().map(|m| (*m).to_owned()).collect();
        self.pool
            .read(move |conn| {
                let rows: Vec<(String, String)> = conn
                    .prepare_cached(
                        "SELECT user_id, membership FROM room_members WHERE room_id = ?1",
                    )
                    .and_then(|mut s| {
                        s.query_map([room_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                            .collect()
                    })
                    .map_err(classify)?;
                Ok(rows
                    .into_iter()
                    .filter(|(_, m)| memberships.contains(m))
                    .map(|(user, _)| user)
                    .collect())
            })
            .await
    }

    async fn txn_event(
        &self,
        user_id: &str,
        device_id: &str,
        scope: &str,
    ) -> StoreResult<Option<String>> {
        let (user_id, device_id, scope) =
            (user_id.to_owned(), device_id.to_owned(), scope.to_owned());
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT event_id FROM txn_ids
                     WHERE user_id = ?1 AND device_id = ?2 AND scope = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(params![user_id, device_id, scope], |r| r.get(0))
                        .optional()
                })
                .map_err(classify)
            })
            .await
    }

    async fn forget_room(&self, user_id: &str, room_id: &str) -> StoreResult<()> {
        let (user_id, room_id) = (user_id.to_owned(), room_id.to_owned());
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO room_forgets (user_id, room_id, pos)
                     SELECT ?1, ?2, COALESCE(MAX(pos), 0) FROM membership_log
                     WHERE user_id = ?1 AND room_id = ?2
                     ON CONFLICT (user_id, room_id) DO UPDATE SET pos = excluded.pos",
                )
                .and_then(|mut s| s.execute(params![user_id, room_id]))
                .map(|_| ())
                .map_err(classify)
            })
            .await
    }

    async fn forgotten_rooms(&self, user_id: &str) -> StoreResult<Vec<(String, u64)>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached("SELECT room_id, pos FROM room_forgets WHERE user_id = ?1")
                    .and_then(|mut s| {
                        s.query_map([user_id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                            .collect()
                    })
                    .map_err(classify)
            })
            .await
    }

    async fn resolve_alias(&self, alias: &str) -> StoreResult<Option<String>> {
        let alias = alias.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached("SELECT room_id FROM room_aliases WHERE alias = ?1")
                    .and_then(|mut s| s.query_row([alias], |r| r.get(0)).optional())
                    .map_err(classify)
            })
            .await
    }

    async fn lazy_members_sent(
        &self,
        user_id: &str,
        device_id: &str,
        room_id: &str,
        upto: u64,
    ) -> StoreResult<Vec<String>> {
        let (user_id, device_id, room_id) =
            (user_id.to_owned(), device_id.to_owned(), room_id.to_owned());
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT member FROM lazy_members
                     WHERE user_id = ?1 AND device_id = ?2 AND room_id = ?3 AND pos <= ?4",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![user_id, device_id, room_id, crate::pos_param(upto)],
                        |r| r.get(0),
                    )?
                    .collect()
                })
                .map_err(classify)
            })
            .await
    }

    async fn record_lazy_members(
        &self,
        user_id: &str,
        device_id: &str,
        rooms: Vec<LazyMembers>,
        pos: u64,
    ) -> StoreResult<()> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<()> {
                    let mut clear = conn.prepare_cached(
                        "DELETE FROM lazy_members
                         WHERE user_id = ?1 AND device_id = ?2 AND room_id = ?3",
                    )?;
                    let mut insert = conn.prepare_cached(
                        "INSERT INTO lazy_members (user_id, device_id, room_id, member, pos)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (user_id, device_id, room_id, member)
                         DO UPDATE SET pos = excluded.pos",
                    )?;
                    for room in &rooms {
                        if room.replace {
                            clear.execute(params![user_id, device_id, room.room_id])?;
                        }
                        for member in &room.members {
                            insert.execute(params![
                                user_id,
                                device_id,
                                room.room_id,
                                member,
                                crate::pos_param(pos)
                            ])?;
                        }
                    }
                    Ok(())
                };
                run().map_err(classify)
            })
            .await
    }

    async fn signing_key(&self, candidate: (String, Vec<u8>)) -> StoreResult<(String, Vec<u8>)> {
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<(String, Vec<u8>)> {
                    let existing = conn
                        .query_row(
                            "SELECT key_id, secret FROM server_keys ORDER BY created_ts LIMIT 1",
                            [],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()?;
                    if let Some(existing) = existing {
                        return Ok(existing);
                    }
                    conn.execute(
                        "INSERT INTO server_keys (key_id, secret, created_ts) VALUES (?1, ?2, ?3)",
                        params![candidate.0, candidate.1, crate::now_ms()],
                    )?;
                    Ok(candidate)
                };
                run().map_err(classify)
            })
            .await
    }
}
