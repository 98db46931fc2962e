-- Full-text search over room events: the text of each m.room.message body, room name and
-- topic, under the event's stream position (the rowid). unicode61 without diacritics
-- removal splits words as PostgreSQL's 'simple' configuration does, so both backends
-- answer the same queries.
CREATE VIRTUAL TABLE event_search USING fts5(
    text,
    room_id UNINDEXED,
    key UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 0'
);

INSERT INTO event_search (rowid, text, room_id, key)
SELECT pos, json_extract(json, '$.content.body'), room_id, 'content.body'
FROM events
WHERE event_type = 'm.room.message' AND redacted_by IS NULL
  AND json_type(json, '$.content.body') = 'text';

INSERT INTO event_search (rowid, text, room_id, key)
SELECT pos, json_extract(json, '$.content.name'), room_id, 'content.name'
FROM events
WHERE event_type = 'm.room.name' AND redacted_by IS NULL
  AND json_type(json, '$.content.name') = 'text';

INSERT INTO event_search (rowid, text, room_id, key)
SELECT pos, json_extract(json, '$.content.topic'), room_id, 'content.topic'
FROM events
WHERE event_type = 'm.room.topic' AND redacted_by IS NULL
  AND json_type(json, '$.content.topic') = 'text';
