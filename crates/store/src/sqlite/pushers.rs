//! Pushers on SQLite (see [`crate::PushStore`]); their notifications are in [`super::push`].

use super::*;
use crate::{Pusher, Stream, pos_param};

pub(super) const PUSHER_COLUMNS: &str = "user_id, app_id, pushkey, device_id, kind, \
     app_display_name, device_display_name, profile_tag, lang, data, created_ts, last_pos";

pub(super) fn pusher_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pusher> {
    Ok(Pusher {
        user_id: r.get(0)?,
        app_id: r.get(1)?,
        pushkey: r.get(2)?,
        device_id: r.get(3)?,
        kind: r.get(4)?,
        app_display_name: r.get(5)?,
        device_display_name: r.get(6)?,
        profile_tag: r.get(7)?,
        lang: r.get(8)?,
        data: r.get(9)?,
        created_ts: r.get(10)?,
        last_pos: r.get::<_, i64>(11)? as u64,
    })
}

pub(super) fn select(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<Pusher>> {
    conn.prepare_cached(&format!("SELECT {PUSHER_COLUMNS} FROM pushers p {filter}"))?
        .query_map(args, pusher_from_row)?
        .collect()
}

pub(super) fn insert(conn: &Connection, p: &Pusher, start: u64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO pushers (user_id, app_id, pushkey, device_id, kind, app_display_name,
                              device_display_name, profile_tag, lang, data, created_ts, last_pos)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET
             device_id = excluded.device_id, kind = excluded.kind,
             app_display_name = excluded.app_display_name,
             device_display_name = excluded.device_display_name,
             profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data",
    )?
    .execute(params![
        p.user_id,
        p.app_id,
        p.pushkey,
        p.device_id,
        p.kind,
        p.app_display_name,
        p.device_display_name,
        p.profile_tag,
        p.lang,
        p.data,
        p.created_ts,
        pos_param(start)
    ])?;
    Ok(())
}

/// The pushers of deleted devices go with them (PG-09).
pub(super) fn delete_for_device(
    conn: &Connection,
    user_id: &str,
    device_id: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM pushers WHERE user_id = ?1 AND device_id = ?2")?
        .execute(params![user_id, device_id])?;
    Ok(())
}

impl SqliteStore {
    pub(super) async fn pushers_of(&self, user_id: &str) -> StoreResult<Vec<Pusher>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                select(
                    conn,
                    "WHERE user_id = ?1 ORDER BY created_ts, app_id, pushkey",
                    [user_id],
                )
                .map_err(classify)
            })
            .await
    }

    pub(super) async fn put_pusher(&self, pusher: Pusher, append: bool) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<()> {
                    let start: i64 = conn
                        .prepare_cached("SELECT pos FROM stream_positions WHERE stream = ?1")?
                        .query_row([Stream::RoomEvents.name()], |r| r.get(0))?;
                    if !append {
                        conn.prepare_cached(
                            "DELETE FROM pushers WHERE app_id = ?1 AND pushkey = ?2 AND user_id <> ?3",
                        )?
                        .execute(params![pusher.app_id, pusher.pushkey, pusher.user_id])?;
                    }
                    insert(conn, &pusher, start as u64)
                };
                run().map_err(classify)
            })
            .await
    }

    pub(super) async fn remove_pusher(
        &self,
        user_id: &str,
        app_id: &str,
        pushkey: &str,
    ) -> StoreResult<()> {
        let (user_id, app_id, pushkey) =
            (user_id.to_owned(), app_id.to_owned(), pushkey.to_owned());
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM pushers WHERE user_id = ?1 AND app_id = ?2 AND pushkey = ?3",
                )
                .and_then(|mut s| s.execute(params![user_id, app_id, pushkey]))
                .map(drop)
                .map_err(classify)
            })
            .await
    }

    pub(super) async fn pushers_due(&self) -> StoreResult<Vec<Pusher>> {
        self.pool
            .read(move |conn| {
                select(
                    conn,
                    "WHERE EXISTS (SELECT 1 FROM push_actions a
                                   WHERE a.user_id = p.user_id AND a.pos > p.last_pos)",
                    [],
                )
                .map_err(classify)
            })
            .await
    }

    pub(super) async fn move_pusher(
        &self,
        user_id: &str,
        app_id: &str,
        pushkey: &str,
        pos: u64,
    ) -> StoreResult<()> {
        let (user_id, app_id, pushkey) =
            (user_id.to_owned(), app_id.to_owned(), pushkey.to_owned());
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE pushers SET last_pos = MAX(last_pos, ?4)
                     WHERE user_id = ?1 AND app_id = ?2 AND pushkey = ?3",
                )
                .and_then(|mut s| s.execute(params![user_id, app_id, pushkey, pos_param(pos)]))
                .map(drop)
                .map_err(classify)
            })
            .await
    }
}
