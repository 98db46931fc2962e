//! Reports on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;

use super::*;
use crate::{Report, ReportKind, ReportStore, ReportsQuery};

const COLUMNS: &str = "id, received_ts, reporter, room_id, event_id, target_user_id, reason";

pub(super) fn report_from_row(r: &PgRow) -> Result<Report, sqlx::Error> {
    Ok(Report {
        id: r.try_get(0)?,
        received_ts: r.try_get(1)?,
        reporter: r.try_get(2)?,
        room_id: r.try_get(3)?,
        event_id: r.try_get(4)?,
        target_user_id: r.try_get(5)?,
        reason: r.try_get(6)?,
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
impl ReportStore for PostgresStore {
    async fn add_report(&self, report: &Report) -> StoreResult<i64> {
        sqlx::query_scalar(
            "INSERT INTO reports (received_ts, reporter, room_id, event_id, target_user_id, reason)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(report.received_ts)
        .bind(&report.reporter)
        .bind(&report.room_id)
        .bind(&report.event_id)
        .bind(&report.target_user_id)
        .bind(&report.reason)
        .fetch_one(&self.pool)
        .await
        .map_err(classify)
    }

    async fn reports(&self, q: ReportsQuery) -> StoreResult<(Vec<Report>, u64)> {
        let filter = format!(
            "{} AND ($1::TEXT IS NULL OR reporter = $1) AND ($2::TEXT IS NULL OR room_id = $2)",
            kind_filter(q.kind)
        );
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM reports WHERE {filter}"))
                .bind(&q.reporter)
                .bind(&q.room_id)
                .fetch_one(&self.pool)
                .await
                .map_err(classify)?;
        let order = if q.oldest_first { "ASC" } else { "DESC" };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM reports WHERE {filter}
             ORDER BY received_ts {order}, id {order} LIMIT $3 OFFSET $4"
        ))
        .bind(&q.reporter)
        .bind(&q.room_id)
        .bind(q.limit as i64)
        .bind(q.offset as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let reports = rows
            .iter()
            .map(report_from_row)
            .collect::<Result<_, _>>()
            .map_err(classify)?;
        Ok((reports, total.max(0) as u64))
    }

    async fn report(&self, id: i64) -> StoreResult<Option<Report>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM reports WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref()
            .map(report_from_row)
            .transpose()
            .map_err(classify)
    }

    async fn delete_report(&self, id: i64) -> StoreResult<bool> {
        sqlx::query("DELETE FROM reports WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(classify)
    }
}
