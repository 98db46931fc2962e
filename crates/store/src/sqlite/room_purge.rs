//! Blocking and purging rooms on SQLite. A purge is one job of the single writer, so it is
//! ordered after every append already queued for the room.

use async_trait::async_trait;
use rusqlite::OptionalExtension;

use super::*;
use crate::{PURGE_STATEMENTS, PurgedRoom, RoomBlock, RoomPurgeStore};

/// The search index's rows of the room: before the events they are found through.
const PURGE_SEARCH: &str =
    "DELETE FROM event_search WHERE rowid IN (SELECT pos FROM events WHERE room_id = ?1)";

#[async_trait]
impl RoomPurgeStore for SqliteStore {
    async fn purge_room(&self, room_id: &str, gone: &[String]) -> StoreResult<bool> {
        let room_id = room_id.to_owned();
        let gone = gone.to_vec();
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<bool> {
                    // Everyone with a membership, not only those the caller moved out:
                    // someone who joined or was invited meanwhile must be told too.
                    let mut users: Vec<String> = conn
                        .prepare_cached(
                            "SELECT user_id FROM room_members WHERE room_id = ?1
                             AND membership IN ('join', 'invite', 'knock')",
                        )?
                        .query_map([&room_id], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    users.extend(gone.iter().cloned());
                    users.sort();
                    users.dedup();
                    for statement in std::iter::once(&PURGE_SEARCH).chain(PURGE_STATEMENTS) {
                        conn.prepare_cached(statement)?.execute([&room_id])?;
                    }
                    let existed = conn
                        .prepare_cached("DELETE FROM rooms WHERE room_id = ?1")?
                        .execute([&room_id])?
                        > 0;
                    if existed && !users.is_empty() {
                        let pos = next_pos(conn, Stream::RoomEvents)? as i64;
                        for user in &users {
                            conn.prepare_cached(
                                "INSERT INTO purged_rooms (user_id, room_id, pos) VALUES (?1, ?2, ?3)
                                 ON CONFLICT (user_id, room_id) DO UPDATE SET pos = excluded.pos",
                            )?
                            .execute(params![user, room_id, pos])?;
                        }
                    }
                    Ok(existed)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn purged_rooms(
        &self,
        user_id: &str,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<PurgedRoom>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT room_id, pos FROM purged_rooms
                     WHERE user_id = ?1 AND pos > ?2 AND pos <= ?3",
                )
                .and_then(|mut s| {
                    s.query_map(params![user_id, after as i64, upto as i64], |r| {
                        Ok(PurgedRoom {
                            user_id: user_id.clone(),
                            room_id: r.get(0)?,
                            pos: r.get::<_, i64>(1)? as u64,
                        })
                    })?
                    .collect()
                })
                .map_err(classify)
            })
            .await
    }

    async fn block_room(&self, block: RoomBlock) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES (?1, ?2, ?3)
                     ON CONFLICT (room_id) DO UPDATE
                     SET user_id = excluded.user_id, blocked_ts = excluded.blocked_ts",
                )
                .and_then(|mut s| {
                    s.execute(params![block.room_id, block.user_id, block.blocked_ts])
                })
                .map(|_| ())
                .map_err(classify)
            })
            .await
    }

    async fn unblock_room(&self, room_id: &str) -> StoreResult<bool> {
        let room_id = room_id.to_owned();
        self.pool
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM blocked_rooms WHERE room_id = ?1")
                    .and_then(|mut s| s.execute([room_id]))
                    .map(|n| n > 0)
                    .map_err(classify)
            })
            .await
    }

    async fn room_block(&self, room_id: &str) -> StoreResult<Option<RoomBlock>> {
        let room_id = room_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT user_id, blocked_ts FROM blocked_rooms WHERE room_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([&room_id], |r| {
                        Ok(RoomBlock {
                            room_id: room_id.clone(),
                            user_id: r.get(0)?,
                            blocked_ts: r.get(1)?,
                        })
                    })
                    .optional()
                })
                .map_err(classify)
            })
            .await
    }
}
