-- Profiles: one row per field, the value as JSON. Users who existed before get their
-- localpart as display name, as a new user does at registration (the reference server's
-- default).
CREATE TABLE profile_fields (
    user_id  TEXT NOT NULL,
    field    TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (user_id, field)
) WITHOUT ROWID;

INSERT INTO profile_fields (user_id, field, value)
SELECT user_id, 'displayname', '"' || substr(user_id, 2, instr(user_id, ':') - 2) || '"'
FROM users;
