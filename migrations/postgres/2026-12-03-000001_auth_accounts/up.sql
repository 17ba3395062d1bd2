-- Authentication failures are also counted per submitted account name, whether or not an
-- account of that name exists (so a refusal does not tell which names exist).
ALTER TABLE security_events ADD COLUMN account TEXT;
CREATE INDEX security_events_kind_account ON security_events (kind, account, created_at);
