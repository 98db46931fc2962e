//! Reported events through the admin API (`/_synapse/admin/v1/event_reports`), in the
//! reference server's shapes: the list moderation tools page through, one report with the
//! event, and deleting one.

use std::collections::HashMap;

use myelin_store::{Report, ReportKind, ReportsQuery};
use serde_json::{Value, json};

use super::require_admin;
use crate::{
    Services,
    auth::Requester,
    error::{Result, invalid_param, not_found},
};

const REPORT_NOT_FOUND: &str = "Event report not found";

fn report_id(id: &str) -> Result<i64> {
    id.parse::<i64>().ok().filter(|i| *i >= 0).ok_or_else(|| {
        invalid_param("The report_id parameter must be a string representing a positive integer.")
    })
}

/// A report as the list shows it: with the room's name and alias and the event's sender.
async fn entry(services: &Services, report: &Report) -> Result<(Value, Option<Value>)> {
    let room_id = report.room_id.clone().unwrap_or_default();
    let summary = services.store.room_summary(&room_id).await?;
    let event = match &report.event_id {
        Some(id) => services.store.event(id).await?,
        None => None,
    };
    let value = json!({
        "id": report.id,
        "received_ts": report.received_ts,
        "room_id": room_id,
        "name": summary.as_ref().and_then(|s| s.name.clone()),
        "canonical_alias": summary.as_ref().and_then(|s| s.canonical_alias.clone()),
        "event_id": report.event_id,
        "user_id": report.reporter,
        "reason": report.reason,
        // The spec dropped `score`; the tools still read the key.
        "score": Value::Null,
        "sender": event.as_ref().map(|e| e.sender.clone()),
    });
    let json = event.and_then(|e| serde_json::from_str::<Value>(&e.json).ok());
    Ok((value, json))
}

/// # `GET /_synapse/admin/v1/event_reports`
///
/// Newest first unless `dir=f`; `user_id` is the reporter, `room_id` the room.
pub async fn event_reports(
    services: &Services,
    requester: &Requester,
    params: &HashMap<String, String>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let number = |name: &str, default: usize| match params.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            invalid_param(format!(
                "Query parameter {name} must be a string representing a positive integer."
            ))
        }),
    };
    let (offset, limit) = (number("from", 0)?, number("limit", 100)?);
    let oldest_first = match params.get("dir").map(String::as_str) {
        None | Some("b") => false,
        Some("f") => true,
        Some(_) => return Err(invalid_param("Unknown direction: dir must be f or b")),
    };
    let (reports, total) = services
        .store
        .reports(ReportsQuery {
            kind: ReportKind::Event,
            offset,
            limit,
            oldest_first,
            reporter: params.get("user_id").cloned(),
            room_id: params.get("room_id").cloned(),
        })
        .await?;
    let mut listed = Vec::with_capacity(reports.len());
    for report in &reports {
        listed.push(entry(services, report).await?.0);
    }
    let mut answer = json!({ "event_reports": listed, "total": total });
    let next = offset.saturating_add(reports.len());
    if (next as u64) < total && !reports.is_empty() {
        answer["next_token"] = json!(next);
    }
    Ok(answer)
}

async fn event_report_of(services: &Services, id: &str) -> Result<Report> {
    services
        .store
        .report(report_id(id)?)
        .await?
        .filter(|r| r.event_id.is_some())
        .ok_or_else(|| not_found(REPORT_NOT_FOUND))
}

/// # `GET /_synapse/admin/v1/event_reports/{reportId}`: the report with the event.
pub async fn event_report(services: &Services, requester: &Requester, id: &str) -> Result<Value> {
    require_admin(services, requester).await?;
    let report = event_report_of(services, id).await?;
    let (mut value, event) = entry(services, &report).await?;
    value["event_json"] = event.unwrap_or(Value::Null);
    Ok(value)
}

/// # `DELETE /_synapse/admin/v1/event_reports/{reportId}`
pub async fn delete_event_report(
    services: &Services,
    requester: &Requester,
    id: &str,
) -> Result<()> {
    require_admin(services, requester).await?;
    let report = event_report_of(services, id).await?;
    if !services.store.delete_report(report.id).await? {
        return Err(not_found(REPORT_NOT_FOUND));
    }
    Ok(())
}
