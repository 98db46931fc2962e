//! Profiles on PostgreSQL. Setting a field locks the user's row first, so two writes of one
//! profile cannot both pass the size check.

use async_trait::async_trait;

use super::*;
use crate::{ProfileStore, ProfileWrite};

#[async_trait]
impl ProfileStore for PostgresStore {
    async fn profile(&self, user_id: &str) -> StoreResult<Option<Vec<(String, String)>>> {
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        if exists.is_none() {
            return Ok(None);
        }
        sqlx::query_as("SELECT field, value FROM profile_fields WHERE user_id = $1 ORDER BY field")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map(Some)
            .map_err(classify)
    }

    async fn set_profile_field(
        &self,
        user_id: &str,
        field: &str,
        value: &str,
        max_bytes: u64,
    ) -> StoreResult<ProfileWrite> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        lock_user(&mut tx, user_id).await?;
        let others: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(OCTET_LENGTH(field) + OCTET_LENGTH(value)), 0)::BIGINT
             FROM profile_fields WHERE user_id = $1 AND field <> $2",
        )
        .bind(user_id)
        .bind(field)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        if others as u64 + (field.len() + value.len()) as u64 > max_bytes {
            return Ok(ProfileWrite::TooLarge);
        }
        sqlx::query(
            "INSERT INTO profile_fields (user_id, field, value) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value",
        )
        .bind(user_id)
        .bind(field)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(ProfileWrite::Done)
    }

    async fn delete_profile_field(&self, user_id: &str, field: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM profile_fields WHERE user_id = $1 AND field = $2")
            .bind(user_id)
            .bind(field)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }
}
