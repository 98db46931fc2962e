//! Receipts and typing on PostgreSQL. Positions are taken inside the writing transaction
//! (see [`super::positions`]); the notifications wake the room's members on every instance,
//! or only the owner for a private receipt.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::*;
use crate::{EphemeralStore, Receipt, pos_param};

async fn next_in_tx(conn: &mut PgConnection, stream: Stream) -> StoreResult<i64> {
    sqlx::query_scalar("UPDATE stream_positions SET pos = pos + 1 WHERE stream = $1 RETURNING pos")
        .bind(stream.name())
        .fetch_one(conn)
        .await
        .map_err(classify)
}

async fn bump_typing(conn: &mut PgConnection, room_id: &str) -> StoreResult<i64> {
    let pos = next_in_tx(&mut *conn, Stream::Typing).await?;
    sqlx::query(
        "INSERT INTO typing_rooms (room_id, pos) VALUES ($1, $2)
         ON CONFLICT (room_id) DO UPDATE SET pos = excluded.pos",
    )
    .bind(room_id)
    .bind(pos)
    .execute(conn)
    .await
    .map_err(classify)?;
    Ok(pos)
}

pub(super) type ReceiptRow = (String, String, String, String, String, i64);

pub(super) fn receipt_from_row(
    (room_id, user_id, receipt_type, thread, event_id, ts): ReceiptRow,
) -> Receipt {
    Receipt {
        room_id,
        user_id,
        receipt_type,
        thread_id: (!thread.is_empty()).then_some(thread),
        event_id,
        ts,
    }
}

#[async_trait]
impl EphemeralStore for PostgresStore {
    async fn put_receipt(&self, receipt: Receipt, event_pos: u64) -> StoreResult<Option<u64>> {
        let thread = receipt.thread_id.clone().unwrap_or_default();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT event_pos FROM receipts WHERE room_id = $1 AND user_id = $2
               AND receipt_type = $3 AND thread_id = $4 FOR UPDATE",
        )
        .bind(&receipt.room_id)
        .bind(&receipt.user_id)
        .bind(&receipt.receipt_type)
        .bind(&thread)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        if stored.is_some_and(|p| p as u64 >= event_pos) {
            return Ok(None);
        }
        let pos = next_in_tx(&mut tx, Stream::Receipts).await?;
        // Two first receipts racing: the loser's insert waits, then updates only if still
        // newer, so a receipt never moves back.
        sqlx::query(
            "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, event_pos,
                                   ts, stream_pos)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE SET
                 event_id = excluded.event_id, event_pos = excluded.event_pos,
                 ts = excluded.ts, stream_pos = excluded.stream_pos
             WHERE receipts.event_pos < excluded.event_pos",
        )
        .bind(&receipt.room_id)
        .bind(&receipt.user_id)
        .bind(&receipt.receipt_type)
        .bind(&thread)
        .bind(&receipt.event_id)
        .bind(event_pos as i64)
        .bind(receipt.ts)
        .bind(pos)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if matches!(receipt.receipt_type.as_str(), "m.read" | "m.read.private") {
            push::read_up_to(
                &mut tx,
                &receipt.user_id,
                &receipt.room_id,
                receipt.thread_id.as_deref(),
                event_pos,
            )
            .await?;
        }
        tx.commit().await.map_err(classify)?;
        let note = if receipt.receipt_type == "m.read.private" {
            positions::private_receipt_note(pos, &receipt.user_id)
        } else {
            positions::receipt_note(pos, &receipt.room_id)
        };
        positions::notify(&self.fast, &[note]).await;
        Ok(Some(pos as u64))
    }

    async fn receipts(
        &self,
        rooms: Vec<String>,
        reader: &str,
        after: Option<u64>,
        upto: u64,
    ) -> StoreResult<Vec<Receipt>> {
        let rows: Vec<ReceiptRow> = sqlx::query_as(
            "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts FROM receipts
             WHERE room_id = ANY($1) AND stream_pos > $2 AND stream_pos <= $3
               AND (receipt_type <> 'm.read.private' OR user_id = $4)
             ORDER BY stream_pos",
        )
        .bind(&rooms)
        .bind(after.map_or(-1, pos_param))
        .bind(pos_param(upto))
        .bind(reader)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows.into_iter().map(receipt_from_row).collect())
    }

    async fn set_typing(
        &self,
        room_id: &str,
        user_id: &str,
        until_ms: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<Option<u64>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let typing = sqlx::query_scalar::<_, i64>(
            "SELECT until_ts FROM typing WHERE room_id = $1 AND user_id = $2 FOR UPDATE",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        .is_some_and(|until| until > now_ms);
        match until_ms {
            Some(until) => {
                sqlx::query(
                    "INSERT INTO typing (room_id, user_id, until_ts) VALUES ($1, $2, $3)
                     ON CONFLICT (room_id, user_id) DO UPDATE SET until_ts = excluded.until_ts",
                )
                .bind(room_id)
                .bind(user_id)
                .bind(until)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                if typing {
                    tx.commit().await.map_err(classify)?;
                    return Ok(None);
                }
            }
            None => {
                let deleted = sqlx::query("DELETE FROM typing WHERE room_id = $1 AND user_id = $2")
                    .bind(room_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                if deleted.rows_affected() == 0 {
                    return Ok(None);
                }
            }
        }
        let pos = bump_typing(&mut tx, room_id).await?;
        tx.commit().await.map_err(classify)?;
        positions::notify(&self.fast, &[positions::typing_note(pos, room_id)]).await;
        Ok(Some(pos as u64))
    }

    async fn expire_typing(&self, now_ms: i64) -> StoreResult<Vec<String>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let mut rooms: Vec<String> =
            sqlx::query_scalar("DELETE FROM typing WHERE until_ts <= $1 RETURNING room_id")
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
        rooms.sort();
        rooms.dedup();
        let mut notes = Vec::with_capacity(rooms.len());
        for room in &rooms {
            let pos = bump_typing(&mut tx, room).await?;
            notes.push(positions::typing_note(pos, room));
        }
        tx.commit().await.map_err(classify)?;
        positions::notify(&self.fast, &notes).await;
        Ok(rooms)
    }

    async fn typing(
        &self,
        rooms: Vec<String>,
        after: Option<u64>,
        upto: u64,
        now_ms: i64,
    ) -> StoreResult<Vec<(String, Vec<String>)>> {
        let changed: Vec<String> = match after {
            Some(after) => sqlx::query_scalar(
                "SELECT room_id FROM typing_rooms WHERE room_id = ANY($1) AND pos > $2 AND pos <= $3",
            )
            .bind(&rooms)
            .bind(pos_param(after))
            .bind(pos_param(upto))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?,
            None => sqlx::query_scalar(
                "SELECT DISTINCT room_id FROM typing WHERE room_id = ANY($1) AND until_ts > $2",
            )
            .bind(&rooms)
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?,
        };
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT room_id, user_id FROM typing WHERE room_id = ANY($1) AND until_ts > $2
             ORDER BY user_id",
        )
        .bind(&changed)
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(changed
            .into_iter()
            .map(|room| {
                let users = rows
                    .iter()
                    .filter(|(r, _)| *r == room)
                    .map(|(_, u)| u.clone())
                    .collect();
                (room, users)
            })
            .collect())
    }
}
