//! Blocking and purging rooms on PostgreSQL.

use async_trait::async_trait;

use super::{
    positions::{CHANNEL, room_user_note},
    *,
};
use crate::{PURGE_STATEMENTS, PurgedRoom, RoomBlock, RoomPurgeStore};

/// The search index's rows of the room: before the events they are found through.
const PURGE_SEARCH: &str = "DELETE FROM event_search WHERE room_id = $1";

/// The purge, one transaction: the room's row is locked first (as every append locks it),
/// so no writer of any process adds to the room meanwhile and each finds it gone after.
/// The position the members' syncs learn of it at is taken last, inside the transaction
/// (as units of work take theirs): holding one in flight while a big room is deleted would
/// hold back every sync's watermark, and the counter's row is locked only from there to the
/// commit.
async fn purge_tx(conn: &mut PgConnection, room_id: &str, gone: &[String]) -> StoreResult<bool> {
    let mut tx = sqlx::Connection::begin(conn).await.map_err(classify)?;
    let existed = sqlx::query("SELECT 1 FROM rooms WHERE room_id = $1 FOR UPDATE")
        .bind(room_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        .is_some();
    if !existed {
        return Ok(false);
    }
    // Everyone with a membership, not only those the caller moved out: someone who joined
    // or was invited meanwhile must be told too.
    let members: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM room_members WHERE room_id = $1
         AND membership IN ('join', 'invite', 'knock')",
    )
    .bind(room_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    sqlx::query(PURGE_SEARCH)
        .bind(room_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    for statement in PURGE_STATEMENTS {
        sqlx::query(&statement.replace('?', "$"))
            .bind(room_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    sqlx::query("DELETE FROM rooms WHERE room_id = $1")
        .bind(room_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    let pos: i64 = sqlx::query_scalar(
        "UPDATE stream_positions SET pos = pos + 1 WHERE stream = $1 RETURNING pos",
    )
    .bind(Stream::RoomEvents.name())
    .fetch_one(&mut *tx)
    .await
    .map_err(classify)?;
    let mut users: Vec<&String> = gone.iter().chain(&members).collect();
    users.sort();
    users.dedup();
    sqlx::query(
        "INSERT INTO purged_rooms (user_id, room_id, pos) SELECT u, $2, $3 FROM UNNEST($1::TEXT[]) AS u
         ON CONFLICT (user_id, room_id) DO UPDATE SET pos = excluded.pos",
    )
    .bind(&users)
    .bind(room_id)
    .bind(pos)
    .execute(&mut *tx)
    .await
    .map_err(classify)?;
    // Other instances wake these users' syncs once this commits.
    let notes: Vec<String> = users.iter().map(|u| room_user_note(pos, u)).collect();
    sqlx::query("SELECT COUNT(pg_notify($1, n)) FROM UNNEST($2::TEXT[]) AS n")
        .bind(CHANNEL)
        .bind(&notes)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    tx.commit().await.map_err(classify)?;
    Ok(true)
}

#[async_trait]
impl RoomPurgeStore for PostgresStore {
    async fn purge_room(&self, room_id: &str, gone: &[String]) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        purge_tx(&mut conn, room_id, gone).await
    }

    async fn purged_rooms(
        &self,
        user_id: &str,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<PurgedRoom>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT room_id, pos FROM purged_rooms WHERE user_id = $1 AND pos > $2 AND pos <= $3",
        )
        .bind(user_id)
        .bind(after as i64)
        .bind(upto as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(room_id, pos)| PurgedRoom {
                user_id: user_id.to_owned(),
                room_id,
                pos: pos as u64,
            })
            .collect())
    }

    async fn block_room(&self, block: RoomBlock) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES ($1, $2, $3)
             ON CONFLICT (room_id) DO UPDATE
             SET user_id = excluded.user_id, blocked_ts = excluded.blocked_ts",
        )
        .bind(&block.room_id)
        .bind(&block.user_id)
        .bind(block.blocked_ts)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn unblock_room(&self, room_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM blocked_rooms WHERE room_id = $1")
            .bind(room_id)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    async fn room_block(&self, room_id: &str) -> StoreResult<Option<RoomBlock>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT user_id, blocked_ts FROM blocked_rooms WHERE room_id = $1")
                .bind(room_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
        Ok(row.map(|(user_id, blocked_ts)| RoomBlock {
            room_id: room_id.to_owned(),
            user_id,
            blocked_ts,
        }))
    }
}
