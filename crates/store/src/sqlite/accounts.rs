//! Accounts, access tokens and UIA sessions on SQLite.

use async_trait::async_trait;

use super::*;
use crate::AccountStore;

#[async_trait]
impl AccountStore for SqliteStore {
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
                    .map_err(classify)?;
                if inserted == 0 {
                    return Err(StoreError::Conflict("user already exists"));
                }
                conn.prepare_cached(
                    "INSERT INTO profile_fields (user_id, field, value) VALUES (?1, 'displayname', ?2)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        user.user_id,
                        crate::profile::default_displayname(&user.user_id)
                    ])
                })
                .map_err(classify)?;
                if let Some(login) = login {
                    insert_device(conn, &user.user_id, &login).map_err(classify)?;
                    insert_token(conn, &user.user_id, &login).map_err(classify)?;
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
                    "SELECT user_id, password_hash, appservice_id, deactivated
                     FROM users WHERE user_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([user_id], |r| {
                        Ok(User {
                            user_id: r.get(0)?,
                            password_hash: r.get(1)?,
                            appservice_id: r.get(2)?,
                            deactivated: r.get(3)?,
                        })
                    })
                    .optional()
                })
                .map_err(classify)
            })
            .await
    }

    async fn access_token(&self, token_hash: [u8; 32]) -> StoreResult<Option<AccessToken>> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT t.user_id, t.device_id, t.expires_ts, t.replaces IS NOT NULL, u.locked,
                         u.suspended
                     FROM access_tokens t JOIN users u ON u.user_id = t.user_id
                     WHERE t.token_hash = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([&token_hash[..]], |r| {
                        Ok(AccessToken {
                            owner: TokenOwner {
                                user_id: r.get(0)?,
                                device_id: r.get(1)?,
                            },
                            expires_ts: r.get(2)?,
                            first_use: r.get(3)?,
                            locked: r.get(4)?,
                            suspended: r.get(5)?,
                        })
                    })
                    .optional()
                })
                .map_err(classify)
            })
            .await
    }

    async fn erased_users(&self) -> StoreResult<Vec<(String, u64)>> {
        self.pool
            .read(|conn| {
                conn.prepare_cached("SELECT user_id, pos FROM erased_users")
                    .and_then(|mut s| {
                        s.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                            .collect()
                    })
                    .map_err(classify)
            })
            .await
    }

    async fn first_use(&self, access_hash: [u8; 32]) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<()> {
                    let replaces: Option<Vec<u8>> = conn
                        .prepare_cached("SELECT replaces FROM access_tokens WHERE token_hash = ?1")?
                        .query_row([&access_hash[..]], |r| r.get(0))
                        .optional()?
                        .flatten();
                    let Some(replaced) = replaces else {
                        return Ok(());
                    };
                    conn.prepare_cached("DELETE FROM refresh_tokens WHERE token_hash = ?1")?
                        .execute([&replaced])?;
                    conn.prepare_cached(
                        "UPDATE refresh_tokens SET replaces = NULL WHERE replaces = ?1",
                    )?
                    .execute([&replaced])?;
                    conn.prepare_cached(
                        "UPDATE access_tokens SET replaces = NULL WHERE token_hash = ?1",
                    )?
                    .execute([&access_hash[..]])?;
                    Ok(())
                };
                run().map_err(classify)
            })
            .await
    }

    async fn refresh(&self, old: [u8; 32], login: NewLogin) -> StoreResult<Refreshed> {
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<Refreshed> {
                    type Row = (String, String, Vec<u8>, Option<Vec<u8>>, Option<i64>);
                    let row: Option<Row> = conn
                        .prepare_cached(
                            "SELECT user_id, device_id, access_hash, replaces, expires_ts
                             FROM refresh_tokens WHERE token_hash = ?1",
                        )?
                        .query_row([&old[..]], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                        })
                        .optional()?;
                    let Some((user_id, device_id, access_hash, replaces, expires_ts)) = row else {
                        return Ok(Refreshed::Unknown);
                    };
                    let mut delete_refresh =
                        conn.prepare_cached("DELETE FROM refresh_tokens WHERE token_hash = ?1")?;
                    let mut delete_access =
                        conn.prepare_cached("DELETE FROM access_tokens WHERE token_hash = ?1")?;
                    if expires_ts.is_some_and(|t| t <= login.now_ms) {
                        delete_refresh.execute([&old[..]])?;
                        return Ok(Refreshed::Expired);
                    }
                    // Using `old` proves its predecessor is no longer needed.
                    if let Some(replaced) = replaces {
                        delete_refresh.execute([&replaced])?;
                    }
                    // A pair issued from `old` before, whose answer the client never got.
                    let earlier: Vec<(Vec<u8>, Vec<u8>)> = conn
                        .prepare_cached(
                            "SELECT token_hash, access_hash FROM refresh_tokens WHERE replaces = ?1",
                        )?
                        .query_map([&old[..]], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()?;
                    for (refresh, access) in earlier {
                        delete_refresh.execute([&refresh])?;
                        delete_access.execute([&access])?;
                    }
                    delete_access.execute([&access_hash])?;
                    let login = NewLogin {
                        device_id: device_id.clone(),
                        ..login
                    };
                    insert_pair(conn, &user_id, &login, Some(&old[..]))?;
                    Ok(Refreshed::Done(TokenOwner { user_id, device_id }))
                };
                run().map_err(classify)
            })
            .await
    }

    async fn put_uia_session(&self, session: UiaSession) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                let completed = serde_json::to_string(&session.completed).map_err(backend)?;
                let now = crate::now_ms();
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
                run().map_err(classify)
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
                    .map_err(classify)?;
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
}
