//! Presence on SQLite.

use async_trait::async_trait;

use super::*;
use crate::{Presence, PresenceStore, PresenceUpdate, pos_param};

const SELECT: &str = "SELECT user_id, state, status_msg, last_active_ts, pos FROM presence";

fn presence_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Presence> {
    Ok(Presence {
        user_id: r.get(0)?,
        state: r.get(1)?,
        status_msg: r.get(2)?,
        last_active_ts: r.get(3)?,
        pos: r.get::<_, i64>(4)? as u64,
    })
}

fn update_tx(
    conn: &Connection,
    user_id: &str,
    update: PresenceUpdate,
    now_ms: i64,
) -> rusqlite::Result<Option<u64>> {
    let current = conn
        .prepare_cached(&format!("{SELECT} WHERE user_id = ?1"))?
        .query_row([user_id], presence_from_row)
        .optional()?;
    let state = current.as_ref().map_or("offline", |c| c.state.as_str());
    if update
        .only_from
        .as_ref()
        .is_some_and(|from| !from.iter().any(|s| s == state))
    {
        conn.prepare_cached("UPDATE presence SET last_sync_ts = ?2 WHERE user_id = ?1")?
            .execute(params![user_id, now_ms])?;
        return Ok(None);
    }
    let status_msg = match update.status_msg {
        Some(msg) => msg,
        None => current.as_ref().and_then(|c| c.status_msg.clone()),
    };
    let last_active = match (&current, update.active) {
        (Some(c), false) => c.last_active_ts,
        _ => now_ms,
    };
    let changed = current
        .as_ref()
        .is_none_or(|c| c.state != update.state || c.status_msg != status_msg);
    let pos = match (&current, changed) {
        (Some(c), false) => c.pos,
        _ => next_pos(conn, Stream::Presence)?,
    };
    conn.prepare_cached(
        "INSERT INTO presence (user_id, state, status_msg, last_active_ts, last_sync_ts, pos)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (user_id) DO UPDATE SET state = excluded.state,
             status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts,
             last_sync_ts = excluded.last_sync_ts, pos = excluded.pos",
    )?
    .execute(params![
        user_id,
        update.state,
        status_msg,
        last_active,
        now_ms,
        pos as i64
    ])?;
    Ok(changed.then_some(pos))
}

#[async_trait]
impl PresenceStore for SqliteStore {
    async fn presence(&self, user_id: &str) -> StoreResult<Option<Presence>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!("{SELECT} WHERE user_id = ?1"))
                    .and_then(|mut s| s.query_row([user_id], presence_from_row).optional())
                    .map_err(classify)
            })
            .await
    }

    async fn update_presence(
        &self,
        user_id: &str,
        update: PresenceUpdate,
        now_ms: i64,
    ) -> StoreResult<Option<u64>> {
        let user_id = user_id.to_owned();
        self.pool
            .write(move |conn| update_tx(conn, &user_id, update, now_ms).map_err(classify))
            .await
    }

    async fn record_presence_syncs(&self, user_ids: Vec<String>, now_ms: i64) -> StoreResult<()> {
        if user_ids.is_empty() {
            return Ok(());
        }
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<()> {
                    let mut stmt = conn.prepare_cached(
                        "UPDATE presence SET last_sync_ts = MAX(last_sync_ts, ?2)
                         WHERE user_id = ?1",
                    )?;
                    for user_id in &user_ids {
                        stmt.execute(params![user_id, now_ms])?;
                    }
                    Ok(())
                };
                run().map_err(classify)
            })
            .await
    }

    async fn expire_presence(
        &self,
        offline_before: i64,
        idle_before: i64,
    ) -> StoreResult<Vec<String>> {
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<Vec<String>> {
                    let due: Vec<(String, String)> = conn
                        .prepare_cached(
                            "SELECT user_id, 'offline' FROM presence
                             WHERE state <> 'offline' AND last_sync_ts < ?1
                             UNION
                             SELECT user_id, 'unavailable' FROM presence
                             WHERE state = 'online' AND last_sync_ts >= ?1
                               AND last_active_ts < ?2",
                        )?
                        .query_map(params![offline_before, idle_before], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })?
                        .collect::<Result<_, _>>()?;
                    if due.is_empty() {
                        return Ok(Vec::new());
                    }
                    // One position for the whole sweep: the changes commit together.
                    let pos = next_pos(conn, Stream::Presence)?;
                    let mut stmt = conn.prepare_cached(
                        "UPDATE presence SET state = ?2, pos = ?3 WHERE user_id = ?1",
                    )?;
                    for (user_id, state) in &due {
                        stmt.execute(params![user_id, state, pos as i64])?;
                    }
                    Ok(due.into_iter().map(|(user_id, _)| user_id).collect())
                };
                run().map_err(classify)
            })
            .await
    }

    async fn presence_for(
        &self,
        viewer: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<Presence>> {
        let viewer = viewer.to_owned();
        let after = after.map_or(-1, pos_param);
        let upto = pos_param(upto);
        self.pool
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "{SELECT} p WHERE p.pos > ?2 AND p.pos <= ?3
                       AND (p.user_id = ?1 OR EXISTS (
                         SELECT 1 FROM room_members mine JOIN room_members theirs
                           ON theirs.room_id = mine.room_id
                         WHERE mine.user_id = ?1 AND mine.membership = 'join'
                           AND theirs.user_id = p.user_id AND theirs.membership = 'join'))
                     ORDER BY p.user_id"
                ))
                .and_then(|mut s| {
                    s.query_map(params![viewer, after, upto], presence_from_row)?
                        .collect()
                })
                .map_err(classify)
            })
            .await
    }
}
