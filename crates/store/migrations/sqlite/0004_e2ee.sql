-- End-to-end encryption: keys as uploaded, the device-list and to-device streams.

CREATE TABLE device_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

-- seq is the order of uploads: claims hand out the oldest key first (KC-03).
CREATE TABLE one_time_keys (
    seq        INTEGER PRIMARY KEY,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    UNIQUE (user_id, device_id, key_id)
);

CREATE INDEX one_time_keys_claim ON one_time_keys (user_id, device_id, algorithm, seq);

CREATE TABLE fallback_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    used       INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm)
) WITHOUT ROWID;

-- One row per change of a user's devices, at its device_lists position.
CREATE TABLE device_list_changes (
    pos      INTEGER PRIMARY KEY NOT NULL,
    user_id  TEXT NOT NULL
);

CREATE TABLE to_device (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    sender      TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    content     TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, pos)
) WITHOUT ROWID;

-- "Who shares a room with this user" starts from the user's own rooms.
CREATE INDEX room_members_user ON room_members (user_id, membership);

INSERT INTO stream_positions (stream, pos) VALUES ('device_lists', 0), ('to_device', 0);

-- Server-side key backups. A deleted version stays (deleted = 1) so that numbers are never
-- reused (KB-01) and deleting it again succeeds (KB-07).
CREATE TABLE backup_versions (
    user_id    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    algorithm  TEXT NOT NULL,
    auth_data  TEXT NOT NULL,
    etag       INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    PRIMARY KEY (user_id, version)
) WITHOUT ROWID;

CREATE TABLE backup_keys (
    user_id              TEXT NOT NULL,
    version              INTEGER NOT NULL,
    room_id              TEXT NOT NULL,
    session_id           TEXT NOT NULL,
    first_message_index  INTEGER NOT NULL,
    forwarded_count      INTEGER NOT NULL,
    is_verified          INTEGER NOT NULL,
    session_data         TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
) WITHOUT ROWID;
