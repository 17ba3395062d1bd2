//! Repository tests. Each test gets its own database on the backend the run asked for
//! (`LEAKTRACE_TEST_BACKEND`): the test script runs this suite against SQLite and PostgreSQL.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::repo::{api_keys, devices, users, videos};
use super::reservations::UnitClaim;
use super::schema::TABLES;
use super::{DbConnection, DbError};
use crate::auth::{api_key, password};
use crate::domain::Role;
use crate::testing::TestDatabase;
use formats::codes::CodeScheme;

#[derive(QueryableByName)]
struct ColumnName {
    #[diesel(sql_type = Text)]
    name: String,
}

fn live_columns(conn: &mut DbConnection, table: &str) -> Vec<String> {
    let rows: Vec<ColumnName> = match conn {
        DbConnection::Sqlite(c) => {
            diesel::sql_query("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind::<Text, _>(table)
                .load(c)
        }
        DbConnection::Postgresql(c) => diesel::sql_query(
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind::<Text, _>(table)
        .load(c),
    }
    .expect("read columns");
    rows.into_iter().map(|r| r.name).collect()
}

#[test]
fn migrations_create_the_declared_schema_and_are_idempotent() {
    let t = TestDatabase::new();
    let db = super::Db::open(&t.target).unwrap();
    let first = db.migrate().unwrap();
    assert!(!first.is_empty(), "fresh database gets migrations");
    assert!(
        db.migrate().unwrap().is_empty(),
        "second run applies nothing"
    );
    let mut conn = db.conn().unwrap();
    for (table, columns) in TABLES {
        assert_eq!(&live_columns(&mut conn, table), columns, "table {table}");
    }
    assert!(db.ping().is_ok());
}

#[test]
fn users_create_get_find_list() {
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let hash = password::hash("a long password").unwrap();
    let bob = users::create(&mut conn, "bob", &hash, Role::Analyst).unwrap();
    let amy = users::create(&mut conn, "amy", &hash, Role::Viewer).unwrap();
    assert_eq!(bob.role().unwrap(), Role::Analyst);
    assert!(!bob.disabled);
    assert_eq!(users::get(&mut conn, &bob.id).unwrap(), bob);
    assert_eq!(
        users::find_by_username(&mut conn, "amy").unwrap(),
        Some(amy.clone())
    );
    assert_eq!(users::find_by_username(&mut conn, "nobody").unwrap(), None);
    let names: Vec<_> = users::list(&mut conn)
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["amy", "bob"]);
    assert!(matches!(
        users::get(&mut conn, "missing"),
        Err(DbError::NotFound("user"))
    ));
}

#[test]
fn duplicate_user_is_a_conflict_and_writes_nothing() {
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    users::create(&mut conn, "carol", "h1", Role::Legal).unwrap();
    let err = users::create(&mut conn, "carol", "h2", Role::Admin).unwrap_err();
    assert!(matches!(err, DbError::Conflict(_)), "{err}");
    assert_eq!(err.code(), "conflict");
    let all = users::list(&mut conn).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].password_hash, "h1");
}

#[test]
fn users_disable_and_password_change() {
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    users::create(&mut conn, "dan", "old", Role::Viewer).unwrap();
    users::set_disabled(&mut conn, "dan", true).unwrap();
    users::set_password_hash(&mut conn, "dan", "new").unwrap();
    let dan = users::find_by_username(&mut conn, "dan").unwrap().unwrap();
    assert!(dan.disabled);
    assert_eq!(dan.password_hash, "new");
    users::set_disabled(&mut conn, "dan", false).unwrap();
    assert!(
        !users::find_by_username(&mut conn, "dan")
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(matches!(
        users::set_disabled(&mut conn, "ghost", true),
        Err(DbError::NotFound(_))
    ));
    assert!(matches!(
        users::set_password_hash(&mut conn, "ghost", "x"),
        Err(DbError::NotFound(_))
    ));
}

#[test]
fn api_keys_lifecycle() {
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let k = api_key::generate();
    let row = api_keys::create(
        &mut conn,
        "crawler-1",
        &k.display_prefix,
        &k.hash,
        Some(&[7, 7]),
    )
    .unwrap();
    assert_eq!(row.sealed_callback_secret.as_deref(), Some(&[7u8, 7][..]));
    assert_eq!(row.key_hash, k.hash);
    assert!(row.revoked_at.is_none() && row.last_used_at.is_none());

    let found = api_keys::find_active_by_hash(&mut conn, &api_key::hash(&k.plaintext))
        .unwrap()
        .expect("active key found by hash");
    assert_eq!(found.id, row.id);
    assert!(
        api_keys::find_active_by_hash(&mut conn, &api_key::hash("ltk_wrong"))
            .unwrap()
            .is_none()
    );

    api_keys::touch(&mut conn, &row.id).unwrap();
    let listed = api_keys::list(&mut conn).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());

    let dup = api_keys::create(&mut conn, "crawler-1", "p", "other-hash", None).unwrap_err();
    assert!(matches!(dup, DbError::Conflict(_)), "{dup}");

    api_keys::revoke(&mut conn, "crawler-1").unwrap();
    let revoked_at = api_keys::list(&mut conn).unwrap()[0].revoked_at;
    assert!(revoked_at.is_some());
    assert!(api_keys::find_active_by_hash(&mut conn, &k.hash)
        .unwrap()
        .is_none());
    api_keys::revoke(&mut conn, "crawler-1").unwrap();
    assert_eq!(
        api_keys::list(&mut conn).unwrap()[0].revoked_at,
        revoked_at,
        "first revocation kept"
    );
    assert!(matches!(
        api_keys::revoke(&mut conn, "nope"),
        Err(DbError::NotFound(_))
    ));
}

