//! Server administration on SQLite: account flags, the admin user list, registration tokens.

use async_trait::async_trait;

use super::*;
use crate::{
    AdminDump, AdminStore, FlagsChange, POPULATION, Population, RegistrationToken, TokenChange,
    UserFlags, UserSummary,
};

const SUMMARY: &str = "SELECT u.user_id, u.admin, u.locked, u.suspended, u.user_type, u.deactivated,
        e.user_id IS NOT NULL, u.appservice_id, u.created_ts,
        (SELECT value FROM profile_fields p WHERE p.user_id = u.user_id AND p.field = 'displayname'),
        (SELECT value FROM profile_fields p WHERE p.user_id = u.user_id AND p.field = 'avatar_url'),
        (SELECT MAX(last_seen_ts) FROM devices d WHERE d.user_id = u.user_id)
    FROM users u LEFT JOIN erased_users e ON e.user_id = u.user_id";

fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserSummary> {
    Ok(UserSummary {
        user_id: r.get(0)?,
        flags: UserFlags {
            admin: r.get(1)?,
            locked: r.get(2)?,
            suspended: r.get(3)?,
            user_type: r.get(4)?,
        },
        deactivated: r.get(5)?,
        erased: r.get(6)?,
        appservice_id: r.get(7)?,
        creation_ts: r.get(8)?,
        displayname: r.get(9)?,
        avatar_url: r.get(10)?,
        last_seen_ts: r.get(11)?,
    })
}

/// `pending` counts the reservations not yet expired (milliseconds now, as SQLite sees it).
const TOKEN: &str = "SELECT token, uses_allowed,
        (SELECT COUNT(*) FROM registration_token_reservations r
         WHERE r.token = t.token
           AND r.expires_ts > CAST(unixepoch('subsec') * 1000 AS INTEGER)),
        completed, expiry_time
    FROM registration_tokens t";

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RegistrationToken> {
    Ok(RegistrationToken {
        token: r.get(0)?,
        uses_allowed: r.get::<_, Option<i64>>(1)?.map(|n| n as u64),
        pending: r.get::<_, i64>(2)? as u64,
        completed: r.get::<_, i64>(3)? as u64,
        expiry_time: r.get(4)?,
    })
}

fn get_token(conn: &Connection, token: &str) -> rusqlite::Result<Option<RegistrationToken>> {
    conn.prepare_cached(&format!("{TOKEN} WHERE t.token = ?1"))?
        .query_row([token], token_from_row)
        .optional()
}

fn insert_token(conn: &Connection, t: &RegistrationToken) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO registration_tokens (token, uses_allowed, pending, completed, expiry_time)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        t.token,
        t.uses_allowed.map(|n| n as i64),
        t.pending as i64,
        t.completed as i64,
        t.expiry_time
    ])
}

fn set_flags(conn: &Connection, user_id: &str, change: &FlagsChange) -> rusqlite::Result<bool> {
    let found = conn
        .prepare_cached(
            "UPDATE users SET admin = COALESCE(?2, admin), locked = COALESCE(?3, locked),
                 suspended = COALESCE(?4, suspended),
                 user_type = CASE WHEN ?5 THEN ?6 ELSE user_type END
             WHERE user_id = ?1",
        )?
        .execute(params![
            user_id,
            change.admin,
            change.locked,
            change.suspended,
            change.user_type.is_some(),
            change.user_type.clone().flatten()
        ])?;
    Ok(found > 0)
}

