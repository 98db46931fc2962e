-- Lazy-loaded members (RS-26, RS-30): which member events a device was sent in a room, and
-- in the response at which room-stream position. A record counts once the client syncs
-- from a token at or past that position (it got the response); until then a retry sends
-- the members again. Hints only: a lost record means a member event sent twice.
CREATE TABLE lazy_members (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    member     TEXT NOT NULL,
    pos        BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, room_id, member)
);
