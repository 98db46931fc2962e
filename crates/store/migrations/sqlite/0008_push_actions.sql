-- One row per event that notifies a user (push actions with `notify`), written in the
-- event's own transaction so its count moves in the same sync as the event (PE-19). Counts
-- are positional (PE-21..26): a read receipt clears `unread` up to its event, for its thread
-- or, unthreaded, for every thread; the rows stay for `GET /notifications`.
CREATE TABLE push_actions (
    user_id    TEXT NOT NULL,
    pos        INTEGER NOT NULL,
    room_id    TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    -- 'main' for the main timeline, else the thread root's event ID.
    thread_id  TEXT NOT NULL,
    highlight  INTEGER NOT NULL,
    actions    TEXT NOT NULL,
    unread     INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    PRIMARY KEY (user_id, pos)
) WITHOUT ROWID;

-- Counting reads the unread rows only; they stay few because receipts clear them. No index
-- on event_id: a redaction finds its rows by position, and each index costs every notified
-- member's row of every event.
CREATE INDEX push_actions_unread ON push_actions (user_id, room_id, thread_id, pos)
    WHERE unread = 1;