#[test]
fn timestamps_round_trip_exactly() {
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let before = super::now();
    let u = users::create(&mut conn, "tim", "h", Role::Viewer).unwrap();
    assert!(u.created_at >= before);
    assert_eq!(
        users::get(&mut conn, &u.id).unwrap().created_at,
        u.created_at
    );
}

#[test]
fn async_run_and_concurrent_writers() {
    let t = TestDatabase::new();
    let db = t.open();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.run(move |c| users::create(c, &format!("u{i:02}"), "h", Role::Viewer))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let n = db.run(users::list).await.unwrap().len();
        assert_eq!(n, 16);
    });
}

fn sample_video(id: &str, title: &str) -> videos::NewVideo {
    videos::NewVideo {
        id: id.into(),
        title: title.into(),
        duration_seconds: 5.28,
        unit_seconds: 1.0,
        unit_count: 6,
        width: 1280,
        height: 720,
        frame_rate: 25.0,
        has_audio: true,
        storage_dir: format!("videos/{id}"),
        sealed_secret: vec![1, 2, 3, 0, 255],
        source_sha256: "ab".repeat(32),
        created_at: super::now(),
        code: Some("tardos-v2".into()),
        segment_units: Some(2),
    }
}

#[test]
fn videos_create_get_find_list_and_conflict() {
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let v = videos::create(&mut conn, &sample_video("v2", "Zebra")).unwrap();
    assert_eq!(v.sealed_secret, vec![1, 2, 3, 0, 255], "binary round trip");
    assert_eq!(v.frame_rate, 25.0);
    videos::create(&mut conn, &sample_video("v1", "Aardvark")).unwrap();
    assert_eq!(videos::get(&mut conn, "v2").unwrap(), v);
    assert_eq!(
        videos::find_by_title(&mut conn, "Zebra").unwrap(),
        Some(v.clone())
    );
    assert_eq!(videos::find_by_title(&mut conn, "zebra").unwrap(), None);
    let titles: Vec<_> = videos::list(&mut conn)
        .unwrap()
        .into_iter()
        .map(|v| v.title)
        .collect();
    assert_eq!(titles, ["Aardvark", "Zebra"]);
    let err = videos::create(&mut conn, &sample_video("v3", "Zebra")).unwrap_err();
    assert!(matches!(err, DbError::Conflict(_)), "{err}");
    assert!(matches!(
        videos::get(&mut conn, "v3"),
        Err(DbError::NotFound("video"))
    ));
    assert_eq!(
        (v.code.as_deref(), v.segment_units),
        (Some("tardos-v2"), Some(2))
    );

    // A title recorded without its packaging details: listed as such until they are recorded,
    // once (a second record does not overwrite the first).
    let old = videos::NewVideo {
        code: None,
        segment_units: None,
        ..sample_video("v0", "Old")
    };
    videos::create(&mut conn, &old).unwrap();
    assert_eq!(
        videos::unrecorded_packaging(&mut conn).unwrap(),
        [("v0".to_string(), "videos/v0".to_string())]
    );
    videos::record_packaging(&mut conn, "v0", CodeScheme::Uniform, 1).unwrap();
    videos::record_packaging(&mut conn, "v0", CodeScheme::Tardos, 2).unwrap();
    let got = videos::get(&mut conn, "v0").unwrap();
    assert_eq!(
        (got.code.as_deref(), got.segment_units),
        (Some("uniform-v1"), Some(1))
    );
    assert!(videos::unrecorded_packaging(&mut conn).unwrap().is_empty());
}

/// User "sam" with a device of fingerprint `fp` and key "key", title "v1", and session "s1" of
/// theirs for it, requested (not keyed yet).
fn sam_requesting_s1(
    conn: &mut DbConnection,
    fp: &str,
) -> (
    users::UserRow,
    devices::DeviceRow,
    super::repo::sessions::NewSession,
) {
    use super::repo::sessions::{self, NewSession};
    let u = users::create(conn, "sam", "h", Role::Viewer).unwrap();
    let d = devices::register(conn, &reg(&u.id, fp, "key")).unwrap();
    videos::create(conn, &sample_video("v1", "Title")).unwrap();
    let new = NewSession::requested(
        "s1".into(),
        u.id.clone(),
        d.id.clone(),
        "v1".into(),
        "pub".into(),
        vec![1],
        None,
    );
    sessions::create(conn, &new).unwrap();
    (u, d, new)
}

fn reg<'a>(user_id: &'a str, fingerprint: &'a str, key: &'a str) -> devices::Registration<'a> {
    devices::Registration {
        user_id,
        fingerprint,
        public_key: key,
        user_token: "jti-of-the-user-token",
    }
}

#[test]
fn devices_register_once_per_user_and_fingerprint() {
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let u = users::create(&mut conn, "vera", "h", Role::Viewer).unwrap();
    let w = users::create(&mut conn, "walt", "h", Role::Viewer).unwrap();
    let fp = "a1".repeat(32);
    let d1 = devices::register(&mut conn, &reg(&u.id, &fp, "key-1")).unwrap();
    assert_eq!(d1.public_key.as_deref(), Some("key-1"));
    assert!(devices::revoke(&mut conn, &d1.id).unwrap());
    assert!(
        !devices::revoke(&mut conn, &d1.id).unwrap(),
        "already revoked"
    );
    assert!(devices::get(&mut conn, &d1.id)
        .unwrap()
        .revoked_at
        .is_some());
    // Registering again re-keys the same device and lifts the revocation.
    let again = devices::register(&mut conn, &reg(&u.id, &fp, "key-2")).unwrap();
    assert_eq!(again.id, d1.id, "same user and fingerprint: same device");
    assert_eq!(again.public_key.as_deref(), Some("key-2"));
    assert_eq!(again.revoked_at, None);
    assert!(again.last_seen_at >= d1.last_seen_at);
    let other_user = devices::register(&mut conn, &reg(&w.id, &fp, "key-3")).unwrap();
    assert_ne!(other_user.id, d1.id, "devices are per user");
    let second = devices::register(&mut conn, &reg(&u.id, &"b2".repeat(32), "key-4")).unwrap();
    let mine: Vec<_> = devices::list_for_user(&mut conn, &u.id)
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(mine, [d1.id.clone(), second.id]);
    assert_eq!(devices::get(&mut conn, &d1.id).unwrap().fingerprint, fp);
    assert!(matches!(
        devices::get(&mut conn, "nope"),
        Err(DbError::NotFound("device"))
    ));
    // A device must belong to an existing user.
    assert!(devices::register(&mut conn, &reg("no-such-user", &fp, "k")).is_err());
    assert!(matches!(
        devices::revoke(&mut conn, "nope"),
        Err(DbError::NotFound("device"))
    ));
}

