-- A crawler's callback for one of its cases: where to POST the verdict when the case ends,
-- and how the delivery went (pending -> delivered | failed).
CREATE TABLE case_callbacks (
    case_id      TEXT PRIMARY KEY NOT NULL REFERENCES cases (id),
    url          TEXT NOT NULL,
    api_key_id   TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    last_status  INTEGER,
    last_error   TEXT,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP
);
