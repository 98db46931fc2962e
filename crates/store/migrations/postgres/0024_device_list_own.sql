-- Device-list changes only one user hears of: a user-signing key is seen by its owner
-- alone (DL-04), and so is its signature on another user's master key, which changes that
-- user's keys for the signer only (DL-05).
ALTER TABLE device_list_changes ADD COLUMN only_for TEXT;
