//! The rooms part of `myelin db copy` on PostgreSQL: rooms, events and everything indexed
//! from them, aliases, reports.

use super::*;
use crate::{DumpRelation, MembershipChange, Relation, RoomInfo, RoomsDump, SearchText};

pub(super) async fn export_rooms(tx: &mut PgConnection) -> StoreResult<RoomsDump> {
    let server_keys = sqlx::query_as("SELECT key_id, secret, created_ts FROM server_keys")
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
    let rooms: Vec<(String, String, String, bool, i64)> =
        sqlx::query_as("SELECT room_id, version, creator, published, created_ts FROM rooms")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    let event_rows = sqlx::query(&format!(
        "SELECT {}, e.depth, e.origin_ts FROM events e",
        rooms::EVENT_COLUMNS
    ))
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let mut events = Vec::with_capacity(event_rows.len());
    for row in &event_rows {
        let depth: i64 = row.try_get(11).map_err(classify)?;
        let ts: Option<i64> = row.try_get(12).map_err(classify)?;
        events.push((rooms::event_from_row(row).map_err(classify)?, depth, ts));
    }
    let relation_rows = sqlx::query(
        "SELECT event_id, room_id, parent_id, rel_type, event_type, sender, pos, key
         FROM event_relations",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let relations = relation_rows
        .iter()
        .map(|r| {
            Ok(DumpRelation {
                event_id: r.try_get(0)?,
                room_id: r.try_get(1)?,
                relation: Relation {
                    parent: r.try_get(2)?,
                    rel_type: r.try_get(3)?,
                    key: r.try_get(7)?,
                },
                event_type: r.try_get(4)?,
                sender: r.try_get(5)?,
                pos: r.try_get::<i64, _>(6)? as u64,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(classify)?;
    let search_rows: Vec<(i64, String, String, String)> =
        sqlx::query_as("SELECT pos, room_id, key, text FROM event_search")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    let search = search_rows
        .into_iter()
        .map(|(pos, room_id, key, text)| (pos as u64, room_id, SearchText { key, text }))
        .collect();
    let report_rows = sqlx::query(
        "SELECT id, received_ts, reporter, room_id, event_id, target_user_id, reason FROM reports",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let reports = report_rows
        .iter()
        .map(reports::report_from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(classify)?;
    let edges = sqlx::query_as("SELECT event_id, prev_event_id FROM event_edges")
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
    let extremities = sqlx::query_as("SELECT room_id, event_id, depth FROM room_extremities")
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
    let state_rows = sqlx::query(
        "SELECT event_type, state_key, event_id, from_pos, to_pos, room_id FROM room_state",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let mut state = Vec::with_capacity(state_rows.len());
    for row in &state_rows {
        let room_id: String = row.try_get(5).map_err(classify)?;
        state.push((room_id, rooms::state_row(row).map_err(classify)?));
    }
    let memberships: Vec<(String, String, String, String, i64)> =
        sqlx::query_as("SELECT user_id, room_id, membership, event_id, pos FROM membership_log")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    let forgets: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT user_id, room_id, pos FROM room_forgets")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    let txn_ids =
        sqlx::query_as("SELECT user_id, device_id, scope, event_id, created_ts FROM txn_ids")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    let aliases = sqlx::query_as("SELECT alias, room_id, creator, created_ts FROM room_aliases")
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
    let blocked: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT room_id, user_id, blocked_ts FROM blocked_rooms")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    let purged: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT user_id, room_id, pos FROM purged_rooms")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    Ok(RoomsDump {
        server_keys,
        rooms: rooms
            .into_iter()
            .map(|(room_id, version, creator, published, created)| {
                (
                    RoomInfo {
                        room_id,
                        version,
                        creator,
                        published,
                    },
                    created,
                )
            })
            .collect(),
        events,
        relations,
        search,
        reports,
        edges,
        extremities,
        state,
        memberships: memberships
            .into_iter()
            .map(|(user_id, room_id, membership, event_id, pos)| {
                (
                    user_id,
                    MembershipChange {
                        room_id,
                        membership,
                        event_id,
                        pos: pos as u64,
                    },
                )
            })
            .collect(),
        forgets: forgets
            .into_iter()
            .map(|(u, r, p)| (u, r, p as u64))
            .collect(),
        txn_ids,
        aliases,
        blocked: blocked
            .into_iter()
            .map(|(room_id, user_id, blocked_ts)| crate::RoomBlock {
                room_id,
                user_id,
                blocked_ts,
            })
            .collect(),
        purged: purged
            .into_iter()
            .map(|(user_id, room_id, pos)| crate::PurgedRoom {
                user_id,
                room_id,
                pos: pos as u64,
            })
            .collect(),
    })
}

pub(super) async fn import_rooms(tx: &mut PgConnection, dump: &RoomsDump) -> StoreResult<()> {
    // A fresh database made its own key at start; the deployment's key replaces it, so events
    // keep verifying with the key the server serves.
    if !dump.server_keys.is_empty() {
        sqlx::query("DELETE FROM server_keys")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for (key_id, secret, created) in &dump.server_keys {
        sqlx::query("INSERT INTO server_keys (key_id, secret, created_ts) VALUES ($1, $2, $3)")
            .bind(key_id)
            .bind(secret)
            .bind(created)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for (room, created) in &dump.rooms {
        sqlx::query(
            "INSERT INTO rooms (room_id, version, creator, published, created_ts)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&room.room_id)
        .bind(&room.version)
        .bind(&room.creator)
        .bind(room.published)
        .bind(created)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (e, depth, ts) in &dump.events {
        let (device, txn_id) = e.txn.clone().unzip();
        sqlx::query(
            "INSERT INTO events (pos, event_id, room_id, event_type, state_key, sender, depth,
                                 json, replaces, redacted_by, txn_device, txn_id, origin_ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(e.pos as i64)
        .bind(&e.event_id)
        .bind(&e.room_id)
        .bind(&e.event_type)
        .bind(&e.state_key)
        .bind(&e.sender)
        .bind(depth)
        .bind(&e.json)
        .bind(&e.replaces)
        .bind(&e.redacted_by)
        .bind(device)
        .bind(txn_id)
        .bind(ts)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for r in &dump.relations {
        sqlx::query(
            "INSERT INTO event_relations
                 (event_id, room_id, parent_id, rel_type, event_type, sender, pos, key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.event_id)
        .bind(&r.room_id)
        .bind(&r.relation.parent)
        .bind(&r.relation.rel_type)
        .bind(&r.event_type)
        .bind(&r.sender)
        .bind(r.pos as i64)
        .bind(&r.relation.key)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (pos, room_id, search) in &dump.search {
        sqlx::query("INSERT INTO event_search (pos, room_id, key, text) VALUES ($1, $2, $3, $4)")
            .bind(*pos as i64)
            .bind(room_id)
            .bind(&search.key)
            .bind(&search.text)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for r in &dump.reports {
        sqlx::query(
            "INSERT INTO reports (id, received_ts, reporter, room_id, event_id, target_user_id,
                                  reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.id)
        .bind(r.received_ts)
        .bind(&r.reporter)
        .bind(&r.room_id)
        .bind(&r.event_id)
        .bind(&r.target_user_id)
        .bind(&r.reason)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    // Reports made after the copy get IDs after the copied ones.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('reports', 'id'),
                       COALESCE((SELECT MAX(id) FROM reports), 0) + 1, false)",
    )
    .execute(&mut *tx)
    .await
    .map_err(classify)?;
    for (event_id, prev) in &dump.edges {
        sqlx::query("INSERT INTO event_edges (event_id, prev_event_id) VALUES ($1, $2)")
            .bind(event_id)
            .bind(prev)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for (room_id, event_id, depth) in &dump.extremities {
        sqlx::query("INSERT INTO room_extremities (room_id, event_id, depth) VALUES ($1, $2, $3)")
            .bind(room_id)
            .bind(event_id)
            .bind(depth)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for (room_id, row) in &dump.state {
        sqlx::query(
            "INSERT INTO room_state (room_id, event_type, state_key, from_pos, to_pos, event_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(room_id)
        .bind(&row.event_type)
        .bind(&row.state_key)
        .bind(row.from_pos as i64)
        .bind(row.to_pos.map(|p| p as i64))
        .bind(&row.event_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (user_id, m) in &dump.memberships {
        sqlx::query(
            "INSERT INTO membership_log (user_id, pos, room_id, membership, event_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user_id)
        .bind(m.pos as i64)
        .bind(&m.room_id)
        .bind(&m.membership)
        .bind(&m.event_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO room_members (room_id, user_id, membership, event_id, pos)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership,
                 event_id = excluded.event_id, pos = excluded.pos
             WHERE excluded.pos > room_members.pos",
        )
        .bind(&m.room_id)
        .bind(user_id)
        .bind(&m.membership)
        .bind(&m.event_id)
        .bind(m.pos as i64)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (user_id, room_id, pos) in &dump.forgets {
        sqlx::query("INSERT INTO room_forgets (user_id, room_id, pos) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(room_id)
            .bind(*pos as i64)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for (user_id, device_id, scope, event_id, created) in &dump.txn_ids {
        sqlx::query(
            "INSERT INTO txn_ids (user_id, device_id, scope, event_id, created_ts)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(scope)
        .bind(event_id)
        .bind(created)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (alias, room_id, creator, created) in &dump.aliases {
        sqlx::query(
            "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES ($1, $2, $3, $4)",
        )
        .bind(alias)
        .bind(room_id)
        .bind(creator)
        .bind(created)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for b in &dump.blocked {
        sqlx::query("INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES ($1, $2, $3)")
            .bind(&b.room_id)
            .bind(&b.user_id)
            .bind(b.blocked_ts)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for p in &dump.purged {
        sqlx::query("INSERT INTO purged_rooms (user_id, room_id, pos) VALUES ($1, $2, $3)")
            .bind(&p.user_id)
            .bind(&p.room_id)
            .bind(p.pos as i64)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    Ok(())
}
