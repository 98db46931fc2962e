//! `myelin db copy` on SQLite: everything in one snapshot out, everything in one transaction in.

use super::rooms_dump::{export_rooms, import_rooms};
use super::*;

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

pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare(sql)?.query_map([], f)?.collect()
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
