-- Schema 2: generated captions, one per (photo, captioning model).

CREATE TABLE captions (
    photo_id    INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    model_id    INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,          -- unix seconds
    PRIMARY KEY (photo_id, model_id)
) WITHOUT ROWID;

-- A changed file (the scan clears its hash) loses what was derived from its old contents.
CREATE TRIGGER photos_changed_drop_captions AFTER UPDATE OF hash ON photos
WHEN NEW.hash IS NULL BEGIN
    DELETE FROM captions WHERE photo_id = NEW.id;
END;
