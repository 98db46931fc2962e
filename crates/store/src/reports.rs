//! What users report to the operator (`report_content.yaml`): events, rooms and users, kept
//! until an admin deletes them (the admin API's `event_reports`).

use async_trait::async_trait;

use crate::StoreResult;

/// One report. Exactly one of these holds: `event_id` (with its `room_id`) for an event,
/// `room_id` alone for a room, `target_user_id` for a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub id: i64,
    pub received_ts: i64,
    pub reporter: String,
    pub room_id: Option<String>,
    pub event_id: Option<String>,
    pub target_user_id: Option<String>,
    pub reason: Option<String>,
}

/// Which kind of report a listing asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Event,
    Room,
    User,
}

/// A page of reports, newest first unless `oldest_first`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportsQuery {
    pub kind: ReportKind,
    pub offset: usize,
    pub limit: usize,
    pub oldest_first: bool,
    pub reporter: Option<String>,
    pub room_id: Option<String>,
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Keeps a report (its `id` is ignored); the new ID.
    async fn add_report(&self, report: &Report) -> StoreResult<i64>;

    /// A page of reports of one kind, and how many match in all.
    async fn reports(&self, query: ReportsQuery) -> StoreResult<(Vec<Report>, u64)>;

    async fn report(&self, id: i64) -> StoreResult<Option<Report>>;

    /// Whether there was such a report.
    async fn delete_report(&self, id: i64) -> StoreResult<bool>;
}
