//! Account data on SQLite.

use async_trait::async_trait;

use super::*;
use crate::AccountDataStore;

#[async_trait]
impl AccountDataStore for SqliteStore {
    async fn put_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
        content: &str,
    ) -> StoreResult<u64> {
        let (user_id, room, data_type, content) = (
            user_id.to_owned(),
            room_key(room_id).to_owned(),
            data_type.to_owned(),
            content.to_owned(),
        );
        self.pool
            .write(move |conn| {
                let pos = next_pos(conn, Stream::AccountData).map_err(classify)?;
                upsert_account_data(conn, &user_id, &room, &data_type, &content, pos)
                    .map_err(classify)?;
                Ok(pos)
            })
            .await
    }

    async fn get_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
    ) -> StoreResult<Option<String>> {
        let (user_id, room_id, data_type) = (
            user_id.to_owned(),
            room_key(room_id).to_owned(),
            data_type.to_owned(),
        );
        self.pool
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT content FROM account_data
                     WHERE user_id = ?1 AND room_id = ?2 AND data_type = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(params![user_id, room_id, data_type], |r| r.get(0))
                        .optional()
                })
                .map_err(classify)
            })
            .await
    }

    async fn account_data_changes(
        &self,
        user_id: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<AccountDataChange>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                let after = after.map_or(-1, |a| a as i64);
                conn.prepare_cached(
                    "SELECT room_id, data_type, content, stream_pos FROM account_data
                     WHERE user_id = ?1 AND stream_pos > ?2 AND stream_pos <= ?3
                     ORDER BY stream_pos",
                )
                .and_then(|mut s| {
                    s.query_map(params![user_id, after, upto as i64], |r| {
                        let room: String = r.get(0)?;
                        Ok(AccountDataChange {
                            room_id: (!room.is_empty()).then_some(room),
                            data_type: r.get(1)?,
                            content: r.get(2)?,
                            pos: r.get::<_, i64>(3)? as u64,
                        })
                    })?
                    .collect::<Result<_, _>>()
                })
                .map_err(classify)
            })
            .await
    }
}
