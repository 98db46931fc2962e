-- Accounts, devices and their access tokens.
CREATE TABLE users (
    user_id        TEXT PRIMARY KEY NOT NULL,
    password_hash  TEXT,
    appservice_id  TEXT,
    created_ts     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE devices (
    user_id       TEXT NOT NULL REFERENCES users (user_id),
    device_id     TEXT NOT NULL,
    display_name  TEXT,
    last_seen_ip  TEXT,
    last_seen_ts  INTEGER,
    created_ts    INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

CREATE INDEX devices_last_seen ON devices (last_seen_ts);

-- Only the SHA-256 of a token is stored; the token itself never touches the disk.
CREATE TABLE access_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

CREATE TABLE uia_sessions (
    session_id  TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT,
    operation   TEXT NOT NULL,
    request     TEXT,
    completed   TEXT NOT NULL,
    result      TEXT,
    expires_ts  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX uia_sessions_user ON uia_sessions (user_id);

-- Latest content per (user, room, type); room_id '' is global account data.
-- stream_pos orders changes for /sync; content '{}' is a deletion tombstone (MSC3391).
CREATE TABLE account_data (
    user_id     TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    data_type   TEXT NOT NULL,
    content     TEXT NOT NULL,
    stream_pos  INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
) WITHOUT ROWID;

CREATE INDEX account_data_stream ON account_data (user_id, stream_pos);

CREATE TABLE filters (
    user_id    TEXT NOT NULL,
    filter_id  INTEGER NOT NULL,
    filter     TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
) WITHOUT ROWID;

-- One row per stream; positions are allocated inside the writing transaction.
CREATE TABLE stream_positions (
    stream  TEXT PRIMARY KEY NOT NULL,
    pos     INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO stream_positions (stream, pos) VALUES ('account_data', 0);
