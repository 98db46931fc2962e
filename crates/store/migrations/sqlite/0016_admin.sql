-- Server administration: who is a server admin, accounts an admin locked (no request
-- authenticates) or suspended (read-only), the account type an admin set, and the user
-- agent a device was last seen with (for whois and the admin device list).
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN user_type TEXT;
ALTER TABLE devices ADD COLUMN last_seen_user_agent TEXT;

-- Registration tokens an admin created. `pending` counts registrations that presented the
-- token and have not completed yet, `completed` those that did.
CREATE TABLE registration_tokens (
    token         TEXT PRIMARY KEY NOT NULL,
    uses_allowed  INTEGER,
    pending       INTEGER NOT NULL DEFAULT 0,
    completed     INTEGER NOT NULL DEFAULT 0,
    expiry_time   INTEGER
) WITHOUT ROWID;
