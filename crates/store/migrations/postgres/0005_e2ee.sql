-- End-to-end encryption: keys as uploaded, the device-list and to-device streams.

CREATE TABLE device_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- seq is the order of uploads: claims hand out the oldest key first (KC-03).
CREATE TABLE one_time_keys (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    used       BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- One row per change of a user's devices, at its device_lists position.
CREATE TABLE device_list_changes (
    pos      BIGINT PRIMARY KEY NOT NULL,
    user_id  TEXT NOT NULL
);

CREATE TABLE to_device (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    pos         BIGINT NOT NULL,
    sender      TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    content     TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, pos)
);

-- "Who shares a room with this user" starts from the user's own rooms.
CREATE INDEX room_members_user ON room_members (user_id, membership);

INSERT INTO stream_positions (stream, pos) VALUES ('device_lists', 0), ('to_device', 0);

-- Server-side key backups. A deleted version stays (deleted) so that numbers are never
-- reused (KB-01) and deleting it again succeeds (KB-07).
CREATE TABLE backup_versions (
    user_id    TEXT NOT NULL,
    version    BIGINT NOT NULL,
    algorithm  TEXT NOT NULL,
    auth_data  TEXT NOT NULL,
    etag       BIGINT NOT NULL,
    deleted    BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE backup_keys (
    user_id              TEXT NOT NULL,
    version              BIGINT NOT NULL,
    room_id              TEXT NOT NULL,
    session_id           TEXT NOT NULL,
    first_message_index  BIGINT NOT NULL,
    forwarded_count      BIGINT NOT NULL,
    is_verified          BOOLEAN NOT NULL,
    session_data         TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
