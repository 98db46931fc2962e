//! Rooms on PostgreSQL: the reads, and the trait's entry points. Appends are in
//! [`super::room_append`].

use async_trait::async_trait;
use sqlx::{Row, postgres::PgRow};

use super::*;
use crate::{
    Append, LazyMembers, MembershipChange, PendingAppend, RoomInfo, RoomLock, RoomSnapshot,
    RoomStore, StateRow, StoredEvent,
};

pub(super) const EVENT_COLUMNS: &str = "e.pos, e.event_id, e.room_id, e.event_type, e.state_key, \
     e.sender, e.json, e.replaces, e.redacted_by, e.txn_device, e.txn_id";

pub(super) fn event_from_row(r: &PgRow) -> Result<StoredEvent, sqlx::Error> {
    event_from_row_at(r, 0)
}

/// An event whose [`EVENT_COLUMNS`] start at column `at`.
pub(super) fn event_from_row_at(r: &PgRow, at: usize) -> Result<StoredEvent, sqlx::Error> {
    let device: Option<String> = r.try_get(at + 9)?;
    let txn_id: Option<String> = r.try_get(at + 10)?;
    Ok(StoredEvent {
        pos: r.try_get::<i64, _>(at)? as u64,
        event_id: r.try_get(at + 1)?,
        room_id: r.try_get(at + 2)?,
        event_type: r.try_get(at + 3)?,
        state_key: r.try_get(at + 4)?,
        sender: r.try_get(at + 5)?,
        json: r.try_get(at + 6)?,
        replaces: r.try_get(at + 7)?,
        redacted_by: r.try_get(at + 8)?,
        txn: device.zip(txn_id),
    })
}

pub(super) fn state_row(r: &PgRow) -> Result<StateRow, sqlx::Error> {
    Ok(StateRow {
        event_type: r.try_get(0)?,
        state_key: r.try_get(1)?,
        event_id: r.try_get(2)?,
        from_pos: r.try_get::<i64, _>(3)? as u64,
        to_pos: r.try_get::<Option<i64>, _>(4)?.map(|p| p as u64),
    })
}

fn events_of(rows: Vec<PgRow>) -> StoreResult<Vec<StoredEvent>> {
    rows.iter()
        .map(event_from_row)
        .collect::<Result<_, _>>()
        .map_err(classify)
}

#[async_trait]
impl RoomStore for PostgresStore {
    fn append_events(&self, append: Append, lock: Option<Box<dyn RoomLock>>) -> PendingAppend {
        Box::pin(room_append::append(
            self.pool.clone(),
            self.instance.clone(),
            append,
            lock,
        ))
    }

