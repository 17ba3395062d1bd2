-- The user token (its jti) that last registered a device: signing that token out revokes the
-- devices it registered. A device token can be refreshed once: the refreshed token's jti is
-- remembered until it would have expired.
ALTER TABLE devices ADD COLUMN registered_with TEXT;
CREATE INDEX devices_registered_with ON devices (registered_with);
CREATE TABLE refreshed_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX refreshed_tokens_expires ON refreshed_tokens (expires_at);
