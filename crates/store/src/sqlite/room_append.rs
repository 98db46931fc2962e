//! Appending to rooms on SQLite. An append is one job of the single writer, so appends run
//! in the order they are submitted: `core` may build an event on one whose append is still
//! queued, and a failed append makes the next one fail its extremity check instead of
//! forking the DAG.

use std::collections::BTreeSet;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::{next_pos, pool::classify, push};
use crate::{
    Append, CONFLICT_ALIAS, CONFLICT_EXTREMITIES, CONFLICT_ROOM_EXISTS, CONFLICT_TXN, NewEvent,
    StoreError, StoreResult, Stream,
};

/// A uniqueness violation becomes the given conflict; anything else stays a failure.
fn unique_or(err: rusqlite::Error, conflict: &'static str) -> StoreError {
    match err.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(conflict),
        _ => classify(err),
    }
}

pub(super) fn append_tx(conn: &Connection, append: &Append) -> StoreResult<Vec<u64>> {
    let mut positions = Vec::new();
    for part in append.parts() {
        positions.extend(append_part(conn, part)?);
    }
    Ok(positions)
}

fn append_part(conn: &Connection, append: &Append) -> StoreResult<Vec<u64>> {
    let now = crate::now_ms();
    match &append.new_room {
        Some(room) => {
            conn.prepare_cached(
                "INSERT INTO rooms (room_id, version, creator, published, created_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    room.room_id,
                    room.version,
                    room.creator,
                    room.published,
                    room.created_ts
                ])
            })
            .map_err(|e| unique_or(e, CONFLICT_ROOM_EXISTS))?;
        }
        None => {
            let current: BTreeSet<String> = conn
                .prepare_cached("SELECT event_id FROM room_extremities WHERE room_id = ?1")
                .and_then(|mut s| {
                    s.query_map([&append.room_id], |r| r.get(0))?
                        .collect::<Result<_, _>>()
                })
                .map_err(classify)?;
            let expected: BTreeSet<String> = append.extremities.iter().cloned().collect();
            if current != expected {
                return Err(StoreError::Conflict(CONFLICT_EXTREMITIES));
            }
        }
    }
    if let Some((alias, creator)) = &append.alias {
        conn.prepare_cached(
            "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![alias, append.room_id, creator, now]))
        .map_err(|e| unique_or(e, CONFLICT_ALIAS))?;
    }
    if let Some(from) = &append.aliases_from {
        conn.prepare_cached("UPDATE room_aliases SET room_id = ?2 WHERE room_id = ?1")
            .and_then(|mut s| s.execute(params![from, append.room_id]))
            .map_err(classify)?;
        conn.prepare_cached("UPDATE rooms SET published = FALSE WHERE room_id = ?1")
            .and_then(|mut s| s.execute(params![from]))
            .map_err(classify)?;
    }
    let mut positions = Vec::with_capacity(append.events.len());
    for event in &append.events {
        let pos = next_pos(conn, Stream::RoomEvents).map_err(classify)?;
        insert_event(conn, &append.room_id, event, pos, now)?;
        positions.push(pos);
    }
    if let Some(summary) = &append.summary {
        super::room_directory::write_summary(conn, &append.room_id, summary, true)
            .map_err(classify)?;
    }
    Ok(positions)
}

fn insert_event(
    conn: &Connection,
    room_id: &str,
    event: &NewEvent,
    pos: u64,
    now: i64,
) -> StoreResult<()> {
    let pos_i = pos as i64;
    let run = || -> rusqlite::Result<()> {
        let mut replaces: Option<String> = None;
        if let Some(state_key) = &event.state_key {
            replaces = conn
                .prepare_cached(
                    "UPDATE room_state SET to_pos = ?4
                     WHERE room_id = ?1 AND event_type = ?2 AND state_key = ?3 AND to_pos IS NULL
                     RETURNING event_id",
                )?
                .query_row(params![room_id, event.event_type, state_key, pos_i], |r| {
                    r.get(0)
                })
                .optional()?;
            conn.prepare_cached(
                "INSERT INTO room_state (room_id, event_type, state_key, from_pos, to_pos, event_id)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
            )?
            .execute(params![
                room_id,
                event.event_type,
                state_key,
                pos_i,
                event.event_id
            ])?;
        }
        let (txn_device, txn_id) = match &event.txn {
            Some(t) => (Some(t.device_id.as_str()), Some(t.txn_id.as_str())),
            None => (None, None),
        };
        conn.prepare_cached(
            "INSERT INTO events (pos, event_id, room_id, event_type, state_key, sender, depth, json,
                                 replaces, txn_device, txn_id, origin_ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            pos_i,
            event.event_id,
            room_id,
            event.event_type,
            event.state_key,
            event.sender,
            event.depth,
            event.json,
            replaces,
            txn_device,
            txn_id,
            event.origin_server_ts
        ])?;
        let mut edge = conn
            .prepare_cached("INSERT INTO event_edges (event_id, prev_event_id) VALUES (?1, ?2)")?;
        let mut drop_extremity = conn
            .prepare_cached("DELETE FROM room_extremities WHERE room_id = ?1 AND event_id = ?2")?;
        for prev in &event.prev_events {
            edge.execute(params![event.event_id, prev])?;
            drop_extremity.execute(params![room_id, prev])?;
        }
        conn.prepare_cached(
            "INSERT INTO room_extremities (room_id, event_id, depth) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![room_id, event.event_id, event.depth])?;
        if let (Some(membership), Some(user_id)) = (&event.membership, &event.state_key) {
            conn.prepare_cached(
                "INSERT INTO room_members (room_id, user_id, membership, event_id, pos)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership,
                     event_id = excluded.event_id, pos = excluded.pos",
            )?
            .execute(params![room_id, user_id, membership, event.event_id, pos_i])?;
            conn.prepare_cached(
                "INSERT INTO membership_log (user_id, pos, room_id, membership, event_id)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![user_id, pos_i, room_id, membership, event.event_id])?;
        }
        push::write_actions(conn, room_id, event, pos_i, now)?;
        if let Some(relation) = &event.relation {
            conn.prepare_cached(
                "INSERT INTO event_relations
                     (event_id, room_id, parent_id, rel_type, event_type, sender, pos, key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                event.event_id,
                room_id,
                relation.parent,
                relation.rel_type,
                event.event_type,
                event.sender,
                pos_i,
                relation.key
            ])?;
        }
        if let Some(search) = &event.search {
            conn.prepare_cached(
                "INSERT INTO event_search (rowid, text, room_id, key) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![pos_i, search.text, room_id, search.key])?;
        }
        if let Some(redacts) = &event.redacts {
            // A redacted event's text is searchable no more.
            conn.prepare_cached(
                "DELETE FROM event_search
                 WHERE rowid = (SELECT pos FROM events WHERE event_id = ?1 AND room_id = ?2)",
            )?
            .execute(params![redacts, room_id])?;
            conn.prepare_cached(
                "UPDATE events SET redacted_by = ?3
                 WHERE event_id = ?1 AND room_id = ?2 AND redacted_by IS NULL",
            )?
            .execute(params![redacts, room_id, event.event_id])?;
        }
        Ok(())
    };
    run().map_err(classify)?;
    if let Some(txn) = &event.txn {
        conn.prepare_cached(
            "INSERT INTO txn_ids (user_id, device_id, scope, event_id, created_ts)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                event.sender,
                txn.device_id,
                txn.scope,
                event.event_id,
                now
            ])
        })
        .map_err(|e| unique_or(e, CONFLICT_TXN))?;
    }
    Ok(())
}
