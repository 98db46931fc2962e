-- Events that relate to another through content.m.relates_to (threads, edits, references,
-- annotations), recorded with each append so that aggregations and /relations read an
-- index instead of event JSON. Readers join events to leave redacted children out.
CREATE TABLE event_relations (
    event_id    TEXT PRIMARY KEY,
    room_id     TEXT NOT NULL,
    parent_id   TEXT NOT NULL,
    rel_type    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    sender      TEXT NOT NULL,
    pos         BIGINT NOT NULL,
    -- An annotation's key.
    key         TEXT
);

CREATE INDEX event_relations_parent ON event_relations (parent_id, rel_type, pos);
CREATE INDEX event_relations_room ON event_relations (room_id, rel_type, pos);

-- The events stored before this table. jsonb refuses the escape \u0000, which canonical
-- JSON may hold: such events are left out rather than failing the migration.
INSERT INTO event_relations (event_id, room_id, parent_id, rel_type, event_type, sender, pos, key)
SELECT event_id, room_id, rel->>'event_id', rel->>'rel_type', event_type, sender, pos,
       CASE WHEN jsonb_typeof(rel->'key') = 'string' THEN rel->>'key' END
FROM (
    SELECT event_id, room_id, event_type, sender, pos,
           json::jsonb->'content'->'m.relates_to' AS rel
    FROM events
    WHERE json LIKE '%m.relates_to%' AND json NOT LIKE '%\\u0000%'
) related
WHERE jsonb_typeof(rel->'event_id') = 'string' AND jsonb_typeof(rel->'rel_type') = 'string';
