-- Schema 6: text recognised in photos (OCR), and a keyword index over each photo's words.

-- One OCR result per photo: the words Tesseract read, or why it could not read them.
CREATE TABLE ocr (
    photo_id    INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
    langs       TEXT NOT NULL,            -- Tesseract languages, e.g. 'eng' or 'eng+deu'
    text        TEXT NOT NULL,            -- the confident words, a line per text line ('' when none)
    words       TEXT NOT NULL,            -- JSON [[word, confidence 0..100], ...]: every word read
    error       TEXT,                     -- why OCR failed (text is '' then)
    created_at  INTEGER NOT NULL          -- unix seconds
);

-- A changed file (the scan clears its hash) loses the text read from its old contents.
CREATE TRIGGER photos_changed_drop_ocr AFTER UPDATE OF hash ON photos
WHEN NEW.hash IS NULL BEGIN
    DELETE FROM ocr WHERE photo_id = NEW.id;
END;

-- Keyword search (bm25): a row per photo, rowid = photo id, with its path under its folder, its
-- captions, tags and recognised text. Case and accents are ignored ("Café" = "cafe"). Tags CLIP
-- gave are left out: they are CLIP's own ranking, coarsened, and would count it twice in fusion;
-- the user's tags and caption keyphrases are words CLIP does not see.
-- Architecture Invariant: the triggers below keep it in step with photos, captions, tags and ocr in
-- the same transaction; nothing writes it directly.
CREATE VIRTUAL TABLE photo_text USING fts5(
    name, caption, tags, ocr,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- How many photos each word is in (to leave words of most photos out of rankings).
CREATE VIRTUAL TABLE photo_text_terms USING fts5vocab(photo_text, row);

INSERT INTO photo_text (rowid, name, caption, tags, ocr)
SELECT p.id, CAST(p.rel_path AS TEXT),
       (SELECT group_concat(c.text, ' ') FROM captions c WHERE c.photo_id = p.id),
       (SELECT group_concat(t.tag, ' ') FROM tags t WHERE t.photo_id = p.id AND t.source != 'clip'),
       NULL
FROM photos p;

CREATE TRIGGER photo_text_photo_insert AFTER INSERT ON photos BEGIN
    INSERT INTO photo_text (rowid, name) VALUES (NEW.id, CAST(NEW.rel_path AS TEXT));
END;
CREATE TRIGGER photo_text_photo_delete AFTER DELETE ON photos BEGIN
    DELETE FROM photo_text WHERE rowid = OLD.id;
END;
CREATE TRIGGER photo_text_photo_moved AFTER UPDATE OF rel_path ON photos BEGIN
    UPDATE photo_text SET name = CAST(NEW.rel_path AS TEXT) WHERE rowid = NEW.id;
END;

CREATE TRIGGER photo_text_caption_insert AFTER INSERT ON captions BEGIN
    UPDATE photo_text SET caption =
        (SELECT group_concat(c.text, ' ') FROM captions c WHERE c.photo_id = NEW.photo_id)
    WHERE rowid = NEW.photo_id;
END;
CREATE TRIGGER photo_text_caption_update AFTER UPDATE ON captions BEGIN
    UPDATE photo_text SET caption =
        (SELECT group_concat(c.text, ' ') FROM captions c WHERE c.photo_id = NEW.photo_id)
    WHERE rowid = NEW.photo_id;
END;
CREATE TRIGGER photo_text_caption_delete AFTER DELETE ON captions BEGIN
    UPDATE photo_text SET caption =
        (SELECT group_concat(c.text, ' ') FROM captions c WHERE c.photo_id = OLD.photo_id)
    WHERE rowid = OLD.photo_id;
END;

CREATE TRIGGER photo_text_tag_insert AFTER INSERT ON tags WHEN NEW.source != 'clip' BEGIN
    UPDATE photo_text SET tags =
        (SELECT group_concat(t.tag, ' ') FROM tags t WHERE t.photo_id = NEW.photo_id AND t.source != 'clip')
    WHERE rowid = NEW.photo_id;
END;
CREATE TRIGGER photo_text_tag_delete AFTER DELETE ON tags WHEN OLD.source != 'clip' BEGIN
    UPDATE photo_text SET tags =
        (SELECT group_concat(t.tag, ' ') FROM tags t WHERE t.photo_id = OLD.photo_id AND t.source != 'clip')
    WHERE rowid = OLD.photo_id;
END;

CREATE TRIGGER photo_text_ocr_insert AFTER INSERT ON ocr BEGIN
    UPDATE photo_text SET ocr = NEW.text WHERE rowid = NEW.photo_id;
END;
CREATE TRIGGER photo_text_ocr_update AFTER UPDATE ON ocr BEGIN
    UPDATE photo_text SET ocr = NEW.text WHERE rowid = NEW.photo_id;
END;
CREATE TRIGGER photo_text_ocr_delete AFTER DELETE ON ocr BEGIN
    UPDATE photo_text SET ocr = NULL WHERE rowid = OLD.photo_id;
END;
