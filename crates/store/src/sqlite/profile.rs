//! Profiles on SQLite.

use async_trait::async_trait;

use super::*;
use crate::{ProfileStore, ProfileWrite};

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn profile(&self, user_id: &str) -> StoreResult<Option<Vec<(String, String)>>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<Option<Vec<(String, String)>>> {
                    let exists = conn
                        .prepare_cached("SELECT 1 FROM users WHERE user_id = ?1")?
                        .query_row([&user_id], |_| Ok(()))
                        .optional()?;
                    if exists.is_none() {
                        return Ok(None);
                    }
                    conn.prepare_cached(
                        "SELECT field, value FROM profile_fields WHERE user_id = ?1 ORDER BY field",
                    )?
                    .query_map([&user_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()
                    .map(Some)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn set_profile_field(
        &self,
        user_id: &str,
        field: &str,
        value: &str,
        max_bytes: u64,
    ) -> StoreResult<ProfileWrite> {
        let (user_id, field, value) = (user_id.to_owned(), field.to_owned(), value.to_owned());
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<ProfileWrite> {
                    let others: i64 = conn
                        .prepare_cached(
                            "SELECT COALESCE(SUM(LENGTH(CAST(field AS BLOB))
                                               + LENGTH(CAST(value AS BLOB))), 0)
                             FROM profile_fields WHERE user_id = ?1 AND field <> ?2",
                        )?
                        .query_row(params![user_id, field], |r| r.get(0))?;
                    if others as u64 + (field.len() + value.len()) as u64 > max_bytes {
                        return Ok(ProfileWrite::TooLarge);
                    }
                    conn.prepare_cached(
                        "INSERT INTO profile_fields (user_id, field, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value",
                    )?
                    .execute(params![user_id, field, value])?;
                    Ok(ProfileWrite::Done)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn delete_profile_field(&self, user_id: &str, field: &str) -> StoreResult<()> {
        let (user_id, field) = (user_id.to_owned(), field.to_owned());
        self.pool
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM profile_fields WHERE user_id = ?1 AND field = ?2")
                    .and_then(|mut s| s.execute(params![user_id, field]))
                    .map(drop)
                    .map_err(classify)
            })
            .await
    }
}
