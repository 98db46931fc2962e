-- Rooms: the same model as SQLite's 0002_rooms.sql; see there and src/rooms.rs.

-- This server's ed25519 signing key, as PKCS#8 DER; created at first start.
CREATE TABLE server_keys (
    key_id      TEXT PRIMARY KEY,
    secret      BYTEA NOT NULL,
    created_ts  BIGINT NOT NULL
);

CREATE TABLE rooms (
    room_id     TEXT PRIMARY KEY,
    version     TEXT NOT NULL,
    creator     TEXT NOT NULL,
    published   BOOLEAN NOT NULL,
    created_ts  BIGINT NOT NULL
);

-- Every event, keyed by its room-event stream position (which is also its topological order:
-- on one server the DAG is a line). `json` is the PDU exactly as signed.
CREATE TABLE events (
    pos          BIGINT PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    room_id      TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    state_key    TEXT,
    sender       TEXT NOT NULL,
    depth        BIGINT NOT NULL,
    json         TEXT NOT NULL,
    replaces     TEXT,
    redacted_by  TEXT,
    txn_device   TEXT,
    txn_id       TEXT,
    -- Federation will store events it refuses, to answer for them; none are yet.
    rejected     BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX events_room ON events (room_id, pos);

-- The DAG: each event's prev_events.
CREATE TABLE event_edges (
    event_id       TEXT NOT NULL,
    prev_event_id  TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);

CREATE TABLE room_extremities (
    room_id   TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    depth     BIGINT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- State history: the entry for (type, state_key) is valid for positions in [from_pos, to_pos);
-- to_pos is NULL for current state.
CREATE TABLE room_state (
    room_id     TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    state_key   TEXT NOT NULL,
    from_pos    BIGINT NOT NULL,
    to_pos      BIGINT,
    event_id    TEXT NOT NULL,
    PRIMARY KEY (room_id, event_type, state_key, from_pos)
);

CREATE INDEX room_state_current ON room_state (room_id, to_pos);
CREATE INDEX room_state_from ON room_state (room_id, from_pos);

-- Current membership of each user in each room, and the log of every change per user.
CREATE TABLE room_members (
    room_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    membership  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    pos         BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE INDEX room_members_membership ON room_members (room_id, membership);

CREATE TABLE membership_log (
    user_id     TEXT NOT NULL,
    pos         BIGINT NOT NULL,
    room_id     TEXT NOT NULL,
    membership  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    PRIMARY KEY (user_id, pos)
);

-- A room the user forgot stays hidden while their latest membership position is <= pos.
CREATE TABLE room_forgets (
    user_id  TEXT NOT NULL,
    room_id  TEXT NOT NULL,
    pos      BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);

-- Transaction IDs, per user, device and request (method and path): a retry returns the
-- event of the first request, also after a restart.
CREATE TABLE txn_ids (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    created_ts  BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, scope)
);

CREATE TABLE room_aliases (
    alias       TEXT PRIMARY KEY,
    room_id     TEXT NOT NULL,
    creator     TEXT NOT NULL,
    created_ts  BIGINT NOT NULL
);

CREATE INDEX room_aliases_room ON room_aliases (room_id);

INSERT INTO stream_positions (stream, pos) VALUES ('room_events', 0);
