-- Each event's origin_server_ts as a column, for timestamp_to_event; the events stored
-- before it get theirs from their JSON. Canonical JSON orders keys, so the top-level
-- "origin_server_ts" follows "content" and "depth": the last match is the top-level one
-- (jsonb, which refuses \u0000, is not needed for that).
ALTER TABLE events ADD COLUMN origin_ts BIGINT;
UPDATE events
SET origin_ts = (regexp_match(json, '.*"origin_server_ts":(-?[0-9]+)'))[1]::BIGINT;
CREATE INDEX events_room_ts ON events (room_id, origin_ts, pos);

-- What users reported to the operator (report_content.yaml): an event, a room or a user.
CREATE TABLE reports (
    id              BIGSERIAL PRIMARY KEY,
    received_ts     BIGINT NOT NULL,
    reporter        TEXT NOT NULL,
    room_id         TEXT,
    event_id        TEXT,
    target_user_id  TEXT,
    reason          TEXT
);
CREATE INDEX reports_received ON reports (received_ts);
