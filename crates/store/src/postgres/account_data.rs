//! Account data on PostgreSQL. A write takes its position through [`Held`] (see
//! [`super::positions`]), writes on the same session, and ends the position's flight right
//! after the commit.

use async_trait::async_trait;

use super::*;
use crate::AccountDataStore;

#[async_trait]
impl AccountDataStore for PostgresStore {
    async fn put_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
        content: &str,
    ) -> StoreResult<u64> {
        // Three round trips on one connection: the position (and its lock), the write in a
        // transaction of one statement, then the end of the position's flight together with
        // the notification.
        let (mut held, positions) = Held::allocate(&self.pool, Stream::AccountData, 1).await?;
        let Some(&pos) = positions.first() else {
            return Err(backend("no position allocated"));
        };
        let written = upsert_account_data(
            held.conn()?,
            user_id,
            room_id.unwrap_or(""),
            data_type,
            content,
            pos,
        )
        .await;
        match written {
            Ok(()) => {
                held.release(&[account_data_note(pos, user_id)], true).await;
                Ok(pos as u64)
            }
            Err(err) => {
                held.release(&[], false).await;
                Err(err)
            }
        }
    }

    async fn get_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
    ) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3",
        )
        .bind(user_id)
        .bind(room_id.unwrap_or(""))
        .bind(data_type)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)
    }

    async fn account_data_changes(
        &self,
        user_id: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<AccountDataChange>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT room_id, data_type, content, stream_pos FROM account_data
             WHERE user_id = $1 AND stream_pos > $2 AND stream_pos <= $3
             ORDER BY stream_pos",
        )
        .bind(user_id)
        .bind(after.map_or(-1, |a| a as i64))
        .bind(upto as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(room, data_type, content, pos)| AccountDataChange {
                room_id: (!room.is_empty()).then_some(room),
                data_type,
                content,
                pos: pos as u64,
            })
            .collect())
    }
}
