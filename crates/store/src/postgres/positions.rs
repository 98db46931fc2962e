//! Stream positions with writers on several processes (SY-09), and the wake-ups between them.
//!
//! A write that stands alone (the common account-data PUT) takes its position in a short
//! transaction of its own, because the position must be visible to readers as *in flight*
//! before the write commits; that short transaction also takes a session-level advisory lock
//! keyed by the position, **on the connection that then performs the write**. The lock is the
//! in-flight marker: a stream's watermark is the lowest position whose lock is held, minus
//! one, or its counter when none is. A write with a lower position that commits late holds
//! the watermark back until it is visible, so a sync never jumps past a change it has not
//! seen. Because marker and write share one session, the marker cannot vanish while the write
//! may still commit: if the session dies, the write dies with it.
//!
//! The lock lives as long as its owner wants it *and* is alive: the writer releases it right
//! after its commit, and a process that dies takes its sessions, and their locks, with it
//! (server-side TCP keepalives bound how long a silent host can hold one). The first design
//! kept in-flight rows in a table, and a killed instance's rows held every other instance's
//! syncs until a reaper removed them ten minutes later. Session locks rule out a pooler in
//! transaction mode (PgBouncer `pool_mode = transaction`) between Myelin and PostgreSQL.
//!
//! A unit of work ([`super::txn`]) instead takes its positions inside its own transaction:
//! the counter's new value is invisible until that commit, which therefore needs no marker, at
//! the price of making other writers of the stream wait for it (deletions and quota'd writes
//! only).
//!
//! Wake-ups: after a commit, the writer sends `NOTIFY myelin`. Every process listens; an
//! account-data notification whose position is still above the watermark is held until the
//! watermark reaches it, re-checked on every notification and twice a second, so the woken
//! sync finds the change.

use std::{collections::BTreeMap, time::Duration};

use sqlx::{PgConnection, PgPool, Postgres, pool::PoolConnection, postgres::PgListener};
use tokio::sync::mpsc;

use super::backend;
use crate::{StoreResult, Stream, StreamPositions, Wakeup};

pub(super) const CHANNEL: &str = "myelin";

/// Lock keys: the stream's tag (index + 1) in the top 16 bits, the position below. Other
/// advisory locks of Myelin (migrations) use tags that no stream has.
const TAG_SHIFT: u32 = 48;
const POS_MASK: i64 = (1 << TAG_SHIFT) - 1;

fn tag(stream: Stream) -> i64 {
    stream.index() as i64 + 1
}

/// The tag of rooms' write locks (see `rooms::PgRoomLock`), far above any stream's.
const ROOM_TAG: i64 = 0x7fff;

/// A room's write-lock key: its tag, and a hash of the room ID below (rooms that share a
/// hash only wait for each other). FNV-1a, written out so that every process, whatever
/// build it runs, computes the same key.
pub(super) fn room_lock_key(room_id: &str) -> i64 {
    let hash = room_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (ROOM_TAG << TAG_SHIFT) | (hash as i64 & POS_MASK)
}

/// A connection whose session holds positions in flight. Write through [`Held::conn`], then
/// [`Held::release`]; dropping a `Held` instead closes its connection, which releases the
/// locks just the same (a panicking or cancelled writer can never leave one behind).
pub(super) struct Held {
    conn: Option<PoolConnection<Postgres>>,
}

impl Held {
    /// Takes `n` consecutive positions of `stream` on a connection of `pool`. The allocation
    /// commits without waiting for the disk: the write's own commit comes later in the WAL and
    /// makes it durable too (and [`Held::release`] flushes it when the write failed).
    pub(super) async fn allocate(
        pool: &PgPool,
        stream: Stream,
        n: i64,
    ) -> StoreResult<(Held, Vec<i64>)> {
        let conn = pool.acquire().await.map_err(backend)?;
        Self::allocate_on(conn, stream, n).await
    }

    /// [`Held::allocate`] on a connection the caller already has (one holding a room's
    /// lock: [`Held::release`] then ends that too).
    pub(super) async fn allocate_on(
        mut conn: PoolConnection<Postgres>,
        stream: Stream,
        n: i64,
    ) -> StoreResult<(Held, Vec<i64>)> {
        let allocated = sqlx::query_scalar(
            "WITH p AS (UPDATE stream_positions SET pos = pos + $2 WHERE stream = $1 RETURNING pos)
             SELECT g FROM p, generate_series(p.pos - $2 + 1, p.pos) AS g,
                  LATERAL (SELECT pg_advisory_lock(($3::BIGINT << 48) | g),
                                  set_config('synchronous_commit', 'off', true)) AS l
             ORDER BY g",
        )
        .bind(stream.name())
        .bind(n)
        .bind(tag(stream))
        .fetch_all(&mut *conn)
        .await;
        // Session locks survive a rollback, so a failed allocation may still hold some: the
        // connection must not go back to the pool.
        let held = Held { conn: Some(conn) };
        match allocated {
            Ok(positions) => Ok((held, positions)),
            Err(err) => Err(backend(err)),
        }
    }

