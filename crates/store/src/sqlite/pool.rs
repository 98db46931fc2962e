//! Connections to one SQLite database: a single writer thread with group commit, and a pool
//! of read-only connections.
//!
//! Invariant: a write job's reply is sent only after the `COMMIT` that contains it has
//! returned, and only after the stream watermarks have been re-read from the committed state.
//! A caller that sees `Ok` may therefore acknowledge the request (the data is durable per the
//! configured `synchronous` level) and wake sync waiters, which will find the new watermark.
//!
//! Group commit: jobs that queue up while a transaction is running are executed together in
//! the next transaction, each inside its own SAVEPOINT, so a failing job rolls back alone and
//! one fsync covers the whole batch. Each job is still one atomic unit of work.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{StoreError, StoreResult, Stream, StreamPositions};

type Reply = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A queued write. Called with `None` when no transaction could be opened: the job must then
/// not touch the database and only report the failure.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

/// Page cache per connection. The operating system caches the file for every connection
/// alike, so the readers' own caches only spare a copy: small ones keep the server's memory
/// low (8 MiB each counted against the process as the database grew past them).
const WRITER_CACHE_KIB: i64 = 8000;
const READER_CACHE_KIB: i64 = 2000;

/// How many jobs at most share one transaction; bounds the latency a batch adds.
const MAX_BATCH: usize = 256;

/// The committed position of each stream, re-read after every `COMMIT`.
#[derive(Default)]
pub(crate) struct Watermarks([AtomicU64; Stream::ALL.len()]);

impl Watermarks {
    pub(crate) fn get(&self) -> StreamPositions {
        let mut positions = StreamPositions::default();
        for stream in Stream::ALL {
            positions.set(stream, self.0[stream.index()].load(Ordering::Acquire));
        }
        positions
    }
}

pub(crate) struct Pool {
    writer: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    reader_slots: Semaphore,
    pub(crate) watermarks: Arc<Watermarks>,
}

pub(crate) fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

/// Tells input SQLite refuses (a value over its length limit) from a failing database.
pub(crate) fn classify(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::TooBig) => StoreError::Invalid(err.to_string()),
        _ => backend(err),
    }
}

fn configure(conn: &Connection, synchronous: &str, cache_kib: i64) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    // Rooms brought the statements of one connection past rusqlite's default of 16: each
    // evicted statement was parsed and planned again on its next use.
    conn.set_prepared_statement_cache_capacity(128);
    // SQLite's planner may use the values bound to a range (`pos > ?`) and then plans the
    // statement again for every new value: `/sync`'s to-device read was parsed anew on every
    // call. The plans do not depend on values here; keep each one.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Runs several statements of one read in one snapshot. Each statement alone would take
/// and release the WAL's read lock (two `fcntl` calls), the larger part of a small query's
/// cost when a sync makes a dozen of them.
pub(crate) fn snapshot<T>(
    conn: &Connection,
    f: impl FnOnce() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let out = f();
    // A connection left inside the transaction would read this snapshot for ever.
    if let Err(err) = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
    {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(err);
    }
    out
}

pub(crate) fn read_watermarks(conn: &Connection, marks: &Watermarks) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("SELECT stream, pos FROM stream_positions")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (stream, pos) = row?;
        if let Some(stream) = Stream::from_name(&stream) {
            marks.0[stream.index()].store(pos as u64, Ordering::Release);
        }
    }
    Ok(())
}

impl Pool {
    pub(crate) fn open(
        path: &Path,
        readers: usize,
        synchronous: &str,
        migrate: impl FnOnce(&mut Connection) -> StoreResult<()>,
    ) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let mut writer = Connection::open(path).map_err(backend)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        configure(&writer, synchronous, WRITER_CACHE_KIB).map_err(backend)?;
        migrate(&mut writer)?;

        let watermarks = Arc::new(Watermarks::default());
        read_watermarks(&writer, &watermarks).map_err(backend)?;

