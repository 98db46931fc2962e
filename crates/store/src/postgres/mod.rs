//! The PostgreSQL backend, for deployments that run several Myelin processes on one database.
//!
//! How stream positions stay exact with writers on several processes, and how those processes
//! wake each other's syncs, is in [`positions`]; units of work driven by `core` are in [`txn`].

mod positions;
mod txn;

use std::{str::FromStr, sync::Mutex, time::Duration};

use async_trait::async_trait;
use sqlx::{
    Executor, PgPool, Postgres, Row, Transaction,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgSslMode},
};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    AccountDataChange, Device, DeviceUpsert, Dump, LastSeen, NewLogin, Store, StoreError,
    StoreResult, Stream, StreamPositions, TokenOwner, Txn, UiaSession, User, Wakeup,
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
    /// Connections with `synchronous_commit = off`, for work whose durability comes from a
    /// later synchronous commit (position allocation) or that needs none (notifications).
    /// Keeping them off the writing transactions matters: a transaction that sends `NOTIFY`
    /// holds a database-wide lock through its commit, disk flush included, which serialised
    /// every write. A writer holds one of these for as long as its positions are in flight.
    fast: PgPool,
    wakeups: Mutex<Option<mpsc::UnboundedReceiver<Wakeup>>>,
    listener: JoinHandle<()>,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

/// Tells input PostgreSQL refuses from a failing database: data exceptions (SQLSTATE class
/// 22: NUL in text, invalid encoding, a value out of range) and program limits (54000: a key
/// too large for its index) are the request's fault.
fn classify(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && let Some(code) = db.code()
        && (code.starts_with("22") || code == "54000")
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
        .options([(
            "statement_timeout",
            format!("{}ms", options.statement_timeout_ms),
        )]))
}

