//! The PostgreSQL backend, for deployments that run several Myelin processes on one database.
//!
//! Stream positions with concurrent writers on different processes (SY-09): a position is
//! allocated in a short transaction of its own that also records it in `stream_inflight`;
//! the writing transaction deletes that row when it commits (or the failure path deletes it
//! after a rollback). The watermark is then `MIN(inflight) - 1`, or the counter when nothing
//! is in flight, read in one statement. A transaction with a lower position that commits after
//! one with a higher position therefore holds the watermark back until it is visible: a sync
//! never jumps past a change it has not seen.
//!
//! Wake-ups across processes use `NOTIFY myelin` inside the writing transaction (delivered at
//! commit). Every process listens; an account-data notification whose position is still above
//! the watermark is held until the watermark reaches it, so the woken sync finds the change.

use std::{collections::BTreeMap, str::FromStr, sync::Mutex, time::Duration};

use async_trait::async_trait;
use sqlx::{
    Executor, PgPool, Postgres, Row, Transaction,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgSslMode},
};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    AccountDataChange, AccountDataWrite, DeletedDevices, Device, DeviceCap, DeviceUpsert, Dump,
    LastSeen, LoginOutcome, NewLogin, Store, StoreError, StoreResult, StreamPositions, TokenOwner,
    UiaSession, User,
};

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "initial",
    include_str!("../../migrations/postgres/0001_initial.sql"),
)];

