DROP TABLE revoked_tokens;
ALTER TABLE devices DROP COLUMN revoked_at;
ALTER TABLE devices DROP COLUMN public_key;
