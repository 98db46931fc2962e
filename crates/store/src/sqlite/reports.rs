//! Reports on SQLite.

use async_trait::async_trait;

use super::*;
use crate::{Report, ReportKind, ReportStore, ReportsQuery};

const COLUMNS: &str = "id, received_ts, reporter, room_id, event_id, target_user_id, reason";

pub(super) fn report_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Report> {
    Ok(Report {
        id: r.get(0)?,
        received_ts: r.get(1)?,
        reporter: r.get(2)?,
        room_id: r.get(3)?,
        event_id: r.get(4)?,
        target_user_id: r.get(5)?,
        reason: r.get(6)?,
    })
}

fn kind_filter(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Event => "event_id IS NOT NULL",
        ReportKind::Room => "event_id IS NULL AND room_id IS NOT NULL",
        ReportKind::User => "target_user_id IS NOT NULL",
    }
}

#[async_trait]
impl ReportStore for SqliteStore {
    async fn add_report(&self, report: &Report) -> StoreResult<i64> {
        let report = report.clone();
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO reports (received_ts, reporter, room_id, event_id,
                                          target_user_id, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![
                            report.received_ts,
                            report.reporter,
                            report.room_id,
                            report.event_id,
                            report.target_user_id,
                            report.reason
                        ],
                        |r| r.get(0),
                    )
                })
                .map_err(classify)
            })
            .await
    }

    async fn reports(&self, q: ReportsQuery) -> StoreResult<(Vec<Report>, u64)> {
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<(Vec<Report>, u64)> {
                    let filter = format!(
                        "{} AND (?1 IS NULL OR reporter = ?1) AND (?2 IS NULL OR room_id = ?2)",
                        kind_filter(q.kind)
                    );
                    let total: i64 = conn
                        .prepare_cached(&format!("SELECT COUNT(*) FROM reports WHERE {filter}"))?
                        .query_row(params![q.reporter, q.room_id], |r| r.get(0))?;
                    let order = if q.oldest_first { "ASC" } else { "DESC" };
                    let rows = conn
                        .prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM reports WHERE {filter}
                             ORDER BY received_ts {order}, id {order} LIMIT ?3 OFFSET ?4"
                        ))?
                        .query_map(
                            params![q.reporter, q.room_id, q.limit as i64, q.offset as i64],
                            report_from_row,
                        )?
                        .collect::<Result<_, _>>()?;
                    Ok((rows, total.max(0) as u64))
                };
                run().map_err(classify)
            })
            .await
    }

    async fn report(&self, id: i64) -> StoreResult<Option<Report>> {
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM reports WHERE id = ?1"))
                    .and_then(|mut s| s.query_row([id], report_from_row).optional())
                    .map_err(classify)
            })
            .await
    }

    async fn delete_report(&self, id: i64) -> StoreResult<bool> {
        self.pool
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM reports WHERE id = ?1")
                    .and_then(|mut s| s.execute([id]))
                    .map(|n| n > 0)
                    .map_err(classify)
            })
            .await
    }
}
