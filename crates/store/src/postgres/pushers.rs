//! Pushers on PostgreSQL (see [`crate::PushStore`]); their notifications are in
//! [`super::push`].

use sqlx::{PgConnection, Row, postgres::PgRow};

use super::*;
use crate::{Pusher, SyncStore, pos_param};

const PUSHER_COLUMNS: &str = "user_id, app_id, pushkey, device_id, kind, app_display_name, \
     device_display_name, profile_tag, lang, data, created_ts, last_pos";

fn pusher_from_row(r: &PgRow) -> Result<Pusher, sqlx::Error> {
    Ok(Pusher {
        user_id: r.try_get(0)?,
        app_id: r.try_get(1)?,
        pushkey: r.try_get(2)?,
        device_id: r.try_get(3)?,
        kind: r.try_get(4)?,
        app_display_name: r.try_get(5)?,
        device_display_name: r.try_get(6)?,
        profile_tag: r.try_get(7)?,
        lang: r.try_get(8)?,
        data: r.try_get(9)?,
        created_ts: r.try_get(10)?,
        last_pos: r.try_get::<i64, _>(11)? as u64,
    })
}

pub(super) async fn select(
    conn: &mut PgConnection,
    filter: &str,
    user_id: Option<&str>,
) -> StoreResult<Vec<Pusher>> {
    let sql = format!("SELECT {PUSHER_COLUMNS} FROM pushers p {filter}");
    let mut query = sqlx::query(&sql);
    if let Some(user_id) = user_id {
        query = query.bind(user_id);
    }
    let rows = query.fetch_all(conn).await.map_err(classify)?;
    rows.iter()
        .map(pusher_from_row)
        .collect::<Result<_, _>>()
        .map_err(classify)
}

pub(super) async fn insert(conn: &mut PgConnection, p: &Pusher, start: u64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO pushers (user_id, app_id, pushkey, device_id, kind, app_display_name,
                              device_display_name, profile_tag, lang, data, created_ts, last_pos)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET
             device_id = excluded.device_id, kind = excluded.kind,
             app_display_name = excluded.app_display_name,
             device_display_name = excluded.device_display_name,
             profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data",
    )
    .bind(&p.user_id)
    .bind(&p.app_id)
    .bind(&p.pushkey)
    .bind(&p.device_id)
    .bind(&p.kind)
    .bind(&p.app_display_name)
    .bind(&p.device_display_name)
    .bind(&p.profile_tag)
    .bind(&p.lang)
    .bind(&p.data)
    .bind(p.created_ts)
    .bind(pos_param(start))
    .execute(conn)
    .await
    .map_err(classify)?;
    Ok(())
}

/// The pushers of deleted devices go with them (PG-09).
pub(super) async fn delete_for_devices(
    conn: &mut PgConnection,
    user_id: &str,
    device_ids: &[String],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM pushers WHERE user_id = $1 AND device_id = ANY($2)")
        .bind(user_id)
        .bind(device_ids)
        .execute(conn)
        .await
        .map_err(classify)?;
    Ok(())
}

impl PostgresStore {
    pub(super) async fn pushers_of(&self, user_id: &str) -> StoreResult<Vec<Pusher>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        select(
            &mut conn,
            "WHERE user_id = $1 ORDER BY created_ts, app_id, pushkey",
            Some(user_id),
        )
        .await
    }

    pub(super) async fn put_pusher(&self, pusher: Pusher, append: bool) -> StoreResult<()> {
        let start = SyncStore::positions(self).await?.get(Stream::RoomEvents);
        let mut tx = self.pool.begin().await.map_err(classify)?;
        if !append {
            sqlx::query("DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3")
                .bind(&pusher.app_id)
                .bind(&pusher.pushkey)
                .bind(&pusher.user_id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        insert(&mut tx, &pusher, start).await?;
        tx.commit().await.map_err(classify)
    }

    pub(super) async fn remove_pusher(
        &self,
        user_id: &str,
        app_id: &str,
        pushkey: &str,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3")
            .bind(user_id)
            .bind(app_id)
            .bind(pushkey)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    pub(super) async fn pushers_due(&self) -> StoreResult<Vec<Pusher>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        select(
            &mut conn,
            "WHERE EXISTS (SELECT 1 FROM push_actions a
                           WHERE a.user_id = p.user_id AND a.pos > p.last_pos)",
            None,
        )
        .await
    }

    pub(super) async fn move_pusher(
        &self,
        user_id: &str,
        app_id: &str,
        pushkey: &str,
        pos: u64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE pushers SET last_pos = GREATEST(last_pos, $4)
             WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
        )
        .bind(user_id)
        .bind(app_id)
        .bind(pushkey)
        .bind(pos_param(pos))
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }
}
