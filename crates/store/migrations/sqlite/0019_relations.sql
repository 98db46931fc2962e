-- Events that relate to another through content.m.relates_to (threads, edits, references,
-- annotations), recorded with each append so that aggregations and /relations read an
-- index instead of event JSON. Readers join events to leave redacted children out.
CREATE TABLE event_relations (
    event_id    TEXT PRIMARY KEY NOT NULL,
    room_id     TEXT NOT NULL,
    parent_id   TEXT NOT NULL,
    rel_type    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    sender      TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    -- An annotation's key.
    key         TEXT
) WITHOUT ROWID;

CREATE INDEX event_relations_parent ON event_relations (parent_id, rel_type, pos);
CREATE INDEX event_relations_room ON event_relations (room_id, rel_type, pos);

-- The events stored before this table.
INSERT INTO event_relations (event_id, room_id, parent_id, rel_type, event_type, sender, pos, key)
SELECT event_id, room_id,
       json_extract(json, '$.content."m.relates_to".event_id'),
       json_extract(json, '$.content."m.relates_to".rel_type'),
       event_type, sender, pos,
       CASE WHEN json_type(json, '$.content."m.relates_to".key') = 'text'
            THEN json_extract(json, '$.content."m.relates_to".key') END
FROM events
WHERE json_type(json, '$.content."m.relates_to".event_id') = 'text'
  AND json_type(json, '$.content."m.relates_to".rel_type') = 'text';
