-- The secret an API key's callbacks are signed with (derived from the key, which only the
-- crawler holds), sealed under the master key; none for keys created before callbacks.
ALTER TABLE api_keys ADD COLUMN sealed_callback_secret BYTEA;
