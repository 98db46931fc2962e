-- Refresh tokens (`refresh.yaml`). An access token issued with one expires; `replaces` names
-- the refresh token its first use revokes (the one it was refreshed from).
ALTER TABLE access_tokens ADD COLUMN expires_ts BIGINT;
ALTER TABLE access_tokens ADD COLUMN replaces BYTEA;

-- Only hashes are stored. `access_hash` is the access token issued with this refresh token;
-- `replaces` the refresh token it was issued from, valid until this pair is first used.
CREATE TABLE refresh_tokens (
    token_hash   BYTEA PRIMARY KEY,
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    access_hash  BYTEA NOT NULL,
    replaces     BYTEA,
    created_ts   BIGINT NOT NULL,
    expires_ts   BIGINT,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);
CREATE INDEX refresh_tokens_replaces ON refresh_tokens (replaces) WHERE replaces IS NOT NULL;
