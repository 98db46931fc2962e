-- Receipts, one per room, user, type and thread ('' unthreaded), at the position of the
-- event they point to (so they never move backwards) and at their own stream position.
CREATE TABLE receipts (
    room_id       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    receipt_type  TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    event_pos     INTEGER NOT NULL,
    ts            INTEGER NOT NULL,
    stream_pos    INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
) WITHOUT ROWID;

CREATE INDEX receipts_stream ON receipts (room_id, stream_pos);

-- Who types where, until when; and each room's latest typing position.
CREATE TABLE typing (
    room_id   TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    until_ts  INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;

CREATE TABLE typing_rooms (
    room_id  TEXT PRIMARY KEY NOT NULL,
    pos      INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO stream_positions (stream, pos) VALUES ('receipts', 0), ('typing', 0);