#[test]
fn revoked_tokens_are_remembered_until_they_expire() {
    use super::repo::revoked_tokens;
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let now = super::now();
    let hour = chrono::Duration::hours(1);
    assert!(!revoked_tokens::is_revoked(&mut conn, "j1").unwrap());
    revoked_tokens::revoke(&mut conn, "j1", "u", now + hour).unwrap();
    revoked_tokens::revoke(&mut conn, "j1", "u", now + hour).unwrap();
    revoked_tokens::revoke(&mut conn, "j2", "u", now - hour).unwrap();
    assert!(revoked_tokens::is_revoked(&mut conn, "j1").unwrap());
    assert!(revoked_tokens::is_revoked(&mut conn, "j2").unwrap());
    assert_eq!(revoked_tokens::purge_expired(&mut conn, now).unwrap(), 1);
    assert!(revoked_tokens::is_revoked(&mut conn, "j1").unwrap());
    assert!(!revoked_tokens::is_revoked(&mut conn, "j2").unwrap());

    use super::repo::refreshed_tokens;
    assert!(refreshed_tokens::spend(&mut conn, "d1", now + hour).unwrap());
    assert!(
        !refreshed_tokens::spend(&mut conn, "d1", now + hour).unwrap(),
        "once"
    );
    assert!(refreshed_tokens::spend(&mut conn, "d2", now - hour).unwrap());
    assert_eq!(refreshed_tokens::purge_expired(&mut conn, now).unwrap(), 1);
}

#[test]
fn revoking_a_device_revokes_its_open_sessions_in_one_step() {
    use super::repo::sessions::{self, NewSession};
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let u = users::create(&mut conn, "sam", "h", Role::Viewer).unwrap();
    let d = devices::register(&mut conn, &reg(&u.id, &"cd".repeat(32), "key")).unwrap();
    let registered = devices::registered_with(&mut conn, "jti-of-the-user-token").unwrap();
    assert_eq!(registered, std::slice::from_ref(&d.id));
    videos::create(&mut conn, &sample_video("v1", "Title")).unwrap();
    let new = NewSession::requested(
        "s1".into(),
        u.id.clone(),
        d.id.clone(),
        "v1".into(),
        "pk".into(),
        vec![1],
        None,
    );
    sessions::create(&mut conn, &new).unwrap();
    let mut seen = Vec::new();
    let ended = devices::revoke_with_sessions(&mut conn, &d.id, "why", &[], |_, ids| {
        seen.extend_from_slice(ids);
        Ok(())
    })
    .unwrap();
    assert_eq!(ended, Some(vec!["s1".to_string()]));
    assert_eq!(seen, ["s1"]);
    assert_eq!(
        sessions::get(&mut conn, "s1").unwrap().state.as_str(),
        "revoked"
    );
    assert!(devices::registered_with(&mut conn, "jti-of-the-user-token")
        .unwrap()
        .is_empty());
    // Already revoked: nothing changes, `also` does not run.
    let again = devices::revoke_with_sessions(&mut conn, &d.id, "why", &[], |_, _| {
        panic!("not run for a device already revoked")
    })
    .unwrap();
    assert_eq!(again, None);
    // A failing `also` undoes the revocation.
    let d2 = devices::register(&mut conn, &reg(&u.id, &"ef".repeat(32), "key")).unwrap();
    let failed = devices::revoke_with_sessions(&mut conn, &d2.id, "why", &[], |_, _| {
        Err(DbError::Conflict("no".into()))
    });
    assert!(failed.is_err());
    assert_eq!(devices::get(&mut conn, &d2.id).unwrap().revoked_at, None);
}

#[test]
fn a_titles_keyed_sessions_are_read_in_batches_of_ids() {
    use super::repo::sessions::{self, NewSession};
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let u = users::create(&mut conn, "sam", "h", Role::Viewer).unwrap();
    let d = devices::register(&mut conn, &reg(&u.id, &"cd".repeat(32), "key")).unwrap();
    videos::create(&mut conn, &sample_video("v1", "Title")).unwrap();
    videos::create(&mut conn, &sample_video("v2", "Other")).unwrap();
    for i in 0..7 {
        for video in ["v1", "v2"] {
            let id = format!("{video}-s{i}");
            let new = NewSession::requested(
                id.clone(),
                u.id.clone(),
                d.id.clone(),
                video.into(),
                "pub".into(),
                vec![1],
                None,
            );
            sessions::create(&mut conn, &new).unwrap();
            // Session 3 of each title never completed the key exchange: no candidate.
            if i != 3 {
                sessions::mark_keyed(&mut conn, &id, &[9]).unwrap();
            }
        }
    }
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = sessions::keyed_ids_for_video(&mut conn, "v1", after.as_deref(), 4).unwrap();
        assert!(batch.len() <= 4);
        let Some(last) = batch.last().cloned() else {
            break;
        };
        all.extend(batch);
        after = Some(last);
    }
    let want: Vec<String> = [0, 1, 2, 4, 5, 6]
        .iter()
        .map(|i| format!("v1-s{i}"))
        .collect();
    assert_eq!(all, want);
}

