//! The rooms part of `myelin db copy` on SQLite: rooms, events and everything indexed from
//! them, aliases, reports.

use super::{dump::all, *};
use crate::{DumpRelation, MembershipChange, Relation, RoomInfo, RoomsDump, SearchText};

pub(super) fn export_rooms(conn: &Connection) -> rusqlite::Result<RoomsDump> {
    Ok(RoomsDump {
        server_keys: all(
            conn,
            "SELECT key_id, secret, created_ts FROM server_keys",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?,
        rooms: all(
            conn,
            "SELECT room_id, version, creator, published, created_ts FROM rooms",
            |r| {
                Ok((
                    RoomInfo {
                        room_id: r.get(0)?,
                        version: r.get(1)?,
                        creator: r.get(2)?,
                        published: r.get(3)?,
                    },
                    r.get(4)?,
                ))
            },
        )?,
        events: all(
            conn,
            &format!(
                "SELECT {}, e.depth, e.origin_ts FROM events e",
                rooms::EVENT_COLUMNS
            ),
            |r| Ok((rooms::event_from_row(r)?, r.get(11)?, r.get(12)?)),
        )?,
        relations: all(
            conn,
            "SELECT event_id, room_id, parent_id, rel_type, event_type, sender, pos, key
             FROM event_relations",
            |r| {
                Ok(DumpRelation {
                    event_id: r.get(0)?,
                    room_id: r.get(1)?,
                    relation: Relation {
                        parent: r.get(2)?,
                        rel_type: r.get(3)?,
                        key: r.get(7)?,
                    },
                    event_type: r.get(4)?,
                    sender: r.get(5)?,
                    pos: r.get::<_, i64>(6)? as u64,
                })
            },
        )?,
        search: all(
            conn,
            "SELECT rowid, room_id, key, text FROM event_search",
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get(1)?,
                    SearchText {
                        key: r.get(2)?,
                        text: r.get(3)?,
                    },
                ))
            },
        )?,
        reports: all(
            conn,
            "SELECT id, received_ts, reporter, room_id, event_id, target_user_id, reason
             FROM reports",
            reports::report_from_row,
        )?,
        edges: all(
            conn,
            "SELECT event_id, prev_event_id FROM event_edges",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?,
        extremities: all(
            conn,
            "SELECT room_id, event_id, depth FROM room_extremities",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?,
        state: all(
            conn,
            "SELECT event_type, state_key, event_id, from_pos, to_pos, room_id FROM room_state",
            |r| Ok((r.get(5)?, rooms::state_row(r)?)),
        )?,
        memberships: all(
            conn,
            "SELECT user_id, room_id, membership, event_id, pos FROM membership_log",
            |r| {
                Ok((
                    r.get(0)?,
                    MembershipChange {
                        room_id: r.get(1)?,
                        membership: r.get(2)?,
                        event_id: r.get(3)?,
                        pos: r.get::<_, i64>(4)? as u64,
                    },
                ))
            },
        )?,
        forgets: all(
            conn,
            "SELECT user_id, room_id, pos FROM room_forgets",
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)),
        )?,
        txn_ids: all(
            conn,
            "SELECT user_id, device_id, scope, event_id, created_ts FROM txn_ids",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?,
        aliases: all(
            conn,
            "SELECT alias, room_id, creator, created_ts FROM room_aliases",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?,
        blocked: all(
            conn,
            "SELECT room_id, user_id, blocked_ts FROM blocked_rooms",
            |r| {
                Ok(crate::RoomBlock {
                    room_id: r.get(0)?,
                    user_id: r.get(1)?,
                    blocked_ts: r.get(2)?,
                })
            },
        )?,
        purged: all(
            conn,
            "SELECT user_id, room_id, pos FROM purged_rooms",
            |r| {
                Ok(crate::PurgedRoom {
                    user_id: r.get(0)?,
                    room_id: r.get(1)?,
                    pos: r.get::<_, i64>(2)? as u64,
                })
            },
        )?,
    })
}

