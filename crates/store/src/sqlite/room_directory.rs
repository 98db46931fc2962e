//! The room directory on SQLite.

use async_trait::async_trait;
use rusqlite::types::Value;

use super::*;
use crate::{
    AliasEntry, CONFLICT_ALIAS, PublicRoomsPage, PublicRoomsQuery, RoomDirectoryStore, RoomSummary,
};

const SUMMARY_COLUMNS: &str = "s.name, s.topic, s.avatar_url, s.canonical_alias, s.join_rule, \
     s.history_visibility, s.guest_can_join, s.room_type, s.encryption, s.joined_members, \
     s.invited_members";

fn summary_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<RoomSummary> {
    Ok(RoomSummary {
        name: r.get(at)?,
        topic: r.get(at + 1)?,
        avatar_url: r.get(at + 2)?,
        canonical_alias: r.get(at + 3)?,
        join_rule: r.get(at + 4)?,
        history_visibility: r.get(at + 5)?,
        guest_can_join: r.get(at + 6)?,
        room_type: r.get(at + 7)?,
        encryption: r.get(at + 8)?,
        joined_members: r.get::<_, i64>(at + 9)?.max(0) as u64,
        invited_members: r.get::<_, i64>(at + 10)?.max(0) as u64,
    })
}

/// Writes a room's summary: replacing the one there, or only where there is none.
pub(super) fn write_summary(
    conn: &Connection,
    room_id: &str,
    s: &RoomSummary,
    replace: bool,
) -> rusqlite::Result<()> {
    let sql = if replace {
        "INSERT INTO room_summaries (room_id, name, topic, avatar_url, canonical_alias, join_rule,
             history_visibility, guest_can_join, room_type, encryption, joined_members,
             invited_members, search_text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (room_id) DO UPDATE SET name = excluded.name, topic = excluded.topic,
             avatar_url = excluded.avatar_url, canonical_alias = excluded.canonical_alias,
             join_rule = excluded.join_rule, history_visibility = excluded.history_visibility,
             guest_can_join = excluded.guest_can_join, room_type = excluded.room_type,
             encryption = excluded.encryption, joined_members = excluded.joined_members,
             invited_members = excluded.invited_members, search_text = excluded.search_text"
    } else {
        "INSERT INTO room_summaries (room_id, name, topic, avatar_url, canonical_alias, join_rule,
             history_visibility, guest_can_join, room_type, encryption, joined_members,
             invited_members, search_text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (room_id) DO NOTHING"
    };
    conn.prepare_cached(sql)?.execute(params![
        room_id,
        s.name,
        s.topic,
        s.avatar_url,
        s.canonical_alias,
        s.join_rule,
        s.history_visibility,
        s.guest_can_join,
        s.room_type,
        s.encryption,
        s.joined_members as i64,
        s.invited_members as i64,
        s.search_text(),
    ])?;
    Ok(())
}

/// The filter of a public-rooms query as SQL over `s` and `r`, with its parameters.
fn filter(query: &PublicRoomsQuery, params: &mut Vec<Value>) -> String {
    let mut sql = String::from(
        "r.published = 1 AND (s.join_rule IN ('public', 'knock', 'knock_restricted')
             OR s.history_visibility = 'world_readable')",
    );
    if let Some(search) = &query.search {
        params.push(Value::Text(crate::like_contains(search)));
        sql.push_str(&format!(
            " AND s.search_text LIKE ?{} ESCAPE '\\'",
            params.len()
        ));
    }
    if let Some(types) = &query.room_types {
        let named: Vec<&String> = types.iter().flatten().collect();
        let mut any = Vec::new();
        if types.iter().any(Option::is_none) {
            any.push("s.room_type IS NULL".to_owned());
        }
        if !named.is_empty() {
            params.push(Value::Text(
                serde_json::to_string(&named).unwrap_or_else(|_| "[]".into()),
            ));
            any.push(format!(
                "s.room_type IN (SELECT value FROM json_each(?{}))",
                params.len()
            ));
        }
        if any.is_empty() {
            any.push("0".into());
        }
        sql.push_str(&format!(" AND ({})", any.join(" OR ")));
    }
    sql
}

