//! Profiles on PostgreSQL. Setting a field locks the user's row first, so two writes of one
//! profile cannot both pass the size check.

use async_trait::async_trait;

use super::*;
use crate::{DirectoryEntry, ProfileStore, ProfileWrite};

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

    async fn search_user_directory(
        &self,
        searcher: &str,
        term: &str,
        limit: u32,
        all_users: bool,
    ) -> StoreResult<Vec<DirectoryEntry>> {
        let (contains, prefix, json_prefix) = crate::profile::directory_patterns(term);
        let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(DIRECTORY_SEARCH)
            .bind(searcher)
            .bind(contains)
            .bind(prefix)
            .bind(json_prefix)
            .bind(all_users)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(user_id, displayname, avatar_url)| DirectoryEntry {
                user_id,
                displayname,
                avatar_url,
            })
            .collect())
    }
}

/// The localpart is what lies between `@` and the first `:`.
const DIRECTORY_SEARCH: &str = r"
    SELECT u.user_id, dn.value, av.value
    FROM users u
    LEFT JOIN profile_fields dn ON dn.user_id = u.user_id AND dn.field = 'displayname'
    LEFT JOIN profile_fields av ON av.user_id = u.user_id AND av.field = 'avatar_url'
    WHERE NOT u.deactivated
      AND (lower(split_part(substr(u.user_id, 2), ':', 1)) LIKE $2 ESCAPE '\'
           OR lower(dn.value) LIKE $2 ESCAPE '\')
      AND ($5 OR EXISTS (
        SELECT 1 FROM room_members theirs
        WHERE theirs.user_id = u.user_id AND theirs.membership = 'join'
          AND (EXISTS (SELECT 1 FROM room_members mine
                       WHERE mine.room_id = theirs.room_id AND mine.user_id = $1
                         AND mine.membership = 'join')
               OR EXISTS (SELECT 1 FROM room_state s JOIN events e ON e.event_id = s.event_id
                          WHERE s.room_id = theirs.room_id AND s.to_pos IS NULL
                            AND s.state_key = ''
                            AND ((s.event_type = 'm.room.join_rules'
                                  AND e.json::jsonb -> 'content' ->> 'join_rule' = 'public')
                              OR (s.event_type = 'm.room.history_visibility'
                                  AND e.json::jsonb -> 'content' ->> 'history_visibility'
                                      = 'world_readable'))))))
    ORDER BY (lower(split_part(substr(u.user_id, 2), ':', 1)) LIKE $3 ESCAPE '\'
              OR COALESCE(lower(dn.value) LIKE $4 ESCAPE '\', FALSE)) DESC,
             (dn.value IS NOT NULL)::INT + (av.value IS NOT NULL)::INT DESC,
             u.user_id
    LIMIT $6";
