//! The embedded SQLite backend (the default).
//!
//! WAL mode: readers work from their own snapshot and never wait for the writer. All writes go
//! through one writer thread (see [`pool`]), which makes stream-position allocation trivially
//! ordered: a position is taken inside the transaction that uses it, and the watermark moves
//! only after `COMMIT`.

mod account_data;
mod accounts;
mod admin;
mod backup;
mod cross_signing;
mod devices;
mod dump;
mod e2ee;
mod e2ee_dump;
mod ephemeral;
mod media;
mod pool;
mod presence;
mod profile;
mod push;
mod pushers;
mod relations;
mod reports;
mod room_append;
mod room_directory;
mod room_purge;
mod rooms;
mod rooms_dump;
mod search;
mod sync;
mod txn;

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    AccessToken, AccountDataChange, Device, DeviceUpsert, Dump, DumpAccessToken, DumpRefreshToken,
    LastSeen, NewLogin, Refreshed, Store, StoreError, StoreResult, Stream, StreamPositions,
    TokenOwner, Txn, UiaSession, User,
};
use pool::{Pool, backend, classify};

/// Migrations in order; each is applied once and recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "rooms",
        include_str!("../../migrations/sqlite/0002_rooms.sql"),
    ),
    (
        3,
        "lazy_members",
        include_str!("../../migrations/sqlite/0003_lazy_members.sql"),
    ),
    (
        4,
        "e2ee",
        include_str!("../../migrations/sqlite/0004_e2ee.sql"),
    ),
    (
        5,
        "profiles",
        include_str!("../../migrations/sqlite/0005_profiles.sql"),
    ),
    (
        6,
        "media",
        include_str!("../../migrations/sqlite/0006_media.sql"),
    ),
    (
        7,
        "ephemeral",
        include_str!("../../migrations/sqlite/0007_ephemeral.sql"),
    ),
    (
        8,
        "push_actions",
        include_str!("../../migrations/sqlite/0008_push_actions.sql"),
    ),
    (
        9,
        "pushers",
        include_str!("../../migrations/sqlite/0009_pushers.sql"),
    ),
    (
        10,
        "cross_signing",
        include_str!("../../migrations/sqlite/0010_cross_signing.sql"),
    ),
    (
        11,
        "deactivation",
        include_str!("../../migrations/sqlite/0011_deactivation.sql"),
    ),
    (
        12,
        "refresh_tokens",
        include_str!("../../migrations/sqlite/0012_refresh_tokens.sql"),
    ),
    (
        13,
        "presence",
        include_str!("../../migrations/sqlite/0013_presence.sql"),
    ),
    (
        14,
        "media_pending",
        include_str!("../../migrations/sqlite/0014_media_pending.sql"),
    ),
    (
        15,
        "erasure",
        include_str!("../../migrations/sqlite/0015_erasure.sql"),
    ),
    (
        16,
        "admin",
        include_str!("../../migrations/sqlite/0016_admin.sql"),
    ),
    (
        17,
        "token_reservations",
        include_str!("../../migrations/sqlite/0017_token_reservations.sql"),
    ),
    (
        18,
        "room_summaries",
        include_str!("../../migrations/sqlite/0018_room_summaries.sql"),
    ),
    (
        19,
        "relations",
        include_str!("../../migrations/sqlite/0019_relations.sql"),
    ),
    (
        20,
        "event_times_reports",
        include_str!("../../migrations/sqlite/0020_event_times_reports.sql"),
    ),
    (
        21,
        "search",
        include_str!("../../migrations/sqlite/0021_search.sql"),
    ),
    (
        22,
        "room_blocks",
        include_str!("../../migrations/sqlite/0022_room_blocks.sql"),
    ),
    (
        23,
        "device_list_own",
        include_str!("../../migrations/sqlite/0023_device_list_own.sql"),
    ),
    (
        24,
        "dehydrated_devices",
        include_str!("../../migrations/sqlite/0024_dehydrated_devices.sql"),
    ),
];

