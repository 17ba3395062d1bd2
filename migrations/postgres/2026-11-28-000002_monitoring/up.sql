-- Rate limits count recent events of one kind per address or account.
CREATE INDEX security_events_kind_created ON security_events (kind, created_at);
