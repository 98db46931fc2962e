-- A registration that presented an admin's registration token holds one of its uses until
-- its UIA session expires or the account is created: `pending` counts the live ones, so an
-- abandoned registration gives its use back (the reference server decrements `pending` when
-- the session expires). The `pending` column of registration_tokens is no longer read.
CREATE TABLE registration_token_reservations (
    session_id  TEXT PRIMARY KEY NOT NULL,
    token       TEXT NOT NULL,
    expires_ts  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX registration_token_reservations_token
    ON registration_token_reservations (token, expires_ts);
