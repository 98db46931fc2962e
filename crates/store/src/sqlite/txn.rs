//! A unit of work on the SQLite writer: one job of the writer's batch that stays open while
//! `core` drives it step by step.
//!
//! The job waits on the writer thread for the next step, runs it on the writer's connection
//! (inside the batch transaction, under the job's own SAVEPOINT) and sends the result back. A
//! commit ends the job successfully; its outcome arrives once the batch's `COMMIT` returned,
//! like any other write. Dropping the [`SqliteTxn`] closes the step channel, the job fails and
//! its savepoint is rolled back. The writer is busy with this job until then, which is why a
//! holder must not wait for another write while it holds a `Txn`.

use std::sync::mpsc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{
    next_pos,
    pool::{Pool, classify},
    room_key,
};
use crate::{NewLogin, StoreError, StoreResult, Stream, Txn};

/// A step runs on the writer's connection and tells whether it succeeded.
type Step = Box<dyn FnOnce(&Connection) -> bool + Send>;

enum Msg {
    Step(Step),
    Commit,
}

pub(crate) struct SqliteTxn {
    user_id: String,
    steps: mpsc::Sender<Msg>,
    done: oneshot::Receiver<StoreResult<()>>,
}

impl SqliteTxn {
    pub(crate) fn begin(pool: &Pool, user_id: &str) -> StoreResult<Self> {
        let (steps, inbox) = mpsc::channel::<Msg>();
        let done = pool.submit(move |conn| {
            loop {
                match inbox.recv() {
                    // After a failed step nothing more runs: SQLite may have rolled back the
                    // whole batch, and later steps would then commit on their own.
                    Ok(Msg::Step(step)) => {
                        if !step(conn) {
                            return Err(StoreError::Backend(
                                "a step of the unit of work failed".into(),
                            ));
                        }
                    }
                    Ok(Msg::Commit) => return Ok(()),
                    Err(_) => return Err(StoreError::Backend("unit of work abandoned".into())),
                }
            }
        })?;
        Ok(Self {
            user_id: user_id.to_owned(),
            steps,
            done,
        })
    }

    pub(super) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let user_id = self.user_id.clone();
        let step: Step = Box::new(move |conn| {
            let outcome = f(conn, &user_id);
            let ok = outcome.is_ok();
            let _ = tx.send(outcome);
            ok
        });
        self.steps
            .send(Msg::Step(step))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?.map_err(classify)
    }
}