/// Serialises migrations when several processes start at once.
const MIGRATION_LOCK: i64 = 0x6d79_656c_696e;
const CHANNEL: &str = "myelin";
const ACCOUNT_DATA: &str = "account_data";

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
    /// Connections with `synchronous_commit = off`, for work whose durability comes from a
    /// later synchronous commit (position allocation) or that needs none (notifications).
    /// Keeping them off the writing transactions matters: a transaction that sends `NOTIFY`
    /// holds a database-wide lock through its commit, disk flush included, which serialised
    /// every write.
    fast: PgPool,
    wakeups: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    listener: JoinHandle<()>,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn connect_options(options: &PgOptions) -> StoreResult<PgConnectOptions> {
    let ssl_mode = PgSslMode::from_str(&options.tls).map_err(backend)?;
    Ok(PgConnectOptions::from_str(&options.url)
        .map_err(backend)?
        .ssl_mode(ssl_mode)
        .options([(
            "statement_timeout",
            format!("{}ms", options.statement_timeout_ms),
        )]))
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
        let first = <sqlx::PgConnection as sqlx::Connection>::connect_with(&connect);
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
            .max_connections((options.pool_size / 2).max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect_options(options)?.options([("synchronous_commit", "off")]))
            .await
            .map_err(backend)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut listener = PgListener::connect_with(&pool).await.map_err(backend)?;
        listener.listen(CHANNEL).await.map_err(backend)?;
        // A writer holds its positions for one transaction of a few statements; only a
        // process that died mid-write leaves them for longer. Generous, because reaping a
        // live writer's position would let a sync pass its change.
        let stale_after =
            Duration::from_millis(options.statement_timeout_ms.saturating_mul(20).max(600_000));
        let listener = tokio::spawn(listen(listener, pool.clone(), tx, stale_after));
        Ok(Self {
            pool,
            fast,
            wakeups: Mutex::new(Some(rx)),
            listener,
        })
    }

    /// Allocates `n` consecutive positions of `stream` and marks them in flight, in one
    /// statement (one short transaction) on a connection that does not wait for the disk: the
    /// writing transaction's commit comes later in the WAL and makes this one durable too, and
    /// an allocation lost in a crash was never used.
    async fn allocate(&self, stream: &str, n: i64) -> StoreResult<Vec<i64>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut positions: Vec<i64> = sqlx::query_scalar(
            "WITH p AS (UPDATE stream_positions SET pos = pos + $2 WHERE stream = $1 RETURNING pos)
             INSERT INTO stream_inflight (stream, pos)
             SELECT $1, generate_series(p.pos - $2 + 1, p.pos) FROM p
             RETURNING pos",
        )
        .bind(stream)
        .bind(n)
        .fetch_all(&self.fast)
        .await
        .map_err(backend)?;
        positions.sort_unstable();
        Ok(positions)
    }

    /// Sends notifications after the change they announce has committed.
    async fn notify(&self, notes: &[String]) {
        if notes.is_empty() {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, n) FROM UNNEST($2::TEXT[]) AS n")
            .bind(CHANNEL)
            .bind(notes)
            .execute(&self.fast)
            .await;
        if let Err(err) = sent {
            // Other processes' long-polls then wait for their timeout; nothing is lost.
            tracing::error!(error = %err, "sending change notifications failed");
        }
    }

    /// After a failed write: the positions will never be used, so stop holding the watermark.
    async fn release(&self, stream: &str, positions: &[i64]) {
        if positions.is_empty() {
            return;
        }
        let result = sqlx::query(
            "WITH gone AS (DELETE FROM stream_inflight WHERE stream = $1 AND pos = ANY($2))
             SELECT pg_notify($3, 'tick')",
        )
        .bind(stream)
        .bind(positions)
        .bind(CHANNEL)
        .execute(&self.fast)
        .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "releasing stream positions failed; the reaper will");
        }
    }

    /// Runs `work` in a transaction that uses `positions`; the transaction also clears them
    /// from `stream_inflight`. The notifications `work` collects are sent after the commit.
    /// On failure the positions are released.
    async fn with_positions<T, F>(&self, positions: Vec<i64>, work: F) -> StoreResult<T>
    where
        F: for<'t> FnOnce(
            &'t mut Transaction<'static, Postgres>,
            &'t [i64],
            &'t mut Vec<String>,
        ) -> BoxFuture<'t, StoreResult<T>>,
    {
        let mut notes = Vec::new();
        let outcome = async {
            let mut tx = self.pool.begin().await.map_err(backend)?;
            let value = work(&mut tx, &positions, &mut notes).await?;
            if !positions.is_empty() {
                sqlx::query("DELETE FROM stream_inflight WHERE stream = $1 AND pos = ANY($2)")
                    .bind(ACCOUNT_DATA)
                    .bind(&positions)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            tx.commit().await.map_err(backend)?;
            Ok(value)
        }
        .await;
        match &outcome {
            Ok(_) => self.notify(&notes).await,
            Err(_) => self.release(ACCOUNT_DATA, &positions).await,
        }
        outcome
    }

    async fn login_tx(
        &self,
        user_id: &str,
        login: &NewLogin,
        cap: DeviceCap,
        positions: &mut Vec<i64>,
    ) -> StoreResult<(LoginOutcome, Vec<String>)> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2")
                .bind(user_id)
                .bind(&login.device_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let mut evicted: Vec<String> = Vec::new();
        let mut notes = Vec::new();
        if exists.is_none()
            && let Some(max) = cap.max_devices
        {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            if count >= i64::from(max) {
                if !cap.evict_oldest {
                    return Ok((LoginOutcome::DeviceCapReached, notes));
                }
                evicted = sqlx::query_scalar(
                    "SELECT device_id FROM devices WHERE user_id = $1
                     ORDER BY COALESCE(last_seen_ts, created_ts) ASC LIMIT $2 FOR UPDATE",
                )
                .bind(user_id)
                .bind(count - i64::from(max) + 1)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
                *positions = self.allocate(ACCOUNT_DATA, evicted.len() as i64).await?;
                let mut available = positions.iter();
                for victim in &evicted {
                    purge_device(&mut tx, user_id, victim, &mut available, &mut notes).await?;
                }
                sqlx::query("DELETE FROM stream_inflight WHERE stream = $1 AND pos = ANY($2)")
                    .bind(ACCOUNT_DATA)
                    .bind(&*positions)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                notes.push(devices_note(user_id));
            }
        }
        let created = insert_device(&mut tx, user_id, login).await?;
        if !created {
            // Reusing a device: its earlier tokens stop working now, on every process.
            sqlx::query("DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2")
                .bind(user_id)
                .bind(&login.device_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::query(
                "UPDATE devices SET last_seen_ts = $3, last_seen_ip = COALESCE($4, last_seen_ip)
                 WHERE user_id = $1 AND device_id = $2",
            )
            .bind(user_id)
            .bind(&login.device_id)
            .bind(login.now_ms)
            .bind(&login.ip)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            notes.push(devices_note(user_id));
        }
        insert_token(&mut tx, user_id, login).await?;
        tx.commit().await.map_err(backend)?;
        Ok((LoginOutcome::Issued { created, evicted }, notes))
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
        .map_err(backend)?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .map_err(backend)?;
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
    let mut conn = pool.acquire().await.map_err(backend)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    let result = async {
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ts BIGINT NOT NULL)",
        )
        .await
        .map_err(backend)?;
        for (version, name, sql) in MIGRATIONS {
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(backend)?;
            if applied.is_some() {
                continue;
            }
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(backend)?;
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_ts) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

async fn watermark(pool: &PgPool) -> StoreResult<i64> {
    sqlx::query_scalar(
        "SELECT COALESCE(
            (SELECT MIN(pos) - 1 FROM stream_inflight WHERE stream = $1),
            (SELECT pos FROM stream_positions WHERE stream = $1))",
    )
    .bind(ACCOUNT_DATA)
    .fetch_one(pool)
    .await
    .map_err(backend)
}

/// Receives notifications from every process and turns them into wake-ups, holding
/// account-data wake-ups until the watermark covers their position.
async fn listen(
    mut listener: PgListener,
    pool: PgPool,
    wake: mpsc::UnboundedSender<String>,
    stale_after: Duration,
) {
    let mut held: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_reap = tokio::time::Instant::now();
    loop {
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(Some(note)) => {
                    let payload = note.payload();
                    if let Some(rest) = payload.strip_prefix("ad:") {
                        if let Some((pos, user)) = rest.split_once(':')
                            && let Ok(pos) = pos.parse::<i64>()
                        {
                            held.entry(pos).or_default().push(user.to_owned());
                        }
                    } else if let Some(user) = payload.strip_prefix("dev:") {
                        let _ = wake.send(user.to_owned());
                    }
                }
                Ok(None) => {
                    // The connection was lost and re-established: notifications may have been
                    // missed, so treat everything held as due.
                    tracing::warn!("lost the notification connection; reconnected");
                }
                Err(err) => {
                    tracing::error!(error = %err, "notification listener failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = tick.tick() => {
                if last_reap.elapsed() >= stale_after / 2 {
                    last_reap = tokio::time::Instant::now();
                    reap_inflight(&pool, stale_after).await;
                }
            }
        }
        if held.is_empty() {
            continue;
        }
        match watermark(&pool).await {
            Ok(mark) => {
                let due: Vec<i64> = held.range(..=mark).map(|(pos, _)| *pos).collect();
                for pos in due {
                    for user in held.remove(&pos).unwrap_or_default() {
                        let _ = wake.send(user);
                    }
                }
            }
            Err(err) => tracing::error!(error = %err, "reading the watermark failed"),
        }
        if wake.is_closed() {
            return;
        }
    }
}

/// Positions left in flight by a process that died mid-write would hold the watermark back
/// for ever; anything older than twice the statement timeout cannot still be running.
async fn reap_inflight(pool: &PgPool, stale_after: Duration) {
    let result = sqlx::query(
        "WITH gone AS (DELETE FROM stream_inflight
                       WHERE created_at < now() - make_interval(secs => $1) RETURNING 1)
         SELECT pg_notify($2, 'tick') FROM gone LIMIT 1",
    )
    .bind(stale_after.as_secs_f64())
    .bind(CHANNEL)
    .execute(pool)
    .await;
    if let Err(err) = result {
        tracing::error!(error = %err, "reaping stale stream positions failed");
    }
}

