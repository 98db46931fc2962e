//! Relations on SQLite. Lists of IDs go in as one JSON array (`json_each`), so each query
//! is one prepared statement whatever the list's length. Queries by parent write the room
//! condition as `+r.room_id`, which keeps SQLite on the parent index: it otherwise picks the
//! room index and reads every relation of the room (8 ms for a thread of 1 000 replies).

use async_trait::async_trait;

use super::{
    rooms::{EVENT_COLUMNS, event_from_row, event_from_row_at},
    *,
};
use crate::{RelatedChild, RelationStore, RelationsQuery, StoredEvent, ThreadSummary};

fn id_list(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

#[async_trait]
impl RelationStore for SqliteStore {
    async fn relations(&self, q: RelationsQuery) -> StoreResult<Vec<StoredEvent>> {
        self.pool
            .read(move |conn| {
                let (bounds, order) = if q.backward {
                    (
                        "(?5 IS NULL OR r.pos <= ?5) AND (?6 IS NULL OR r.pos > ?6)",
                        "DESC",
                    )
                } else {
                    (
                        "(?5 IS NULL OR r.pos > ?5) AND (?6 IS NULL OR r.pos <= ?6)",
                        "ASC",
                    )
                };
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM event_relations r
                     JOIN events e ON e.event_id = r.event_id
                     WHERE r.parent_id IN (SELECT value FROM json_each(?1)) AND +r.room_id = ?2
                       AND (?3 IS NULL OR r.rel_type = ?3) AND (?4 IS NULL OR r.event_type = ?4)
                       AND {bounds} AND r.pos <= ?7 AND e.redacted_by IS NULL
                       AND r.sender NOT IN (SELECT value FROM json_each(?9))
                     ORDER BY r.pos {order} LIMIT ?8"
                );
                conn.prepare_cached(&sql)
                    .and_then(|mut s| {
                        s.query_map(
                            params![
                                id_list(&q.parents),
                                q.room_id,
                                q.rel_type,
                                q.event_type,
                                q.from.map(crate::pos_param),
                                q.to.map(crate::pos_param),
                                crate::pos_param(q.upto),
                                q.limit as i64,
                                id_list(&q.ignored)
                            ],
                            event_from_row,
                        )?
                        .collect()
                    })
                    .map_err(classify)
            })
            .await
    }

    async fn child_ids(
        &self,
        room_id: &str,
        parents: &[String],
        upto: u64,
    ) -> StoreResult<Vec<String>> {
        let (room_id, parents) = (room_id.to_owned(), id_list(parents));
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT r.event_id FROM event_relations r
                     JOIN events e ON e.event_id = r.event_id
                     WHERE r.parent_id IN (SELECT value FROM json_each(?1)) AND +r.room_id = ?2
                       AND r.pos <= ?3 AND e.redacted_by IS NULL",
                )
                .and_then(|mut s| {
                    s.query_map(params![parents, room_id, crate::pos_param(upto)], |r| {
                        r.get(0)
                    })?
                    .collect()
                })
                .map_err(classify)
            })
            .await
    }

    async fn thread_summaries(
        &self,
        room_id: &str,
        roots: &[String],
        user_id: &str,
        ignored: &[String],
        upto: u64,
    ) -> StoreResult<Vec<ThreadSummary>> {
        let (room_id, roots, user_id) = (room_id.to_owned(), id_list(roots), user_id.to_owned());
        let ignored = id_list(ignored);
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<Vec<ThreadSummary>> {
                    let sql = format!(
                        "WITH t AS (
                             SELECT r.parent_id AS root, COUNT(*) AS n, MAX(r.pos) AS latest,
                                    MAX(r.sender = ?3) AS mine
                             FROM event_relations r JOIN events e ON e.event_id = r.event_id
                             WHERE r.parent_id IN (SELECT value FROM json_each(?1))
                               AND +r.room_id = ?2 AND r.rel_type = 'm.thread'
                               AND r.pos <= ?4 AND e.redacted_by IS NULL
                               AND r.sender NOT IN (SELECT value FROM json_each(?5))
                             GROUP BY r.parent_id)
                         SELECT t.root, t.n, t.mine, {EVENT_COLUMNS}
                         FROM t JOIN events e ON e.pos = t.latest"
                    );
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let rows = stmt.query_map(
                        params![roots, room_id, user_id, crate::pos_param(upto), ignored],
                        |r| {
                            let latest = event_from_row_at(r, 3)?;
                            Ok(ThreadSummary {
                                root: r.get(0)?,
                                count: r.get::<_, i64>(1)?.max(0) as u64,
                                participated: r.get::<_, i64>(2)? != 0,
                                latest,
                            })
                        },
                    )?;
                    rows.collect()
                };
                run().map_err(classify)
            })
            .await
    }

    async fn related_children(
        &self,
        room_id: &str,
        parents: &[String],
        rel_types: &[&str],
        ignored: &[String],
        upto: u64,
    ) -> StoreResult<Vec<RelatedChild>> {
        let types: Vec<String> = rel_types.iter().map(|t| (*t).to_owned()).collect();
        let (room_id, parents, types) = (room_id.to_owned(), id_list(parents), id_list(&types));
        let ignored = id_list(ignored);
        self.pool
            .read(move |conn| {
                let sql = format!(
                    "SELECT r.parent_id, r.rel_type, {EVENT_COLUMNS}
                     FROM event_relations r JOIN events e ON e.event_id = r.event_id
                     WHERE r.parent_id IN (SELECT value FROM json_each(?1)) AND +r.room_id = ?2
                       AND r.rel_type IN (SELECT value FROM json_each(?3))
                       AND r.pos <= ?4 AND e.redacted_by IS NULL
                       AND r.sender NOT IN (SELECT value FROM json_each(?5))
                     ORDER BY r.pos"
                );
                conn.prepare_cached(&sql)
                    .and_then(|mut s| {
                        s.query_map(
                            params![parents, room_id, types, crate::pos_param(upto), ignored],
                            |r| {
                                Ok(RelatedChild {
                                    parent: r.get(0)?,
                                    rel_type: r.get(1)?,
                                    event: event_from_row_at(r, 2)?,
                                })
                            },
                        )?
                        .collect()
                    })
                    .map_err(classify)
            })
            .await
    }

    async fn threads(
        &self,
        room_id: &str,
        participant: Option<&str>,
        before: Option<u64>,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<(String, u64)>> {
        let (room_id, participant) = (room_id.to_owned(), participant.map(str::to_owned));
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT r.parent_id, MAX(r.pos) AS latest
                     FROM event_relations r JOIN events e ON e.event_id = r.event_id
                     WHERE r.room_id = ?1 AND r.rel_type = 'm.thread' AND r.pos <= ?2
                       AND e.redacted_by IS NULL
                     GROUP BY r.parent_id
                     HAVING (?3 IS NULL OR latest < ?3)
                        AND (?4 IS NULL
                             OR MAX(r.sender = ?4)
                             OR EXISTS (SELECT 1 FROM events root
                                        WHERE root.event_id = r.parent_id AND root.sender = ?4))
                     ORDER BY latest DESC LIMIT ?5",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![
                            room_id,
                            crate::pos_param(upto),
                            before.map(crate::pos_param),
                            participant,
                            limit as i64
                        ],
                        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
                    )?
                    .collect()
                })
                .map_err(classify)
            })
            .await
    }

    async fn annotation_exists(
        &self,
        parent: &str,
        sender: &str,
        event_type: &str,
        key: &str,
    ) -> StoreResult<bool> {
        let (parent, sender, event_type, key) = (
            parent.to_owned(),
            sender.to_owned(),
            event_type.to_owned(),
            key.to_owned(),
        );
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT 1 FROM event_relations r JOIN events e ON e.event_id = r.event_id
                     WHERE r.parent_id = ?1 AND r.rel_type = 'm.annotation' AND r.sender = ?2
                       AND r.event_type = ?3 AND r.key = ?4 AND e.redacted_by IS NULL
                     LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row(params![parent, sender, event_type, key], |_| Ok(()))
                        .optional()
                })
                .map(|found| found.is_some())
                .map_err(classify)
            })
            .await
    }
}
