DROP INDEX security_events_kind_account;
ALTER TABLE security_events DROP COLUMN account;
