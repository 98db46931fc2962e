//! Full-text search on PostgreSQL (`tsvector`, the 'simple' configuration).

use async_trait::async_trait;

use super::{
    rooms::{EVENT_COLUMNS, event_from_row_at},
    *,
};
use crate::{SearchHit, SearchQuery, SearchStore};

/// Each word as a prefix, ANDed.
fn ts_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("{w}:*"))
        .collect::<Vec<_>>()
        .join(" & ")
}

#[async_trait]
impl SearchStore for PostgresStore {
    async fn search(&self, q: SearchQuery) -> StoreResult<(Vec<SearchHit>, u64)> {
        if q.words.is_empty() || q.rooms.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let query = ts_query(&q.words);
        let filter = "s.vector @@ to_tsquery('simple', $1) AND s.room_id = ANY($2)
             AND s.key = ANY($3) AND s.pos <= $4";
        let order = if q.by_rank {
            "1 DESC, s.pos DESC"
        } else {
            "s.pos DESC"
        };
        let rows = sqlx::query(&format!(
            "SELECT ts_rank(s.vector, to_tsquery('simple', $1))::FLOAT8, COUNT(*) OVER (),
                    {EVENT_COLUMNS}
             FROM event_search s JOIN events e ON e.pos = s.pos
             WHERE {filter}
             ORDER BY {order} LIMIT $5 OFFSET $6"
        ))
        .bind(&query)
        .bind(&q.rooms)
        .bind(&q.keys)
        .bind(crate::pos_param(q.upto))
        .bind(q.limit as i64)
        .bind(q.offset as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        // Every row carries the count of all matches (one pass for both).
        let total = match rows.first() {
            Some(row) => row.try_get::<i64, _>(1).map_err(classify)?.max(0) as u64,
            None => 0,
        };
        let hits = rows
            .iter()
            .map(|r| {
                Ok(SearchHit {
                    rank: r.try_get(0)?,
                    event: event_from_row_at(r, 2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(classify)?;
        Ok((hits, total))
    }
}
