-- Presence (`presence.yaml`), one row per user who ever had one. A change of state or status
-- message takes a position of the presence stream; the activity and sync times are kept
-- without one (they are read, not delivered as changes).
CREATE TABLE presence (
    user_id         TEXT PRIMARY KEY NOT NULL,
    state           TEXT NOT NULL,
    status_msg      TEXT,
    last_active_ts  INTEGER NOT NULL,
    last_sync_ts    INTEGER NOT NULL,
    pos             INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX presence_pos ON presence (pos);
CREATE INDEX presence_live ON presence (state, last_sync_ts);

INSERT INTO stream_positions (stream, pos) VALUES ('presence', 0);