#[test]
fn sessions_lifecycle_keying_activity_and_expiry() {
    use super::repo::sessions::{self, NewSession, SessionState};
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let u = users::create(&mut conn, "sam", "h", Role::Viewer).unwrap();
    let d = devices::register(&mut conn, &reg(&u.id, &"cd".repeat(32), "key")).unwrap();
    videos::create(&mut conn, &sample_video("v1", "Title")).unwrap();
    let new = NewSession::requested(
        "s1".into(),
        u.id.clone(),
        d.id.clone(),
        "v1".into(),
        "pub".into(),
        vec![1, 2, 3],
        Some("127.0.0.1".into()),
    );
    let s = sessions::create(&mut conn, &new).unwrap();
    assert_eq!(s.state_at(super::now()), SessionState::Requested);
    assert_eq!(s.sealed_server_secret.as_deref(), Some(&[1u8, 2, 3][..]));
    assert!(s.expires_at > s.created_at);

    assert!(sessions::mark_keyed(&mut conn, "s1", &[9, 9]).unwrap());
    assert!(
        !sessions::mark_keyed(&mut conn, "s1", &[8, 8]).unwrap(),
        "only once"
    );
    let keyed = sessions::get(&mut conn, "s1").unwrap();
    assert_eq!(keyed.state, SessionState::Keyed);
    assert_eq!(keyed.sealed_cek.as_deref(), Some(&[9u8, 9][..]));
    assert_eq!(
        keyed.sealed_server_secret, None,
        "ephemeral secret destroyed after use"
    );

    sessions::record_activity(&mut conn, "s1", 1).unwrap();
    sessions::record_activity(&mut conn, "s1", 2).unwrap();
    let streaming = sessions::get(&mut conn, "s1").unwrap();
    assert_eq!(
        (streaming.state, streaming.segments_served),
        (SessionState::Streaming, 3)
    );
    let later = streaming.expires_at + chrono::Duration::seconds(1);
    assert_eq!(
        streaming.state_at(later),
        SessionState::Expired,
        "idle expiry"
    );

    sessions::end(&mut conn, "s1", SessionState::Revoked, Some("other device")).unwrap();
    let revoked = sessions::get(&mut conn, "s1").unwrap();
    assert_eq!(revoked.state_at(super::now()), SessionState::Revoked);
    assert_eq!(revoked.revoked_reason.as_deref(), Some("other device"));
    sessions::record_activity(&mut conn, "s1", 1).unwrap();
    assert_eq!(
        sessions::get(&mut conn, "s1").unwrap().state,
        SessionState::Revoked,
        "no resurrection"
    );
    assert_eq!(sessions::list_for_video(&mut conn, "v1").unwrap().len(), 1);
    assert!(matches!(
        sessions::get(&mut conn, "s2"),
        Err(DbError::NotFound("session"))
    ));
}

