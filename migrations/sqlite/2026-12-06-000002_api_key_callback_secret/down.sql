ALTER TABLE api_keys DROP COLUMN sealed_callback_secret;
