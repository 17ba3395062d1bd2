DROP INDEX stream_sessions_video_id;
