-- Users who asked, when deactivating, for their content to be erased: those who join a room
-- after the room-event stream position `pos` are served redacted copies of their events.
CREATE TABLE erased_users (
    user_id  TEXT PRIMARY KEY,
    pos      BIGINT NOT NULL
);
