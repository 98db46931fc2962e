-- Media metadata; the bytes are files under the media directory, named by media_id.
CREATE TABLE media (
    media_id      TEXT PRIMARY KEY NOT NULL,
    uploader      TEXT NOT NULL,
    content_type  TEXT,
    filename      TEXT,
    size          BIGINT NOT NULL,
    created_ts    BIGINT NOT NULL
);

CREATE INDEX media_uploader ON media (uploader);

-- Thumbnails, made once on first request and kept.
CREATE TABLE media_thumbnails (
    media_id      TEXT NOT NULL,
    width         BIGINT NOT NULL,
    height        BIGINT NOT NULL,
    method        TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    PRIMARY KEY (media_id, width, height, method)
);
