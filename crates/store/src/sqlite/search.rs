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
                    let filter = "event_search MATCH ?1
                         AND s.room_id IN (SELECT value FROM json_each(?2))
                         AND s.key IN (SELECT value FROM json_each(?3))
                         AND s.rowid <= ?4";
                    let params = params![
                        match_expression(&q.words),
                        list(&q.rooms),
                        list(&q.keys),
                        crate::pos_param(q.upto)
                    ];
                    let total: i64 = conn
                        .prepare_cached(&format!(
                            "SELECT COUNT(*) FROM event_search s WHERE {filter}"
                        ))?
                        .query_row(params, |r| r.get(0))?;
                    let order = if q.by_rank {
                        "bm25(event_search), s.rowid DESC"
                    } else {
                        "s.rowid DESC"
                    };
                    let hits = conn
                        .prepare_cached(&format!(
                            "SELECT -bm25(event_search), {EVENT_COLUMNS}
                             FROM event_search s JOIN events e ON e.pos = s.rowid
                             WHERE {filter}
                             ORDER BY {order} LIMIT ?5 OFFSET ?6"
                        ))?
                        .query_map(
                            params![
                                match_expression(&q.words),
                                list(&q.rooms),
                                list(&q.keys),
                                crate::pos_param(q.upto),
                                q.limit as i64,
                                q.offset as i64
                            ],
                            |r| {
                                Ok(SearchHit {
                                    rank: r.get(0)?,
                                    event: event_from_row_at(r, 1)?,
                                })
                            },
                        )?
                        .collect::<Result<_, _>>()?;
                    Ok((hits, total.max(0) as u64))
                };
                run().map_err(classify)
            })
            .await
    }
}