pub(super) fn import_rooms(conn: &Connection, dump: &RoomsDump) -> rusqlite::Result<()> {
    // A fresh database made its own key at start; the deployment's key replaces it, so events
    // keep verifying with the key the server serves.
    if !dump.server_keys.is_empty() {
        conn.execute("DELETE FROM server_keys", [])?;
    }
    for (key_id, secret, created) in &dump.server_keys {
        conn.execute(
            "INSERT INTO server_keys (key_id, secret, created_ts) VALUES (?1, ?2, ?3)",
            params![key_id, secret, created],
        )?;
    }
    for (room, created) in &dump.rooms {
        conn.execute(
            "INSERT INTO rooms (room_id, version, creator, published, created_ts)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                room.room_id,
                room.version,
                room.creator,
                room.published,
                created
            ],
        )?;
    }
    for (e, depth, ts) in &dump.events {
        let (device, txn_id) = e.txn.clone().unzip();
        conn.execute(
            "INSERT INTO events (pos, event_id, room_id, event_type, state_key, sender, depth,
                                 json, replaces, redacted_by, txn_device, txn_id, origin_ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                e.pos as i64,
                e.event_id,
                e.room_id,
                e.event_type,
                e.state_key,
                e.sender,
                depth,
                e.json,
                e.replaces,
                e.redacted_by,
                device,
                txn_id,
                ts
            ],
        )?;
    }
    for r in &dump.relations {
        conn.execute(
            "INSERT INTO event_relations
                 (event_id, room_id, parent_id, rel_type, event_type, sender, pos, key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                r.event_id,
                r.room_id,
                r.relation.parent,
                r.relation.rel_type,
                r.event_type,
                r.sender,
                r.pos as i64,
                r.relation.key
            ],
        )?;
    }
    for (pos, room_id, search) in &dump.search {
        conn.execute(
            "INSERT INTO event_search (rowid, text, room_id, key) VALUES (?1, ?2, ?3, ?4)",
            params![*pos as i64, search.text, room_id, search.key],
        )?;
    }
    for r in &dump.reports {
        conn.execute(
            "INSERT INTO reports (id, received_ts, reporter, room_id, event_id, target_user_id,
                                  reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                r.id,
                r.received_ts,
                r.reporter,
                r.room_id,
                r.event_id,
                r.target_user_id,
                r.reason
            ],
        )?;
    }
    for (event_id, prev) in &dump.edges {
        conn.execute(
            "INSERT INTO event_edges (event_id, prev_event_id) VALUES (?1, ?2)",
            params![event_id, prev],
        )?;
    }
    for (room_id, event_id, depth) in &dump.extremities {
        conn.execute(
            "INSERT INTO room_extremities (room_id, event_id, depth) VALUES (?1, ?2, ?3)",
            params![room_id, event_id, depth],
        )?;
    }
    for (room_id, row) in &dump.state {
        conn.execute(
            "INSERT INTO room_state (room_id, event_type, state_key, from_pos, to_pos, event_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                room_id,
                row.event_type,
                row.state_key,
                row.from_pos as i64,
                row.to_pos.map(|p| p as i64),
                row.event_id
            ],
        )?;
    }
    for (user_id, m) in &dump.memberships {
        conn.execute(
            "INSERT INTO membership_log (user_id, pos, room_id, membership, event_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![user_id, m.pos as i64, m.room_id, m.membership, m.event_id],
        )?;
        conn.execute(
            "INSERT INTO room_members (room_id, user_id, membership, event_id, pos)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership,
                 event_id = excluded.event_id, pos = excluded.pos
             WHERE excluded.pos > room_members.pos",
            params![m.room_id, user_id, m.membership, m.event_id, m.pos as i64],
        )?;
    }
    for (user_id, room_id, pos) in &dump.forgets {
        conn.execute(
            "INSERT INTO room_forgets (user_id, room_id, pos) VALUES (?1, ?2, ?3)",
            params![user_id, room_id, *pos as i64],
        )?;
    }
    for (user_id, device_id, scope, event_id, created) in &dump.txn_ids {
        conn.execute(
            "INSERT INTO txn_ids (user_id, device_id, scope, event_id, created_ts)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![user_id, device_id, scope, event_id, created],
        )?;
    }
    for (alias, room_id, creator, created) in &dump.aliases {
        conn.execute(
            "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?1, ?2, ?3, ?4)",
            params![alias, room_id, creator, created],
        )?;
    }
    for b in &dump.blocked {
        conn.execute(
            "INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES (?1, ?2, ?3)",
            params![b.room_id, b.user_id, b.blocked_ts],
        )?;
    }
    for p in &dump.purged {
        conn.execute(
            "INSERT INTO purged_rooms (user_id, room_id, pos) VALUES (?1, ?2, ?3)",
            params![p.user_id, p.room_id, p.pos as i64],
        )?;
    }
    Ok(())
}
