DROP TABLE refreshed_tokens;
DROP INDEX devices_registered_with;
ALTER TABLE devices DROP COLUMN registered_with;
