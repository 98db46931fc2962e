//! Appending to rooms on PostgreSQL. An append takes its positions through [`Held`] (see
//! [`super::positions`]), then writes the whole batch in one transaction on the same session,
//! after locking the room's row: appends to one room, from any process, run one after another,
//! and the extremity check inside the lock tells a writer that lost the race to rebuild.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool, Postgres, pool::PoolConnection};

use super::{
    classify,
    positions::{Held, room_note, room_user_note},
    push,
};
use crate::{
    Append, CONFLICT_ALIAS, CONFLICT_EXTREMITIES, CONFLICT_ROOM_EXISTS, CONFLICT_TXN, NewEvent,
    RoomLock, StoreError, StoreResult, Stream,
};

/// A session holding a room's advisory write lock. An append takes the session over (its
/// positions are taken and released on it, and the release ends the room's lock too); a
/// writer that appends nothing releases it. Dropped unreleased, the session is closed, which
/// releases the lock just the same.
pub(super) struct PgRoomLock {
    conn: Option<PoolConnection<Postgres>>,
    key: i64,
}

impl PgRoomLock {
    pub(super) fn new(conn: PoolConnection<Postgres>, key: i64) -> Self {
        Self {
            conn: Some(conn),
            key,
        }
    }
}

#[async_trait]
impl RoomLock for PgRoomLock {
    async fn release(mut self: Box<Self>) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                drop(conn.detach());
            }
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

impl Drop for PgRoomLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// A uniqueness violation (23505) becomes the given conflict.
fn unique_or(err: sqlx::Error, conflict: &'static str) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.code().as_deref() == Some("23505")
    {
        return StoreError::Conflict(conflict);
    }
    classify(err)
}

async fn write_append(
    conn: &mut PgConnection,
    append: &Append,
    positions: &[i64],
) -> StoreResult<()> {
    let mut tx = sqlx::Connection::begin(conn).await.map_err(classify)?;
    let mut rest = positions;
    for part in append.parts() {
        let (mine, after) = rest.split_at(part.events.len().min(rest.len()));
        write_part(&mut tx, part, mine).await?;
        rest = after;
    }
    tx.commit().await.map_err(classify)
}

