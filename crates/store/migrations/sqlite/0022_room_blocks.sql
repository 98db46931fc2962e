-- Rooms an operator blocked (no joins, invites or knocks: the admin API's block), and the
-- rooms purged under each local user who was in them, with the room-stream position of
-- the purge, so that their next /sync says the room is gone once.
CREATE TABLE blocked_rooms (
    room_id     TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    blocked_ts  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE purged_rooms (
    user_id  TEXT NOT NULL,
    room_id  TEXT NOT NULL,
    pos      INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;
CREATE INDEX purged_rooms_pos ON purged_rooms (user_id, pos);
