//! The PostgreSQL backend, for deployments that run several Myelin processes on one database.
//!
//! How stream positions stay exact with writers on several processes, and how those processes
//! wake each other's syncs, is in [`positions`]; units of work driven by `core` are in [`txn`].

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
mod positions;
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

use std::{str::FromStr, sync::Mutex, time::Duration};

use async_trait::async_trait;
use sqlx::{
    Executor, PgConnection, PgPool, Postgres, Row, Transaction,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgSslMode},
};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    AccessToken, AccountDataChange, Device, DeviceUpsert, Dump, DumpAccessToken, DumpRefreshToken,
    LastSeen, NewLogin, Refreshed, Store, StoreError, StoreResult, Stream, StreamPositions,
    TokenOwner, Txn, UiaSession, User, Wakeup,
};
use positions::{CHANNEL, Held, account_data_note, listen, watermarks};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "in_flight_as_locks",
        include_str!("../../migrations/postgres/0002_in_flight_as_locks.sql"),
    ),
    (
        3,
        "rooms",
        include_str!("../../migrations/postgres/0003_rooms.sql"),
    ),
    (
        4,
        "lazy_members",
        include_str!("../../migrations/postgres/0004_lazy_members.sql"),
    ),
    (
        5,
        "e2ee",
        include_str!("../../migrations/postgres/0005_e2ee.sql"),
    ),
    (
        6,
        "profiles",
        include_str!("../../migrations/postgres/0006_profiles.sql"),
    ),
    (
        7,
        "media",
        include_str!("../../migrations/postgres/0007_media.sql"),
    ),
    (
        8,
        "ephemeral",
        include_str!("../../migrations/postgres/0008_ephemeral.sql"),
    ),
    (
        9,
        "push_actions",
        include_str!("../../migrations/postgres/0009_push_actions.sql"),
    ),
    (
        10,
        "pushers",
        include_str!("../../migrations/postgres/0010_pushers.sql"),
    ),
    (
        11,
        "cross_signing",
        include_str!("../../migrations/postgres/0011_cross_signing.sql"),
    ),
    (
        12,
        "deactivation",
        include_str!("../../migrations/postgres/0012_deactivation.sql"),
    ),
    (
        13,
        "refresh_tokens",
        include_str!("../../migrations/postgres/0013_refresh_tokens.sql"),
    ),
    (
        14,
        "presence",
        include_str!("../../migrations/postgres/0014_presence.sql"),
    ),
    (
        15,
        "media_pending",
        include_str!("../../migrations/postgres/0015_media_pending.sql"),
    ),
    (
        16,
        "erasure",
        include_str!("../../migrations/postgres/0016_erasure.sql"),
    ),
    (
        17,
        "admin",
        include_str!("../../migrations/postgres/0017_admin.sql"),
    ),
    (
        18,
        "token_reservations",
        include_str!("../../migrations/postgres/0018_token_reservations.sql"),
    ),
    (
        19,
        "room_summaries",
        include_str!("../../migrations/postgres/0019_room_summaries.sql"),
    ),
    (
        20,
        "relations",
        include_str!("../../migrations/postgres/0020_relations.sql"),
    ),
    (
        21,
        "event_times_reports",
        include_str!("../../migrations/postgres/0021_event_times_reports.sql"),
    ),
    (
        22,
        "search",
        include_str!("../../migrations/postgres/0022_search.sql"),
    ),
    (
        23,
        "room_blocks",
        include_str!("../../migrations/postgres/0023_room_blocks.sql"),
    ),
    (
        24,
        "device_list_own",
        include_str!("../../migrations/postgres/0024_device_list_own.sql"),
    ),
    (
        25,
        "dehydrated_devices",
        include_str!("../../migrations/postgres/0025_dehydrated_devices.sql"),
    ),
];

/// Serialises migrations when several processes start at once.
const MIGRATION_LOCK: i64 = 0x6d79_656c_696e;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub url: String,
    pub pool_size: u32,
    pub statement_timeout_ms: u64,
    /// `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
    pub tls: String,
}

