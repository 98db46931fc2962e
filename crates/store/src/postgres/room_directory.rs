//! The room directory on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;

use super::*;
use crate::{
    AliasEntry, CONFLICT_ALIAS, PublicRoomsPage, PublicRoomsQuery, RoomDirectoryStore, RoomSummary,
};

const SUMMARY_COLUMNS: &str = "s.name, s.topic, s.avatar_url, s.canonical_alias, s.join_rule, \
     s.history_visibility, s.guest_can_join, s.room_type, s.encryption, s.joined_members, \
     s.invited_members";

fn summary_from_row(r: &PgRow, at: usize) -> Result<RoomSummary, sqlx::Error> {
    Ok(RoomSummary {
        name: r.try_get(at)?,
        topic: r.try_get(at + 1)?,
        avatar_url: r.try_get(at + 2)?,
        canonical_alias: r.try_get(at + 3)?,
        join_rule: r.try_get(at + 4)?,
        history_visibility: r.try_get(at + 5)?,
        guest_can_join: r.try_get(at + 6)?,
        room_type: r.try_get(at + 7)?,
        encryption: r.try_get(at + 8)?,
        joined_members: r.try_get::<i64, _>(at + 9)?.max(0) as u64,
        invited_members: r.try_get::<i64, _>(at + 10)?.max(0) as u64,
    })
}

/// Writes a room's summary: replacing the one there, or only where there is none.
pub(super) async fn write_summary(
    conn: &mut PgConnection,
    room_id: &str,
    s: &RoomSummary,
    replace: bool,
) -> StoreResult<()> {
    let on_conflict = if replace {
        "DO UPDATE SET name = excluded.name, topic = excluded.topic,
             avatar_url = excluded.avatar_url, canonical_alias = excluded.canonical_alias,
             join_rule = excluded.join_rule, history_visibility = excluded.history_visibility,
             guest_can_join = excluded.guest_can_join, room_type = excluded.room_type,
             encryption = excluded.encryption, joined_members = excluded.joined_members,
             invited_members = excluded.invited_members, search_text = excluded.search_text"
    } else {
        "DO NOTHING"
    };
    sqlx::query(&format!(
        "INSERT INTO room_summaries (room_id, name, topic, avatar_url, canonical_alias, join_rule,
             history_visibility, guest_can_join, room_type, encryption, joined_members,
             invited_members, search_text)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (room_id) {on_conflict}"
    ))
    .bind(room_id)
    .bind(&s.name)
    .bind(&s.topic)
    .bind(&s.avatar_url)
    .bind(&s.canonical_alias)
    .bind(&s.join_rule)
    .bind(&s.history_visibility)
    .bind(s.guest_can_join)
    .bind(&s.room_type)
    .bind(&s.encryption)
    .bind(s.joined_members as i64)
    .bind(s.invited_members as i64)
    .bind(s.search_text())
    .execute(conn)
    .await
    .map(drop)
    .map_err(classify)
}

/// The public list's filter; `$1` the search pattern, `$2` whether to keep rooms without a
/// type (`NULL`: no type filter), `$3` the named types.
const FILTER: &str = "r.published AND (s.join_rule IN ('public', 'knock', 'knock_restricted')
         OR s.history_visibility = 'world_readable')
     AND ($1::TEXT IS NULL OR s.search_text LIKE $1 ESCAPE '\\')
     AND ($2::BOOLEAN IS NULL OR ($2 AND s.room_type IS NULL) OR s.room_type = ANY($3::TEXT[]))";

#[async_trait]
impl RoomDirectoryStore for PostgresStore {
    async fn put_alias(&self, alias: &str, room_id: &str, creator: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES ($1, $2, $3, $4)",
        )
        .bind(alias)
        .bind(room_id)
        .bind(creator)
        .bind(crate::now_ms())
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| {
            if let sqlx::Error::Database(db) = &e
                && db.code().as_deref() == Some("23505")
            {
                return StoreError::Conflict(CONFLICT_ALIAS);
            }
            classify(e)
        })
    }

    async fn alias(&self, alias: &str) -> StoreResult<Option<AliasEntry>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT room_id, creator FROM room_aliases WHERE alias = $1")
                .bind(alias)
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
        Ok(row.map(|(room_id, creator)| AliasEntry { room_id, creator }))
    }

    async fn delete_alias(&self, alias: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM room_aliases WHERE alias = $1")
            .bind(alias)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(classify)
    }

    async fn room_aliases(&self, room_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY created_ts, alias",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    async fn set_published(&self, room_id: &str, published: bool) -> StoreResult<bool> {
        sqlx::query("UPDATE rooms SET published = $2 WHERE room_id = $1")
            .bind(room_id)
            .bind(published)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(classify)
    }

    async fn public_rooms(&self, query: PublicRoomsQuery) -> StoreResult<PublicRoomsPage> {
        let pattern = query.search.as_deref().map(crate::like_contains);
        let untyped = query
            .room_types
            .as_ref()
            .map(|t| t.iter().any(Option::is_none));
        let named: Vec<String> = query
            .room_types
            .iter()
            .flatten()
            .flatten()
            .cloned()
            .collect();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // One snapshot for the count and the page.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let total: i64 = if query.count {
            sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM room_summaries s JOIN rooms r ON r.room_id = s.room_id
                 WHERE {FILTER}"
            ))
            .bind(&pattern)
            .bind(untyped)
            .bind(&named)
            .fetch_one(&mut *tx)
            .await
            .map_err(classify)?
        } else {
            0
        };
        let (after, order) = if query.backward {
            (
                "s.joined_members > $4 OR (s.joined_members = $4 AND s.room_id < $5)",
                "s.joined_members ASC, s.room_id DESC",
            )
        } else {
            (
                "s.joined_members < $4 OR (s.joined_members = $4 AND s.room_id > $5)",
                "s.joined_members DESC, s.room_id ASC",
            )
        };
        let rows = sqlx::query(&format!(
            "SELECT s.room_id, {SUMMARY_COLUMNS} FROM room_summaries s
             JOIN rooms r ON r.room_id = s.room_id
             WHERE {FILTER} AND ($4::BIGINT IS NULL OR {after})
             ORDER BY {order} LIMIT $6"
        ))
        .bind(&pattern)
        .bind(untyped)
        .bind(&named)
        .bind(query.from.as_ref().map(|k| k.joined_members as i64))
        .bind(query.from.as_ref().map(|k| k.room_id.clone()))
        .bind(query.limit as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let mut rooms = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, summary_from_row(r, 1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(classify)?;
        if query.backward {
            rooms.reverse();
        }
        Ok(PublicRoomsPage {
            rooms,
            total: total.max(0) as u64,
        })
    }

    async fn room_summary(&self, room_id: &str) -> StoreResult<Option<RoomSummary>> {
        let row = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM room_summaries s WHERE s.room_id = $1"
        ))
        .bind(room_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|r| summary_from_row(&r, 0))
            .transpose()
            .map_err(classify)
    }

    async fn rooms_without_summary(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT r.room_id FROM rooms r
             WHERE NOT EXISTS (SELECT 1 FROM room_summaries s WHERE s.room_id = r.room_id)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    async fn put_summary_if_absent(&self, room_id: &str, summary: &RoomSummary) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        write_summary(&mut conn, room_id, summary, false).await
    }
}
