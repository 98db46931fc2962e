-- Rooms (see src/rooms.rs for the invariants these tables keep).

-- This server's ed25519 signing key, as PKCS#8 DER; created at first start.
CREATE TABLE server_keys (
    key_id      TEXT PRIMARY KEY NOT NULL,
    secret      BLOB NOT NULL,
    created_ts  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE rooms (
    room_id     TEXT PRIMARY KEY NOT NULL,
    version     TEXT NOT NULL,
    creator     TEXT NOT NULL,
    published   INTEGER NOT NULL,
    created_ts  INTEGER NOT NULL
) WITHOUT ROWID;

-- Every event, keyed by its room-event stream position (which is also its topological order:
-- on one server the DAG is a line). `json` is the PDU exactly as signed.
CREATE TABLE events (
    pos          INTEGER PRIMARY KEY NOT NULL,
    event_id     TEXT NOT NULL UNIQUE,
    room_id      TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    state_key    TEXT,
    sender       TEXT NOT NULL,
    depth        INTEGER NOT NULL,
    json         TEXT NOT NULL,
    replaces     TEXT,
    redacted_by  TEXT,
    txn_device   TEXT,
    txn_id       TEXT,
    -- Federation will store events it refuses, to answer for them; none are yet.
    rejected     INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX events_room ON events (room_id, pos);

-- The DAG: each event's prev_events.
CREATE TABLE event_edges (
    event_id       TEXT NOT NULL,
    prev_event_id  TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
) WITHOUT ROWID;

CREATE TABLE room_extremities (
    room_id   TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    depth     INTEGER NOT NULL,
    PRIMARY KEY (room_id, event_id)
) WITHOUT ROWID;

-- State history: the entry for (type, state_key) is valid for positions in [from_pos, to_pos);
-- to_pos is NULL for current state.
CREATE TABLE room_state (
    room_id     TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    state_key   TEXT NOT NULL,
    from_pos    INTEGER NOT NULL,
    to_pos      INTEGER,
    event_id    TEXT NOT NULL,
    PRIMARY KEY (room_id, event_type, state_key, from_pos)
) WITHOUT ROWID;

CREATE INDEX room_state_current ON room_state (room_id, to_pos);
CREATE INDEX room_state_from ON room_state (room_id, from_pos);

-- Current membership of each user in each room, and the log of every change per user.
CREATE TABLE room_members (
    room_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    membership  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;

CREATE INDEX room_members_membership ON room_members (room_id, membership);

CREATE TABLE membership_log (
    user_id     TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    room_id     TEXT NOT NULL,
    membership  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    PRIMARY KEY (user_id, pos)
) WITHOUT ROWID;

-- A room the user forgot stays hidden while their latest membership position is <= pos.
CREATE TABLE room_forgets (
    user_id  TEXT NOT NULL,
    room_id  TEXT NOT NULL,
    pos      INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;

-- Transaction IDs, per user, device and request (method and path): a retry returns the
-- event of the first request, also after a restart.
CREATE TABLE txn_ids (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, scope)
) WITHOUT ROWID;

CREATE TABLE room_aliases (
    alias       TEXT PRIMARY KEY NOT NULL,
    room_id     TEXT NOT NULL,
    creator     TEXT NOT NULL,
    created_ts  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX room_aliases_room ON room_aliases (room_id);

INSERT INTO stream_positions (stream, pos) VALUES ('room_events', 0);