pub(super) fn export_admin(conn: &Connection) -> rusqlite::Result<AdminDump> {
    let user_flags = conn
        .prepare(
            "SELECT user_id, admin, locked, suspended, user_type FROM users
             WHERE admin OR locked OR suspended OR user_type IS NOT NULL",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                UserFlags {
                    admin: r.get(1)?,
                    locked: r.get(2)?,
                    suspended: r.get(3)?,
                    user_type: r.get(4)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let registration_tokens = conn
        .prepare(TOKEN)?
        .query_map([], token_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(AdminDump {
        user_flags,
        registration_tokens,
    })
}

pub(super) fn import_admin(conn: &Connection, dump: &AdminDump) -> rusqlite::Result<()> {
    for (user_id, flags) in &dump.user_flags {
        let change = FlagsChange {
            admin: Some(flags.admin),
            locked: Some(flags.locked),
            suspended: Some(flags.suspended),
            user_type: Some(flags.user_type.clone()),
        };
        set_flags(conn, user_id, &change)?;
    }
    for token in &dump.registration_tokens {
        insert_token(conn, token)?;
    }
    Ok(())
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn user_flags(&self, user_id: &str) -> StoreResult<Option<UserFlags>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT admin, locked, suspended, user_type FROM users WHERE user_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([user_id], |r| {
                        Ok(UserFlags {
                            admin: r.get(0)?,
                            locked: r.get(1)?,
                            suspended: r.get(2)?,
                            user_type: r.get(3)?,
                        })
                    })
                    .optional()
                })
                .map_err(classify)
            })
            .await
    }

    async fn set_user_flags(&self, user_id: &str, change: FlagsChange) -> StoreResult<bool> {
        let user_id = user_id.to_owned();
        self.pool
            .write(move |conn| set_flags(conn, &user_id, &change).map_err(classify))
            .await
    }

    async fn user_summaries(&self) -> StoreResult<Vec<UserSummary>> {
        self.pool
            .read(|conn| {
                conn.prepare_cached(&format!("{SUMMARY} ORDER BY u.user_id"))
                    .and_then(|mut s| s.query_map([], summary_from_row)?.collect())
                    .map_err(classify)
            })
            .await
    }

    async fn user_summary(&self, user_id: &str) -> StoreResult<Option<UserSummary>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!("{SUMMARY} WHERE u.user_id = ?1"))
                    .and_then(|mut s| s.query_row([user_id], summary_from_row).optional())
                    .map_err(classify)
            })
            .await
    }

    async fn reactivate(&self, user_id: &str, password_hash: Option<&str>) -> StoreResult<()> {
        let user_id = user_id.to_owned();
        let hash = password_hash.map(str::to_owned);
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<()> {
                    conn.prepare_cached(
                        "UPDATE users SET deactivated = 0, password_hash = ?2 WHERE user_id = ?1",
                    )?
                    .execute(params![user_id, hash])?;
                    conn.prepare_cached("DELETE FROM erased_users WHERE user_id = ?1")?
                        .execute([&user_id])?;
                    let localpart = user_id[1..].split(':').next().unwrap_or_default();
                    conn.prepare_cached(
                        "INSERT INTO profile_fields (user_id, field, value)
                         VALUES (?1, 'displayname', ?2) ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![
                        user_id,
                        serde_json::Value::from(localpart).to_string()
                    ])?;
                    Ok(())
                };
                run().map_err(classify)
            })
            .await
    }

    async fn registration_tokens(&self) -> StoreResult<Vec<RegistrationToken>> {
        self.pool
            .read(|conn| {
                conn.prepare_cached(&format!("{TOKEN} ORDER BY t.token"))
                    .and_then(|mut s| s.query_map([], token_from_row)?.collect())
                    .map_err(classify)
            })
            .await
    }

    async fn registration_token(&self, token: &str) -> StoreResult<Option<RegistrationToken>> {
        let token = token.to_owned();
        self.pool
            .read(move |conn| get_token(conn, &token).map_err(classify))
            .await
    }

    async fn create_registration_token(&self, token: RegistrationToken) -> StoreResult<()> {
        self.pool
            .write(
                move |conn| match insert_token(conn, &token).map_err(classify)? {
                    0 => Err(StoreError::Conflict("registration token exists")),
                    _ => Ok(()),
                },
            )
            .await
    }

    async fn update_registration_token(
        &self,
        token: &str,
        change: TokenChange,
    ) -> StoreResult<Option<RegistrationToken>> {
        let token = token.to_owned();
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<Option<RegistrationToken>> {
                    conn.prepare_cached(
                        "UPDATE registration_tokens SET
                             uses_allowed = CASE WHEN ?2 THEN ?3 ELSE uses_allowed END,
                             expiry_time = CASE WHEN ?4 THEN ?5 ELSE expiry_time END
                         WHERE token = ?1",
                    )?
                    .execute(params![
                        token,
                        change.uses_allowed.is_some(),
                        change.uses_allowed.flatten().map(|n| n as i64),
                        change.expiry_time.is_some(),
                        change.expiry_time.flatten()
                    ])?;
                    get_token(conn, &token)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn delete_registration_token(&self, token: &str) -> StoreResult<bool> {
        let token = token.to_owned();
        self.pool
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM registration_tokens WHERE token = ?1")
                    .and_then(|mut s| s.execute([token]))
                    .map(|n| n > 0)
                    .map_err(classify)
            })
            .await
    }

    async fn reserve_registration_token(
        &self,
        token: &str,
        session_id: &str,
        now_ms: i64,
        expires_ts: i64,
    ) -> StoreResult<bool> {
        let (token, session_id) = (token.to_owned(), session_id.to_owned());
        // The single writer runs the check and the reservation with no other write between.
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<bool> {
                    conn.prepare_cached(
                        "DELETE FROM registration_token_reservations
                         WHERE token = ?1 AND expires_ts <= ?2",
                    )?
                    .execute(params![token, now_ms])?;
                    let held = conn
                        .prepare_cached(
                            "SELECT 1 FROM registration_token_reservations
                             WHERE session_id = ?1 AND token = ?2",
                        )?
                        .exists(params![session_id, token])?;
                    if held {
                        return Ok(true);
                    }
                    let usable = get_token(conn, &token)?.is_some_and(|t| t.usable(now_ms));
                    if usable {
                        conn.prepare_cached(
                            "INSERT INTO registration_token_reservations
                                 (session_id, token, expires_ts) VALUES (?1, ?2, ?3)
                             ON CONFLICT (session_id) DO UPDATE SET
                                 token = excluded.token, expires_ts = excluded.expires_ts",
                        )?
                        .execute(params![session_id, token, expires_ts])?;
                    }
                    Ok(usable)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn complete_registration_token(&self, token: &str, session_id: &str) -> StoreResult<()> {
        let (token, session_id) = (token.to_owned(), session_id.to_owned());
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<()> {
                    conn.prepare_cached(
                        "DELETE FROM registration_token_reservations WHERE session_id = ?1",
                    )?
                    .execute([&session_id])?;
                    conn.prepare_cached(
                        "UPDATE registration_tokens SET completed = completed + 1
                         WHERE token = ?1",
                    )?
                    .execute([&token])?;
                    Ok(())
                };
                run().map_err(classify)
            })
            .await
    }

    async fn room_ids(&self) -> StoreResult<Vec<String>> {
        self.pool
            .read(|conn| {
                conn.prepare_cached("SELECT room_id FROM rooms ORDER BY room_id")
                    .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                    .map_err(classify)
            })
            .await
    }

    async fn population(&self, active_since_ms: i64) -> StoreResult<Population> {
        self.pool
            .read(move |conn| {
                // SQLite reads `$1` as a numbered parameter too.
                conn.prepare_cached(POPULATION)
                    .and_then(|mut s| {
                        s.query_row([active_since_ms], |r| {
                            let n = |i| r.get::<_, i64>(i).map(|n| n as u64);
                            Ok(Population {
                                active_users: n(0)?,
                                deactivated_users: n(1)?,
                                locked_users: n(2)?,
                                suspended_users: n(3)?,
                                devices: n(4)?,
                                active_devices: n(5)?,
                            })
                        })
                    })
                    .map_err(classify)
            })
            .await
    }
}