pub struct PostgresStore {
    pool: PgPool,
    /// Connections with `synchronous_commit = off`, for notifications after a unit of work
    /// has committed. Keeping them off the writing transactions matters: a transaction that
    /// sends `NOTIFY` holds a database-wide lock through its commit, disk flush included,
    /// which serialised every write.
    fast: PgPool,
    wakeups: Mutex<Option<mpsc::UnboundedReceiver<Wakeup>>>,
    listener: JoinHandle<()>,
    /// This process among those sharing the database, in its notifications.
    instance: String,
}

/// A process nonce: the clock and the process ID, mixed (no randomness crate needed here).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

/// Tells input PostgreSQL refuses from a failing database: text it cannot store (22021 NUL
/// or invalid encoding, 22P05 untranslatable, 22001 too long) and program limits (54000: a
/// key too large for its index) are the request's fault. Other data exceptions would be
/// Myelin's own (a bad cast) and stay server errors.
fn classify(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && let Some(code) = db.code()
        && matches!(&*code, "22021" | "22P05" | "22001" | "54000")
    {
        return StoreError::Invalid(db.message().to_owned());
    }
    backend(err)
}

fn connect_options(options: &PgOptions) -> StoreResult<PgConnectOptions> {
    let ssl_mode = PgSslMode::from_str(&options.tls).map_err(backend)?;
    Ok(PgConnectOptions::from_str(&options.url)
        .map_err(backend)?
        .ssl_mode(ssl_mode)
        .options([
            (
                "statement_timeout",
                format!("{}ms", options.statement_timeout_ms),
            ),
            // A host that vanishes without closing its connections (a crash, a partition)
            // would keep its sessions, and the in-flight positions they hold, for the
            // kernel's default two hours: the server drops it within about half a minute.
            ("tcp_keepalives_idle", "10".to_owned()),
            ("tcp_keepalives_interval", "5".to_owned()),
            ("tcp_keepalives_count", "3".to_owned()),
            ("tcp_user_timeout", "30000".to_owned()),
            // A unit of work is a few statements in a row; one left open holds user rows.
            ("idle_in_transaction_session_timeout", "60000".to_owned()),
        ]))
}

impl PostgresStore {
    pub async fn connect(options: &PgOptions) -> StoreResult<Self> {
        let connect = connect_options(options)?;
        // The pool retries a failed connection until its acquire timeout, then reports only
        // "pool timed out": 30 s of silence for a wrong host or port. One direct connection
        // first reports the real cause at once. Host and port only: the URL may hold a password.
        let host = connect.get_host();
        let at = if host.contains(':') && !host.starts_with('/') {
            format!("[{host}]:{}", connect.get_port())
        } else {
            format!("{host}:{}", connect.get_port())
        };
        let first = <PgConnection as sqlx::Connection>::connect_with(&connect);
        match tokio::time::timeout(Duration::from_secs(10), first).await {
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
            Ok(Err(sqlx::Error::Io(err)))
                if err.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                return Err(backend(format!("cannot reach {at}: connection refused")));
            }
            Ok(Err(err)) => return Err(backend(format!("cannot connect to {at}: {err}"))),
            Err(_) => return Err(backend(format!("cannot reach {at}: no answer within 10 s"))),
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await
            .map_err(backend)?;
        migrate(&pool).await?;
        let fast = PgPoolOptions::new()
            .max_connections((options.pool_size / 4).max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect_options(options)?.options([("synchronous_commit", "off")]))
            .await
            .map_err(backend)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut listener = PgListener::connect_with(&pool).await.map_err(backend)?;
        listener.listen(CHANNEL).await.map_err(backend)?;
        let instance = format!("{:016x}", rand_u64());
        let listener = tokio::spawn(listen(listener, pool.clone(), instance.clone(), tx));
        Ok(Self {
            pool,
            fast,
            wakeups: Mutex::new(Some(rx)),
            listener,
            instance,
        })
    }
}

