-- The same model as SQLite's 0001_initial.sql; see there for what each table holds.
CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    password_hash  TEXT,
    appservice_id  TEXT,
    created_ts     BIGINT NOT NULL
);

CREATE TABLE devices (
    user_id       TEXT NOT NULL REFERENCES users (user_id),
    device_id     TEXT NOT NULL,
    display_name  TEXT,
    last_seen_ip  TEXT,
    last_seen_ts  BIGINT,
    created_ts    BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

CREATE INDEX devices_last_seen ON devices (last_seen_ts);

CREATE TABLE access_tokens (
    token_hash  BYTEA PRIMARY KEY,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    created_ts  BIGINT NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

CREATE TABLE uia_sessions (
    session_id  TEXT PRIMARY KEY,
    user_id     TEXT,
    operation   TEXT NOT NULL,
    request     TEXT,
    completed   TEXT NOT NULL,
    result      TEXT,
    expires_ts  BIGINT NOT NULL
);

CREATE INDEX uia_sessions_user ON uia_sessions (user_id);

CREATE TABLE account_data (
    user_id     TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    data_type   TEXT NOT NULL,
    content     TEXT NOT NULL,
    stream_pos  BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);

CREATE INDEX account_data_stream ON account_data (user_id, stream_pos);

CREATE TABLE filters (
    user_id    TEXT NOT NULL,
    filter_id  BIGINT NOT NULL,
    filter     TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE stream_positions (
    stream  TEXT PRIMARY KEY,
    pos     BIGINT NOT NULL
);

INSERT INTO stream_positions (stream, pos) VALUES ('account_data', 0);

-- Positions handed out whose writing transaction has not finished yet. A position and its
-- row here are created in one transaction, so a reader that takes
-- MIN(pos) - 1 (or the counter when this is empty) never passes a write still in flight.
CREATE TABLE stream_inflight (
    stream      TEXT NOT NULL,
    pos         BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, pos)
);
