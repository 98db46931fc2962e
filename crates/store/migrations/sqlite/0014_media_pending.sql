-- Media IDs created with `POST /_matrix/media/v1/create` whose content has not been uploaded
-- yet. A row goes when its upload takes it, or when it expires.
CREATE TABLE media_pending (
    media_id    TEXT PRIMARY KEY NOT NULL,
    uploader    TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    expires_ts  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX media_pending_uploader ON media_pending (uploader, expires_ts);