#[test]
fn security_events_are_recorded_and_listed() {
    use super::repo::security_events::{self, NewEvent, Severity};
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let e1 = security_events::record(
        &mut conn,
        Severity::Warning,
        &NewEvent {
            kind: "ripping_suspected",
            session_id: Some("s1"),
            user_id: Some("u1"),
            address: Some("127.0.0.1"),
            detail: "12 segments in 1 s",
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (e1.kind.as_str(), e1.severity.as_str()),
        ("ripping_suspected", "warning")
    );
    security_events::record(
        &mut conn,
        Severity::Critical,
        &NewEvent {
            kind: "device_mismatch",
            session_id: Some("s1"),
            detail: "x",
            ..Default::default()
        },
    )
    .unwrap();
    security_events::record(
        &mut conn,
        Severity::Info,
        &NewEvent {
            kind: "other",
            detail: "y",
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(security_events::recent(&mut conn, 2).unwrap().len(), 2);
    let s1 = security_events::for_session(&mut conn, "s1").unwrap();
    assert_eq!(s1.len(), 2);
    assert_eq!(s1[0].id, e1.id);
}

#[test]
fn jobs_claim_heartbeat_progress_and_finish() {
    use super::repo::jobs::{self, Failure, JobKind, JobStatus};
    use chrono::Duration;
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let lease = Duration::seconds(30);
    assert!(jobs::claim(&mut conn, "w1", lease).unwrap().is_none());
    let first = jobs::enqueue(&mut conn, JobKind::AnalyseCase, r#"{"n":1}"#, 3).unwrap();
    let second = jobs::enqueue(&mut conn, JobKind::AnalyseCase, r#"{"n":2}"#, 3).unwrap();
    assert_eq!(first.status, JobStatus::Queued);
    // Oldest first; a claimed job is nobody else's.
    let a = jobs::claim(&mut conn, "w1", lease).unwrap().unwrap();
    assert_eq!((a.id.as_str(), a.attempts), (first.id.as_str(), 1));
    assert_eq!(a.lease_owner.as_deref(), Some("w1"));
    let b = jobs::claim(&mut conn, "w2", lease).unwrap().unwrap();
    assert_eq!(b.id, second.id);
    assert!(jobs::claim(&mut conn, "w3", lease).unwrap().is_none());
    // Only the holder may touch a job.
    assert!(jobs::heartbeat(&mut conn, &a.id, "w1", lease).unwrap());
    assert!(!jobs::heartbeat(&mut conn, &a.id, "w2", lease).unwrap());
    assert!(jobs::progress(&mut conn, &a.id, "w1", 0.5, lease).unwrap());
    assert_eq!(jobs::get(&mut conn, &a.id).unwrap().progress, 0.5);
    assert!(!jobs::succeed(&mut conn, &a.id, "w2").unwrap());
    assert!(jobs::succeed(&mut conn, &a.id, "w1").unwrap());
    let done = jobs::get(&mut conn, &a.id).unwrap();
    assert_eq!((done.status, done.progress), (JobStatus::Succeeded, 1.0));
    assert!(done.lease_owner.is_none());
    // A permanent failure ends the job at once.
    assert_eq!(
        jobs::fail(&mut conn, &b.id, "w2", "not a video", Failure::Permanent).unwrap(),
        Some(JobStatus::Failed)
    );
    let failed = jobs::get(&mut conn, &b.id).unwrap();
    assert_eq!(failed.last_error.as_deref(), Some("not a video"));
    assert!(jobs::claim(&mut conn, "w1", lease).unwrap().is_none());
    assert_eq!(
        jobs::count_by_status(&mut conn, JobKind::AnalyseCase, JobStatus::Failed).unwrap(),
        1
    );
}

#[test]
fn a_released_job_is_queued_again_at_once_without_spending_an_attempt() {
    use super::repo::jobs::{self, JobKind, JobStatus};
    use chrono::Duration;
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let lease = Duration::seconds(600);
    let job = jobs::enqueue(&mut conn, JobKind::PackageTitle, "{}", 3).unwrap();
    let held = jobs::claim(&mut conn, "w1", lease).unwrap().unwrap();
    assert_eq!(held.attempts, 1);
    assert!(
        !jobs::release(&mut conn, &job.id, "w2").unwrap(),
        "not w2's"
    );
    assert!(jobs::release(&mut conn, &job.id, "w1").unwrap());
    let back = jobs::get(&mut conn, &job.id).unwrap();
    assert_eq!((back.status, back.attempts), (JobStatus::Queued, 0));
    assert!(back.lease_owner.is_none() && back.lease_expires_at.is_none());
    // Another worker takes it at once, not when the 600 s lease would have lapsed.
    let again = jobs::claim(&mut conn, "w2", lease).unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (job.id.clone(), 1));
    assert!(
        !jobs::release(&mut conn, &job.id, "w1").unwrap(),
        "w1 lost it"
    );
    assert!(!jobs::succeed(&mut conn, &job.id, "w1").unwrap());
}

#[test]
fn a_job_of_a_kind_this_build_does_not_know_is_left_for_a_worker_that_does() {
    use super::repo::jobs::{self, JobKind};
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let known = jobs::enqueue(&mut conn, JobKind::PackageTitle, "{}", 1).unwrap();
    // A newer deployment's kind, written by hand.
    diesel::insert_into(super::schema::jobs::table)
        .values((
            super::schema::jobs::id.eq("future"),
            super::schema::jobs::kind.eq("transcribe_title"),
            super::schema::jobs::payload.eq("{}"),
            super::schema::jobs::status.eq("queued"),
            super::schema::jobs::progress.eq(0.0),
            super::schema::jobs::attempts.eq(0),
            super::schema::jobs::max_attempts.eq(1),
            super::schema::jobs::run_after.eq(super::now() - chrono::Duration::seconds(60)),
            super::schema::jobs::created_at.eq(super::now() - chrono::Duration::seconds(60)),
            super::schema::jobs::updated_at.eq(super::now()),
        ))
        .execute(&mut conn)
        .unwrap();
    let lease = chrono::Duration::seconds(30);
    let claimed = jobs::claim(&mut conn, "w1", lease).unwrap().unwrap();
    assert_eq!(claimed.id, known.id, "the older unknown job is passed over");
    assert!(jobs::claim(&mut conn, "w1", lease).unwrap().is_none());
    // Read directly, the unknown kind is an error, not a guess.
    assert!(jobs::get(&mut conn, "future").is_err());
}

#[test]
fn jobs_retry_with_backoff_until_attempts_are_spent_and_expired_leases_are_taken_over() {
    use super::repo::jobs::{self, Failure, JobKind, JobStatus};
    use chrono::Duration;
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let lease = Duration::seconds(30);
    let job = jobs::enqueue(&mut conn, JobKind::AnalyseCase, "{}", 2).unwrap();
    let c = jobs::claim(&mut conn, "w1", lease).unwrap().unwrap();
    let later = Failure::Transient {
        retry_after: Duration::seconds(3600),
    };
    assert_eq!(
        jobs::fail(&mut conn, &c.id, "w1", "database hiccup", later).unwrap(),
        Some(JobStatus::Queued)
    );
    // Not before its backoff has passed.
    assert!(jobs::claim(&mut conn, "w1", lease).unwrap().is_none());
    let now = Failure::Transient {
        retry_after: Duration::seconds(-1),
    };
    // Make it due (as if the hour had passed) and take it again: the second and last attempt.
    diesel::update(super::schema::jobs::table.find(&job.id))
        .set(super::schema::jobs::run_after.eq(super::now() - Duration::seconds(1)))
        .execute(&mut conn)
        .unwrap();
    let c = jobs::claim(&mut conn, "w1", lease).unwrap().unwrap();
    assert_eq!(c.attempts, 2);
    assert_eq!(
        jobs::fail(&mut conn, &c.id, "w1", "again", now).unwrap(),
        Some(JobStatus::Failed)
    );

    // A worker that stops renewing its lease loses the job to another.
    let job = jobs::enqueue(&mut conn, JobKind::AnalyseCase, "{}", 3).unwrap();
    let short = Duration::milliseconds(-1);
    let crashed = jobs::claim(&mut conn, "crashed", short).unwrap().unwrap();
    assert_eq!(crashed.id, job.id);
    let taken = jobs::claim(&mut conn, "w2", lease).unwrap().unwrap();
    assert_eq!((taken.id.as_str(), taken.attempts), (job.id.as_str(), 2));
    assert!(!jobs::heartbeat(&mut conn, &job.id, "crashed", lease).unwrap());
    assert_eq!(
        jobs::fail(&mut conn, &job.id, "crashed", "late", now).unwrap(),
        None
    );
    assert!(jobs::succeed(&mut conn, &job.id, "w2").unwrap());
}

#[test]
fn concurrent_claimers_never_take_one_job_twice() {
    use super::repo::jobs;
    use chrono::Duration;
    let t = TestDatabase::new();
    let db = t.open();
    let total = 60;
    {
        let mut conn = db.conn().unwrap();
        for i in 0..total {
            jobs::enqueue(
                &mut conn,
                jobs::JobKind::AnalyseCase,
                &format!("{{\"n\":{i}}}"),
                1,
            )
            .unwrap();
        }
    }
    let claimed: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let db = db.clone();
                s.spawn(move || {
                    let mut conn = db.conn().unwrap();
                    let mut mine = Vec::new();
                    while let Some(j) =
                        jobs::claim(&mut conn, &format!("w{w}"), Duration::seconds(60)).unwrap()
                    {
                        assert!(jobs::succeed(&mut conn, &j.id, &format!("w{w}")).unwrap());
                        mine.push(j.id);
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let unique: std::collections::HashSet<&String> = claimed.iter().collect();
    assert_eq!(claimed.len(), total);
    assert_eq!(unique.len(), total);
}

#[test]
fn audit_chain_detects_modified_removed_and_reordered_entries() {
    use super::repo::audit::{self, Verification};
    use super::schema::audit_log;
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    assert!(matches!(
        audit::verify(&mut conn).unwrap(),
        Verification::Intact { entries: 0, .. }
    ));
    for i in 1..=5 {
        let e = audit::append(
            &mut conn,
            Some("case-1"),
            "analyst:ann",
            "upload",
            &format!("{i}"),
        )
        .unwrap();
        assert_eq!(e.seq, i);
    }
    audit::append(&mut conn, None, "system", "other", "x").unwrap();
    assert_eq!(audit::for_case(&mut conn, "case-1").unwrap().len(), 5);
    let head = match audit::verify(&mut conn).unwrap() {
        Verification::Intact { entries: 6, head } => head,
        other => panic!("{other:?}"),
    };
    let entries = audit::for_case(&mut conn, "case-1").unwrap();
    assert_eq!(entries[1].prev_hash, entries[0].entry_hash);

    let broken = |conn: &mut DbConnection| match audit::verify(conn).unwrap() {
        Verification::Broken { seq, .. } => seq,
        other => panic!("not detected: {other:?}"),
    };
    // Modified.
    diesel::update(audit_log::table.find(3i64))
        .set(audit_log::detail.eq("30"))
        .execute(&mut conn)
        .unwrap();
    assert_eq!(broken(&mut conn), 3);
    diesel::update(audit_log::table.find(3i64))
        .set(audit_log::detail.eq("3"))
        .execute(&mut conn)
        .unwrap();
    assert!(matches!(
        audit::verify(&mut conn).unwrap(),
        Verification::Intact { head: ref h, .. } if *h == head
    ));
    // Reordered: entries 2 and 4 swap places (sequence numbers exchanged).
    for (from, to) in [(2i64, 100i64), (4, 2), (100, 4)] {
        diesel::update(audit_log::table.find(from))
            .set(audit_log::seq.eq(to))
            .execute(&mut conn)
            .unwrap();
    }
    assert_eq!(broken(&mut conn), 2);
    for (from, to) in [(2i64, 100i64), (4, 2), (100, 4)] {
        diesel::update(audit_log::table.find(from))
            .set(audit_log::seq.eq(to))
            .execute(&mut conn)
            .unwrap();
    }
    // Removed.
    diesel::delete(audit_log::table.find(5i64))
        .execute(&mut conn)
        .unwrap();
    assert_eq!(broken(&mut conn), 5);
}

#[test]
fn retention_removes_old_events_but_keeps_critical_ones() {
    use super::repo::security_events::{self, NewEvent, Severity};
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    for (kind, severity) in [
        ("direct_file_probe", Severity::Warning),
        ("piracy_detected", Severity::Critical),
        ("auth_failure", Severity::Warning),
    ] {
        let event = NewEvent {
            kind,
            detail: "x",
            ..Default::default()
        };
        security_events::record(&mut conn, severity, &event).unwrap();
    }
    crate::testing::age_security_events(&mut conn, "direct_file_probe", 100).unwrap();
    crate::testing::age_security_events(&mut conn, "piracy_detected", 100).unwrap();
    let cutoff = crate::db::now() - chrono::Duration::days(90);
    assert_eq!(security_events::purge_before(&mut conn, cutoff).unwrap(), 1);
    let left: Vec<String> = security_events::recent(&mut conn, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"piracy_detected".to_string()));
}

/// A database holding sam's session s1 (`sam_requesting_s1`), keyed.
fn keyed_s1() -> (TestDatabase, super::Db, users::UserRow, devices::DeviceRow) {
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let (u, d, _) = sam_requesting_s1(&mut conn, &"ef".repeat(32));
    super::repo::sessions::mark_keyed(&mut conn, "s1", &[9]).unwrap();
    drop(conn);
    (t, db, u, d)
}

/// The segment fast path's statement is prepared once per connection and kept (diesel builds
/// every UPDATE of its DSL anew; this one is written out so that it is cached).
#[test]
fn the_unit_reservation_is_prepared_once_per_connection() {
    use super::repo::sessions::{self, Holder};
    use diesel::connection::InstrumentationEvent;
    use std::sync::{Arc, Mutex};
    let (_t, db, u, d) = keyed_s1();
    let mut conn = db.conn().unwrap();
    // Statements put in the connection's cache, and statements run.
    let (cached, started): (Arc<Mutex<Vec<String>>>, Arc<Mutex<usize>>) = Default::default();
    let (seen, runs) = (cached.clone(), started.clone());
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
        InstrumentationEvent::CacheQuery { sql, .. } => seen.lock().unwrap().push(sql.to_string()),
        InstrumentationEvent::StartQuery { .. } => *runs.lock().unwrap() += 1,
        _ => {}
    });
    let holder = Holder {
        user_id: &u.id,
        device_id: &d.id,
        device_key: "key",
    };
    for n in 1..=3 {
        assert_eq!(
            sessions::reserve_unit_for(&mut conn, "s1", &holder, 10).unwrap(),
            Some(n)
        );
    }
    // Whatever the quoting: any UPDATE of the sessions table cached.
    let prepared: Vec<String> = cached
        .lock()
        .unwrap()
        .iter()
        .filter(|sql| sql.starts_with("UPDATE") && sql.contains("stream_sessions"))
        .cloned()
        .collect();
    assert_eq!(prepared.len(), 1, "{prepared:?}");
    assert_eq!(
        *started.lock().unwrap(),
        3,
        "each reservation ran its statement"
    );
    conn.set_instrumentation(diesel::connection::get_default_instrumentation());
}

/// The segment fast path's one statement: it counts a unit only while every check holds, and
/// each check on its own refuses (and counts nothing).
#[test]
fn a_unit_is_reserved_for_its_holder_only_while_everything_stands() {
    use super::repo::sessions::{self, Holder, SessionState};
    let t = TestDatabase::new();
    let db = t.open();
    let mut conn = db.conn().unwrap();
    let fp = "ef".repeat(32);
    let (u, d, new) = sam_requesting_s1(&mut conn, &fp);
    let other = users::create(&mut conn, "eve", "h", Role::Viewer).unwrap();
    let d2 = devices::register(&mut conn, &reg(&u.id, &"12".repeat(32), "key")).unwrap();
    let holder = Holder {
        user_id: &u.id,
        device_id: &d.id,
        device_key: "key",
    };
    // Not keyed yet.
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s1", &holder, 10).unwrap(),
        None
    );
    sessions::mark_keyed(&mut conn, "s1", &[9]).unwrap();
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s1", &holder, 10).unwrap(),
        Some(1)
    );
    assert_eq!(
        sessions::get(&mut conn, "s1").unwrap().state,
        SessionState::Streaming
    );
    // Each of these alone refuses.
    let refused = [
        ("over the limit", holder, 1),
        (
            "another user",
            Holder {
                user_id: &other.id,
                ..holder
            },
            10,
        ),
        (
            "another device",
            Holder {
                device_id: &d2.id,
                ..holder
            },
            10,
        ),
        (
            "another key",
            Holder {
                device_key: "old-key",
                ..holder
            },
            10,
        ),
    ];
    for (why, h, allowed) in refused {
        assert_eq!(
            sessions::reserve_unit_for(&mut conn, "s1", &h, allowed).unwrap(),
            None,
            "{why}"
        );
        assert_eq!(served(&mut conn), 1, "{why}");
    }
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "nope", &holder, 10).unwrap(),
        None
    );
    // The user disabled, then enabled again.
    users::set_disabled(&mut conn, "sam", true).unwrap();
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s1", &holder, 10).unwrap(),
        None
    );
    users::set_disabled(&mut conn, "sam", false).unwrap();
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s1", &holder, 10).unwrap(),
        Some(2)
    );
    // The device re-registered with another key: the old key no longer holds.
    devices::register(&mut conn, &reg(&u.id, &fp, "new-key")).unwrap();
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s1", &holder, 10).unwrap(),
        None
    );
    let rekeyed = Holder {
        device_key: "new-key",
        ..holder
    };
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s1", &rekeyed, 10).unwrap(),
        Some(3)
    );
    // The device revoked.
    devices::revoke(&mut conn, &d.id).unwrap();
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s1", &rekeyed, 10).unwrap(),
        None
    );
    devices::register(&mut conn, &reg(&u.id, &fp, "new-key")).unwrap();
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s1", &rekeyed, 10).unwrap(),
        Some(4)
    );
    // Revoked (another session of the same holder).
    let mut second = new.clone();
    second.id = "s2".into();
    sessions::create(&mut conn, &second).unwrap();
    sessions::mark_keyed(&mut conn, "s2", &[9]).unwrap();
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s2", &rekeyed, 10).unwrap(),
        Some(1)
    );
    sessions::end(&mut conn, "s2", SessionState::Revoked, Some("test")).unwrap();
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s2", &rekeyed, 10).unwrap(),
        None
    );
    // Idled out (the expiry passed without the state being written yet).
    diesel::sql_query("UPDATE stream_sessions SET expires_at = last_activity_at WHERE id = 's1'")
        .execute(&mut conn)
        .unwrap();
    assert_eq!(
        sessions::reserve_unit_for(&mut conn, "s1", &rekeyed, 10).unwrap(),
        None
    );
    assert_eq!(served(&mut conn), 4);
}

