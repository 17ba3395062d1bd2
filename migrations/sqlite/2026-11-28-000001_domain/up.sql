-- leaktrace domain schema (SQLite). Keep in step with ../../postgres and shared/src/db/schema.rs.
-- Ids are application-generated text (UUIDs); times are UTC.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'legal', 'admin')),
    disabled      BOOLEAN NOT NULL DEFAULT 0,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE devices (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    UNIQUE (user_id, fingerprint)
);

CREATE TABLE videos (
    id               TEXT PRIMARY KEY NOT NULL,
    title            TEXT NOT NULL UNIQUE,
    duration_seconds DOUBLE NOT NULL,
    unit_seconds     DOUBLE NOT NULL,
    unit_count       INTEGER NOT NULL,
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    frame_rate       DOUBLE NOT NULL,
    has_audio        BOOLEAN NOT NULL,
    storage_dir      TEXT NOT NULL,
    sealed_secret    BLOB NOT NULL,
    source_sha256    TEXT NOT NULL,
    created_at       TIMESTAMP NOT NULL
);

CREATE TABLE stream_sessions (
    id                   TEXT PRIMARY KEY NOT NULL,
    user_id              TEXT NOT NULL REFERENCES users(id),
    device_id            TEXT NOT NULL REFERENCES devices(id),
    video_id             TEXT NOT NULL REFERENCES videos(id),
    state                TEXT NOT NULL CHECK (state IN ('requested', 'keyed', 'streaming', 'expired', 'revoked')),
    server_public_key    TEXT NOT NULL,
    sealed_server_secret BLOB,
    sealed_cek           BLOB,
    client_address       TEXT,
    segments_served      BIGINT NOT NULL DEFAULT 0,
    revoked_reason       TEXT,
    created_at           TIMESTAMP NOT NULL,
    keyed_at             TIMESTAMP,
    last_activity_at     TIMESTAMP NOT NULL,
    expires_at           TIMESTAMP NOT NULL
);
CREATE INDEX stream_sessions_video ON stream_sessions (video_id);
CREATE INDEX stream_sessions_user_state ON stream_sessions (user_id, state);

CREATE TABLE security_events (
    id         TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    severity   TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    session_id TEXT,
    user_id    TEXT,
    device_id  TEXT,
    address    TEXT,
    detail     TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX security_events_created ON security_events (created_at);
CREATE INDEX security_events_session ON security_events (session_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    key_prefix   TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at   TIMESTAMP
);

CREATE TABLE cases (
    id                      TEXT PRIMARY KEY NOT NULL,
    status                  TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress                DOUBLE NOT NULL DEFAULT 0,
    submitter_kind          TEXT NOT NULL CHECK (submitter_kind IN ('user', 'api_key', 'cli')),
    submitter_id            TEXT,
    file_name               TEXT NOT NULL,
    file_size               BIGINT NOT NULL,
    file_sha256             TEXT NOT NULL,
    stored_path             TEXT NOT NULL,
    video_id                TEXT REFERENCES videos(id),
    expected_watermark_hash TEXT,
    verdict                 TEXT CHECK (verdict IN ('identified', 'inconclusive', 'no_watermark')),
    result_json             TEXT,
    error                   TEXT,
    created_at              TIMESTAMP NOT NULL,
    updated_at              TIMESTAMP NOT NULL
);
CREATE INDEX cases_created ON cases (created_at);

CREATE TABLE matches (
    id                         TEXT PRIMARY KEY NOT NULL,
    case_id                    TEXT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    session_id                 TEXT NOT NULL REFERENCES stream_sessions(id),
    rank                       INTEGER NOT NULL,
    score                      DOUBLE NOT NULL,
    false_positive_probability DOUBLE NOT NULL,
    created_at                 TIMESTAMP NOT NULL,
    UNIQUE (case_id, rank)
);

CREATE TABLE evidence_reports (
    id                  TEXT PRIMARY KEY NOT NULL,
    case_id             TEXT NOT NULL REFERENCES cases(id),
    path                TEXT NOT NULL,
    sha256              TEXT NOT NULL,
    signer_cert_sha256  TEXT NOT NULL,
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX evidence_reports_case ON evidence_reports (case_id);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    progress         DOUBLE NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_after        TIMESTAMP NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    last_error       TEXT,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX jobs_claim ON jobs (status, run_after);

CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY NOT NULL,
    case_id    TEXT,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    entry_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_log_case ON audit_log (case_id);