async fn write_part(tx: &mut PgConnection, append: &Append, positions: &[i64]) -> StoreResult<()> {
    let now = crate::now_ms();
    match &append.new_room {
        Some(room) => {
            sqlx::query(
                "INSERT INTO rooms (room_id, version, creator, published, created_ts)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&room.room_id)
            .bind(&room.version)
            .bind(&room.creator)
            .bind(room.published)
            .bind(room.created_ts)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_or(e, CONFLICT_ROOM_EXISTS))?;
        }
        None => {
            sqlx::query("SELECT 1 FROM rooms WHERE room_id = $1 FOR UPDATE")
                .bind(&append.room_id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            let current: Vec<String> =
                sqlx::query_scalar("SELECT event_id FROM room_extremities WHERE room_id = $1")
                    .bind(&append.room_id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(classify)?;
            let current: BTreeSet<&String> = current.iter().collect();
            let expected: BTreeSet<&String> = append.extremities.iter().collect();
            if current != expected {
                return Err(StoreError::Conflict(CONFLICT_EXTREMITIES));
            }
        }
    }
    if let Some((alias, creator)) = &append.alias {
        sqlx::query(
            "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES ($1, $2, $3, $4)",
        )
        .bind(alias)
        .bind(&append.room_id)
        .bind(creator)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or(e, CONFLICT_ALIAS))?;
    }
    if let Some(from) = &append.aliases_from {
        sqlx::query("UPDATE room_aliases SET room_id = $2 WHERE room_id = $1")
            .bind(from)
            .bind(&append.room_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("UPDATE rooms SET published = FALSE WHERE room_id = $1")
            .bind(from)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for (event, pos) in append.events.iter().zip(positions) {
        insert_event(tx, &append.room_id, event, *pos, now).await?;
    }
    if let Some(summary) = &append.summary {
        super::room_directory::write_summary(tx, &append.room_id, summary, true).await?;
    }
    Ok(())
}

async fn insert_event(
    tx: &mut PgConnection,
    room_id: &str,
    event: &NewEvent,
    pos: i64,
    now: i64,
) -> StoreResult<()> {
    let mut replaces: Option<String> = None;
    if let Some(state_key) = &event.state_key {
        replaces = sqlx::query_scalar(
            "UPDATE room_state SET to_pos = $4
             WHERE room_id = $1 AND event_type = $2 AND state_key = $3 AND to_pos IS NULL
             RETURNING event_id",
        )
        .bind(room_id)
        .bind(&event.event_type)
        .bind(state_key)
        .bind(pos)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO room_state (room_id, event_type, state_key, from_pos, to_pos, event_id)
             VALUES ($1, $2, $3, $4, NULL, $5)",
        )
        .bind(room_id)
        .bind(&event.event_type)
        .bind(state_key)
        .bind(pos)
        .bind(&event.event_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    let (txn_device, txn_id) = event
        .txn
        .as_ref()
        .map(|t| (t.device_id.as_str(), t.txn_id.as_str()))
        .unzip();
    sqlx::query(
        "INSERT INTO events (pos, event_id, room_id, event_type, state_key, sender, depth, json,
                             replaces, txn_device, txn_id, origin_ts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(pos)
    .bind(&event.event_id)
    .bind(room_id)
    .bind(&event.event_type)
    .bind(&event.state_key)
    .bind(&event.sender)
    .bind(event.depth)
    .bind(&event.json)
    .bind(&replaces)
    .bind(txn_device)
    .bind(txn_id)
    .bind(event.origin_server_ts)
    .execute(&mut *tx)
    .await
    .map_err(classify)?;
    sqlx::query("INSERT INTO event_edges (event_id, prev_event_id) SELECT $1, UNNEST($2::TEXT[])")
        .bind(&event.event_id)
        .bind(&event.prev_events)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    sqlx::query("DELETE FROM room_extremities WHERE room_id = $1 AND event_id = ANY($2)")
        .bind(room_id)
        .bind(&event.prev_events)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    sqlx::query("INSERT INTO room_extremities (room_id, event_id, depth) VALUES ($1, $2, $3)")
        .bind(room_id)
        .bind(&event.event_id)
        .bind(event.depth)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    if let (Some(membership), Some(user_id)) = (&event.membership, &event.state_key) {
        sqlx::query(
            "INSERT INTO room_members (room_id, user_id, membership, event_id, pos)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership,
                 event_id = excluded.event_id, pos = excluded.pos",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(membership)
        .bind(&event.event_id)
        .bind(pos)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO membership_log (user_id, pos, room_id, membership, event_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user_id)
        .bind(pos)
        .bind(room_id)
        .bind(membership)
        .bind(&event.event_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    push::write_actions(&mut *tx, room_id, event, pos, now).await?;
    if let Some(relation) = &event.relation {
        sqlx::query(
            "INSERT INTO event_relations
                 (event_id, room_id, parent_id, rel_type, event_type, sender, pos, key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&event.event_id)
        .bind(room_id)
        .bind(&relation.parent)
        .bind(&relation.rel_type)
        .bind(&event.event_type)
        .bind(&event.sender)
        .bind(pos)
        .bind(&relation.key)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    if let Some(search) = &event.search {
        sqlx::query("INSERT INTO event_search (pos, room_id, key, text) VALUES ($1, $2, $3, $4)")
            .bind(pos)
            .bind(room_id)
            .bind(&search.key)
            .bind(&search.text)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    if let Some(redacts) = &event.redacts {
        // A redacted event's text is searchable no more.
        sqlx::query(
            "DELETE FROM event_search
             WHERE pos = (SELECT pos FROM events WHERE event_id = $1 AND room_id = $2)",
        )
        .bind(redacts)
        .bind(room_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "UPDATE events SET redacted_by = $3
             WHERE event_id = $1 AND room_id = $2 AND redacted_by IS NULL",
        )
        .bind(redacts)
        .bind(room_id)
        .bind(&event.event_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    if let Some(txn) = &event.txn {
        sqlx::query(
            "INSERT INTO txn_ids (user_id, device_id, scope, event_id, created_ts)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&event.sender)
        .bind(&txn.device_id)
        .bind(&txn.scope)
        .bind(&event.event_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or(e, CONFLICT_TXN))?;
    }
    Ok(())
}

/// Notifications for an append: the room's members look, and so does every user whose
/// membership changed (an invitee, or someone who left, is not a member to look).
fn append_notes(append: &Append, positions: &[i64], instance: &str) -> Vec<String> {
    let mut notes = Vec::new();
    let mut rest = positions;
    for part in append.parts() {
        let (mine, after) = rest.split_at(part.events.len().min(rest.len()));
        rest = after;
        if let Some(last) = mine.last() {
            notes.push(room_note(*last, instance, &part.room_id));
        }
        for (event, pos) in part.events.iter().zip(mine) {
            if let (Some(_), Some(user)) = (&event.membership, &event.state_key) {
                notes.push(room_user_note(*pos, user));
            }
        }
    }
    notes
}

pub(super) async fn append(
    pool: PgPool,
    instance: String,
    append: Append,
    lock: Option<Box<dyn RoomLock>>,
) -> StoreResult<Vec<u64>> {
    let n = append.parts().iter().map(|p| p.events.len()).sum::<usize>() as i64;
    // The room's lock session, if the writer holds one, carries the append.
    let session = lock
        .and_then(|l| l.into_any().downcast::<PgRoomLock>().ok())
        .and_then(|mut l| l.conn.take());
    if n == 0 {
        drop(session.map(PoolConnection::detach));
        return Ok(Vec::new());
    }
    let (mut held, positions) = match session {
        Some(conn) => Held::allocate_on(conn, Stream::RoomEvents, n).await?,
        None => Held::allocate(&pool, Stream::RoomEvents, n).await?,
    };
    let written = match held.conn() {
        Ok(conn) => write_append(conn, &append, &positions).await,
        Err(err) => Err(err),
    };
    match written {
        Ok(()) => {
            held.release(&append_notes(&append, &positions, &instance), true)
                .await;
            Ok(positions.into_iter().map(|p| p as u64).collect())
        }
        Err(err) => {
            held.release(&[], false).await;
            Err(err)
        }
    }
}
