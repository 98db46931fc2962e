//! Filters and stream watermarks on SQLite.

use async_trait::async_trait;

use super::*;
use crate::SyncStore;

#[async_trait]
impl SyncStore for SqliteStore {
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
                run().map_err(classify)
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
                .map_err(classify)
            })
            .await
    }

    async fn positions(&self) -> StoreResult<StreamPositions> {
        Ok(self.pool.watermarks.get())
    }
}
