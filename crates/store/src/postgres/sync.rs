//! Filters and stream watermarks on PostgreSQL.

use async_trait::async_trait;

use super::*;
use crate::SyncStore;

#[async_trait]
impl SyncStore for PostgresStore {
    async fn create_filter(&self, user_id: &str, filter: &str) -> StoreResult<u64> {
        // The user's row lock orders concurrent uploads (from any process), so each takes
        // the next free ID; racing for it and retrying gave up under load with a 500.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        lock_user(&mut tx, user_id).await?;
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
}
