//! Receipts and typing on SQLite. Rooms are passed to queries as one JSON array
//! (`json_each`), so a user in many rooms costs one statement, not one per room.

use async_trait::async_trait;

use super::*;
use crate::{EphemeralStore, Receipt, pos_param};

fn rooms_param(rooms: &[String]) -> String {
    serde_json::Value::from(rooms.to_vec()).to_string()
}

fn bump_typing(conn: &Connection, room_id: &str) -> rusqlite::Result<u64> {
    let pos = next_pos(conn, Stream::Typing)?;
    conn.prepare_cached(
        "INSERT INTO typing_rooms (room_id, pos) VALUES (?1, ?2)
         ON CONFLICT (room_id) DO UPDATE SET pos = excluded.pos",
    )?
    .execute(params![room_id, pos as i64])?;
    Ok(pos)
}

pub(super) fn receipt_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Receipt> {
    let thread: String = r.get(3)?;
    Ok(Receipt {
        room_id: r.get(0)?,
        user_id: r.get(1)?,
        receipt_type: r.get(2)?,
        thread_id: (!thread.is_empty()).then_some(thread),
        event_id: r.get(4)?,
        ts: r.get(5)?,
    })
}

#[async_trait]
impl EphemeralStore for SqliteStore {
    async fn put_receipt(&self, receipt: Receipt, event_pos: u64) -> StoreResult<Option<u64>> {
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<Option<u64>> {
                    let thread = receipt.thread_id.clone().unwrap_or_default();
                    let stored: Option<i64> = conn
                        .prepare_cached(
                            "SELECT event_pos FROM receipts WHERE room_id = ?1 AND user_id = ?2
                               AND receipt_type = ?3 AND thread_id = ?4",
                        )?
                        .query_row(
                            params![
                                receipt.room_id,
                                receipt.user_id,
                                receipt.receipt_type,
                                thread
                            ],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if stored.is_some_and(|p| p as u64 >= event_pos) {
                        return Ok(None);
                    }
                    let pos = next_pos(conn, Stream::Receipts)?;
                    conn.prepare_cached(
                        "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id,
                                               event_pos, ts, stream_pos)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                         ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE SET
                             event_id = excluded.event_id, event_pos = excluded.event_pos,
                             ts = excluded.ts, stream_pos = excluded.stream_pos",
                    )?
                    .execute(params![
                        receipt.room_id,
                        receipt.user_id,
                        receipt.receipt_type,
                        thread,
                        receipt.event_id,
                        event_pos as i64,
                        receipt.ts,
                        pos as i64
                    ])?;
                    if matches!(receipt.receipt_type.as_str(), "m.read" | "m.read.private") {
                        push::read_up_to(
                            conn,
                            &receipt.user_id,
                            &receipt.room_id,
                            receipt.thread_id.as_deref(),
                            event_pos,
                        )?;
                    }
                    Ok(Some(pos))
                };
                run().map_err(classify)
            })
            .await
    }

    async fn receipts(
        &self,
        rooms: Vec<String>,
        reader: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<Receipt>> {
        let reader = reader.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts FROM receipts
                     WHERE room_id IN (SELECT value FROM json_each(?1))
                       AND stream_pos > ?2 AND stream_pos <= ?3
                       AND (receipt_type <> 'm.read.private' OR user_id = ?4)
                     ORDER BY stream_pos",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![
                            rooms_param(&rooms),
                            after.map_or(-1, pos_param),
                            pos_param(upto),
                            reader
                        ],
                        receipt_from_row,
                    )?
                    .collect::<Result<_, _>>()
                })
                .map_err(classify)
            })
            .await
    }

    async fn set_typing(
        &self,
        room_id: &str,
        user_id: &str,
        until_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<Option<u64>> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<Option<u64>> {
                    let typing = conn
                        .prepare_cached(
                            "SELECT until_ts FROM typing WHERE room_id = ?1 AND user_id = ?2",
                        )?
                        .query_row(params![room_id, user_id], |r| r.get::<_, i64>(0))
                        .optional()?
                        .is_some_and(|until| until > now_ms);
                    match until_ms {
                        Some(until) => {
                            conn.prepare_cached(
                                "INSERT INTO typing (room_id, user_id, until_ts) VALUES (?1, ?2, ?3)
                                 ON CONFLICT (room_id, user_id) DO UPDATE SET until_ts = excluded.until_ts",
                            )?
                            .execute(params![room_id, user_id, until])?;
                            if typing {
                                return Ok(None);
                            }
                        }
                        None => {
                            let deleted = conn
                                .prepare_cached(
                                    "DELETE FROM typing WHERE room_id = ?1 AND user_id = ?2",
                                )?
                                .execute(params![room_id, user_id])?;
                            if deleted == 0 {
                                return Ok(None);
                            }
                        }
                    }
                    bump_typing(conn, &room_id).map(Some)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn expire_typing(&self, now_ms: i64) -> StoreResult<Vec<String>> {
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<Vec<String>> {
                    let mut rooms: Vec<String> = conn
                        .prepare_cached(
                            "DELETE FROM typing WHERE until_ts <= ?1 RETURNING room_id",
                        )?
                        .query_map([now_ms], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    rooms.sort();
                    rooms.dedup();
                    for room in &rooms {
                        bump_typing(conn, room)?;
                    }
                    Ok(rooms)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn typing(
        &self,
        rooms: Vec<String>,
        after: Option<u64>,
        upto: u64,
        now_ms: i64,
    ) -> StoreResult<Vec<(String, Vec<String>)>> {
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<Vec<(String, Vec<String>)>> {
                    let changed: Vec<String> = match after {
                        Some(after) => conn
                            .prepare_cached(
                                "SELECT room_id FROM typing_rooms
                                 WHERE room_id IN (SELECT value FROM json_each(?1))
                                   AND pos > ?2 AND pos <= ?3",
                            )?
                            .query_map(
                                params![rooms_param(&rooms), pos_param(after), pos_param(upto)],
                                |r| r.get(0),
                            )?
                            .collect::<Result<_, _>>()?,
                        None => conn
                            .prepare_cached(
                                "SELECT DISTINCT room_id FROM typing
                                 WHERE room_id IN (SELECT value FROM json_each(?1)) AND until_ts > ?2",
                            )?
                            .query_map(params![rooms_param(&rooms), now_ms], |r| r.get(0))?
                            .collect::<Result<_, _>>()?,
                    };
                    let mut typers = conn.prepare_cached(
                        "SELECT user_id FROM typing WHERE room_id = ?1 AND until_ts > ?2
                         ORDER BY user_id",
                    )?;
                    let mut lists = Vec::with_capacity(changed.len());
                    for room in changed {
                        let users = typers
                            .query_map(params![room, now_ms], |r| r.get(0))?
                            .collect::<Result<_, _>>()?;
                        lists.push((room, users));
                    }
                    Ok(lists)
                };
                run().map_err(classify)
            })
            .await
    }
}