#[async_trait]
impl RoomDirectoryStore for SqliteStore {
    async fn put_alias(&self, alias: &str, room_id: &str, creator: &str) -> StoreResult<()> {
        let (alias, room_id, creator) = (alias.to_owned(), room_id.to_owned(), creator.to_owned());
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO room_aliases (alias, room_id, creator, created_ts)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute(params![alias, room_id, creator, crate::now_ms()]))
                .map(drop)
                .map_err(|e| match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::ConstraintViolation) => {
                        StoreError::Conflict(CONFLICT_ALIAS)
                    }
                    _ => classify(e),
                })
            })
            .await
    }

    async fn alias(&self, alias: &str) -> StoreResult<Option<AliasEntry>> {
        let alias = alias.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached("SELECT room_id, creator FROM room_aliases WHERE alias = ?1")
                    .and_then(|mut s| {
                        s.query_row([alias], |r| {
                            Ok(AliasEntry {
                                room_id: r.get(0)?,
                                creator: r.get(1)?,
                            })
                        })
                        .optional()
                    })
                    .map_err(classify)
            })
            .await
    }

    async fn delete_alias(&self, alias: &str) -> StoreResult<bool> {
        let alias = alias.to_owned();
        self.pool
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM room_aliases WHERE alias = ?1")
                    .and_then(|mut s| s.execute([alias]))
                    .map(|n| n > 0)
                    .map_err(classify)
            })
            .await
    }

    async fn room_aliases(&self, room_id: &str) -> StoreResult<Vec<String>> {
        let room_id = room_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT alias FROM room_aliases WHERE room_id = ?1 ORDER BY created_ts, alias",
                )
                .and_then(|mut s| s.query_map([room_id], |r| r.get(0))?.collect())
                .map_err(classify)
            })
            .await
    }

    async fn set_published(&self, room_id: &str, published: bool) -> StoreResult<bool> {
        let room_id = room_id.to_owned();
        self.pool
            .write(move |conn| {
                conn.prepare_cached("UPDATE rooms SET published = ?2 WHERE room_id = ?1")
                    .and_then(|mut s| s.execute(params![room_id, published]))
                    .map(|n| n > 0)
                    .map_err(classify)
            })
            .await
    }

    async fn public_rooms(&self, query: PublicRoomsQuery) -> StoreResult<PublicRoomsPage> {
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<PublicRoomsPage> {
                    let mut params = Vec::new();
                    let filter = filter(&query, &mut params);
                    let total: i64 = if query.count {
                        conn.prepare_cached(&format!(
                            "SELECT COUNT(*) FROM room_summaries s
                             JOIN rooms r ON r.room_id = s.room_id WHERE {filter}"
                        ))?
                        .query_row(rusqlite::params_from_iter(params.iter()), |r| r.get(0))?
                    } else {
                        0
                    };
                    let mut sql = format!(
                        "SELECT s.room_id, {SUMMARY_COLUMNS} FROM room_summaries s
                         JOIN rooms r ON r.room_id = s.room_id WHERE {filter}"
                    );
                    if let Some(key) = &query.from {
                        params.push(Value::Integer(key.joined_members as i64));
                        params.push(Value::Text(key.room_id.clone()));
                        let (k, id) = (params.len() - 1, params.len());
                        sql.push_str(&if query.backward {
                            format!(
                                " AND (s.joined_members > ?{k}
                                       OR (s.joined_members = ?{k} AND s.room_id < ?{id}))"
                            )
                        } else {
                            format!(
                                " AND (s.joined_members < ?{k}
                                       OR (s.joined_members = ?{k} AND s.room_id > ?{id}))"
                            )
                        });
                    }
                    sql.push_str(if query.backward {
                        " ORDER BY s.joined_members ASC, s.room_id DESC"
                    } else {
                        " ORDER BY s.joined_members DESC, s.room_id ASC"
                    });
                    params.push(Value::Integer(query.limit as i64));
                    sql.push_str(&format!(" LIMIT ?{}", params.len()));
                    let mut rooms: Vec<(String, RoomSummary)> = conn
                        .prepare_cached(&sql)?
                        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                            Ok((r.get(0)?, summary_from_row(r, 1)?))
                        })?
                        .collect::<Result<_, _>>()?;
                    if query.backward {
                        rooms.reverse();
                    }
                    Ok(PublicRoomsPage {
                        rooms,
                        total: total.max(0) as u64,
                    })
                };
                run().map_err(classify)
            })
            .await
    }

    async fn room_summary(&self, room_id: &str) -> StoreResult<Option<RoomSummary>> {
        let room_id = room_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {SUMMARY_COLUMNS} FROM room_summaries s WHERE s.room_id = ?1"
                ))
                .and_then(|mut s| {
                    s.query_row([room_id], |r| summary_from_row(r, 0))
                        .optional()
                })
                .map_err(classify)
            })
            .await
    }

    async fn rooms_without_summary(&self) -> StoreResult<Vec<String>> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT r.room_id FROM rooms r
                     WHERE NOT EXISTS (SELECT 1 FROM room_summaries s WHERE s.room_id = r.room_id)",
                )
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(classify)
            })
            .await
    }

    async fn put_summary_if_absent(&self, room_id: &str, summary: &RoomSummary) -> StoreResult<()> {
        let (room_id, summary) = (room_id.to_owned(), summary.clone());
        self.pool
            .write(move |conn| write_summary(conn, &room_id, &summary, false).map_err(classify))
            .await
    }
}