fn device_from_row(r: &sqlx::postgres::PgRow) -> Result<Device, sqlx::Error> {
    Ok(Device {
        device_id: r.try_get(0)?,
        display_name: r.try_get(1)?,
        last_seen_ip: r.try_get(2)?,
        last_seen_ts: r.try_get(3)?,
    })
}

fn settings_type(device_id: &str) -> String {
    format!("org.matrix.msc3890.local_notification_settings.{device_id}")
}

/// Deletes one device and everything attached to it (see the SQLite backend's
/// `purge_device`, which this mirrors). A tombstone for the device's local notification
/// settings takes a preallocated position if one is left; otherwise the entry is removed.
async fn purge_device(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    device_id: &str,
    positions: &mut std::slice::Iter<'_, i64>,
    notes: &mut Vec<String>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2")
        .bind(user_id)
        .bind(device_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    // UIA sessions stay until they expire (see the SQLite backend).
    let data_type = settings_type(device_id);
    let live: Option<String> = sqlx::query_scalar(
        "SELECT content FROM account_data WHERE user_id = $1 AND room_id = '' AND data_type = $2 AND content <> '{}'",
    )
    .bind(user_id)
    .bind(&data_type)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    if live.is_some() {
        match positions.next() {
            Some(pos) => {
                sqlx::query(
                    "UPDATE account_data SET content = '{}', stream_pos = $3
                     WHERE user_id = $1 AND room_id = '' AND data_type = $2",
                )
                .bind(user_id)
                .bind(&data_type)
                .bind(pos)
                .execute(&mut **tx)
                .await
                .map_err(backend)?;
                notes.push(account_data_note(*pos, user_id));
            }
            None => {
                sqlx::query(
                    "DELETE FROM account_data WHERE user_id = $1 AND room_id = '' AND data_type = $2",
                )
                .bind(user_id)
                .bind(&data_type)
                .execute(&mut **tx)
                .await
                .map_err(backend)?;
            }
        }
    }
    sqlx::query("DELETE FROM devices WHERE user_id = $1 AND device_id = $2")
        .bind(user_id)
        .bind(device_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

fn account_data_note(pos: i64, user_id: &str) -> String {
    format!("ad:{pos}:{user_id}")
}

fn devices_note(user_id: &str) -> String {
    format!("dev:{user_id}")
}

async fn insert_device(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    login: &NewLogin,
) -> StoreResult<bool> {
    let inserted = sqlx::query(
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
    .map_err(backend)?;
    Ok(inserted.rows_affected() > 0)
}

async fn insert_token(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    login: &NewLogin,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES ($1, $2, $3, $4)",
    )
    .bind(&login.token_hash[..])
    .bind(user_id)
    .bind(&login.device_id)
    .bind(login.now_ms)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// How many of these devices have live local notification settings (each needs a position
/// for its tombstone).
async fn count_settings(pool: &PgPool, user_id: &str, device_ids: &[String]) -> StoreResult<i64> {
    let types: Vec<String> = device_ids.iter().map(|d| settings_type(d)).collect();
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM account_data
         WHERE user_id = $1 AND room_id = '' AND data_type = ANY($2) AND content <> '{}'",
    )
    .bind(user_id)
    .bind(&types)
    .fetch_one(pool)
    .await
    .map_err(backend)
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_user(
        &self,
        user: User,
        login: Option<NewLogin>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let inserted = sqlx::query(
            "INSERT INTO users (user_id, password_hash, appservice_id, created_ts)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&user.user_id)
        .bind(&user.password_hash)
        .bind(&user.appservice_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict("user already exists"));
        }
        if let Some(login) = login {
            insert_device(&mut tx, &user.user_id, &login).await?;
            insert_token(&mut tx, &user.user_id, &login).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>> {
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT user_id, password_hash, appservice_id FROM users WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(|(user_id, password_hash, appservice_id)| User {
            user_id,
            password_hash,
            appservice_id,
        }))
    }

    async fn login(
        &self,
        user_id: &str,
        login: NewLogin,
        cap: DeviceCap,
    ) -> StoreResult<LoginOutcome> {
        // Positions for the tombstones of evicted devices' settings are allocated inside the
        // transaction, once the victims are known; on any failure they are released.
        let mut positions = Vec::new();
        let outcome = self.login_tx(user_id, &login, cap, &mut positions).await;
        match &outcome {
            Ok((_, notes)) => self.notify(notes).await,
            Err(_) => self.release(ACCOUNT_DATA, &positions).await,
        }
        outcome.map(|(outcome, _)| outcome)
    }

    async fn token_owner(&self, token_hash: [u8; 32]) -> StoreResult<Option<TokenOwner>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT user_id, device_id FROM access_tokens WHERE token_hash = $1")
                .bind(&token_hash[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(row.map(|(user_id, device_id)| TokenOwner { user_id, device_id }))
    }

    async fn list_devices(&self, user_id: &str) -> StoreResult<Vec<Device>> {
        let rows = sqlx::query(
            "SELECT device_id, display_name, last_seen_ip, last_seen_ts
             FROM devices WHERE user_id = $1 ORDER BY device_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(device_from_row)
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn get_device(&self, user_id: &str, device_id: &str) -> StoreResult<Option<Device>> {
        let row = sqlx::query(
            "SELECT device_id, display_name, last_seen_ip, last_seen_ts
             FROM devices WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref()
            .map(device_from_row)
            .transpose()
            .map_err(backend)
    }

    async fn upsert_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<String>,
        create: bool,
        now_ms: i64,
    ) -> StoreResult<DeviceUpsert> {
        let updated = sqlx::query(
            "UPDATE devices SET display_name = COALESCE($3, display_name)
             WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(&display_name)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if updated.rows_affected() > 0 {
            return Ok(DeviceUpsert::Updated);
        }
        if !create {
            return Ok(DeviceUpsert::NotFound);
        }
        let inserted = sqlx::query(
            "INSERT INTO devices (user_id, device_id, display_name, created_ts)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(&display_name)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(if inserted.rows_affected() > 0 {
            DeviceUpsert::Created
        } else {
            DeviceUpsert::Updated
        })
    }

    async fn delete_devices(
        &self,
        user_id: &str,
        device_ids: Vec<String>,
    ) -> StoreResult<DeletedDevices> {
        let needed = count_settings(&self.pool, user_id, &device_ids).await?;
        let positions = self.allocate(ACCOUNT_DATA, needed).await?;
        let user_id = user_id.to_owned();
        self.with_positions(positions, move |tx, positions, notes| {
            Box::pin(async move {
                let existing: Vec<String> = sqlx::query_scalar(
                    "SELECT device_id FROM devices WHERE user_id = $1 AND device_id = ANY($2)
                     ORDER BY device_id FOR UPDATE",
                )
                .bind(&user_id)
                .bind(&device_ids)
                .fetch_all(&mut **tx)
                .await
                .map_err(backend)?;
                let mut out = DeletedDevices::default();
                let mut available = positions.iter();
                for device_id in existing {
                    purge_device(tx, &user_id, &device_id, &mut available, notes).await?;
                    out.device_ids.push(device_id);
                }
                if !out.device_ids.is_empty() {
                    notes.push(devices_note(&user_id));
                }
                Ok(out)
            })
        })
        .await
    }

    async fn stale_devices(&self, before_ms: i64, limit: u32) -> StoreResult<Vec<TokenOwner>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT user_id, device_id FROM devices
             WHERE COALESCE(last_seen_ts, created_ts) < $1
             ORDER BY COALESCE(last_seen_ts, created_ts) LIMIT $2",
        )
        .bind(before_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(user_id, device_id)| TokenOwner { user_id, device_id })
            .collect())
    }

    async fn record_last_seen(&self, batch: Vec<LastSeen>) -> StoreResult<()> {
        let mut users = Vec::with_capacity(batch.len());
        let mut devices = Vec::with_capacity(batch.len());
        let mut ips = Vec::with_capacity(batch.len());
        let mut times = Vec::with_capacity(batch.len());
        for seen in batch {
            users.push(seen.user_id);
            devices.push(seen.device_id);
            ips.push(seen.ip);
            times.push(seen.ts);
        }
        // Newer wins: a flush from a process that saw the device earlier never overwrites a
        // later observation made by another process.
        sqlx::query(
            "UPDATE devices d SET last_seen_ts = v.ts, last_seen_ip = COALESCE(v.ip, d.last_seen_ip)
             FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[]) AS v(user_id, device_id, ip, ts)
             WHERE d.user_id = v.user_id AND d.device_id = v.device_id
               AND (d.last_seen_ts IS NULL OR d.last_seen_ts < v.ts)",
        )
        .bind(&users)
        .bind(&devices)
        .bind(&ips)
        .bind(&times)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn put_uia_session(&self, session: UiaSession) -> StoreResult<()> {
        let completed = serde_json::to_string(&session.completed).map_err(backend)?;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("DELETE FROM uia_sessions WHERE expires_ts < $1")
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO uia_sessions (session_id, user_id, operation, request, completed, result, expires_ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (session_id) DO UPDATE SET
               request = excluded.request, completed = excluded.completed,
               result = excluded.result, expires_ts = excluded.expires_ts",
        )
        .bind(&session.session_id)
        .bind(&session.user_id)
        .bind(&session.operation)
        .bind(&session.request)
        .bind(&completed)
        .bind(&session.result)
        .bind(session.expires_ms)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn get_uia_session(
        &self,
        session_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<UiaSession>> {
        type Row = (
            String,
            Option<String>,
            String,
            Option<String>,
            String,
            Option<String>,
            i64,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT session_id, user_id, operation, request, completed, result, expires_ts
             FROM uia_sessions WHERE session_id = $1 AND expires_ts >= $2",
        )
        .bind(session_id)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some((session_id, user_id, operation, request, completed, result, expires_ms)) = row
        else {
            return Ok(None);
        };
        Ok(Some(UiaSession {
            session_id,
            user_id,
            operation,
            request,
            completed: serde_json::from_str(&completed).map_err(backend)?,
            result,
            expires_ms,
        }))
    }

    async fn put_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
        content: &str,
        quota_bytes: Option<u64>,
    ) -> StoreResult<AccountDataWrite> {
        let positions = self.allocate(ACCOUNT_DATA, 1).await?;
        let pos = positions[0];
        let note = account_data_note(pos, user_id);
        if quota_bytes.is_none() {
            // The common case in one statement, so one round trip: the write and the end of
            // its position's flight commit together.
            let written = sqlx::query(
                "WITH w AS (
                    INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
                    VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (user_id, room_id, data_type)
                    DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos
                    RETURNING 1)
                 DELETE FROM stream_inflight WHERE stream = $6 AND pos = $5",
            )
            .bind(user_id)
            .bind(room_id.unwrap_or(""))
            .bind(data_type)
            .bind(content)
            .bind(pos)
            .bind(ACCOUNT_DATA)
            .execute(&self.pool)
            .await;
            if let Err(err) = written {
                self.release(ACCOUNT_DATA, &positions).await;
                return Err(backend(err));
            }
            self.notify(std::slice::from_ref(&note)).await;
            return Ok(AccountDataWrite::Written(pos as u64));
        }
        let (user_id, room_id, data_type, content) = (
            user_id.to_owned(),
            room_id.unwrap_or("").to_owned(),
            data_type.to_owned(),
            content.to_owned(),
        );
        let written = self
            .with_positions(positions, move |tx, positions, notes| {
                Box::pin(async move {
                    if let Some(quota) = quota_bytes {
                        let others: i64 = sqlx::query_scalar(
                            "SELECT COALESCE(SUM(OCTET_LENGTH(content) + OCTET_LENGTH(data_type)), 0)::BIGINT
                             FROM account_data
                             WHERE user_id = $1 AND NOT (room_id = $2 AND data_type = $3)",
                        )
                        .bind(&user_id)
                        .bind(&room_id)
                        .bind(&data_type)
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(backend)?;
                        if others as u64 + (content.len() + data_type.len()) as u64 > quota {
                            return Ok(None);
                        }
                    }
                    sqlx::query(
                        "INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (user_id, room_id, data_type)
                         DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos",
                    )
                    .bind(&user_id)
                    .bind(&room_id)
                    .bind(&data_type)
                    .bind(&content)
                    .bind(positions[0])
                    .execute(&mut **tx)
                    .await
                    .map_err(backend)?;
                    notes.push(note);
                    Ok(Some(positions[0] as u64))
                })
            })
            .await?;
        Ok(match written {
            Some(pos) => AccountDataWrite::Written(pos),
            None => AccountDataWrite::QuotaExceeded,
        })
    }

    async fn get_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
    ) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3",
        )
        .bind(user_id)
        .bind(room_id.unwrap_or(""))
        .bind(data_type)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)
    }

    async fn account_data_changes(
        &self,
        user_id: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<AccountDataChange>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT room_id, data_type, content, stream_pos FROM account_data
             WHERE user_id = $1 AND stream_pos > $2 AND stream_pos <= $3
             ORDER BY stream_pos",
        )
        .bind(user_id)
        .bind(after.map_or(-1, |a| a as i64))
        .bind(upto as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(room, data_type, content, pos)| AccountDataChange {
                room_id: (!room.is_empty()).then_some(room),
                data_type,
                content,
                pos: pos as u64,
            })
            .collect())
    }

    async fn create_filter(&self, user_id: &str, filter: &str) -> StoreResult<u64> {
        // Two processes may race for the same next ID; the loser tries again.
        for _ in 0..5 {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO filters (user_id, filter_id, filter)
                 SELECT $1, COALESCE(MAX(filter_id) + 1, 0), $2 FROM filters WHERE user_id = $1
                 ON CONFLICT DO NOTHING RETURNING filter_id",
            )
            .bind(user_id)
            .bind(filter)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
            if let Some(id) = id {
                return Ok(id as u64);
            }
        }
        Err(StoreError::Conflict("could not allocate a filter ID"))
    }

    async fn get_filter(&self, user_id: &str, filter_id: u64) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT filter FROM filters WHERE user_id = $1 AND filter_id = $2")
            .bind(user_id)
            .bind(filter_id as i64)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn positions(&self) -> StoreResult<StreamPositions> {
        let mark = watermark(&self.pool).await?;
        Ok(StreamPositions {
            account_data: mark.max(0) as u64,
        })
    }

    fn take_wakeups(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.wakeups.lock().ok()?.take()
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn export(&self) -> StoreResult<Dump> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(backend)?;
        let users: Vec<(String, Option<String>, Option<String>, i64)> =
            sqlx::query_as("SELECT user_id, password_hash, appservice_id, created_ts FROM users")
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        type DeviceRow = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            i64,
        );
        let devices: Vec<DeviceRow> = sqlx::query_as(
            "SELECT user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts FROM devices",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let access_tokens: Vec<(Vec<u8>, String, String, i64)> =
            sqlx::query_as("SELECT token_hash, user_id, device_id, created_ts FROM access_tokens")
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        let account_data: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT user_id, room_id, data_type, content, stream_pos FROM account_data",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let filters: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT user_id, filter_id, filter FROM filters")
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        let pos: i64 = sqlx::query_scalar("SELECT pos FROM stream_positions WHERE stream = $1")
            .bind(ACCOUNT_DATA)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Dump {
            users: users
                .into_iter()
                .map(|(user_id, password_hash, appservice_id, created)| {
                    (
                        User {
                            user_id,
                            password_hash,
                            appservice_id,
                        },
                        created,
                    )
                })
                .collect(),
            devices: devices
                .into_iter()
                .map(
                    |(user_id, device_id, display_name, last_seen_ip, last_seen_ts, created)| {
                        (
                            user_id,
                            Device {
                                device_id,
                                display_name,
                                last_seen_ip,
                                last_seen_ts,
                            },
                            created,
                        )
                    },
                )
                .collect(),
            access_tokens,
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
            positions: StreamPositions {
                account_data: pos as u64,
            },
        })
    }

    async fn import(&self, dump: Dump) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        if users > 0 {
            return Err(StoreError::Conflict(
                "the target database already has users",
            ));
        }
        for (user, created) in &dump.users {
            sqlx::query(
                "INSERT INTO users (user_id, password_hash, appservice_id, created_ts) VALUES ($1, $2, $3, $4)",
            )
            .bind(&user.user_id)
            .bind(&user.password_hash)
            .bind(&user.appservice_id)
            .bind(created)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        for (user_id, d, created) in &dump.devices {
            sqlx::query(
                "INSERT INTO devices (user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(user_id)
            .bind(&d.device_id)
            .bind(&d.display_name)
            .bind(&d.last_seen_ip)
            .bind(d.last_seen_ts)
            .bind(created)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        for (hash, user_id, device_id, created) in &dump.access_tokens {
            sqlx::query(
                "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES ($1, $2, $3, $4)",
            )
            .bind(hash)
            .bind(user_id)
            .bind(device_id)
            .bind(created)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
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
            .map_err(backend)?;
        }
        for (user_id, id, filter) in &dump.filters {
            sqlx::query("INSERT INTO filters (user_id, filter_id, filter) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(id)
                .bind(filter)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        sqlx::query("UPDATE stream_positions SET pos = GREATEST(pos, $2) WHERE stream = $1")
            .bind(ACCOUNT_DATA)
            .bind(dump.positions.account_data as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }
}