#[async_trait]
impl Txn for SqliteTxn {
    async fn existing_devices(&mut self, device_ids: &[String]) -> StoreResult<Vec<String>> {
        let mut wanted = device_ids.to_vec();
        self.run(move |conn, user_id| {
            wanted.sort();
            wanted.dedup();
            let mut stmt =
                conn.prepare_cached("SELECT 1 FROM devices WHERE user_id = ?1 AND device_id = ?2")?;
            let mut found = Vec::new();
            for device_id in wanted {
                if stmt
                    .query_row(params![user_id, device_id], |_| Ok(()))
                    .optional()?
                    .is_some()
                {
                    found.push(device_id);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn count_devices(&mut self) -> StoreResult<u64> {
        self.run(|conn, user_id| {
            conn.prepare_cached("SELECT COUNT(*) FROM devices WHERE user_id = ?1")?
                .query_row([user_id], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
        .await
    }

    async fn device_ids(&mut self) -> StoreResult<Vec<String>> {
        self.run(|conn, user_id| {
            conn.prepare_cached(
                "SELECT device_id FROM devices WHERE user_id = ?1 ORDER BY device_id",
            )?
            .query_map([user_id], |r| r.get(0))?
            .collect()
        })
        .await
    }

    async fn is_deactivated(&mut self) -> StoreResult<bool> {
        self.run(|conn, user_id| {
            conn.prepare_cached("SELECT deactivated FROM users WHERE user_id = ?1")?
                .query_row([user_id], |r| r.get::<_, bool>(0))
                .optional()
                .map(|d| d.unwrap_or(false))
        })
        .await
    }

    async fn set_password_hash(&mut self, hash: &str) -> StoreResult<()> {
        let hash = hash.to_owned();
        self.run(move |conn, user_id| {
            conn.prepare_cached("UPDATE users SET password_hash = ?2 WHERE user_id = ?1")?
                .execute(params![user_id, hash])?;
            Ok(())
        })
        .await
    }

    async fn deactivate(&mut self, erase: bool) -> StoreResult<()> {
        self.run(move |conn, user_id| {
            if erase {
                conn.prepare_cached(
                    "INSERT INTO erased_users (user_id, pos)
                     SELECT ?1, pos FROM stream_positions WHERE stream = 'room_events'
                     ON CONFLICT (user_id) DO NOTHING",
                )?
                .execute([user_id])?;
                // Erased words are not found again. Erasure is rare: the scan of events by
                // sender is not worth an index kept on every append.
                conn.prepare_cached(
                    "DELETE FROM event_search
                     WHERE rowid IN (SELECT pos FROM events WHERE sender = ?1)",
                )?
                .execute([user_id])?;
            }
            for statement in [
                "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?1",
                "DELETE FROM profile_fields WHERE user_id = ?1",
                "DELETE FROM account_data WHERE user_id = ?1",
                "DELETE FROM backup_keys WHERE user_id = ?1",
                "DELETE FROM backup_versions WHERE user_id = ?1",
            ] {
                conn.prepare_cached(statement)?.execute([user_id])?;
            }
            Ok(())
        })
        .await
    }

    async fn least_recently_used(&mut self, n: u64) -> StoreResult<Vec<String>> {
        self.run(move |conn, user_id| {
            conn.prepare_cached(
                "SELECT device_id FROM devices WHERE user_id = ?1
                 ORDER BY COALESCE(last_seen_ts, created_ts) ASC, device_id LIMIT ?2",
            )?
            .query_map(params![user_id, n as i64], |r| r.get(0))?
            .collect()
        })
        .await
    }

    async fn create_device(&mut self, login: &NewLogin) -> StoreResult<()> {
        let login = login.clone();
        self.run(move |conn, user_id| super::insert_device(conn, user_id, &login))
            .await
    }

    async fn touch_device(&mut self, login: &NewLogin) -> StoreResult<()> {
        let login = login.clone();
        self.run(move |conn, user_id| {
            conn.prepare_cached(
                "UPDATE devices SET last_seen_ts = ?3, last_seen_ip = COALESCE(?4, last_seen_ip)
                 WHERE user_id = ?1 AND device_id = ?2",
            )?
            .execute(params![user_id, login.device_id, login.now_ms, login.ip])?;
            Ok(())
        })
        .await
    }

    async fn revoke_tokens(&mut self, device_id: &str) -> StoreResult<()> {
        let device_id = device_id.to_owned();
        self.run(move |conn, user_id| {
            conn.prepare_cached("DELETE FROM access_tokens WHERE user_id = ?1 AND device_id = ?2")?
                .execute(params![user_id, device_id])?;
            conn.prepare_cached(
                "DELETE FROM refresh_tokens WHERE user_id = ?1 AND device_id = ?2",
            )?
            .execute(params![user_id, device_id])?;
            Ok(())
        })
        .await
    }

    async fn add_token(&mut self, login: &NewLogin) -> StoreResult<()> {
        let login = login.clone();
        self.run(move |conn, user_id| super::insert_token(conn, user_id, &login))
            .await
    }

    async fn delete_devices(&mut self, device_ids: &[String]) -> StoreResult<()> {
        let device_ids = device_ids.to_vec();
        self.run(move |conn, user_id| {
            let mut tokens = conn.prepare_cached(
                "DELETE FROM access_tokens WHERE user_id = ?1 AND device_id = ?2",
            )?;
            let mut devices =
                conn.prepare_cached("DELETE FROM devices WHERE user_id = ?1 AND device_id = ?2")?;
            let mut lazy = conn
                .prepare_cached("DELETE FROM lazy_members WHERE user_id = ?1 AND device_id = ?2")?;
            for device_id in &device_ids {
                tokens.execute(params![user_id, device_id])?;
                devices.execute(params![user_id, device_id])?;
                lazy.execute(params![user_id, device_id])?;
                super::e2ee::delete_device_keys(conn, user_id, device_id)?;
                super::pushers::delete_for_device(conn, user_id, device_id)?;
            }
            if !device_ids.is_empty() {
                super::e2ee::record_device_change(conn, user_id)?;
            }
            Ok(())
        })
        .await
    }

    async fn account_data_among(
        &mut self,
        room_id: Option<&str>,
        data_types: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        let (room, data_types) = (room_key(room_id).to_owned(), data_types.to_vec());
        self.run(move |conn, user_id| {
            let mut stmt = conn.prepare_cached(
                "SELECT content FROM account_data
                 WHERE user_id = ?1 AND room_id = ?2 AND data_type = ?3",
            )?;
            let mut found = Vec::new();
            for data_type in data_types {
                let content: Option<String> = stmt
                    .query_row(params![user_id, room, data_type], |r| r.get(0))
                    .optional()?;
                if let Some(content) = content {
                    found.push((data_type, content));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn account_data_bytes_except(
        &mut self,
        room_id: Option<&str>,
        data_type: &str,
    ) -> StoreResult<u64> {
        let (room, data_type) = (room_key(room_id).to_owned(), data_type.to_owned());
        self.run(move |conn, user_id| {
            conn.prepare_cached(
                "SELECT COALESCE(SUM(LENGTH(CAST(content AS BLOB)) + LENGTH(CAST(data_type AS BLOB))), 0)
                 FROM account_data
                 WHERE user_id = ?1 AND NOT (room_id = ?2 AND data_type = ?3)",
            )?
            .query_row(params![user_id, room, data_type], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
        })
        .await
    }

    async fn put_account_data(
        &mut self,
        room_id: Option<&str>,
        data_type: &str,
        content: &str,
    ) -> StoreResult<u64> {
        let (room, data_type, content) = (
            room_key(room_id).to_owned(),
            data_type.to_owned(),
            content.to_owned(),
        );
        self.run(move |conn, user_id| {
            let pos = next_pos(conn, Stream::AccountData)?;
            super::upsert_account_data(conn, user_id, &room, &data_type, &content, pos)?;
            Ok(pos)
        })
        .await
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let Self { steps, done, .. } = *self;
        steps.send(Msg::Commit).map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
    }
}
