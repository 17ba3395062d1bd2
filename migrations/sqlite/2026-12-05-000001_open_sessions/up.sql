-- Open sessions counted by state and expiry (the active-sessions gauge of /metrics) without
-- reading every session a title ever had.
CREATE INDEX stream_sessions_state_expires ON stream_sessions (state, expires_at);
