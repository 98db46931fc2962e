-- A deactivated account keeps its row for ever, so its user ID is never registered again;
-- it has no password, devices, profile, account data or key backups.
ALTER TABLE users ADD COLUMN deactivated INTEGER NOT NULL DEFAULT 0;
