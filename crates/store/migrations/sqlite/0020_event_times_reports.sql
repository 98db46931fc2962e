-- Each event's origin_server_ts as a column, for timestamp_to_event; the events stored
-- before it get theirs from their JSON.
ALTER TABLE events ADD COLUMN origin_ts INTEGER;
UPDATE events SET origin_ts = json_extract(json, '$.origin_server_ts')
WHERE json_type(json, '$.origin_server_ts') = 'integer';
CREATE INDEX events_room_ts ON events (room_id, origin_ts, pos);

-- What users reported to the operator (report_content.yaml): an event, a room or a user.
CREATE TABLE reports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ts     INTEGER NOT NULL,
    reporter        TEXT NOT NULL,
    room_id         TEXT,
    event_id        TEXT,
    target_user_id  TEXT,
    reason          TEXT
);
CREATE INDEX reports_received ON reports (received_ts);
