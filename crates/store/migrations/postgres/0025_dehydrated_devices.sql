-- Dehydrated devices (MSC3814): at most one per user, a real device (keys, one-time keys,
-- to-device queue) with no access token, and the client's encrypted pickle of it. Deleted
-- with its device.
CREATE TABLE dehydrated_devices (
    user_id      TEXT PRIMARY KEY NOT NULL,
    device_id    TEXT NOT NULL,
    device_data  TEXT NOT NULL
);