    /// The session that holds the positions, for the write that uses them.
    pub(super) fn conn(&mut self) -> StoreResult<&mut PgConnection> {
        self.conn
            .as_deref_mut()
            .ok_or_else(|| backend("positions already released"))
    }

    /// Ends the flight of every held position and sends `notes`, in one round trip, once the
    /// write has committed (`committed`) or failed. After a failure the allocation is first
    /// made durable: otherwise a crash could hand the same position out again after syncs had
    /// already passed it.
    pub(super) async fn release(mut self, notes: &[String], committed: bool) {
        let Some(conn) = self.conn.as_deref_mut() else {
            return;
        };
        if !committed
            && let Err(err) = sqlx::query("SELECT txid_current()")
                .execute(&mut *conn)
                .await
        {
            tracing::error!(error = %err, "flushing a failed write's allocation failed");
            return;
        }
        let released = sqlx::query(
            "SELECT pg_advisory_unlock_all(), set_config('synchronous_commit', 'off', true),
                    (SELECT COUNT(pg_notify($1, n)) FROM UNNEST($2::TEXT[]) AS n)",
        )
        .bind(CHANNEL)
        .bind(notes)
        .execute(&mut *conn)
        .await;
        match released {
            // Back to the pool, holding nothing.
            Ok(_) => drop(self.conn.take()),
            Err(err) => {
                tracing::error!(error = %err, "releasing stream positions failed; closing the connection");
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Not released: the session must not go back to the pool with its locks, and
            // closing it releases them.
            drop(conn.detach());
        }
    }
}

/// Sends notifications after the change they announce has committed.
pub(super) async fn notify(fast: &PgPool, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    let sent = sqlx::query("SELECT pg_notify($1, n) FROM UNNEST($2::TEXT[]) AS n")
        .bind(CHANNEL)
        .bind(notes)
        .execute(fast)
        .await;
    if let Err(err) = sent {
        // Other processes' long-polls then wait for their timeout; nothing is lost.
        tracing::error!(error = %err, "sending change notifications failed");
    }
}

pub(super) fn account_data_note(pos: i64, user_id: &str) -> String {
    format!("ad:{pos}:{user_id}")
}

pub(super) fn devices_note(user_id: &str) -> String {
    format!("dev:{user_id}")
}

/// A user's devices changed at device-list position `pos`: they and their room-mates look.
pub(super) fn device_list_note(pos: i64, user_id: &str) -> String {
    format!("dl:{pos}:{user_id}")
}

/// A to-device message for this user at to-device position `pos`.
pub(super) fn to_device_note(pos: i64, user_id: &str) -> String {
    format!("td:{pos}:{user_id}")
}

/// A public receipt in this room at receipts position `pos`: its members look.
pub(super) fn receipt_note(pos: i64, room_id: &str) -> String {
    format!("rc:{pos}:{room_id}")
}

/// A private receipt: only its owner looks.
pub(super) fn private_receipt_note(pos: i64, user_id: &str) -> String {
    format!("rp:{pos}:{user_id}")
}

/// This room's typing list changed at typing position `pos`.
pub(super) fn typing_note(pos: i64, room_id: &str) -> String {
    format!("ty:{pos}:{room_id}")
}

/// A user's presence changed at presence position `pos`: they and their room-mates look.
pub(super) fn presence_note(pos: i64, user_id: &str) -> String {
    format!("pr:{pos}:{user_id}")
}

/// Something was appended to a room by process `instance`, the last event at `pos`: the
/// room's members look. The writing process woke its own waiters already.
pub(super) fn room_note(pos: i64, instance: &str, room_id: &str) -> String {
    format!("rm:{pos}:{instance}:{room_id}")
}

/// A user's membership changed at `pos`, in a room they may no longer be a member of.
pub(super) fn room_user_note(pos: i64, user_id: &str) -> String {
    format!("ru:{pos}:{user_id}")
}

/// A notification's stream, position and wake-up, for those held until the watermark
/// reaches their position.
fn parse_held(payload: &str, own: &str) -> Option<(Stream, i64, Wakeup)> {
    let (kind, rest) = payload.split_once(':')?;
    let (pos, id) = rest.split_once(':')?;
    let pos = pos.parse::<i64>().ok()?;
    let (stream, wakeup) = match kind {
        "ad" => (Stream::AccountData, Wakeup::User(id.to_owned())),
        "rm" => {
            let (instance, room) = id.split_once(':')?;
            if instance == own {
                return None;
            }
            (Stream::RoomEvents, Wakeup::Room(room.to_owned()))
        }
        "ru" => (Stream::RoomEvents, Wakeup::User(id.to_owned())),
        "dl" => (Stream::DeviceLists, Wakeup::RoomMates(id.to_owned())),
        "td" => (Stream::ToDevice, Wakeup::User(id.to_owned())),
        "rc" => (Stream::Receipts, Wakeup::Room(id.to_owned())),
        "rp" => (Stream::Receipts, Wakeup::User(id.to_owned())),
        "ty" => (Stream::Typing, Wakeup::Room(id.to_owned())),
        "pr" => (Stream::Presence, Wakeup::RoomMates(id.to_owned())),
        _ => return None,
    };
    Some((stream, pos, wakeup))
}

/// The watermark of every stream, in one statement.
pub(super) async fn watermarks(pool: &PgPool) -> StoreResult<StreamPositions> {
    let names: Vec<&str> = Stream::ALL.iter().map(|s| s.name()).collect();
    let tags: Vec<i64> = Stream::ALL.iter().map(|s| tag(*s)).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "WITH held AS (
            SELECT (l.classid::BIGINT << 32) | l.objid::BIGINT AS k FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
         SELECT s.stream, LEAST(s.pos, COALESCE(
             (SELECT MIN(h.k & $3) - 1 FROM held h WHERE h.k >> 48 = t.tag), s.pos))
         FROM stream_positions s JOIN UNNEST($1::TEXT[], $2::BIGINT[]) AS t(stream, tag)
           ON t.stream = s.stream",
    )
    .bind(&names)
    .bind(&tags)
    .bind(POS_MASK)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    let mut positions = StreamPositions::default();
    for (name, pos) in rows {
        if let Some(stream) = Stream::from_name(&name) {
            positions.set(stream, pos.max(0) as u64);
        }
    }
    Ok(positions)
}