/// Creates an empty database `name` through a connection to `admin_url` (tests and tools).
pub async fn create_database(admin_url: &str, name: &str) -> StoreResult<String> {
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::Backend("invalid database name".into()));
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .map_err(classify)?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .map_err(classify)?;
    pool.close().await;
    // The admin URL with its database replaced (credentials and parameters kept).
    let (base, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    Ok(if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    })
}

async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(classify)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    let result = async {
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ts BIGINT NOT NULL)",
        )
        .await
        .map_err(classify)?;
        for (version, name, sql) in MIGRATIONS {
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(classify)?;
            if applied.is_some() {
                continue;
            }
            let what = crate::migration_summary(sql);
            tracing::info!(version, name, %what, "applying migration");
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(classify)?;
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_ts) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(name)
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            tx.commit().await.map_err(classify)?;
            tracing::info!(version, name, "applied migration");
        }
        Ok(())
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    result
}

/// Takes the user's row lock for the rest of `tx`: every multi-statement write on one user's
/// data starts here, so such writes run one after another and lock rows in one order (see
/// [`txn`]). `FOR NO KEY UPDATE` still lets other writers insert rows that reference the user.
async fn lock_user(tx: &mut PgConnection, user_id: &str) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM users WHERE user_id = $1 FOR NO KEY UPDATE")
        .bind(user_id)
        .execute(tx)
        .await
        .map_err(classify)?;
    Ok(())
}

fn device_from_row(r: &sqlx::postgres::PgRow) -> Result<Device, sqlx::Error> {
    Ok(Device {
        device_id: r.try_get(0)?,
        display_name: r.try_get(1)?,
        last_seen_ip: r.try_get(2)?,
        last_seen_ts: r.try_get(3)?,
        last_seen_user_agent: r.try_get(4)?,
    })
}

/// Creates a device and records the device-list change; returns its notification.
async fn insert_device(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    login: &NewLogin,
) -> StoreResult<String> {
    sqlx::query(
        "INSERT INTO devices (user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts)
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(&login.device_id)
    .bind(&login.display_name)
    .bind(&login.ip)
    .bind(login.now_ms)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    e2ee::record_device_change(tx, user_id).await
}

async fn upsert_account_data<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    user_id: &str,
    room: &str,
    data_type: &str,
    content: &str,
    pos: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id, room_id, data_type)
         DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos",
    )
    .bind(user_id)
    .bind(room)
    .bind(data_type)
    .bind(content)
    .bind(pos)
    .execute(executor)
    .await
    .map_err(classify)?;
    Ok(())
}

/// Stores the login's access token and, when it has one, its refresh token.
async fn insert_token(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    login: &NewLogin,
) -> StoreResult<()> {
    insert_pair(tx, user_id, login, None).await
}

/// [`insert_token`] for a pair refreshed from the refresh token `replaces`.
async fn insert_pair(
    tx: &mut PgConnection,
    user_id: &str,
    login: &NewLogin,
    replaces: Option<&[u8]>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts, replaces)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&login.token_hash[..])
    .bind(user_id)
    .bind(&login.device_id)
    .bind(login.now_ms)
    .bind(login.expires_ts)
    .bind(replaces)
    .execute(&mut *tx)
    .await
    .map_err(classify)?;
    if let Some(refresh) = &login.refresh {
        sqlx::query(
            "INSERT INTO refresh_tokens
                 (token_hash, user_id, device_id, access_hash, replaces, created_ts, expires_ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&refresh.token_hash[..])
        .bind(user_id)
        .bind(&login.device_id)
        .bind(&login.token_hash[..])
        .bind(replaces)
        .bind(login.now_ms)
        .bind(refresh.expires_ts)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn begin(&self, user_id: &str) -> StoreResult<Box<dyn Txn>> {
        Ok(Box::new(
            txn::PgTxn::begin(&self.pool, &self.fast, user_id).await?,
        ))
    }

    async fn export(&self) -> StoreResult<Dump> {
        dump::export(&self.pool).await
    }

    async fn import(&self, dump: Dump) -> StoreResult<()> {
        dump::import(&self.pool, dump).await
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(classify)
    }

    async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }
}
