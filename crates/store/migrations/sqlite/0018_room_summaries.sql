-- What the public room list and room_summary show of each room, from its current state:
-- written with every append that changes it (see store/src/room_directory.rs), so listing
-- ten thousand rooms reads one table instead of each room's state. Rooms that predate the
-- table get theirs at the next start.
CREATE TABLE room_summaries (
    room_id             TEXT PRIMARY KEY NOT NULL,
    name                TEXT,
    topic               TEXT,
    avatar_url          TEXT,
    canonical_alias     TEXT,
    join_rule           TEXT NOT NULL,
    history_visibility  TEXT NOT NULL,
    guest_can_join      INTEGER NOT NULL,
    room_type           TEXT,
    encryption          TEXT,
    joined_members      INTEGER NOT NULL,
    invited_members     INTEGER NOT NULL,
    -- Lower-cased name, topic and alias, for generic_search_term.
    search_text         TEXT NOT NULL
) WITHOUT ROWID;

-- The public list's order.
CREATE INDEX room_summaries_order ON room_summaries (joined_members DESC, room_id);

-- A room's aliases in the order they were made.
DROP INDEX room_aliases_room;
CREATE INDEX room_aliases_room_created ON room_aliases (room_id, created_ts);
