//! `myelin db copy` on SQLite: everything in one snapshot out, everything in one transaction in.

use super::*;
use crate::{DumpRelation, MembershipChange, Relation, RoomInfo, RoomsDump, SearchText};

pub(super) fn export_tx(conn: &Connection) -> rusqlite::Result<Dump> {
    let users = conn
        .prepare(
            "SELECT user_id, password_hash, appservice_id, created_ts, deactivated FROM users",
        )?
        .query_map([], |r| {
            Ok((
                User {
                    user_id: r.get(0)?,
                    password_hash: r.get(1)?,
                    appservice_id: r.get(2)?,
                    deactivated: r.get(4)?,
                },
                r.get(3)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let devices = conn
        .prepare(
            "SELECT user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts,
                    last_seen_user_agent FROM devices",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                Device {
                    device_id: r.get(1)?,
                    display_name: r.get(2)?,
                    last_seen_ip: r.get(3)?,
                    last_seen_ts: r.get(4)?,
                    last_seen_user_agent: r.get(6)?,
                },
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let access_tokens = conn
        .prepare(
            "SELECT token_hash, user_id, device_id, created_ts, expires_ts, replaces
             FROM access_tokens",
        )?
        .query_map([], |r| {
            Ok(DumpAccessToken {
                token_hash: r.get(0)?,
                user_id: r.get(1)?,
                device_id: r.get(2)?,
                created_ts: r.get(3)?,
                expires_ts: r.get(4)?,
                replaces: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let refresh_tokens = conn
        .prepare(
            "SELECT token_hash, user_id, device_id, access_hash, replaces, created_ts, expires_ts
             FROM refresh_tokens",
        )?
        .query_map([], |r| {
            Ok(DumpRefreshToken {
                token_hash: r.get(0)?,
                user_id: r.get(1)?,
                device_id: r.get(2)?,
                access_hash: r.get(3)?,
                replaces: r.get(4)?,
                created_ts: r.get(5)?,
                expires_ts: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let account_data = conn
        .prepare("SELECT user_id, room_id, data_type, content, stream_pos FROM account_data")?
        .query_map([], |r| {
            let room: String = r.get(1)?;
            Ok((
                r.get(0)?,
                AccountDataChange {
                    room_id: (!room.is_empty()).then_some(room),
                    data_type: r.get(2)?,
                    content: r.get(3)?,
                    pos: r.get::<_, i64>(4)? as u64,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let erased_users = conn
        .prepare("SELECT user_id, pos FROM erased_users")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let filters = conn
        .prepare("SELECT user_id, filter_id, filter FROM filters")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut positions = StreamPositions::default();
    let rows: Vec<(String, i64)> = conn
        .prepare("SELECT stream, pos FROM stream_positions")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, pos) in rows {
        if let Some(stream) = Stream::from_name(&name) {
            positions.set(stream, pos as u64);
        }
    }
    Ok(Dump {
        users,
        devices,
        access_tokens,
        refresh_tokens,
        account_data,
        filters,
        erased_users,
        positions,
        rooms: export_rooms(conn)?,
        receipts: all(
            conn,
            "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, event_pos, stream_pos
             FROM receipts",
            |r| {
                Ok((
                    ephemeral::receipt_from_row(r)?,
                    r.get::<_, i64>(6)? as u64,
                    r.get::<_, i64>(7)? as u64,
                ))
            },
        )?,
        media: all(
            conn,
            "SELECT media_id, uploader, content_type, filename, size, created_ts FROM media",
            media::media_from_row,
        )?,
        thumbnails: all(
            conn,
            "SELECT media_id, width, height, method, content_type, size FROM media_thumbnails",
            media::thumbnail_from_row,
        )?,
        profile_fields: all(
            conn,
            "SELECT user_id, field, value FROM profile_fields",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?,
        e2ee: e2ee_dump::export(conn)?,
        push_actions: push::export(conn)?,
        pushers: pushers::select(conn, "", [])?,
        admin: admin::export_admin(conn)?,
    })
}

fn all<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare(sql)?.query_map([], f)?.collect()
}

fn export_rooms(conn: &Connection) -> rusqlite::Result<RoomsDump> {
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
    })
}

fn import_rooms(conn: &Connection, dump: &RoomsDump) -> rusqlite::Result<()> {
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
    Ok(())
}

pub(super) fn import_tx(conn: &Connection, dump: Dump) -> StoreResult<()> {
    let users: i64 = conn
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .map_err(classify)?;
    if users > 0 {
        return Err(StoreError::Conflict(
            "the target database already has users",
        ));
    }
    let run = || -> rusqlite::Result<()> {
        for (user, created) in &dump.users {
            conn.execute(
                "INSERT INTO users (user_id, password_hash, appservice_id, created_ts, deactivated)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    user.user_id,
                    user.password_hash,
                    user.appservice_id,
                    created,
                    user.deactivated
                ],
            )?;
        }
        for (user_id, d, created) in &dump.devices {
            conn.execute(
                "INSERT INTO devices (user_id, device_id, display_name, last_seen_ip, last_seen_ts,
                     created_ts, last_seen_user_agent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    user_id,
                    d.device_id,
                    d.display_name,
                    d.last_seen_ip,
                    d.last_seen_ts,
                    created,
                    d.last_seen_user_agent
                ],
            )?;
        }
        for t in &dump.access_tokens {
            conn.execute(
                "INSERT INTO access_tokens
                     (token_hash, user_id, device_id, created_ts, expires_ts, replaces)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    t.token_hash,
                    t.user_id,
                    t.device_id,
                    t.created_ts,
                    t.expires_ts,
                    t.replaces
                ],
            )?;
        }
        for t in &dump.refresh_tokens {
            conn.execute(
                "INSERT INTO refresh_tokens
                     (token_hash, user_id, device_id, access_hash, replaces, created_ts, expires_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.token_hash,
                    t.user_id,
                    t.device_id,
                    t.access_hash,
                    t.replaces,
                    t.created_ts,
                    t.expires_ts
                ],
            )?;
        }
        for (user_id, c) in &dump.account_data {
            conn.execute(
                "INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    user_id,
                    room_key(c.room_id.as_deref()),
                    c.data_type,
                    c.content,
                    c.pos as i64
                ],
            )?;
        }
        for (user_id, pos) in &dump.erased_users {
            conn.execute(
                "INSERT INTO erased_users (user_id, pos) VALUES (?1, ?2)",
                params![user_id, pos],
            )?;
        }
        for (user_id, id, filter) in &dump.filters {
            conn.execute(
                "INSERT INTO filters (user_id, filter_id, filter) VALUES (?1, ?2, ?3)",
                params![user_id, id, filter],
            )?;
        }
        import_rooms(conn, &dump.rooms)?;
        admin::import_admin(conn, &dump.admin)?;
        e2ee_dump::import(conn, &dump.e2ee)?;
        push::import(conn, &dump.push_actions)?;
        for pusher in &dump.pushers {
            pushers::insert(conn, pusher, pusher.last_pos)?;
        }
        for (rc, event_pos, pos) in &dump.receipts {
            conn.execute(
                "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id,
                                       event_pos, ts, stream_pos)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    rc.room_id,
                    rc.user_id,
                    rc.receipt_type,
                    rc.thread_id.clone().unwrap_or_default(),
                    rc.event_id,
                    *event_pos as i64,
                    rc.ts,
                    *pos as i64
                ],
            )?;
        }
        for m in &dump.media {
            conn.execute(
                "INSERT INTO media (media_id, uploader, content_type, filename, size, created_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    m.media_id,
                    m.uploader,
                    m.content_type,
                    m.filename,
                    m.size as i64,
                    m.created_ts
                ],
            )?;
        }
        for t in &dump.thumbnails {
            conn.execute(
                "INSERT INTO media_thumbnails (media_id, width, height, method, content_type, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    t.media_id,
                    t.width,
                    t.height,
                    t.method,
                    t.content_type,
                    t.size as i64
                ],
            )?;
        }
        for (user_id, field, value) in &dump.profile_fields {
            conn.execute(
                "INSERT INTO profile_fields (user_id, field, value) VALUES (?1, ?2, ?3)",
                params![user_id, field, value],
            )?;
        }
        for stream in Stream::ALL {
            conn.execute(
                "UPDATE stream_positions SET pos = MAX(pos, ?2) WHERE stream = ?1",
                params![stream.name(), dump.positions.get(stream) as i64],
            )?;
        }
        Ok(())
    };
    run().map_err(classify)
}
