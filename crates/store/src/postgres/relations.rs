//! Relations on PostgreSQL. Lists of IDs go in as arrays (`= ANY($n)`).

use async_trait::async_trait;

use super::{
    rooms::{EVENT_COLUMNS, event_from_row, event_from_row_at},
    *,
};
use crate::{RelatedChild, RelationStore, RelationsQuery, StoredEvent, ThreadSummary};

fn pos(pos: u64) -> i64 {
    crate::pos_param(pos)
}

#[async_trait]
impl RelationStore for PostgresStore {
    async fn relations(&self, q: RelationsQuery) -> StoreResult<Vec<StoredEvent>> {
        let (bounds, order) = if q.backward {
            (
                "($5::BIGINT IS NULL OR r.pos <= $5) AND ($6::BIGINT IS NULL OR r.pos > $6)",
                "DESC",
            )
        } else {
            (
                "($5::BIGINT IS NULL OR r.pos > $5) AND ($6::BIGINT IS NULL OR r.pos <= $6)",
                "ASC",
            )
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM event_relations r
             JOIN events e ON e.event_id = r.event_id
             WHERE r.parent_id = ANY($1) AND r.room_id = $2
               AND ($3::TEXT IS NULL OR r.rel_type = $3) AND ($4::TEXT IS NULL OR r.event_type = $4)
               AND {bounds} AND r.pos <= $7 AND e.redacted_by IS NULL
               AND NOT (r.sender = ANY($9))
             ORDER BY r.pos {order} LIMIT $8"
        ))
        .bind(&q.parents)
        .bind(&q.room_id)
        .bind(&q.rel_type)
        .bind(&q.event_type)
        .bind(q.from.map(pos))
        .bind(q.to.map(pos))
        .bind(pos(q.upto))
        .bind(q.limit as i64)
        .bind(&q.ignored)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(event_from_row)
            .collect::<Result<_, _>>()
            .map_err(classify)
    }

    async fn child_ids(
        &self,
        room_id: &str,
        parents: &[String],
        upto: u64,
    ) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT r.event_id FROM event_relations r JOIN events e ON e.event_id = r.event_id
             WHERE r.parent_id = ANY($1) AND r.room_id = $2 AND r.pos <= $3
               AND e.redacted_by IS NULL",
        )
        .bind(parents)
        .bind(room_id)
        .bind(pos(upto))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    async fn thread_summaries(
        &self,
        room_id: &str,
        roots: &[String],
        user_id: &str,
        ignored: &[String],
        upto: u64,
    ) -> StoreResult<Vec<ThreadSummary>> {
        let rows = sqlx::query(&format!(
            "WITH t AS (
                 SELECT r.parent_id AS root, COUNT(*) AS n, MAX(r.pos) AS latest,
                        BOOL_OR(r.sender = $3) AS mine
                 FROM event_relations r JOIN events e ON e.event_id = r.event_id
                 WHERE r.parent_id = ANY($1) AND r.room_id = $2 AND r.rel_type = 'm.thread'
                   AND r.pos <= $4 AND e.redacted_by IS NULL AND NOT (r.sender = ANY($5))
                 GROUP BY r.parent_id)
             SELECT t.root, t.n, t.mine, {EVENT_COLUMNS}
             FROM t JOIN events e ON e.pos = t.latest"
        ))
        .bind(roots)
        .bind(room_id)
        .bind(user_id)
        .bind(pos(upto))
        .bind(ignored)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(ThreadSummary {
                    root: r.try_get(0)?,
                    count: r.try_get::<i64, _>(1)?.max(0) as u64,
                    participated: r.try_get(2)?,
                    latest: event_from_row_at(r, 3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(classify)
    }

    async fn related_children(
        &self,
        room_id: &str,
        parents: &[String],
        rel_types: &[&str],
        ignored: &[String],
        upto: u64,
    ) -> StoreResult<Vec<RelatedChild>> {
        let rows = sqlx::query(&format!(
            "SELECT r.parent_id, r.rel_type, {EVENT_COLUMNS}
             FROM event_relations r JOIN events e ON e.event_id = r.event_id
             WHERE r.parent_id = ANY($1) AND r.room_id = $2 AND r.rel_type = ANY($3)
               AND r.pos <= $4 AND e.redacted_by IS NULL AND NOT (r.sender = ANY($5))
             ORDER BY r.pos"
        ))
        .bind(parents)
        .bind(room_id)
        .bind(rel_types)
        .bind(pos(upto))
        .bind(ignored)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(RelatedChild {
                    parent: r.try_get(0)?,
                    rel_type: r.try_get(1)?,
                    event: event_from_row_at(r, 2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(classify)
    }

    async fn threads(
        &self,
        room_id: &str,
        participant: Option<&str>,
        before: Option<u64>,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT r.parent_id, MAX(r.pos) AS latest
             FROM event_relations r JOIN events e ON e.event_id = r.event_id
             WHERE r.room_id = $1 AND r.rel_type = 'm.thread' AND r.pos <= $2
               AND e.redacted_by IS NULL
             GROUP BY r.parent_id
             HAVING ($3::BIGINT IS NULL OR MAX(r.pos) < $3)
                AND ($4::TEXT IS NULL
                     OR BOOL_OR(r.sender = $4)
                     OR EXISTS (SELECT 1 FROM events root
                                WHERE root.event_id = r.parent_id AND root.sender = $4))
             ORDER BY latest DESC LIMIT $5",
        )
        .bind(room_id)
        .bind(pos(upto))
        .bind(before.map(pos))
        .bind(participant)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(root, latest)| (root, latest.max(0) as u64))
            .collect())
    }

    async fn annotation_exists(
        &self,
        parent: &str,
        sender: &str,
        event_type: &str,
        key: &str,
    ) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM event_relations r JOIN events e ON e.event_id = r.event_id
             WHERE r.parent_id = $1 AND r.rel_type = 'm.annotation' AND r.sender = $2
               AND r.event_type = $3 AND r.key = $4 AND e.redacted_by IS NULL
             LIMIT 1",
        )
        .bind(parent)
        .bind(sender)
        .bind(event_type)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(found.is_some())
    }
}
