//! Notifications on PostgreSQL (see [`crate::PushStore`]). Rows are written with their
//! event ([`write_actions`]) and read by receipts ([`read_up_to`]), each in its writer's
//! transaction.

use async_trait::async_trait;
use sqlx::{PgConnection, Row};

use super::rooms::{EVENT_COLUMNS, event_from_row};
use super::*;
use crate::{
    Notification, PUSH_INPUT_TYPES, PushAction, PushStore, Pusher, UnreadCount, pos_param,
};

/// The rows of an event being appended: its push actions, the room read by a member event
/// that starts or ends a membership, the rows of an event it redacts.
pub(super) async fn write_actions(
    tx: &mut PgConnection,
    room_id: &str,
    event: &crate::NewEvent,
    pos: i64,
    now: i64,
) -> StoreResult<()> {
    if !event.push.is_empty() {
        let users: Vec<&str> = event.push.iter().map(|a| a.user_id.as_str()).collect();
        let threads: Vec<&str> = event.push.iter().map(|a| a.thread_id.as_str()).collect();
        let highlights: Vec<bool> = event.push.iter().map(|a| a.highlight).collect();
        let actions: Vec<&str> = event.push.iter().map(|a| a.actions.as_str()).collect();
        sqlx::query(
            "INSERT INTO push_actions (user_id, pos, room_id, event_id, thread_id, highlight,
                                       actions, unread, ts)
             SELECT u, $2, $3, $4, t, h, a, TRUE, $5
             FROM UNNEST($1::TEXT[], $6::TEXT[], $7::BOOLEAN[], $8::TEXT[]) AS x(u, t, h, a)",
        )
        .bind(&users)
        .bind(pos)
        .bind(room_id)
        .bind(&event.event_id)
        .bind(now)
        .bind(&threads)
        .bind(&highlights)
        .bind(&actions)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    if let Some(user_id) = &event.reads_room_for {
        sqlx::query(
            "UPDATE push_actions SET unread = FALSE
             WHERE user_id = $1 AND room_id = $2 AND unread",
        )
        .bind(user_id)
        .bind(room_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    if let Some(redacts) = &event.redacts {
        // Every user with rows in the room has a membership row in it, left or not.
        sqlx::query(
            "DELETE FROM push_actions
             WHERE pos = (SELECT pos FROM events WHERE event_id = $1)
               AND user_id IN (SELECT user_id FROM room_members WHERE room_id = $2)",
        )
        .bind(redacts)
        .bind(room_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    Ok(())
}

/// A read receipt at `event_pos`: its thread's notifications up to the event are read, or
/// every thread's for an unthreaded one (PE-26).
pub(super) async fn read_up_to(
    tx: &mut PgConnection,
    user_id: &str,
    room_id: &str,
    thread_id: Option<&str>,
    event_pos: u64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE push_actions SET unread = FALSE
         WHERE user_id = $1 AND room_id = $2 AND unread AND pos <= $3
           AND ($4::TEXT IS NULL OR thread_id = $4)",
    )
    .bind(user_id)
    .bind(room_id)
    .bind(pos_param(event_pos))
    .bind(thread_id)
    .execute(tx)
    .await
    .map_err(classify)?;
    Ok(())
}

#[async_trait]
impl PushStore for PostgresStore {
    async fn push_inputs(&self, users: Vec<String>) -> StoreResult<Vec<(String, String, String)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_as(
            "SELECT user_id, data_type, content FROM account_data
             WHERE room_id = '' AND user_id = ANY($1) AND data_type = ANY($2)",
        )
        .bind(&users)
        .bind(PUSH_INPUT_TYPES.as_slice())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    async fn unread_counts(&self, user_id: &str, upto: u64) -> StoreResult<Vec<UnreadCount>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT room_id, thread_id, COUNT(*), COUNT(*) FILTER (WHERE highlight)
             FROM push_actions WHERE user_id = $1 AND unread AND pos <= $2
             GROUP BY room_id, thread_id",
        )
        .bind(user_id)
        .bind(pos_param(upto))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(room_id, thread_id, n, h)| UnreadCount {
                room_id,
                thread_id,
                notifications: n as u64,
                highlights: h as u64,
            })
            .collect())
    }

    async fn notifications(
        &self,
        user_id: &str,
        before: Option<u64>,
        limit: usize,
        only_highlight: bool,
    ) -> StoreResult<Vec<Notification>> {
        let sql =
            notification_sql("p.pos < $2 AND (NOT $3 OR p.highlight) ORDER BY p.pos DESC LIMIT $4");
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(before.map_or(i64::MAX, pos_param))
            .bind(only_highlight)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        notifications_from(&rows)
    }

    async fn pushers(&self, user_id: &str) -> StoreResult<Vec<Pusher>> {
        self.pushers_of(user_id).await
    }

    async fn set_pusher(&self, pusher: Pusher, append: bool) -> StoreResult<()> {
        self.put_pusher(pusher, append).await
    }

    async fn delete_pusher(&self, user_id: &str, app_id: &str, pushkey: &str) -> StoreResult<()> {
        self.remove_pusher(user_id, app_id, pushkey).await
    }

    async fn due_pushers(&self) -> StoreResult<Vec<Pusher>> {
        self.pushers_due().await
    }

    async fn notifications_after(
        &self,
        user_id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<Notification>> {
        let sql = notification_sql("p.pos > $2 ORDER BY p.pos LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(pos_param(after))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        notifications_from(&rows)
    }

    async fn advance_pusher(
        &self,
        user_id: &str,
        app_id: &str,
        pushkey: &str,
        pos: u64,
    ) -> StoreResult<()> {
        self.move_pusher(user_id, app_id, pushkey, pos).await
    }

    async fn prune_read_notifications(&self, before_ts: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM push_actions WHERE unread = FALSE AND ts < $1")
            .bind(before_ts)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}

/// Notification rows of user `$1` with their events; `rest` continues the `WHERE`.
fn notification_sql(rest: &str) -> String {
    format!(
        "SELECT {EVENT_COLUMNS}, p.actions, p.unread, p.ts
         FROM push_actions p JOIN events e ON e.pos = p.pos
         WHERE p.user_id = $1 AND {rest}"
    )
}

fn notifications_from(rows: &[sqlx::postgres::PgRow]) -> StoreResult<Vec<Notification>> {
    rows.iter()
        .map(|r| {
            let event = event_from_row(r)?;
            Ok(Notification {
                pos: event.pos,
                event,
                actions: r.try_get(11)?,
                read: !r.try_get::<bool, _>(12)?,
                ts: r.try_get(13)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(classify)
}

type Row9 = (String, i64, String, String, String, bool, String, bool, i64);

pub(super) async fn export(
    tx: &mut PgConnection,
) -> StoreResult<Vec<(String, crate::PushActionRow)>> {
    let rows: Vec<Row9> = sqlx::query_as(
        "SELECT user_id, pos, room_id, event_id, thread_id, highlight, actions, unread, ts
         FROM push_actions",
    )
    .fetch_all(tx)
    .await
    .map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(
            |(user_id, pos, room_id, event_id, thread_id, highlight, actions, unread, ts)| {
                let action = PushAction {
                    user_id: user_id.clone(),
                    thread_id,
                    highlight,
                    actions,
                };
                (user_id, (pos as u64, room_id, event_id, action, unread, ts))
            },
        )
        .collect())
}

pub(super) async fn import(
    tx: &mut PgConnection,
    rows: &[(String, crate::PushActionRow)],
) -> StoreResult<()> {
    for (user_id, (pos, room_id, event_id, action, unread, ts)) in rows {
        sqlx::query(
            "INSERT INTO push_actions (user_id, pos, room_id, event_id, thread_id, highlight,
                                       actions, unread, ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(user_id)
        .bind(*pos as i64)
        .bind(room_id)
        .bind(event_id)
        .bind(&action.thread_id)
        .bind(action.highlight)
        .bind(&action.actions)
        .bind(unread)
        .bind(ts)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    }
    Ok(())
}
