-- Media IDs created with `POST /_matrix/media/v1/create` whose content has not been uploaded
-- yet. A row goes when its upload takes it, or when it expires.
CREATE TABLE media_pending (
    media_id    TEXT PRIMARY KEY,
    uploader    TEXT NOT NULL,
    created_ts  BIGINT NOT NULL,
    expires_ts  BIGINT NOT NULL
);

CREATE INDEX media_pending_uploader ON media_pending (uploader, expires_ts);