/// A claim on s1 by sam's device (`sam_requesting_s1`, keyed), with the pace's `allowed`.
fn claim_on_s1(u: &users::UserRow, d: &devices::DeviceRow, allowed: i64) -> UnitClaim {
    UnitClaim {
        session_id: "s1".into(),
        user_id: u.id.clone(),
        device_id: d.id.clone(),
        device_key: "key".into(),
        allowed,
    }
}

/// Claims committed together are decided one after the other, each against what the ones
/// before it wrote; a group that fails leaves nothing of itself behind.
#[test]
fn a_group_of_reservations_commits_together_or_not_at_all() {
    use super::reservations::commit_group;
    let (_t, db, u, d) = keyed_s1();
    let mut conn = db.conn().unwrap();
    // Three claims where the pace allows two: the third is refused, in the same transaction.
    let group = vec![claim_on_s1(&u, &d, 2); 3];
    let counts = commit_group(&mut *conn, &group, |c, claim| claim.reserve(c)).unwrap();
    assert_eq!(counts, [Some(1), Some(2), None]);
    assert_eq!(served(&mut conn), 2);
    // The last claim fails after two were reserved: nothing of the group stays, and the
    // error is the group's answer.
    let group = vec![claim_on_s1(&u, &d, 10); 3];
    let mut calls = 0;
    let failed = commit_group(&mut *conn, &group, |c, claim| {
        calls += 1;
        if calls == 3 {
            return Err(DbError::Task("the third claim fails".into()));
        }
        claim.reserve(c)
    });
    assert!(matches!(failed, Err(DbError::Task(_))), "{failed:?}");
    assert_eq!(served(&mut conn), 2, "nothing of the failed group stayed");
    // A group of one runs as it is; the connection is usable after the rollback.
    let counts = commit_group(&mut *conn, &group[..1], |c, claim| claim.reserve(c)).unwrap();
    assert_eq!(counts, [Some(3)]);
}

