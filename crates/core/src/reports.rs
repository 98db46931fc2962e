//! Reporting content to the operator (`report_content.yaml`): an event, a room or a user.
//! The reports are kept for the admin API (`admin::reports`); nobody is notified yet.

use myelin_store::Report;
use serde_json::Value;

use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, bad_json, field_too_long, not_found},
    rooms::parse_room_id,
};

/// The longest reason kept, in bytes.
const MAX_REASON_BYTES: usize = 2048;

/// The body's `reason`: a string, required or not.
fn reason(body: &[u8], required: bool) -> Result<Option<String>> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|_| Error::NotJson("Body is not JSON".into()))?
    };
    let Value::Object(body) = body else {
        return Err(bad_json("Body must be a JSON object"));
    };
    let reason = match body.get("reason") {
        None | Some(Value::Null) if !required => None,
        Some(Value::String(r)) => Some(r.clone()),
        _ => return Err(bad_json("reason must be a string")),
    };
    if reason.as_ref().is_some_and(|r| r.len() > MAX_REASON_BYTES) {
        return Err(field_too_long(format!(
            "reason must be at most {MAX_REASON_BYTES} bytes"
        )));
    }
    Ok(reason)
}

async fn keep(services: &Services, report: Report) -> Result<()> {
    let id = services.store.add_report(&report).await?;
    tracing::info!(id, reporter = %report.reporter, "content reported");
    Ok(())
}

/// # `POST /rooms/{roomId}/report/{eventId}`
///
/// The reporter must be joined to the room; an event they cannot report (unknown, in
/// another room, redacted) is 404 as the spec allows.
pub async fn report_event(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    event_id: &str,
    body: &[u8],
) -> Result<()> {
    let room = parse_room_id(room_id)?;
    crate::ids::check_event_id(event_id)?;
    let reason = reason(body, false)?;
    crate::ratelimit::per_user(&services.limiters.reports_per_user, requester)?;
    let hidden = || not_found("The event was not found or you are not joined to the room");
    let joined = crate::rooms::membership::joined_room_ids(services, &requester.user_id).await?;
    if !joined.iter().any(|r| r == room.as_str()) {
        return Err(hidden());
    }
    services
        .store
        .event(event_id)
        .await?
        .filter(|e| e.room_id == room.as_str() && e.redacted_by.is_none())
        .ok_or_else(hidden)?;
    keep(
        services,
        Report {
            received_ts: crate::now_ms(),
            reporter: requester.user_id.clone(),
            room_id: Some(room.to_string()),
            event_id: Some(event_id.to_owned()),
            reason,
            ..Report::default()
        },
    )
    .await
}

/// # `POST /rooms/{roomId}/report`
pub async fn report_room(
    services: &Services,
    requester: &Requester,
    room_id: &str,
    body: &[u8],
) -> Result<()> {
    let room = parse_room_id(room_id)?;
    let reason = reason(body, true)?;
    crate::ratelimit::per_user(&services.limiters.reports_per_user, requester)?;
    if services.store.room(room.as_str()).await?.is_none() {
        return Err(not_found("The room was not found"));
    }
    keep(
        services,
        Report {
            received_ts: crate::now_ms(),
            reporter: requester.user_id.clone(),
            room_id: Some(room.to_string()),
            reason,
            ..Report::default()
        },
    )
    .await
}

/// # `POST /users/{userId}/report`
pub async fn report_user(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    body: &[u8],
) -> Result<()> {
    let reason = reason(body, true)?;
    crate::ratelimit::per_user(&services.limiters.reports_per_user, requester)?;
    let known = match crate::ids::parse_user_id(user_id) {
        Some(user) => services.store.get_user(user.as_str()).await?.is_some(),
        None => false,
    };
    if !known {
        return Err(not_found("The user was not found"));
    }
    keep(
        services,
        Report {
            received_ts: crate::now_ms(),
            reporter: requester.user_id.clone(),
            target_user_id: Some(user_id.to_owned()),
            reason,
            ..Report::default()
        },
    )
    .await
}
