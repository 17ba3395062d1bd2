-- A device proves it holds the private half of a key pair it made at registration (a
-- non-extractable WebCrypto key in the browser): token refreshes and key exchanges are signed
-- with it. Devices and user tokens can be revoked (logout, an admin).
ALTER TABLE devices ADD COLUMN public_key TEXT;
ALTER TABLE devices ADD COLUMN revoked_at TIMESTAMP;
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);
