//! The embedded SQLite backend (the default).
//!
//! WAL mode: readers work from their own snapshot and never wait for the writer. All writes go
//! through one writer thread (see [`pool`]), which makes stream-position allocation trivially
//! ordered: a position is taken inside the transaction that uses it, and the watermark moves
//! only after `COMMIT`.

mod pool;

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    AccountDataChange, AccountDataWrite, DeletedDevices, Device, DeviceCap, DeviceUpsert, Dump,
    LastSeen, LoginOutcome, NewLogin, Store, StoreError, StoreResult, StreamPositions, TokenOwner,
    UiaSession, User,
};
use pool::{Pool, backend};

/// Migrations in order; each is applied once and recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "initial",
    include_str!("../../migrations/sqlite/0001_initial.sql"),
)];

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
    .map_err(backend)?;
    for (version, name, sql) in MIGRATIONS {
        let applied: Option<i64> = conn
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        if applied.is_some() {
            continue;
        }
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ts) VALUES (?1, ?2, ?3)",
            params![version, name, now_ms()],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn room_key(room_id: Option<&str>) -> &str {
    room_id.unwrap_or("")
}

fn next_pos(conn: &Connection, stream: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "UPDATE stream_positions SET pos = pos + 1 WHERE stream = ?1 RETURNING pos",
    )?
    .query_row([stream], |r| r.get::<_, i64>(0))
    .map(|p| p as u64)
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
    Ok(())
}

fn insert_token(conn: &Connection, user_id: &str, login: &NewLogin) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        &login.token_hash[..],
        user_id,
        login.device_id,
        login.now_ms
    ])?;
    Ok(())
}

/// Everything that belongs to one device goes here, so a deletion can never leave half a
/// device behind. Later per-device tables (device keys, one-time keys, fallback keys, the
/// to-device inbox, pushers) add their `DELETE` to this function.
fn purge_device(conn: &Connection, user_id: &str, device_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM access_tokens WHERE user_id = ?1 AND device_id = ?2")?
        .execute(params![user_id, device_id])?;
    // UIA sessions are kept until they expire: one completed for deleting this device must
    // still be recognised, so that presenting it for another operation is refused (403).
    // MSC3890: the device's local notification settings die with it. A tombstone (rather than
    // a plain delete) tells the user's other devices through /sync.
    let data_type = format!("org.matrix.msc3890.local_notification_settings.{device_id}");
    let exists: Option<String> = conn
        .prepare_cached(
            "SELECT content FROM account_data WHERE user_id = ?1 AND room_id = '' AND data_type = ?2",
        )?
        .query_row(params![user_id, data_type], |r| r.get(0))
        .optional()?;
    if exists.is_some_and(|c| c != "{}") {
        let pos = next_pos(conn, "account_data")?;
        conn.prepare_cached(
            "UPDATE account_data SET content = '{}', stream_pos = ?3
             WHERE user_id = ?1 AND room_id = '' AND data_type = ?2",
        )?
        .execute(params![user_id, data_type, pos as i64])?;
    }
    conn.prepare_cached("DELETE FROM devices WHERE user_id = ?1 AND device_id = ?2")?
        .execute(params![user_id, device_id])?;
    Ok(())
}

fn delete_devices_tx(
    conn: &Connection,
    user_id: &str,
    device_ids: &[String],
) -> rusqlite::Result<DeletedDevices> {
    let mut out = DeletedDevices::default();
    for device_id in device_ids {
        let known: Option<i64> = conn
            .prepare_cached("SELECT 1 FROM devices WHERE user_id = ?1 AND device_id = ?2")?
            .query_row(params![user_id, device_id], |r| r.get(0))
            .optional()?;
        if known.is_none() {
            continue;
        }
        purge_device(conn, user_id, device_id)?;
        out.device_ids.push(device_id.clone());
    }
    Ok(out)
}

fn device_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        device_id: r.get(0)?,
        display_name: r.get(1)?,
        last_seen_ip: r.get(2)?,
        last_seen_ts: r.get(3)?,
    })
}

