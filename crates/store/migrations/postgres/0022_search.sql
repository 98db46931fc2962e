-- Full-text search over room events: the text of each m.room.message body, room name and
-- topic, under the event's stream position. The 'simple' configuration lower-cases and
-- splits words without stemming, as SQLite's unicode61 tokenizer does, so both backends
-- answer the same queries.
CREATE TABLE event_search (
    pos      BIGINT PRIMARY KEY,
    room_id  TEXT NOT NULL,
    key      TEXT NOT NULL,
    text     TEXT NOT NULL,
    vector   tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED
);
CREATE INDEX event_search_vector ON event_search USING GIN (vector);
CREATE INDEX event_search_room ON event_search (room_id, pos);

-- jsonb refuses \u0000, which canonical JSON may hold: such events are left out.
INSERT INTO event_search (pos, room_id, key, text)
SELECT pos, room_id, key, text FROM (
    SELECT pos, room_id,
           CASE event_type WHEN 'm.room.message' THEN 'content.body'
                           WHEN 'm.room.name' THEN 'content.name'
                           ELSE 'content.topic' END AS key,
           json::jsonb->'content'->>(CASE event_type WHEN 'm.room.message' THEN 'body'
                                                     WHEN 'm.room.name' THEN 'name'
                                                     ELSE 'topic' END) AS text,
           jsonb_typeof(json::jsonb->'content'->(CASE event_type
                                                     WHEN 'm.room.message' THEN 'body'
                                                     WHEN 'm.room.name' THEN 'name'
                                                     ELSE 'topic' END)) AS kind
    FROM events
    WHERE event_type IN ('m.room.message', 'm.room.name', 'm.room.topic')
      AND redacted_by IS NULL AND json NOT LIKE '%\\u0000%'
) searchable
WHERE kind = 'string';
