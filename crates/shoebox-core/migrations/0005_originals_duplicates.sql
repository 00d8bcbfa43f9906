-- Schema 5: camera RAW originals and perceptual hashes.

-- A JPEG shot together with a RAW file (same folder, same name): the RAW's path relative to the
-- root. In the default RAW mode ("pair") the RAW is not a photo of its own but this JPEG's original.
ALTER TABLE photos ADD COLUMN raw_original BLOB;
-- 128-bit perceptual hash (horizontal and vertical difference hashes of an 8×8 grey image,
-- image_hasher) of the picture, for the duplicate finder's second check; NULL until computed.
ALTER TABLE photos ADD COLUMN phash BLOB;