/// `synchronous` levels accepted in the configuration.
pub const SYNCHRONOUS_LEVELS: &[&str] = &["full", "normal", "extra"];

pub struct SqliteStore {
    pool: Pool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path, readers: usize, synchronous: &str) -> StoreResult<Self> {
        let pool = Pool::open(path, readers, synchronous, migrate)?;
        Ok(Self { pool })
    }
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            applied_ts INTEGER NOT NULL
        )",
    )
    .map_err(classify)?;
    for (version, name, sql) in MIGRATIONS {
        let applied: Option<i64> = conn
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()
            .map_err(classify)?;
        if applied.is_some() {
            continue;
        }
        let what = crate::migration_summary(sql);
        tracing::info!(version, name, %what, "applying migration");
        let tx = conn.transaction().map_err(classify)?;
        tx.execute_batch(sql).map_err(classify)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ts) VALUES (?1, ?2, ?3)",
            params![version, name, crate::now_ms()],
        )
        .map_err(classify)?;
        tx.commit().map_err(classify)?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}

fn room_key(room_id: Option<&str>) -> &str {
    room_id.unwrap_or("")
}

/// Takes the next position of `stream` inside the current transaction: the single writer
/// orders allocations, and the watermark moves only when the transaction has committed.
fn next_pos(conn: &Connection, stream: Stream) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "UPDATE stream_positions SET pos = pos + 1 WHERE stream = ?1 RETURNING pos",
    )?
    .query_row([stream.name()], |r| r.get::<_, i64>(0))
    .map(|p| p as u64)
}

fn upsert_account_data(
    conn: &Connection,
    user_id: &str,
    room: &str,
    data_type: &str,
    content: &str,
    pos: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id, room_id, data_type)
         DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos",
    )?
    .execute(params![user_id, room, data_type, content, pos as i64])?;
    Ok(())
}

fn insert_device(conn: &Connection, user_id: &str, login: &NewLogin) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO devices (user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        user_id,
        login.device_id,
        login.display_name,
        login.ip,
        login.now_ms
    ])?;
    e2ee::record_device_change(conn, user_id).map(drop)
}

/// Stores the login's access token and, when it has one, its refresh token; `replaces` is
/// the refresh token the pair was refreshed from.
fn insert_token(conn: &Connection, user_id: &str, login: &NewLogin) -> rusqlite::Result<()> {
    insert_pair(conn, user_id, login, None)
}

fn insert_pair(
    conn: &Connection,
    user_id: &str,
    login: &NewLogin,
    replaces: Option<&[u8]>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts, replaces)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        &login.token_hash[..],
        user_id,
        login.device_id,
        login.now_ms,
        login.expires_ts,
        replaces
    ])?;
    if let Some(refresh) = &login.refresh {
        conn.prepare_cached(
            "INSERT INTO refresh_tokens
                 (token_hash, user_id, device_id, access_hash, replaces, created_ts, expires_ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            &refresh.token_hash[..],
            user_id,
            login.device_id,
            &login.token_hash[..],
            replaces,
            login.now_ms,
            refresh.expires_ts
        ])?;
    }
    Ok(())
}

fn device_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        device_id: r.get(0)?,
        display_name: r.get(1)?,
        last_seen_ip: r.get(2)?,
        last_seen_ts: r.get(3)?,
        last_seen_user_agent: r.get(4)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self, user_id: &str) -> StoreResult<Box<dyn Txn>> {
        Ok(Box::new(txn::SqliteTxn::begin(&self.pool, user_id)?))
    }

    async fn export(&self) -> StoreResult<Dump> {
        // The writer connection sees a consistent snapshot inside one transaction.
        self.pool
            .write(|conn| dump::export_tx(conn).map_err(classify))
            .await
    }

    async fn import(&self, dump: Dump) -> StoreResult<()> {
        self.pool
            .write(move |conn| dump::import_tx(conn, dump))
            .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.pool
            .write(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(classify))
            .await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
