-- Candidates of a title read in batches of ids (keyset: video, then id).
CREATE INDEX stream_sessions_video_id ON stream_sessions (video_id, id);
