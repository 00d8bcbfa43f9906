-- Schema 3: tags (from captions, CLIP zero-shot, or the user), tags the user removed, which automatic
-- passes have run on a photo, and caption embeddings from the text encoder (for hybrid search).

CREATE TABLE tags (
    photo_id  INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    tag       TEXT NOT NULL,                -- lower case, trimmed
    source    TEXT NOT NULL CHECK (source IN ('caption', 'clip', 'user')),
    score     REAL NOT NULL,                -- caption: cosine with the caption; clip: probability; user: 1
    PRIMARY KEY (photo_id, tag, source)
) WITHOUT ROWID;
CREATE INDEX tags_by_tag ON tags(tag, photo_id);

-- A tag the user removed from a photo never comes back from an automatic source.
CREATE TABLE removed_tags (
    photo_id  INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    tag       TEXT NOT NULL,
    PRIMARY KEY (photo_id, tag)
) WITHOUT ROWID;

-- Automatic passes done on a photo ('clip_tags' with a CLIP model, 'caption_tags' with a caption
-- model), so a photo that got no tags is not tried again.
CREATE TABLE derived (
    photo_id  INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    model_id  INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    PRIMARY KEY (photo_id, kind, model_id)
) WITHOUT ROWID;

-- The caption of a photo embedded by a sentence encoder (model_id), L2-normalized f32 LE.
CREATE TABLE text_embeddings (
    photo_id  INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    model_id  INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    vector    BLOB NOT NULL,
    PRIMARY KEY (photo_id, model_id)
) WITHOUT ROWID;

-- A changed file loses everything automatic derived from its old contents (user tags stay).
CREATE TRIGGER photos_changed_drop_derived AFTER UPDATE OF hash ON photos
WHEN NEW.hash IS NULL BEGIN
    DELETE FROM tags WHERE photo_id = NEW.id AND source != 'user';
    DELETE FROM derived WHERE photo_id = NEW.id;
    DELETE FROM text_embeddings WHERE photo_id = NEW.id;
END;
