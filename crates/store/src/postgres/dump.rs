//! `myelin db copy` on PostgreSQL: one repeatable-read snapshot out, one transaction in.

use super::*;
use crate::{DumpRelation, MembershipChange, Relation, RoomInfo, RoomsDump, SearchText};

pub(super) async fn export(pool: &PgPool) -> StoreResult<Dump> {
    let mut tx = pool.begin().await.map_err(classify)?;
    tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(classify)?;
    type UserRow = (String, Option<String>, Option<String>, i64, bool);
    let users: Vec<UserRow> = sqlx::query_as(
        "SELECT user_id, password_hash, appservice_id, created_ts, deactivated FROM users",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    type DeviceRow = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        i64,
        Option<String>,
    );
    let devices: Vec<DeviceRow> = sqlx::query_as(
        "SELECT user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts,
                 last_seen_user_agent FROM devices",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    type TokenRow = (Vec<u8>, String, String, i64, Option<i64>, Option<Vec<u8>>);
    let access_tokens: Vec<TokenRow> = sqlx::query_as(
        "SELECT token_hash, user_id, device_id, created_ts, expires_ts, replaces
         FROM access_tokens",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    type RefreshRow = (
        Vec<u8>,
        String,
        String,
        Vec<u8>,
        Option<Vec<u8>>,
        i64,
        Option<i64>,
    );
    let refresh_tokens: Vec<RefreshRow> = sqlx::query_as(
        "SELECT token_hash, user_id, device_id, access_hash, replaces, created_ts, expires_ts
         FROM refresh_tokens",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let account_data: Vec<(String, String, String, String, i64)> =
        sqlx::query_as("SELECT user_id, room_id, data_type, content, stream_pos FROM account_data")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    let erased_users: Vec<(String, i64)> = sqlx::query_as("SELECT user_id, pos FROM erased_users")
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
    let filters: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT user_id, filter_id, filter FROM filters")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
    let counters: Vec<(String, i64)> = sqlx::query_as("SELECT stream, pos FROM stream_positions")
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
    let mut positions = StreamPositions::default();
    for (name, pos) in counters {
        if let Some(stream) = Stream::from_name(&name) {
            positions.set(stream, pos as u64);
        }
    }
    let rooms = export_rooms(&mut tx).await?;
    let e2ee = e2ee_dump::export(&mut tx).await?;
    let push_actions = push::export(&mut tx).await?;
    let pushers = pushers::select(&mut tx, "", None).await?;
    let admin = admin::export_admin(&mut tx).await?;
    type ReceiptDumpRow = (String, String, String, String, String, i64, i64, i64);
    let receipts: Vec<ReceiptDumpRow> = sqlx::query_as(
        "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, event_pos, stream_pos
         FROM receipts",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let receipts = receipts
        .into_iter()
        .map(|(room, user, kind, thread, event, ts, event_pos, pos)| {
            let receipt = ephemeral::receipt_from_row((room, user, kind, thread, event, ts));
            (receipt, event_pos as u64, pos as u64)
        })
        .collect();
    let media: Vec<media::MediaRow> = sqlx::query_as(
        "SELECT media_id, uploader, content_type, filename, size, created_ts FROM media",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let media = media.into_iter().map(media::media_from_row).collect();
    let thumbnails: Vec<media::ThumbnailRow> = sqlx::query_as(
        "SELECT media_id, width, height, method, content_type, size FROM media_thumbnails",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let thumbnails = thumbnails
        .into_iter()
        .map(media::thumbnail_from_row)
        .collect();
    let profile_fields = sqlx::query_as("SELECT user_id, field, value FROM profile_fields")
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
    tx.commit().await.map_err(classify)?;
    Ok(Dump {
        users: users
            .into_iter()
            .map(
                |(user_id, password_hash, appservice_id, created, deactivated)| {
                    (
                        User {
                            user_id,
                            password_hash,
                            appservice_id,
                            deactivated,
                        },
                        created,
                    )
                },
            )
            .collect(),
        devices: devices
            .into_iter()
            .map(
                |(user_id, device_id, display_name, last_seen_ip, last_seen_ts, created, agent)| {
                    (
                        user_id,
                        Device {
                            device_id,
                            display_name,
                            last_seen_ip,
                            last_seen_ts,
                            last_seen_user_agent: agent,
                        },
                        created,
                    )
                },
            )
            .collect(),
        access_tokens: access_tokens
            .into_iter()
            .map(
                |(token_hash, user_id, device_id, created_ts, expires_ts, replaces)| {
                    DumpAccessToken {
                        token_hash,
                        user_id,
                        device_id,
                        created_ts,
                        expires_ts,
                        replaces,
                    }
                },
            )
            .collect(),
        refresh_tokens: refresh_tokens
            .into_iter()
            .map(
                |(
                    token_hash,
                    user_id,
                    device_id,
                    access_hash,
                    replaces,
                    created_ts,
                    expires_ts,
                )| {
                    DumpRefreshToken {
                        token_hash,
                        user_id,
                        device_id,
                        access_hash,
                        replaces,
                        created_ts,
                        expires_ts,
                    }
                },
            )
            .collect(),
        account_data: account_data
            .into_iter()
            .map(|(user_id, room, data_type, content, pos)| {
                (
                    user_id,
                    AccountDataChange {
                        room_id: (!room.is_empty()).then_some(room),
                        data_type,
                        content,
                        pos: pos as u64,
                    },
                )
            })
            .collect(),
        filters,
        erased_users,
        positions,
        rooms,
        e2ee,
        profile_fields,
        receipts,
        media,
        thumbnails,
        push_actions,
        pushers,
        admin,
    })
}

pub(super) async fn import(pool: &PgPool, dump: Dump) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(classify)?;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
    if users > 0 {
        return Err(StoreError::Conflict(
            "the target database already has users",
        ));
    }
    for (user, created) in &dump.users {
        sqlx::query(
            "INSERT INTO users (user_id, password_hash, appservice_id, created_ts, deactivated)
                 VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.user_id)
        .bind(&user.password_hash)
        .bind(&user.appservice_id)
        .bind(created)
        .bind(user.deactivated)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (user_id, d, created) in &dump.devices {
        sqlx::query(
            "INSERT INTO devices (user_id, device_id, display_name, last_seen_ip, last_seen_ts,
                     created_ts, last_seen_user_agent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user_id)
        .bind(&d.device_id)
        .bind(&d.display_name)
        .bind(&d.last_seen_ip)
        .bind(d.last_seen_ts)
        .bind(created)
        .bind(&d.last_seen_user_agent)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for t in &dump.access_tokens {
        sqlx::query(
            "INSERT INTO access_tokens
                 (token_hash, user_id, device_id, created_ts, expires_ts, replaces)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.token_hash)
        .bind(&t.user_id)
        .bind(&t.device_id)
        .bind(t.created_ts)
        .bind(t.expires_ts)
        .bind(&t.replaces)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for t in &dump.refresh_tokens {
        sqlx::query(
            "INSERT INTO refresh_tokens
                 (token_hash, user_id, device_id, access_hash, replaces, created_ts, expires_ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.token_hash)
        .bind(&t.user_id)
        .bind(&t.device_id)
        .bind(&t.access_hash)
        .bind(&t.replaces)
        .bind(t.created_ts)
        .bind(t.expires_ts)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (user_id, c) in &dump.account_data {
        sqlx::query(
            "INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
                 VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user_id)
        .bind(c.room_id.as_deref().unwrap_or(""))
        .bind(&c.data_type)
        .bind(&c.content)
        .bind(c.pos as i64)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (user_id, pos) in &dump.erased_users {
        sqlx::query("INSERT INTO erased_users (user_id, pos) VALUES ($1, $2)")
            .bind(user_id)
            .bind(pos)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for (user_id, id, filter) in &dump.filters {
        sqlx::query("INSERT INTO filters (user_id, filter_id, filter) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(id)
            .bind(filter)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    import_rooms(&mut tx, &dump.rooms).await?;
    admin::import_admin(&mut tx, &dump.admin).await?;
    e2ee_dump::import(&mut tx, &dump.e2ee).await?;
    push::import(&mut tx, &dump.push_actions).await?;
    for pusher in &dump.pushers {
        pushers::insert(&mut tx, pusher, pusher.last_pos).await?;
    }
    for (rc, event_pos, pos) in &dump.receipts {
        sqlx::query(
            "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, event_pos,
                                   ts, stream_pos)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&rc.room_id)
        .bind(&rc.user_id)
        .bind(&rc.receipt_type)
        .bind(rc.thread_id.clone().unwrap_or_default())
        .bind(&rc.event_id)
        .bind(*event_pos as i64)
        .bind(rc.ts)
        .bind(*pos as i64)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for m in &dump.media {
        sqlx::query(
            "INSERT INTO media (media_id, uploader, content_type, filename, size, created_ts)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&m.media_id)
        .bind(&m.uploader)
        .bind(&m.content_type)
        .bind(&m.filename)
        .bind(m.size as i64)
        .bind(m.created_ts)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for t in &dump.thumbnails {
        sqlx::query(
            "INSERT INTO media_thumbnails (media_id, width, height, method, content_type, size)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.media_id)
        .bind(i64::from(t.width))
        .bind(i64::from(t.height))
        .bind(&t.method)
        .bind(&t.content_type)
        .bind(t.size as i64)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    for (user_id, field, value) in &dump.profile_fields {
        sqlx::query("INSERT INTO profile_fields (user_id, field, value) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(field)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    for stream in Stream::ALL {
        sqlx::query("UPDATE stream_positions SET pos = GREATEST(pos, $2) WHERE stream = $1")
            .bind(stream.name())
            .bind(dump.positions.get(stream) as i64)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    tx.commit().await.map_err(classify)
}

async fn export_rooms(tx: &mut PgConnection) -> StoreResult<RoomsDump> {
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
    })
}

async fn import_rooms(tx: &mut PgConnection, dump: &RoomsDump) -> StoreResult<()> {
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
    Ok(())
}
