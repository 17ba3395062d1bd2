-- How a title was packaged beyond its unit length: the scheme of its sessions' codes and its
-- watermark units per segment, as its package manifest says. Titles recorded before these
-- columns get them from their manifests when a server or worker starts (NULL until then).
ALTER TABLE videos ADD COLUMN code TEXT;
ALTER TABLE videos ADD COLUMN segment_units INTEGER;
