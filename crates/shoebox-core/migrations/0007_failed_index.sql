-- Schema 7: failed photos are few; a partial index lets every search count them (to tell whether a
-- model covers the library) without reading the whole photos table.
CREATE INDEX photos_failed ON photos(status) WHERE status = 'failed';
