//! Full-text search on SQLite (FTS5).

use async_trait::async_trait;

use super::{
    rooms::{EVENT_COLUMNS, event_from_row_at},
    *,
};
use crate::{SearchHit, SearchQuery, SearchStore};

/// Each word as a quoted prefix query; FTS5 ANDs them.
fn match_expression(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\"*"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The event type each search key is found in.
fn event_types(keys: &[String]) -> Vec<String> {
    keys.iter()
        .filter_map(|key| match key.as_str() {
            "content.body" => Some("m.room.message".to_owned()),
            "content.name" => Some("m.room.name".to_owned()),
            "content.topic" => Some("m.room.topic".to_owned()),
            _ => None,
        })
        .collect()
}

fn list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search(&self, q: SearchQuery) -> StoreResult<(Vec<SearchHit>, u64)> {
        if q.words.is_empty() || q.rooms.is_empty() {
            return Ok((Vec::new(), 0));
        }
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<(Vec<SearchHit>, u64)> {
                    let order = if q.by_rank {
                        "rank DESC, pos DESC"
                    } else {
                        "pos DESC"
                    };
                    // The room and the key are checked on the event (its type names the
                    // key), not on the index's own unindexed columns, which cost twice as
                    // much to read. bm25() only runs in the full-text query itself, so the
                    // matches are ranked first; the count over them comes with every row of
                    // the page, in one pass.
                    let hits = conn
                        .prepare_cached(&format!(
                            "WITH h AS MATERIALIZED (
                                 SELECT s.rowid AS pos, -bm25(event_search) AS rank
                                 FROM event_search s JOIN events e ON e.pos = s.rowid
                                 WHERE event_search MATCH ?1
                                   AND e.room_id IN (SELECT value FROM json_each(?2))
                                   AND e.event_type IN (SELECT value FROM json_each(?3))
                                   AND s.rowid <= ?4)
                             SELECT p.rank, p.total, {EVENT_COLUMNS}
                             FROM (SELECT pos, rank, COUNT(*) OVER () AS total FROM h
                                   ORDER BY {order} LIMIT ?5 OFFSET ?6) p
                             JOIN events e ON e.pos = p.pos
                             ORDER BY p.{order_outer}",
                            order_outer = order.replace(", pos", ", p.pos"),
                        ))?
                        .query_map(
                            params![
                                match_expression(&q.words),
                                list(&q.rooms),
                                list(&event_types(&q.keys)),
                                crate::pos_param(q.upto),
                                q.limit as i64,
                                q.offset as i64
                            ],
                            |r| {
                                Ok((
                                    r.get::<_, i64>(1)?,
                                    SearchHit {
                                        rank: r.get(0)?,
                                        event: event_from_row_at(r, 2)?,
                                    },
                                ))
                            },
                        )?
                        .collect::<Result<Vec<_>, _>>()?;
                    // Every row carries the count of all matches (one pass for both).
                    let total = hits.first().map_or(0, |(n, _)| (*n).max(0) as u64);
                    Ok((hits.into_iter().map(|(_, hit)| hit).collect(), total))
                };
                run().map_err(classify)
            })
            .await
    }
}