/// Receives notifications from every process and turns them into wake-ups, holding those of
/// a stream (account data, room events, device lists, to-device) until the stream's watermark covers their position.
pub(super) async fn listen(
    mut listener: PgListener,
    pool: PgPool,
    own: String,
    wake: mpsc::UnboundedSender<Wakeup>,
) {
    let mut held: BTreeMap<(usize, i64), Vec<Wakeup>> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(Some(note)) => {
                    let payload = note.payload();
                    if let Some((stream, pos, wakeup)) = parse_held(payload, &own) {
                        held.entry((stream.index(), pos)).or_default().push(wakeup);
                    } else if let Some(user) = payload.strip_prefix("dev:") {
                        let _ = wake.send(Wakeup::User(user.to_owned()));
                    }
                }
                Ok(None) => {
                    // The connection was lost and is re-established by the next receive:
                    // notifications sent meanwhile are gone, so every waiter looks again.
                    tracing::warn!("lost the notification connection; waking every sync");
                    let _ = wake.send(Wakeup::All);
                }
                Err(err) => {
                    tracing::error!(error = %err, "notification listener failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = wake.send(Wakeup::All);
                }
            },
            // A writer that died released its positions without a word: look again now and
            // then, so changes held behind it are delivered within a second.
            _ = tick.tick() => {}
        }
        if wake.is_closed() {
            return;
        }
        if held.is_empty() {
            continue;
        }
        match watermarks(&pool).await {
            Ok(marks) => {
                let due: Vec<(usize, i64)> = held
                    .keys()
                    .filter(|(stream, pos)| {
                        Stream::ALL
                            .get(*stream)
                            .is_some_and(|s| marks.get(*s) as i64 >= *pos)
                    })
                    .copied()
                    .collect();
                for key in due {
                    for wakeup in held.remove(&key).unwrap_or_default() {
                        let _ = wake.send(wakeup);
                    }
                }
            }
            Err(err) => tracing::error!(error = %err, "reading the watermark failed"),
        }
    }
}