impl PostgresStore {
    pub async fn connect(options: &PgOptions) -> StoreResult<Self> {
        let connect = connect_options(options)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await
            .map_err(backend)?;
        migrate(&pool).await?;
        let fast = PgPoolOptions::new()
            .max_connections(options.pool_size.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect_options(options)?.options([("synchronous_commit", "off")]))
            .await
            .map_err(backend)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut listener = PgListener::connect_with(&pool).await.map_err(backend)?;
        listener.listen(CHANNEL).await.map_err(backend)?;
        let listener = tokio::spawn(listen(listener, pool.clone(), tx));
        Ok(Self {
            pool,
            fast,
            wakeups: Mutex::new(Some(rx)),
            listener,
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
            .bind(now_ms())
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn device_from_row(r: &sqlx::postgres::PgRow) -> Result<Device, sqlx::Error> {
    Ok(Device {
        device_id: r.try_get(0)?,
        display_name: r.try_get(1)?,
        last_seen_ip: r.try_get(2)?,
        last_seen_ts: r.try_get(3)?,
    })
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
    .map_err(classify)?;
    Ok(inserted.rows_affected() > 0)
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
    .map_err(classify)?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_user(
        &self,
        user: User,
        login: Option<NewLogin>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
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
        .map_err(classify)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict("user already exists"));
        }
        if let Some(login) = login {
            insert_device(&mut tx, &user.user_id, &login).await?;
            insert_token(&mut tx, &user.user_id, &login).await?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>> {
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT user_id, password_hash, appservice_id FROM users WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(|(user_id, password_hash, appservice_id)| User {
            user_id,
            password_hash,
            appservice_id,
        }))
    }

    async fn begin(&self, user_id: &str) -> StoreResult<Box<dyn Txn>> {
        Ok(Box::new(
            txn::PgTxn::begin(&self.pool, &self.fast, user_id).await?,
        ))
    }

    async fn token_owner(&self, token_hash: [u8; 32]) -> StoreResult<Option<TokenOwner>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT user_id, device_id FROM access_tokens WHERE token_hash = $1")
                .bind(&token_hash[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
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
        .map_err(classify)?;
        rows.iter()
            .map(device_from_row)
            .collect::<Result<_, _>>()
            .map_err(classify)
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
        .map_err(classify)?;
        row.as_ref()
            .map(device_from_row)
            .transpose()
            .map_err(classify)
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
        .map_err(classify)?;
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
        .map_err(classify)?;
        Ok(if inserted.rows_affected() > 0 {
            DeviceUpsert::Created
        } else {
            DeviceUpsert::Updated
        })
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
        .map_err(classify)?;
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
        // later observation made by another process. The rows are locked in (user, device)
        // order first, the order units of work lock devices in, so the two never deadlock.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query(
            "SELECT 1 FROM devices d
             JOIN UNNEST($1::TEXT[], $2::TEXT[]) AS v(user_id, device_id)
               ON d.user_id = v.user_id AND d.device_id = v.device_id
             ORDER BY d.user_id, d.device_id FOR UPDATE OF d",
        )
        .bind(&users)
        .bind(&devices)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
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
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn put_uia_session(&self, session: UiaSession) -> StoreResult<()> {
        let completed = serde_json::to_string(&session.completed).map_err(backend)?;
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("DELETE FROM uia_sessions WHERE expires_ts < $1")
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
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
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
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
        .map_err(classify)?;
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
    ) -> StoreResult<u64> {
        // Three round trips: the position (and its lock), the write in a transaction of one
        // statement, then the end of the position's flight together with the notification.
        let mut held = Held::default();
        let positions = held.allocate(&self.fast, Stream::AccountData, 1).await?;
        let Some(&pos) = positions.first() else {
            return Err(backend("no position allocated"));
        };
        let written = upsert_account_data(
            &self.pool,
            user_id,
            room_id.unwrap_or(""),
            data_type,
            content,
            pos,
        )
        .await;
        match written {
            Ok(()) => {
                held.release(&self.fast, &[account_data_note(pos, user_id)])
                    .await;
                Ok(pos as u64)
            }
            Err(err) => {
                held.release(&self.fast, &[]).await;
                Err(err)
            }
        }
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
        .map_err(classify)
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
        .map_err(classify)?;
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
        // The user's row lock orders concurrent uploads (from any process), so each takes
        // the next free ID; racing for it and retrying gave up under load with a 500.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("SELECT 1 FROM users WHERE user_id = $1 FOR NO KEY UPDATE")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO filters (user_id, filter_id, filter)
             SELECT $1, COALESCE(MAX(filter_id) + 1, 0), $2 FROM filters WHERE user_id = $1
             RETURNING filter_id",
        )
        .bind(user_id)
        .bind(filter)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(id as u64)
    }

    async fn get_filter(&self, user_id: &str, filter_id: u64) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT filter FROM filters WHERE user_id = $1 AND filter_id = $2")
            .bind(user_id)
            .bind(filter_id as i64)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }

    async fn positions(&self) -> StoreResult<StreamPositions> {
        watermarks(&self.pool).await
    }

    fn take_wakeups(&self) -> Option<mpsc::UnboundedReceiver<Wakeup>> {
        self.wakeups.lock().ok()?.take()
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn export(&self) -> StoreResult<Dump> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(classify)?;
        let users: Vec<(String, Option<String>, Option<String>, i64)> =
            sqlx::query_as("SELECT user_id, password_hash, appservice_id, created_ts FROM users")
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
        );
        let devices: Vec<DeviceRow> = sqlx::query_as(
            "SELECT user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts FROM devices",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let access_tokens: Vec<(Vec<u8>, String, String, i64)> =
            sqlx::query_as("SELECT token_hash, user_id, device_id, created_ts FROM access_tokens")
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
        let account_data: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT user_id, room_id, data_type, content, stream_pos FROM account_data",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let filters: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT user_id, filter_id, filter FROM filters")
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
        let counters: Vec<(String, i64)> =
            sqlx::query_as("SELECT stream, pos FROM stream_positions")
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
        let mut positions = StreamPositions::default();
        for (name, pos) in counters {
            if let Some(stream) = Stream::from_name(&name) {
                positions.set(stream, pos as u64);
            }
        }
        tx.commit().await.map_err(classify)?;
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
            positions,
        })
    }

    async fn import(&self, dump: Dump) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
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
                "INSERT INTO users (user_id, password_hash, appservice_id, created_ts) VALUES ($1, $2, $3, $4)",
            )
            .bind(&user.user_id)
            .bind(&user.password_hash)
            .bind(&user.appservice_id)
            .bind(created)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
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
            .map_err(classify)?;
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
        for (user_id, id, filter) in &dump.filters {
            sqlx::query("INSERT INTO filters (user_id, filter_id, filter) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(id)
                .bind(filter)
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

    async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }
}
