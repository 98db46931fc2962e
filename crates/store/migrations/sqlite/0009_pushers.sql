-- Pushers (`POST /pushers/set`), one per user, app and push key, bound to the device that
-- made it (deleted with the device, PG-09). Each walks its user's push_actions: `last_pos`
-- is the last row it delivered or gave up on, so what is not yet delivered survives a
-- restart, and a new pusher starts at the room stream's position of its creation (PG-10).
CREATE TABLE pushers (
    user_id              TEXT NOT NULL,
    app_id               TEXT NOT NULL,
    pushkey              TEXT NOT NULL,
    device_id            TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    app_display_name     TEXT NOT NULL,
    device_display_name  TEXT NOT NULL,
    profile_tag          TEXT,
    lang                 TEXT NOT NULL,
    data                 TEXT NOT NULL,
    created_ts           INTEGER NOT NULL,
    last_pos             INTEGER NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey)
) WITHOUT ROWID;

CREATE INDEX pushers_key ON pushers (app_id, pushkey);
