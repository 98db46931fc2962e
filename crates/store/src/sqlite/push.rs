//! Notifications on SQLite (see [`crate::PushStore`]). Rows are written with their event
//! ([`write_actions`]) and read by receipts ([`read_up_to`]), each in its writer's transaction.

use async_trait::async_trait;

use super::rooms::{EVENT_COLUMNS, event_from_row};
use super::*;
use crate::{
    Notification, PUSH_INPUT_TYPES, PushAction, PushStore, Pusher, UnreadCount, pos_param,
};

/// The rows of an event being appended: its push actions, the room read by a member event
/// that starts or ends a membership, the rows of an event it redacts.
pub(super) fn write_actions(
    conn: &Connection,
    room_id: &str,
    event: &crate::NewEvent,
    pos: i64,
    now: i64,
) -> rusqlite::Result<()> {
    if !event.push.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT INTO push_actions (user_id, pos, room_id, event_id, thread_id, highlight,
                                       actions, unread, ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8)",
        )?;
        for action in &event.push {
            insert.execute(params![
                action.user_id,
                pos,
                room_id,
                event.event_id,
                action.thread_id,
                action.highlight,
                action.actions,
                now
            ])?;
        }
    }
    if let Some(user_id) = &event.reads_room_for {
        conn.prepare_cached(
            "UPDATE push_actions SET unread = 0
             WHERE user_id = ?1 AND room_id = ?2 AND unread = 1",
        )?
        .execute(params![user_id, room_id])?;
    }
    if let Some(redacts) = &event.redacts {
        // Every user with rows in the room has a membership row in it, left or not.
        conn.prepare_cached(
            "DELETE FROM push_actions
             WHERE pos = (SELECT pos FROM events WHERE event_id = ?1)
               AND user_id IN (SELECT user_id FROM room_members WHERE room_id = ?2)",
        )?
        .execute(params![redacts, room_id])?;
    }
    Ok(())
}

/// A read receipt at `event_pos`: its thread's notifications up to the event are read, or
/// every thread's for an unthreaded one (PE-26).
pub(super) fn read_up_to(
    conn: &Connection,
    user_id: &str,
    room_id: &str,
    thread_id: Option<&str>,
    event_pos: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE push_actions SET unread = 0
         WHERE user_id = ?1 AND room_id = ?2 AND unread = 1 AND pos <= ?3
           AND (?4 IS NULL OR thread_id = ?4)",
    )?
    .execute(params![user_id, room_id, pos_param(event_pos), thread_id])?;
    Ok(())
}

#[async_trait]
impl PushStore for SqliteStore {
    async fn push_inputs(&self, users: Vec<String>) -> StoreResult<Vec<(String, String, String)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let users = serde_json::Value::from(users).to_string();
        let types = serde_json::Value::from(PUSH_INPUT_TYPES.to_vec()).to_string();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT a.user_id, a.data_type, a.content FROM account_data a
                     WHERE a.room_id = '' AND a.user_id IN (SELECT value FROM json_each(?1))
                       AND a.data_type IN (SELECT value FROM json_each(?2))",
                )
                .and_then(|mut s| {
                    s.query_map([users, types], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect()
                })
                .map_err(classify)
            })
            .await
    }

    async fn unread_counts(&self, user_id: &str, upto: u64) -> StoreResult<Vec<UnreadCount>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT room_id, thread_id, COUNT(*), SUM(highlight) FROM push_actions
                     WHERE user_id = ?1 AND unread = 1 AND pos <= ?2
                     GROUP BY room_id, thread_id",
                )
                .and_then(|mut s| {
                    s.query_map(params![user_id, pos_param(upto)], |r| {
                        Ok(UnreadCount {
                            room_id: r.get(0)?,
                            thread_id: r.get(1)?,
                            notifications: r.get::<_, i64>(2)? as u64,
                            highlights: r.get::<_, i64>(3)? as u64,
                        })
                    })?
                    .collect()
                })
                .map_err(classify)
            })
            .await
    }

    async fn notifications(
        &self,
        user_id: &str,
        before: Option<u64>,
        limit: usize,
        only_highlight: bool,
    ) -> StoreResult<Vec<Notification>> {
        let user_id = user_id.to_owned();
        let before = before.map_or(i64::MAX, pos_param);
        self.pool
            .read(move |conn| {
                notification_rows(
                    conn,
                    "p.pos < ?2 AND (?3 = 0 OR p.highlight = 1) ORDER BY p.pos DESC LIMIT ?4",
                    params![user_id, before, only_highlight, limit as i64],
                )
                .map_err(classify)
            })
            .await
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
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                notification_rows(
                    conn,
                    "p.pos > ?2 ORDER BY p.pos LIMIT ?3",
                    params![user_id, pos_param(after), limit as i64],
                )
                .map_err(classify)
            })
            .await
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
        self.pool
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM push_actions WHERE unread = 0 AND ts < ?1")
                    .and_then(|mut s| s.execute([before_ts]))
                    .map(|n| n as u64)
                    .map_err(classify)
            })
            .await
    }
}

/// Notification rows of user `?1` with their events; `rest` continues the `WHERE`.
fn notification_rows(
    conn: &Connection,
    rest: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<Notification>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, p.actions, p.unread, p.ts
         FROM push_actions p JOIN events e ON e.pos = p.pos
         WHERE p.user_id = ?1 AND {rest}"
    );
    conn.prepare_cached(&sql)?
        .query_map(args, |r| {
            let event = event_from_row(r)?;
            Ok(Notification {
                pos: event.pos,
                event,
                actions: r.get(11)?,
                read: !r.get::<_, bool>(12)?,
                ts: r.get(13)?,
            })
        })?
        .collect()
}

pub(super) fn export(conn: &Connection) -> rusqlite::Result<Vec<(String, crate::PushActionRow)>> {
    conn.prepare(
        "SELECT user_id, pos, room_id, event_id, thread_id, highlight, actions, unread, ts
         FROM push_actions",
    )?
    .query_map([], |r| {
        Ok((
            r.get(0)?,
            (
                r.get::<_, i64>(1)? as u64,
                r.get(2)?,
                r.get(3)?,
                PushAction {
                    user_id: r.get(0)?,
                    thread_id: r.get(4)?,
                    highlight: r.get(5)?,
                    actions: r.get(6)?,
                },
                r.get(7)?,
                r.get(8)?,
            ),
        ))
    })?
    .collect()
}

pub(super) fn import(
    conn: &Connection,
    rows: &[(String, crate::PushActionRow)],
) -> rusqlite::Result<()> {
    for (user_id, (pos, room_id, event_id, action, unread, ts)) in rows {
        conn.execute(
            "INSERT INTO push_actions (user_id, pos, room_id, event_id, thread_id, highlight,
                                       actions, unread, ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                user_id,
                *pos as i64,
                room_id,
                event_id,
                action.thread_id,
                action.highlight,
                action.actions,
                unread,
                ts
            ],
        )?;
    }
    Ok(())
}
