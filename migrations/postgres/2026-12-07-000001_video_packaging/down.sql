ALTER TABLE videos DROP COLUMN segment_units;
ALTER TABLE videos DROP COLUMN code;
