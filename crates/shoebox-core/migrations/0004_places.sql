-- Schema 4: places and time. A photo's EXIF GPS position and the time zone offset of its capture
-- time, its place (reverse-geocoded offline from GeoNames, see places.rs), and the date it sorts by.

-- Places photos were taken at: GeoNames names (ASCII) and the ISO 3166 alpha-2 country code.
CREATE TABLE places (
    id      INTEGER PRIMARY KEY,
    city    TEXT NOT NULL,
    region  TEXT NOT NULL,
    cc      TEXT NOT NULL,
    UNIQUE (city, region, cc)
);

ALTER TABLE photos ADD COLUMN lat REAL;            -- EXIF GPS, decimal degrees (NULL: none)
ALTER TABLE photos ADD COLUMN lon REAL;
ALTER TABLE photos ADD COLUMN taken_offset TEXT;   -- EXIF OffsetTimeOriginal of taken_at ('+01:00')
ALTER TABLE photos ADD COLUMN place_id INTEGER REFERENCES places(id) ON DELETE SET NULL;
-- 1 once lat/lon have been reverse-geocoded (place_id stays NULL when no town is near).
ALTER TABLE photos ADD COLUMN geocoded INTEGER NOT NULL DEFAULT 0;
-- 0: the row was read before positions were kept (its EXIF is read again once); 1: current.
ALTER TABLE photos ADD COLUMN meta_version INTEGER NOT NULL DEFAULT 0;
-- What the timeline sorts by: taken_at, else the file's time (local), 'YYYY-MM-DDTHH:MM:SS'.
ALTER TABLE photos ADD COLUMN date_key TEXT;

UPDATE photos SET date_key = COALESCE(taken_at,
    strftime('%Y-%m-%dT%H:%M:%S', mtime_ns / 1000000000, 'unixepoch', 'localtime'))
WHERE status = 'ok';

CREATE INDEX photos_date ON photos(date_key);
CREATE INDEX photos_place ON photos(place_id);
