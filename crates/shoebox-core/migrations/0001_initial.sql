-- Shoebox catalog, schema 1. SQLite is the source of truth; the HNSW index is derived from `embeddings`.

-- Library folders. `path` is the canonical absolute path as raw OS bytes (names need not be UTF-8).
CREATE TABLE roots (
    id        INTEGER PRIMARY KEY,
    path      BLOB NOT NULL UNIQUE,
    added_at  INTEGER NOT NULL              -- unix seconds
);

-- One row per image file under a root.
CREATE TABLE photos (
    id            INTEGER PRIMARY KEY,
    root_id       INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    rel_path      BLOB NOT NULL,            -- path relative to the root, raw OS bytes
    ext           TEXT NOT NULL,            -- lower-case extension without the dot ('jpg', 'png', ...)
    size          INTEGER NOT NULL,         -- bytes, as last seen by a scan
    mtime_ns      INTEGER NOT NULL,         -- modification time, ns since the epoch
    hash          BLOB,                     -- blake3 of the contents; NULL until the file was read
    width         INTEGER,                  -- as displayed, after EXIF orientation
    height        INTEGER,
    orientation   INTEGER,                  -- EXIF orientation 1..8 (NULL: none)
    taken_at      TEXT,                     -- EXIF capture time, 'YYYY-MM-DDTHH:MM:SS' (local, as the camera wrote it)
    camera_make   TEXT,
    camera_model  TEXT,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ok', 'failed')),
    failure       TEXT,                     -- why status = 'failed'
    UNIQUE (root_id, rel_path)
);
CREATE INDEX photos_hash ON photos(hash);
CREATE INDEX photos_size ON photos(size);

-- Problems met while walking a root that are not a photo (unreadable folder, symlink loop, ...).
CREATE TABLE scan_issues (
    root_id   INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    rel_path  BLOB NOT NULL,
    reason    TEXT NOT NULL,
    PRIMARY KEY (root_id, rel_path)
) WITHOUT ROWID;

-- Embedding models: hub id or canonical local folder.
CREATE TABLE models (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE,
    kind  TEXT NOT NULL,                    -- 'clip'
    dim   INTEGER NOT NULL
);

-- One L2-normalized vector per (photo, model): little-endian f32 x dim. `id` only grows
-- (AUTOINCREMENT), so an index can ask for "everything written since id N".
CREATE TABLE embeddings (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    photo_id  INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    model_id  INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    vector    BLOB NOT NULL,
    UNIQUE (photo_id, model_id)
);
CREATE INDEX embeddings_model ON embeddings(model_id, photo_id);

-- Catalog generation: bumped by every change to the set of embeddings, so a persisted index can tell
-- whether it is still in step with the catalog.
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('generation', 0);

CREATE TRIGGER embeddings_generation_insert AFTER INSERT ON embeddings BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
END;
CREATE TRIGGER embeddings_generation_delete AFTER DELETE ON embeddings BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
END;
CREATE TRIGGER embeddings_generation_update AFTER UPDATE OF vector ON embeddings BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
END;