        let mut pool = Vec::with_capacity(readers);
        for _ in 0..readers.max(1) {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(backend)?;
            configure(&conn, synchronous, READER_CACHE_KIB).map_err(backend)?;
            pool.push(conn);
        }

        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let marks = watermarks.clone();
        let handle = thread::Builder::new()
            .name("myelin-sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx, &marks))
            .map_err(backend)?;

        Ok(Self {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(handle)),
            reader_slots: Semaphore::new(pool.len()),
            readers: Mutex::new(pool),
            watermarks,
        })
    }

    /// Runs `f` in the writer's next transaction and resolves once that transaction has
    /// committed. An `Err` from `f` rolls back `f`'s own changes only.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(f)?.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues `f` for the writer and returns where its outcome will arrive (after `COMMIT`).
    /// The job runs even if nobody waits for the outcome.
    pub(crate) fn submit<T, F>(&self, f: F) -> StoreResult<oneshot::Receiver<StoreResult<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn| {
            let outcome = match conn {
                Some(conn) => f(conn),
                None => Err(StoreError::Backend("could not open a transaction".into())),
            };
            let ok = outcome.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(commit.and(outcome));
            });
            (ok, reply)
        });
        let sender = self
            .writer
            .lock()
            .map_err(backend)?
            .clone()
            .ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Runs `f` on a read-only connection. Readers never wait for the writer (WAL).
    ///
    /// Reads run on the calling task's thread: they are indexed lookups served from SQLite's
    /// page cache in microseconds, and handing each one to a blocking thread cost more than
    /// the query itself (a third of the throughput of `GET` account data in the benchmark).
    pub(crate) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let _permit = self
            .reader_slots
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let conn = self
            .readers
            .lock()
            .map_err(backend)?
            .pop()
            .ok_or(StoreError::Closed)?;
        let guard = Lent {
            conn: Some(conn),
            home: &self.readers,
        };
        guard.conn.as_ref().map_or(Err(StoreError::Closed), f)
    }

    /// Stops accepting writes, lets queued ones finish, and joins the writer thread.
    pub(crate) async fn close(&self) {
        let sender = self.writer.lock().ok().and_then(|mut w| w.take());
        drop(sender);
        let handle = self.writer_thread.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.reader_slots.close();
    }
}

/// A reader connection on loan; it goes back to the pool even if the query panics.
struct Lent<'a> {
    conn: Option<Connection>,
    home: &'a Mutex<Vec<Connection>>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut pool)) = (self.conn.take(), self.home.lock()) {
            pool.push(conn);
        }
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>, marks: &Watermarks) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch, marks);
    }
    // Checkpoint so the database file is self-contained after a clean shutdown.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    tracing::debug!("sqlite writer stopped");
}

fn run_batch(conn: &Connection, batch: Vec<Job>, marks: &Watermarks) {
    let started = std::time::Instant::now();
    metrics::histogram!("myelin_db_write_batch_size").record(batch.len() as f64);
    let _timed = Timed(started);
    if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %err, "BEGIN failed");
        for job in batch {
            let (_, reply) = job(None);
            reply(Err(backend(&err)));
        }
        return;
    }
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        // Some errors (disk full, I/O) make SQLite roll back the whole transaction, not just
        // the savepoint. The jobs after it must then not run: outside a transaction each
        // would commit on its own, and the batch would report them failed.
        if conn.is_autocommit() {
            let (_, reply) = job(None);
            replies.push((
                reply,
                Err(StoreError::Backend("transaction aborted".into())),
            ));
            continue;
        }
        let savepoint = conn.execute_batch("SAVEPOINT job");
        let (ok, reply) = job(Some(conn));
        let finish = if ok {
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        let status = savepoint.and(finish).map_err(backend);
        replies.push((reply, status));
    }
    let commit = conn.execute_batch("COMMIT").map_err(backend);
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    if let Err(err) = read_watermarks(conn, marks) {
        tracing::error!(error = %err, "reading stream watermarks failed");
    }
    for (reply, status) in replies {
        let outcome = match (&commit, status) {
            (Err(err), _) => Err(StoreError::Backend(err.to_string())),
            (Ok(()), Err(err)) => Err(err),
            (Ok(()), Ok(())) => Ok(()),
        };
        reply(outcome);
    }
}

/// Records a write transaction's time (from `BEGIN` to the replies) when dropped, whichever
/// way the batch ends.
struct Timed(std::time::Instant);

impl Drop for Timed {
    fn drop(&mut self) {
        metrics::histogram!(
            "myelin_db_transaction_duration_seconds",
            "backend" => "sqlite",
            "operation" => "write_batch"
        )
        .record(self.0.elapsed().as_secs_f64());
    }
}