fn export_tx(conn: &Connection) -> rusqlite::Result<Dump> {
    let users = conn
        .prepare("SELECT user_id, password_hash, appservice_id, created_ts FROM users")?
        .query_map([], |r| {
            Ok((
                User {
                    user_id: r.get(0)?,
                    password_hash: r.get(1)?,
                    appservice_id: r.get(2)?,
                },
                r.get(3)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let devices = conn
        .prepare(
            "SELECT user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts FROM devices",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                Device {
                    device_id: r.get(1)?,
                    display_name: r.get(2)?,
                    last_seen_ip: r.get(3)?,
                    last_seen_ts: r.get(4)?,
                },
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let access_tokens = conn
        .prepare("SELECT token_hash, user_id, device_id, created_ts FROM access_tokens")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
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
    let filters = conn
        .prepare("SELECT user_id, filter_id, filter FROM filters")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let account_data_pos: i64 = conn.query_row(
        "SELECT pos FROM stream_positions WHERE stream = 'account_data'",
        [],
        |r| r.get(0),
    )?;
    Ok(Dump {
        users,
        devices,
        access_tokens,
        account_data,
        filters,
        positions: StreamPositions {
            account_data: account_data_pos as u64,
        },
    })
}

fn import_tx(conn: &Connection, dump: Dump) -> StoreResult<()> {
    let users: i64 = conn
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .map_err(backend)?;
    if users > 0 {
        return Err(StoreError::Conflict(
            "the target database already has users",
        ));
    }
    let run = || -> rusqlite::Result<()> {
        for (user, created) in &dump.users {
            conn.execute(
                "INSERT INTO users (user_id, password_hash, appservice_id, created_ts) VALUES (?1, ?2, ?3, ?4)",
                params![user.user_id, user.password_hash, user.appservice_id, created],
            )?;
        }
        for (user_id, d, created) in &dump.devices {
            conn.execute(
                "INSERT INTO devices (user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![user_id, d.device_id, d.display_name, d.last_seen_ip, d.last_seen_ts, created],
            )?;
        }
        for (hash, user_id, device_id, created) in &dump.access_tokens {
            conn.execute(
                "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES (?1, ?2, ?3, ?4)",
                params![hash, user_id, device_id, created],
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
        for (user_id, id, filter) in &dump.filters {
            conn.execute(
                "INSERT INTO filters (user_id, filter_id, filter) VALUES (?1, ?2, ?3)",
                params![user_id, id, filter],
            )?;
        }
        conn.execute(
            "UPDATE stream_positions SET pos = MAX(pos, ?1) WHERE stream = 'account_data'",
            [dump.positions.account_data as i64],
        )?;
        Ok(())
    };
    run().map_err(backend)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(
        &self,
        user: User,
        login: Option<NewLogin>,
        now_ms: i64,
    ) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO users (user_id, password_hash, appservice_id, created_ts)
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            user.user_id,
                            user.password_hash,
                            user.appservice_id,
                            now_ms
                        ])
                    })
                    .map_err(backend)?;
                if inserted == 0 {
                    return Err(StoreError::Conflict("user already exists"));
                }
                if let Some(login) = login {
                    insert_device(conn, &user.user_id, &login).map_err(backend)?;
                    insert_token(conn, &user.user_id, &login).map_err(backend)?;
                }
                Ok(())
            })
            .await
    }

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT user_id, password_hash, appservice_id FROM users WHERE user_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([user_id], |r| {
                        Ok(User {
                            user_id: r.get(0)?,
                            password_hash: r.get(1)?,
                            appservice_id: r.get(2)?,
                        })
                    })
                    .optional()
                })
                .map_err(backend)
            })
            .await
    }

    async fn login(
        &self,
        user_id: &str,
        login: NewLogin,
        cap: DeviceCap,
    ) -> StoreResult<LoginOutcome> {
        let user_id = user_id.to_owned();
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<LoginOutcome> {
                    let exists: Option<i64> = conn
                        .prepare_cached(
                            "SELECT 1 FROM devices WHERE user_id = ?1 AND device_id = ?2",
                        )?
                        .query_row(params![user_id, login.device_id], |r| r.get(0))
                        .optional()?;
                    if exists.is_some() {
                        // Reusing a device: its earlier tokens stop working now.
                        conn.prepare_cached(
                            "DELETE FROM access_tokens WHERE user_id = ?1 AND device_id = ?2",
                        )?
                        .execute(params![user_id, login.device_id])?;
                        conn.prepare_cached(
                            "UPDATE devices SET last_seen_ts = ?3, last_seen_ip = COALESCE(?4, last_seen_ip)
                             WHERE user_id = ?1 AND device_id = ?2",
                        )?
                        .execute(params![user_id, login.device_id, login.now_ms, login.ip])?;
                        insert_token(conn, &user_id, &login)?;
                        return Ok(LoginOutcome::Issued {
                            created: false,
                            evicted: Vec::new(),
                        });
                    }
                    let mut evicted = Vec::new();
                    if let Some(max) = cap.max_devices {
                        let count: i64 = conn
                            .prepare_cached("SELECT COUNT(*) FROM devices WHERE user_id = ?1")?
                            .query_row([&user_id], |r| r.get(0))?;
                        if count >= i64::from(max) {
                            if !cap.evict_oldest {
                                return Ok(LoginOutcome::DeviceCapReached);
                            }
                            let excess = count - i64::from(max) + 1;
                            let victims: Vec<String> = conn
                                .prepare_cached(
                                    "SELECT device_id FROM devices WHERE user_id = ?1
                                     ORDER BY COALESCE(last_seen_ts, created_ts) ASC LIMIT ?2",
                                )?
                                .query_map(params![user_id, excess], |r| r.get(0))?
                                .collect::<Result<_, _>>()?;
                            for victim in &victims {
                                purge_device(conn, &user_id, victim)?;
                            }
                            evicted = victims;
                        }
                    }
                    insert_device(conn, &user_id, &login)?;
                    insert_token(conn, &user_id, &login)?;
                    Ok(LoginOutcome::Issued {
                        created: true,
                        evicted,
                    })
                };
                run().map_err(backend)
            })
            .await
    }

    async fn token_owner(&self, token_hash: [u8; 32]) -> StoreResult<Option<TokenOwner>> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT user_id, device_id FROM access_tokens WHERE token_hash = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([&token_hash[..]], |r| {
                        Ok(TokenOwner {
                            user_id: r.get(0)?,
                            device_id: r.get(1)?,
                        })
                    })
                    .optional()
                })
                .map_err(backend)
            })
            .await
    }

    async fn list_devices(&self, user_id: &str) -> StoreResult<Vec<Device>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT device_id, display_name, last_seen_ip, last_seen_ts
                     FROM devices WHERE user_id = ?1 ORDER BY device_id",
                )
                .and_then(|mut s| {
                    s.query_map([user_id], device_from_row)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(backend)
            })
            .await
    }

    async fn get_device(&self, user_id: &str, device_id: &str) -> StoreResult<Option<Device>> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT device_id, display_name, last_seen_ip, last_seen_ts
                     FROM devices WHERE user_id = ?1 AND device_id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![user_id, device_id], device_from_row)
                        .optional()
                })
                .map_err(backend)
            })
            .await
    }

    async fn upsert_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<String>,
        create: bool,
        now_ms: i64,
    ) -> StoreResult<DeviceUpsert> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<DeviceUpsert> {
                    let changed = conn
                        .prepare_cached(
                            "UPDATE devices SET display_name = COALESCE(?3, display_name)
                             WHERE user_id = ?1 AND device_id = ?2",
                        )?
                        .execute(params![user_id, device_id, display_name])?;
                    if changed > 0 {
                        return Ok(DeviceUpsert::Updated);
                    }
                    if !create {
                        return Ok(DeviceUpsert::NotFound);
                    }
                    conn.prepare_cached(
                        "INSERT INTO devices (user_id, device_id, display_name, created_ts)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        user_id,
                        device_id,
                        display_name,
                        now_ms
                    ])?;
                    Ok(DeviceUpsert::Created)
                };
                run().map_err(backend)
            })
            .await
    }

    async fn delete_devices(
        &self,
        user_id: &str,
        device_ids: Vec<String>,
    ) -> StoreResult<DeletedDevices> {
        let user_id = user_id.to_owned();
        self.pool
            .write(move |conn| delete_devices_tx(conn, &user_id, &device_ids).map_err(backend))
            .await
    }

    async fn stale_devices(&self, before_ms: i64, limit: u32) -> StoreResult<Vec<TokenOwner>> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT user_id, device_id FROM devices
                     WHERE COALESCE(last_seen_ts, created_ts) < ?1
                     ORDER BY COALESCE(last_seen_ts, created_ts) LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(params![before_ms, limit], |r| {
                        Ok(TokenOwner {
                            user_id: r.get(0)?,
                            device_id: r.get(1)?,
                        })
                    })?
                    .collect::<Result<_, _>>()
                })
                .map_err(backend)
            })
            .await
    }

    async fn record_last_seen(&self, batch: Vec<LastSeen>) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "UPDATE devices SET last_seen_ts = ?3, last_seen_ip = COALESCE(?4, last_seen_ip)
                         WHERE user_id = ?1 AND device_id = ?2
                           AND (last_seen_ts IS NULL OR last_seen_ts < ?3)",
                    )
                    .map_err(backend)?;
                for seen in batch {
                    stmt.execute(params![seen.user_id, seen.device_id, seen.ts, seen.ip])
                        .map_err(backend)?;
                }
                Ok(())
            })
            .await
    }

    async fn put_uia_session(&self, session: UiaSession) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                let completed = serde_json::to_string(&session.completed).map_err(backend)?;
                let now = now_ms();
                let run = || -> rusqlite::Result<()> {
                    // Expired sessions are swept whenever a session is written.
                    conn.prepare_cached("DELETE FROM uia_sessions WHERE expires_ts < ?1")?
                        .execute([now])?;
                    conn.prepare_cached(
                        "INSERT INTO uia_sessions (session_id, user_id, operation, request, completed, result, expires_ts)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (session_id) DO UPDATE SET
                           request = excluded.request, completed = excluded.completed,
                           result = excluded.result, expires_ts = excluded.expires_ts",
                    )?
                    .execute(params![
                        session.session_id,
                        session.user_id,
                        session.operation,
                        session.request,
                        completed,
                        session.result,
                        session.expires_ms
                    ])?;
                    Ok(())
                };
                run().map_err(backend)
            })
            .await
    }

    async fn get_uia_session(
        &self,
        session_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<UiaSession>> {
        let session_id = session_id.to_owned();
        self.pool
            .read(move |conn| {
                let row = conn
                    .prepare_cached(
                        "SELECT session_id, user_id, operation, request, completed, result, expires_ts
                         FROM uia_sessions WHERE session_id = ?1 AND expires_ts >= ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![session_id, now_ms], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, Option<String>>(1)?,
                                r.get::<_, String>(2)?,
                                r.get::<_, Option<String>>(3)?,
                                r.get::<_, String>(4)?,
                                r.get::<_, Option<String>>(5)?,
                                r.get::<_, i64>(6)?,
                            ))
                        })
                        .optional()
                    })
                    .map_err(backend)?;
                let Some((session_id, user_id, operation, request, completed, result, expires_ms)) =
                    row
                else {
                    return Ok(None);
                };
                let completed = serde_json::from_str(&completed).map_err(backend)?;
                Ok(Some(UiaSession {
                    session_id,
                    user_id,
                    operation,
                    request,
                    completed,
                    result,
                    expires_ms,
                }))
            })
            .await
    }

    async fn put_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
        content: &str,
        quota_bytes: Option<u64>,
    ) -> StoreResult<AccountDataWrite> {
        let (user_id, room_id, data_type, content) = (
            user_id.to_owned(),
            room_key(room_id).to_owned(),
            data_type.to_owned(),
            content.to_owned(),
        );
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<AccountDataWrite> {
                    if let Some(quota) = quota_bytes {
                        let others: i64 = conn
                            .prepare_cached(
                                "SELECT COALESCE(SUM(LENGTH(CAST(content AS BLOB)) + LENGTH(CAST(data_type AS BLOB))), 0)
                                 FROM account_data
                                 WHERE user_id = ?1 AND NOT (room_id = ?2 AND data_type = ?3)",
                            )?
                            .query_row(params![user_id, room_id, data_type], |r| r.get(0))?;
                        let total = others as u64 + (content.len() + data_type.len()) as u64;
                        if total > quota {
                            return Ok(AccountDataWrite::QuotaExceeded);
                        }
                    }
                    let pos = next_pos(conn, "account_data")?;
                    conn.prepare_cached(
                        "INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (user_id, room_id, data_type)
                         DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos",
                    )?
                    .execute(params![user_id, room_id, data_type, content, pos as i64])?;
                    Ok(AccountDataWrite::Written(pos))
                };
                run().map_err(backend)
            })
            .await
    }

    async fn get_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
    ) -> StoreResult<Option<String>> {
        let (user_id, room_id, data_type) = (
            user_id.to_owned(),
            room_key(room_id).to_owned(),
            data_type.to_owned(),
        );
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT content FROM account_data
                     WHERE user_id = ?1 AND room_id = ?2 AND data_type = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(params![user_id, room_id, data_type], |r| r.get(0))
                        .optional()
                })
                .map_err(backend)
            })
            .await
    }

    async fn account_data_changes(
        &self,
        user_id: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<AccountDataChange>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                let after = after.map_or(-1, |a| a as i64);
                conn.prepare_cached(
                    "SELECT room_id, data_type, content, stream_pos FROM account_data
                     WHERE user_id = ?1 AND stream_pos > ?2 AND stream_pos <= ?3
                     ORDER BY stream_pos",
                )
                .and_then(|mut s| {
                    s.query_map(params![user_id, after, upto as i64], |r| {
                        let room: String = r.get(0)?;
                        Ok(AccountDataChange {
                            room_id: (!room.is_empty()).then_some(room),
                            data_type: r.get(1)?,
                            content: r.get(2)?,
                            pos: r.get::<_, i64>(3)? as u64,
                        })
                    })?
                    .collect::<Result<_, _>>()
                })
                .map_err(backend)
            })
            .await
    }

    async fn create_filter(&self, user_id: &str, filter: &str) -> StoreResult<u64> {
        let (user_id, filter) = (user_id.to_owned(), filter.to_owned());
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<u64> {
                    let id: i64 = conn
                        .prepare_cached(
                            "SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = ?1",
                        )?
                        .query_row([&user_id], |r| r.get(0))?;
                    conn.prepare_cached(
                        "INSERT INTO filters (user_id, filter_id, filter) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![user_id, id, filter])?;
                    Ok(id as u64)
                };
                run().map_err(backend)
            })
            .await
    }

    async fn get_filter(&self, user_id: &str, filter_id: u64) -> StoreResult<Option<String>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT filter FROM filters WHERE user_id = ?1 AND filter_id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![user_id, filter_id as i64], |r| r.get(0))
                        .optional()
                })
                .map_err(backend)
            })
            .await
    }

    async fn positions(&self) -> StoreResult<StreamPositions> {
        Ok(self.pool.watermarks.get())
    }

    async fn export(&self) -> StoreResult<Dump> {
        // The writer connection sees a consistent snapshot inside one transaction.
        self.pool
            .write(|conn| export_tx(conn).map_err(backend))
            .await
    }

    async fn import(&self, dump: Dump) -> StoreResult<()> {
        self.pool.write(move |conn| import_tx(conn, dump)).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
