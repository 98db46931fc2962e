-- Cross-signing keys (`/keys/device_signing/upload`): each user's master, self-signing and
-- user-signing key, as uploaded (with the signatures they came with).
CREATE TABLE cross_signing_keys (
    user_id   TEXT NOT NULL,
    -- 'master', 'self_signing' or 'user_signing'
    usage     TEXT NOT NULL,
    -- The public key, unpadded base64 (what `keys` names after `ed25519:`).
    key_id    TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, usage)
);

-- Signatures uploaded through `/keys/signatures/upload`, kept apart from the signed keys and
-- merged in when they are served (XS-19): a device re-uploading its keys keeps them, and a key
-- may carry signatures of successive signing keys. `target_key` is a device ID or a master
-- public key; `signer_key` the signing key's ID (`ed25519:...`).
CREATE TABLE cross_signing_signatures (
    target_user  TEXT NOT NULL,
    target_key   TEXT NOT NULL,
    signer_user  TEXT NOT NULL,
    signer_key   TEXT NOT NULL,
    signature    TEXT NOT NULL,
    PRIMARY KEY (target_user, target_key, signer_user, signer_key)
);
