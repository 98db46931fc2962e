//! `myelin db copy` on PostgreSQL: one repeatable-read snapshot out, one transaction in.

use super::rooms_dump::{export_rooms, import_rooms};
use super::*;

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