    async fn lock_room(&self, room_id: &str) -> StoreResult<Option<Box<dyn RoomLock>>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        let key = positions::room_lock_key(room_id);
        let locked = sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await;
        let lock = room_append::PgRoomLock::new(conn, key);
        locked.map_err(classify)?;
        Ok(Some(Box::new(lock)))
    }

    async fn extremities(&self, room_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT event_id FROM room_extremities WHERE room_id = $1")
            .bind(room_id)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
    }

    async fn room(&self, room_id: &str) -> StoreResult<Option<RoomInfo>> {
        let row: Option<(String, String, String, bool)> = sqlx::query_as(
            "SELECT room_id, version, creator, published FROM rooms WHERE room_id = $1",
        )
        .bind(room_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(|(room_id, version, creator, published)| RoomInfo {
            room_id,
            version,
            creator,
            published,
        }))
    }

    async fn room_snapshot(&self, room_id: &str) -> StoreResult<Option<RoomSnapshot>> {
        // One snapshot: the state and the extremities of the same moment.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let row: Option<(String, String, String, bool)> = sqlx::query_as(
            "SELECT room_id, version, creator, published FROM rooms WHERE room_id = $1",
        )
        .bind(room_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let Some((room_id, version, creator, published)) = row else {
            return Ok(None);
        };
        let state = events_of(
            sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM room_state s JOIN events e ON e.event_id = s.event_id
                 WHERE s.room_id = $1 AND s.to_pos IS NULL ORDER BY s.from_pos"
            ))
            .bind(&room_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?,
        )?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT event_id, depth FROM room_extremities WHERE room_id = $1 ORDER BY event_id",
        )
        .bind(&room_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let depth = rows.iter().map(|(_, d)| *d).max().unwrap_or(0);
        Ok(Some(RoomSnapshot {
            info: RoomInfo {
                room_id,
                version,
                creator,
                published,
            },
            state,
            extremities: rows.into_iter().map(|(id, _)| id).collect(),
            depth,
        }))
    }

    async fn event(&self, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.event_id = $1"
        ))
        .bind(event_id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(events_of(rows)?.pop())
    }

    async fn events_by_id(&self, event_ids: &[String]) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.event_id = ANY($1)"
        ))
        .bind(event_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        events_of(rows)
    }

    async fn room_events(
        &self,
        room_id: &str,
        after: Option<u64>,
        upto: u64,
        limit: usize,
        backward: bool,
    ) -> StoreResult<Vec<StoredEvent>> {
        let order = if backward { "DESC" } else { "ASC" };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e
             WHERE e.room_id = $1 AND e.pos > $2 AND e.pos <= $3
             ORDER BY e.pos {order} LIMIT $4"
        ))
        .bind(room_id)
        .bind(after.map_or(-1, crate::pos_param))
        .bind(crate::pos_param(upto))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        events_of(rows)
    }

    async fn events_near_time(
        &self,
        room_id: &str,
        ts: i64,
        forward: bool,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEvent>> {
        let (cmp, order) = if forward {
            (">=", "ASC")
        } else {
            ("<=", "DESC")
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e
             WHERE e.room_id = $1 AND e.origin_ts {cmp} $2 AND e.pos <= $3
             ORDER BY e.origin_ts {order}, e.pos {order} LIMIT $4"
        ))
        .bind(room_id)
        .bind(ts)
        .bind(crate::pos_param(upto))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(event_from_row)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn rooms_with_events(&self, after: u64, upto: u64) -> StoreResult<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT room_id, MAX(pos) FROM events WHERE pos > $1 AND pos <= $2 GROUP BY room_id",
        )
        .bind(crate::pos_param(after))
        .bind(crate::pos_param(upto))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows.into_iter().map(|(r, p)| (r, p as u64)).collect())
    }

    async fn member_events_between(&self, after: u64, upto: u64) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE pos > $1 AND pos <= $2
                              AND event_type = 'm.room.member')",
        )
        .bind(crate::pos_param(after))
        .bind(crate::pos_param(upto))
        .fetch_one(&self.pool)
        .await
        .map_err(classify)
    }

    async fn state_at(
        &self,
        room_id: &str,
        at: Option<u64>,
        event_type: Option<&str>,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM room_state s JOIN events e ON e.event_id = s.event_id
             WHERE s.room_id = $1 AND ($2::TEXT IS NULL OR s.event_type = $2)
               AND CASE WHEN $3::BIGINT IS NULL THEN s.to_pos IS NULL
                        ELSE s.from_pos <= $3 AND (s.to_pos IS NULL OR s.to_pos > $3) END
             ORDER BY s.from_pos"
        ))
        .bind(room_id)
        .bind(event_type)
        .bind(at.map(crate::pos_param))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        events_of(rows)
    }

    async fn state_window(
        &self,
        room_id: &str,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<StateRow>> {
        let rows = sqlx::query(
            "SELECT event_type, state_key, event_id, from_pos, to_pos FROM room_state
             WHERE room_id = $1 AND ((from_pos > $2 AND from_pos <= $3)
                                  OR (to_pos > $2 AND to_pos <= $3))
             ORDER BY from_pos",
        )
        .bind(room_id)
        .bind(crate::pos_param(after))
        .bind(crate::pos_param(upto))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(state_row)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn state_key_history(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        upto: u64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM room_state s JOIN events e ON e.event_id = s.event_id
             WHERE s.room_id = $1 AND s.event_type = $2 AND s.state_key = $3 AND s.from_pos <= $4
             ORDER BY s.from_pos"
        ))
        .bind(room_id)
        .bind(event_type)
        .bind(state_key)
        .bind(crate::pos_param(upto))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        events_of(rows)
    }

    async fn memberships(&self, user_id: &str, upto: u64) -> StoreResult<Vec<MembershipChange>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT room_id, membership, event_id, pos FROM membership_log
             WHERE user_id = $1 AND pos <= $2 ORDER BY pos",
        )
        .bind(user_id)
        .bind(crate::pos_param(upto))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(room_id, membership, event_id, pos)| MembershipChange {
                room_id,
                membership,
                event_id,
                pos: pos as u64,
            })
            .collect())
    }

    async fn members_with(&self, room_id: &str, memberships: &[&str]) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT user_id FROM room_members WHERE room_id = $1 AND membership = ANY($2)",
        )
        .bind(room_id)
        .bind(memberships)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    async fn txn_event(
        &self,
        user_id: &str,
        device_id: &str,
        scope: &str,
    ) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT event_id FROM txn_ids WHERE user_id = $1 AND device_id = $2 AND scope = $3",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(scope)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)
    }

    async fn forget_room(&self, user_id: &str, room_id: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO room_forgets (user_id, room_id, pos)
             SELECT $1, $2, COALESCE(MAX(pos), 0) FROM membership_log
             WHERE user_id = $1 AND room_id = $2
             ON CONFLICT (user_id, room_id) DO UPDATE SET pos = excluded.pos",
        )
        .bind(user_id)
        .bind(room_id)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn forgotten_rooms(&self, user_id: &str) -> StoreResult<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT room_id, pos FROM room_forgets WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
        Ok(rows.into_iter().map(|(r, p)| (r, p as u64)).collect())
    }

    async fn resolve_alias(&self, alias: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT room_id FROM room_aliases WHERE alias = $1")
            .bind(alias)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }

    async fn lazy_members_sent(
        &self,
        user_id: &str,
        device_id: &str,
        room_id: &str,
        upto: u64,
    ) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT member FROM lazy_members
             WHERE user_id = $1 AND device_id = $2 AND room_id = $3 AND pos <= $4",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(room_id)
        .bind(crate::pos_param(upto))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    async fn record_lazy_members(
        &self,
        user_id: &str,
        device_id: &str,
        rooms: Vec<LazyMembers>,
        pos: u64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        for room in &rooms {
            if room.replace {
                sqlx::query(
                    "DELETE FROM lazy_members
                     WHERE user_id = $1 AND device_id = $2 AND room_id = $3",
                )
                .bind(user_id)
                .bind(device_id)
                .bind(&room.room_id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            }
            sqlx::query(
                "INSERT INTO lazy_members (user_id, device_id, room_id, member, pos)
                 SELECT $1, $2, $3, UNNEST($4::TEXT[]), $5
                 ON CONFLICT (user_id, device_id, room_id, member)
                 DO UPDATE SET pos = excluded.pos",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(&room.room_id)
            .bind(&room.members)
            .bind(crate::pos_param(pos))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn signing_key(&self, candidate: (String, Vec<u8>)) -> StoreResult<(String, Vec<u8>)> {
        // The first process to start on the database wins; the others read its key. The
        // table's lock orders two processes starting at once.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("LOCK TABLE server_keys IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let existing: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT key_id, secret FROM server_keys ORDER BY created_ts LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
        let key = match existing {
            Some(existing) => existing,
            None => {
                sqlx::query(
                    "INSERT INTO server_keys (key_id, secret, created_ts) VALUES ($1, $2, $3)",
                )
                .bind(&candidate.0)
                .bind(&candidate.1)
                .bind(crate::now_ms())
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                candidate
            }
        };
        tx.commit().await.map_err(classify)?;
        Ok(key)
    }
}