/// Many requests of one session at once: exactly as many units as the pace allows are
/// reserved, each count once; another device's claim is refused in the same rush, and after
/// the device is revoked every claim is. On SQLite the claims that wait while the database is
/// busy are committed in a few rounds, and a claim whose request has gone is not counted.
#[test]
fn concurrent_reservations_reserve_exactly_what_the_pace_allows() {
    use super::reservations::Reservations;
    let (_t, db, u, d) = keyed_s1();
    let mut conn = db.conn().unwrap();
    let other = devices::register(&mut conn, &reg(&u.id, &"12".repeat(32), "key2")).unwrap();
    let reservations = std::sync::Arc::new(Reservations::new(&db));
    let grouped = reservations.grouped();
    assert_eq!(grouped, db.backend() == super::Backend::Sqlite);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let rush = |n: usize, allowed: i64| -> Vec<_> {
        (0..n)
            .map(|_| {
                let (r, claim) = (reservations.clone(), claim_on_s1(&u, &d, allowed));
                rt.spawn(async move { r.reserve(claim).await })
            })
            .collect()
    };
    let pause = || std::thread::sleep(std::time::Duration::from_millis(300));
    // The database is held busy (an open write transaction) while the claims arrive: on
    // SQLite they queue for the writer.
    let mut busy = db.conn().unwrap();
    let hold = |busy: &mut DbConnection, sql: &str| {
        if grouped {
            busy.batch_execute(sql).unwrap();
        }
    };
    hold(&mut busy, "BEGIN IMMEDIATE");
    let tasks = rush(40, 25);
    let mut stranger = claim_on_s1(&u, &other, 100);
    stranger.device_key = "key2".into();
    let stranger = rt.spawn({
        let r = reservations.clone();
        async move { r.reserve(stranger).await }
    });
    pause();
    hold(&mut busy, "COMMIT");
    let counts: Vec<Option<i64>> = rt.block_on(async {
        let mut counts = Vec::new();
        for task in tasks {
            counts.push(task.await.unwrap().unwrap());
        }
        counts
    });
    let stranger = rt.block_on(stranger).unwrap().unwrap();
    assert_eq!(stranger, None, "another device's claim on the session");
    let mut granted: Vec<i64> = counts.iter().flatten().copied().collect();
    granted.sort_unstable();
    assert_eq!(granted, (1..=25).collect::<Vec<_>>(), "each count once");
    assert_eq!(counts.iter().filter(|c| c.is_none()).count(), 15);
    assert_eq!(served(&mut conn), 25);
    let written = db.writer_counts();
    let rounds = written.rounds.get();
    if grouped {
        assert_eq!(written.claims.get(), 41);
        assert!(rounds <= 4, "{rounds} rounds");
    } else {
        assert_eq!((rounds, written.claims.get()), (0, 0));
    }

    // Requests that go while their claims wait: at most the one already running is counted.
    if grouped {
        hold(&mut busy, "BEGIN IMMEDIATE");
        let tasks = rush(20, 1000);
        pause();
        for task in &tasks {
            task.abort();
        }
        pause();
        hold(&mut busy, "COMMIT");
        // One claim more, queued behind them: once it is answered, they have had their turn.
        let last = rt.block_on(async {
            for task in tasks {
                let _ = task.await;
            }
            reservations.reserve(claim_on_s1(&u, &d, 1000)).await
        });
        assert_eq!(last.unwrap(), Some(served(&mut conn)));
        let left = served(&mut conn) - 25 - 1;
        assert!(left <= 1, "{left} units counted for requests that had gone");
    }

    // The device revoked: every claim of the next rush is refused.
    let before = served(&mut conn);
    devices::revoke(&mut conn, &d.id).unwrap();
    let refused = rt.block_on(async {
        let mut refused = 0;
        for task in rush(10, 1000) {
            refused += usize::from(task.await.unwrap().unwrap().is_none());
        }
        refused
    });
    assert_eq!(refused, 10);
    assert_eq!(served(&mut conn), before);
}

/// A reservation the database cannot run answers with an error (not a hang, not a count), and
/// the next one, once the database can, is reserved (on SQLite the writer goes on, on a
/// connection opened afresh after the failed round).
#[test]
fn a_failed_reservation_answers_an_error_and_the_next_one_runs() {
    use super::reservations::Reservations;
    let (_t, db, u, d) = keyed_s1();
    let mut conn = db.conn().unwrap();
    let reservations = Reservations::new(&db);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let reserve = || rt.block_on(reservations.reserve(claim_on_s1(&u, &d, 10)));
    assert_eq!(reserve().unwrap(), Some(1));
    conn.batch_execute("ALTER TABLE stream_sessions RENAME TO stream_sessions_away")
        .unwrap();
    let failed = reserve();
    assert!(failed.is_err(), "{failed:?}");
    conn.batch_execute("ALTER TABLE stream_sessions_away RENAME TO stream_sessions")
        .unwrap();
    assert_eq!(reserve().unwrap(), Some(2));
    assert_eq!(served(&mut conn), 2);
}

fn served(conn: &mut DbConnection) -> i64 {
    super::repo::sessions::get(conn, "s1")
        .unwrap()
        .segments_served
}
