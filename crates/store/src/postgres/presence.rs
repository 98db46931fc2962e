//! Presence on PostgreSQL. A change takes its position inside its transaction (see
//! [`super::positions`]) and wakes the user and their room-mates on every instance.

use async_trait::async_trait;

use super::*;
use crate::{Presence, PresenceStore, PresenceUpdate, pos_param};

const SELECT: &str = "SELECT user_id, state, status_msg, last_active_ts, pos FROM presence";

type Row = (String, String, Option<String>, i64, i64);

fn presence_from_row((user_id, state, status_msg, last_active_ts, pos): Row) -> Presence {
    Presence {
        user_id,
        state,
        status_msg,
        last_active_ts,
        pos: pos as u64,
    }
}

async fn next_pos(conn: &mut PgConnection) -> StoreResult<i64> {
    sqlx::query_scalar("UPDATE stream_positions SET pos = pos + 1 WHERE stream = $1 RETURNING pos")
        .bind(Stream::Presence.name())
        .fetch_one(conn)
        .await
        .map_err(classify)
}

#[async_trait]
impl PresenceStore for PostgresStore {
    async fn presence(&self, user_id: &str) -> StoreResult<Option<Presence>> {
        let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE user_id = $1"))
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        Ok(row.map(presence_from_row))
    }

    async fn update_presence(
        &self,
        user_id: &str,
        update: PresenceUpdate,
        now_ms: i64,
    ) -> StoreResult<Option<u64>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        lock_user(&mut tx, user_id).await?;
        let current: Option<Presence> =
            sqlx::query_as::<_, Row>(&format!("{SELECT} WHERE user_id = $1"))
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?
                .map(presence_from_row);
        let state = current.as_ref().map_or("offline", |c| c.state.as_str());
        if update
            .only_from
            .as_ref()
            .is_some_and(|from| !from.iter().any(|s| s == state))
        {
            sqlx::query("UPDATE presence SET last_sync_ts = $2 WHERE user_id = $1")
                .bind(user_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            tx.commit().await.map_err(classify)?;
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
            (Some(c), false) => c.pos as i64,
            _ => next_pos(&mut tx).await?,
        };
        sqlx::query(
            "INSERT INTO presence (user_id, state, status_msg, last_active_ts, last_sync_ts, pos)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (user_id) DO UPDATE SET state = excluded.state,
                 status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts,
                 last_sync_ts = excluded.last_sync_ts, pos = excluded.pos",
        )
        .bind(user_id)
        .bind(&update.state)
        .bind(&status_msg)
        .bind(last_active)
        .bind(now_ms)
        .bind(pos)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        if !changed {
            return Ok(None);
        }
        positions::notify(&self.fast, &[positions::presence_note(pos, user_id)]).await;
        Ok(Some(pos as u64))
    }

    async fn record_presence_syncs(&self, user_ids: Vec<String>, now_ms: i64) -> StoreResult<()> {
        if user_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE presence SET last_sync_ts = GREATEST(last_sync_ts, $2)
             WHERE user_id = ANY($1)",
        )
        .bind(&user_ids)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn expire_presence(
        &self,
        offline_before: i64,
        idle_before: i64,
    ) -> StoreResult<Vec<String>> {
        // Most sweeps find nothing: a read first, so they take no lock on the counter.
        let due: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM presence
                            WHERE (state <> 'offline' AND last_sync_ts < $1)
                               OR (state = 'online' AND last_active_ts < $2))",
        )
        .bind(offline_before)
        .bind(idle_before)
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        if !due {
            return Ok(Vec::new());
        }
        // One position for the whole sweep: the changes commit together. The conditions are
        // checked again by the updates, so a user another instance saw syncing meanwhile
        // stays as they are; with nothing changed the transaction, and its position, is
        // rolled back.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let pos = next_pos(&mut tx).await?;
        let mut changed: Vec<String> = sqlx::query_scalar(
            "UPDATE presence SET state = 'offline', pos = $2
             WHERE state <> 'offline' AND last_sync_ts < $1 RETURNING user_id",
        )
        .bind(offline_before)
        .bind(pos)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let idle: Vec<String> = sqlx::query_scalar(
            "UPDATE presence SET state = 'unavailable', pos = $2
             WHERE state = 'online' AND last_active_ts < $1 RETURNING user_id",
        )
        .bind(idle_before)
        .bind(pos)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        changed.extend(idle);
        if changed.is_empty() {
            return Ok(changed);
        }
        tx.commit().await.map_err(classify)?;
        let notes: Vec<String> = changed
            .iter()
            .map(|user| positions::presence_note(pos, user))
            .collect();
        positions::notify(&self.fast, &notes).await;
        Ok(changed)
    }

    async fn presence_for(
        &self,
        viewer: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<Presence>> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "{SELECT} p WHERE p.pos > $2 AND p.pos <= $3
               AND (p.user_id = $1 OR EXISTS (
                 SELECT 1 FROM room_members mine JOIN room_members theirs
                   ON theirs.room_id = mine.room_id
                 WHERE mine.user_id = $1 AND mine.membership = 'join'
                   AND theirs.user_id = p.user_id AND theirs.membership = 'join'))
             ORDER BY p.user_id"
        ))
        .bind(viewer)
        .bind(after.map_or(-1, pos_param))
        .bind(pos_param(upto))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows.into_iter().map(presence_from_row).collect())
    }
}
