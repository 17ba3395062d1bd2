//! The diesel schema, shared by both backends. The SQL lives in `migrations/sqlite` and
//! `migrations/postgres`; a test checks that both migrate to the columns declared here.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    devices (id) {
        id -> Text,
        user_id -> Text,
        fingerprint -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        public_key -> Nullable<Text>,
        revoked_at -> Nullable<Timestamp>,
        registered_with -> Nullable<Text>,
    }
}

diesel::table! {
    report_pki (id) {
        id -> Text,
        ca_cert_pem -> Text,
        sealed_ca_key -> Binary,
        signing_cert_pem -> Text,
        sealed_signing_key -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    refreshed_tokens (jti) {
        jti -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        user_id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    videos (id) {
        id -> Text,
        title -> Text,
        duration_seconds -> Double,
        unit_seconds -> Double,
        unit_count -> Integer,
        width -> Integer,
        height -> Integer,
        frame_rate -> Double,
        has_audio -> Bool,
        storage_dir -> Text,
        sealed_secret -> Binary,
        source_sha256 -> Text,
        created_at -> Timestamp,
        code -> Nullable<Text>,
        segment_units -> Nullable<Integer>,
    }
}

diesel::table! {
    stream_sessions (id) {
        id -> Text,
        user_id -> Text,
        device_id -> Text,
        video_id -> Text,
        state -> Text,
        server_public_key -> Text,
        sealed_server_secret -> Nullable<Binary>,
        sealed_cek -> Nullable<Binary>,
        client_address -> Nullable<Text>,
        segments_served -> BigInt,
        revoked_reason -> Nullable<Text>,
        created_at -> Timestamp,
        keyed_at -> Nullable<Timestamp>,
        last_activity_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    security_events (id) {
        id -> Text,
        kind -> Text,
        severity -> Text,
        session_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        device_id -> Nullable<Text>,
        address -> Nullable<Text>,
        detail -> Text,
        created_at -> Timestamp,
        account -> Nullable<Text>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        name -> Text,
        key_prefix -> Text,
        key_hash -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        sealed_callback_secret -> Nullable<Binary>,
    }
}

diesel::table! {
    cases (id) {
        id -> Text,
        status -> Text,
        progress -> Double,
        submitter_kind -> Text,
        submitter_id -> Nullable<Text>,
        file_name -> Text,
        file_size -> BigInt,
        file_sha256 -> Text,
        stored_path -> Text,
        video_id -> Nullable<Text>,
        expected_watermark_hash -> Nullable<Text>,
        verdict -> Nullable<Text>,
        result_json -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    matches (id) {
        id -> Text,
        case_id -> Text,
        session_id -> Text,
        rank -> Integer,
        score -> Double,
        false_positive_probability -> Double,
        created_at -> Timestamp,
    }
}

diesel::table! {
    evidence_reports (id) {
        id -> Text,
        case_id -> Text,
        path -> Text,
        sha256 -> Text,
        signer_cert_sha256 -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        payload -> Text,
        status -> Text,
        progress -> Double,
        attempts -> Integer,
        max_attempts -> Integer,
        run_after -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        case_id -> Nullable<Text>,
        actor -> Text,
        action -> Text,
        detail -> Text,
        prev_hash -> Text,
        entry_hash -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    case_callbacks (case_id) {
        case_id -> Text,
        url -> Text,
        api_key_id -> Text,
        status -> Text,
        attempts -> Integer,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(devices -> users (user_id));
diesel::joinable!(stream_sessions -> users (user_id));
diesel::joinable!(stream_sessions -> devices (device_id));
diesel::joinable!(stream_sessions -> videos (video_id));
diesel::joinable!(matches -> cases (case_id));
diesel::joinable!(matches -> stream_sessions (session_id));
diesel::joinable!(evidence_reports -> cases (case_id));
diesel::joinable!(case_callbacks -> cases (case_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    devices,
    revoked_tokens,
    refreshed_tokens,
    report_pki,
    videos,
    stream_sessions,
    security_events,
    api_keys,
    cases,
    matches,
    evidence_reports,
    jobs,
    audit_log,
    case_callbacks,
);

/// Every table with its columns, in declaration order: what the migrations of both backends
/// must produce (checked by a test against the live database).
pub const TABLES: &[(&str, &[&str])] = &[
    (
        "users",
        &[
            "id",
            "username",
            "password_hash",
            "role",
            "disabled",
            "created_at",
        ],
    ),
    (
        "devices",
        &[
            "id",
            "user_id",
            "fingerprint",
            "created_at",
            "last_seen_at",
            "public_key",
            "revoked_at",
            "registered_with",
        ],
    ),
    ("revoked_tokens", &["jti", "user_id", "expires_at"]),
    ("refreshed_tokens", &["jti", "expires_at"]),
    (
        "videos",
        &[
            "id",
            "title",
            "duration_seconds",
            "unit_seconds",
            "unit_count",
            "width",
            "height",
            "frame_rate",
            "has_audio",
            "storage_dir",
            "sealed_secret",
            "source_sha256",
            "created_at",
            "code",
            "segment_units",
        ],
    ),
    (
        "stream_sessions",
        &[
            "id",
            "user_id",
            "device_id",
            "video_id",
            "state",
            "server_public_key",
            "sealed_server_secret",
            "sealed_cek",
            "client_address",
            "segments_served",
            "revoked_reason",
            "created_at",
            "keyed_at",
            "last_activity_at",
            "expires_at",
        ],
    ),
    (
        "security_events",
        &[
            "id",
            "kind",
            "severity",
            "session_id",
            "user_id",
            "device_id",
            "address",
            "detail",
            "created_at",
            "account",
        ],
    ),
    (
        "api_keys",
        &[
            "id",
            "name",
            "key_prefix",
            "key_hash",
            "created_at",
            "last_used_at",
            "revoked_at",
            "sealed_callback_secret",
        ],
    ),
    (
        "cases",
        &[
            "id",
            "status",
            "progress",
            "submitter_kind",
            "submitter_id",
            "file_name",
            "file_size",
            "file_sha256",
            "stored_path",
            "video_id",
            "expected_watermark_hash",
            "verdict",
            "result_json",
            "error",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "matches",
        &[
            "id",
            "case_id",
            "session_id",
            "rank",
            "score",
            "false_positive_probability",
            "created_at",
        ],
    ),
    (
        "evidence_reports",
        &[
            "id",
            "case_id",
            "path",
            "sha256",
            "signer_cert_sha256",
            "created_at",
        ],
    ),
    (
        "jobs",
        &[
            "id",
            "kind",
            "payload",
            "status",
            "progress",
            "attempts",
            "max_attempts",
            "run_after",
            "lease_owner",
            "lease_expires_at",
            "last_error",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "audit_log",
        &[
            "seq",
            "case_id",
            "actor",
            "action",
            "detail",
            "prev_hash",
            "entry_hash",
            "created_at",
        ],
    ),
    (
        "case_callbacks",
        &[
            "case_id",
            "url",
            "api_key_id",
            "status",
            "attempts",
            "last_status",
            "last_error",
            "created_at",
            "updated_at",
            "delivered_at",
        ],
    ),
];
