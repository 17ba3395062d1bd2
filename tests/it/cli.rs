//! The `leaktrace` CLI end to end: real binary, real database (SQLite or PostgreSQL).

use crate::common::{bare_cmd, run_command, Harness};
use shared::auth::{api_key, password};
use shared::db::repo::{api_keys, users};
use shared::domain::Role;

#[test]
fn migrate_applies_once_then_reports_up_to_date() {
    let h = Harness::new();
    let first = h.run(&["migrate"], None);
    first.success();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert!(
        first
            .stdout()
            .contains(&format!("applied {migrations} migration")),
        "{}",
        first.stdout()
    );
    let second = h.run(&["migrate"], None);
    second.success();
    assert!(second.stdout().contains("up to date"));
}

#[test]
fn user_add_with_env_password_and_with_stdin() {
    let h = Harness::new();
    let mut c = h.cmd();
    c.args(["user", "add", "alice", "--role", "analyst"])
        .env("LEAKTRACE_PASSWORD", "alice's long password");
    run_command(c, None).success();
    h.run(
        &["user", "add", "lee", "--role", "legal", "--password-stdin"],
        Some("stdin password 123\n"),
    )
    .success();

    let db = h.db();
    let mut conn = db.conn().unwrap();
    let alice = users::find_by_username(&mut conn, "alice")
        .unwrap()
        .unwrap();
    assert_eq!(alice.role().unwrap(), Role::Analyst);
    assert!(password::verify(
        "alice's long password",
        &alice.password_hash
    ));
    assert!(!alice.password_hash.contains("alice's long password"));
    let lee = users::find_by_username(&mut conn, "lee").unwrap().unwrap();
    assert!(
        password::verify("stdin password 123", &lee.password_hash),
        "newline stripped"
    );

    let listed = h.run(&["user", "list"], None);
    listed.success();
    assert!(listed.stdout().contains("alice") && listed.stdout().contains("legal"));
}

fn assert_no_users(h: &Harness) {
    let db = h.db();
    assert!(users::list(&mut db.conn().unwrap()).unwrap().is_empty());
}

#[test]
fn user_add_unknown_role_is_refused_and_writes_nothing() {
    let h = Harness::new();
    h.run(&["migrate"], None).success();
    h.run(
        &[
            "user",
            "add",
            "x",
            "--role",
            "superuser",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    )
    .fails_with(2, "unknown role 'superuser'");
    assert_no_users(&h);
}

#[test]
fn user_add_bad_passwords_are_refused_and_write_nothing() {
    let h = Harness::new();
    h.run(&["migrate"], None).success();
    let add = ["user", "add", "bob", "--role", "viewer", "--password-stdin"];
    h.run(&add, Some("\n")).fails_with(2, "password is empty");
    h.run(&add, Some("")).fails_with(2, "password is empty");
    h.run(&add, Some("short\n")).fails_with(2, "too short");
    // Neither --password-stdin nor LEAKTRACE_PASSWORD.
    h.run(&["user", "add", "bob", "--role", "viewer"], None)
        .fails_with(2, "LEAKTRACE_PASSWORD");
    h.run(
        &[
            "user",
            "add",
            "bad name",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some("long password here\n"),
    )
    .fails_with(2, "invalid user name");
    assert_no_users(&h);
}

#[test]
fn duplicate_user_is_refused_and_the_first_is_kept() {
    let h = Harness::new();
    let add = [
        "user",
        "add",
        "carol",
        "--role",
        "viewer",
        "--password-stdin",
    ];
    h.run(&add, Some("first password!\n")).success();
    h.run(
        &[
            "user",
            "add",
            "carol",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("second password\n"),
    )
    .fails_with(2, "already exists");
    let db = h.db();
    let all = users::list(&mut db.conn().unwrap()).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].role, "viewer");
    assert!(password::verify("first password!", &all[0].password_hash));
}

#[test]
fn user_disable_and_enable() {
    let h = Harness::new();
    h.run(
        &["user", "add", "dan", "--role", "viewer", "--password-stdin"],
        Some("dan's password\n"),
    )
    .success();
    h.run(&["user", "disable", "dan"], None).success();
    let db = h.db();
    assert!(
        users::find_by_username(&mut db.conn().unwrap(), "dan")
            .unwrap()
            .unwrap()
            .disabled
    );
    h.run(&["user", "enable", "dan"], None).success();
    assert!(
        !users::find_by_username(&mut db.conn().unwrap(), "dan")
            .unwrap()
            .unwrap()
            .disabled
    );
    h.run(&["user", "disable", "nobody"], None)
        .fails_with(2, "user not found");
}

#[test]
fn apikey_create_prints_once_and_stores_only_a_hash() {
    let h = Harness::new();
    let out = h.run(&["apikey", "create", "crawler-eu"], None);
    out.success();
    let stdout = out.stdout();
    let key = stdout.lines().last().expect("a last line").trim();
    assert!(key.starts_with(api_key::PREFIX), "{stdout}");
    assert_eq!(
        key,
        stdout.trim_end().rsplit('\n').next().unwrap(),
        "key alone on its line"
    );

    let db = h.db();
    let mut conn = db.conn().unwrap();
    let row = api_keys::find_active_by_hash(&mut conn, &api_key::hash(key))
        .unwrap()
        .expect("stored by hash");
    assert_eq!(row.name, "crawler-eu");
    assert_ne!(row.key_hash, key);
    assert!(!row.key_prefix.is_empty() && key.starts_with(&row.key_prefix));

    h.run(&["apikey", "create", "crawler-eu"], None)
        .fails_with(2, "already exists");
    h.run(&["apikey", "create", "no spaces"], None)
        .fails_with(2, "invalid API key name");
    let listed = h.run(&["apikey", "list"], None);
    listed.success();
    assert!(listed.stdout().contains("crawler-eu") && !listed.stdout().contains(key));
    h.run(&["apikey", "revoke", "crawler-eu"], None).success();
    assert!(
        api_keys::find_active_by_hash(&mut conn, &api_key::hash(key))
            .unwrap()
            .is_none()
    );
    h.run(&["apikey", "revoke", "ghost"], None)
        .fails_with(2, "not found");
}

#[test]
fn config_prints_layers_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lt.toml");
    std::fs::write(
        &file,
        "[server]\nbind = \"127.0.0.1:7001\"\n[log]\nlevel = \"debug\"\n",
    )
    .unwrap();
    let mut c = bare_cmd(dir.path());
    c.args(["--config", file.to_str().unwrap(), "config"])
        .env("LEAKTRACE_LOG_LEVEL", "warn")
        .env(
            "DATABASE_URL",
            "postgres://app:pa55word@db.internal:5433/leak",
        )
        .env("LEAKTRACE_MASTER_KEY", "ab".repeat(32));
    let out = run_command(c, None);
    out.success();
    let text = out.stdout();
    assert!(
        text.contains("bind = \"127.0.0.1:7001\""),
        "file layer: {text}"
    );
    assert!(text.contains("level = \"warn\""), "env over file: {text}");
    assert!(text.contains("db.internal:5433/leak"), "{text}");
    assert!(
        !text.contains("pa55word") && !text.contains(&"ab".repeat(32)),
        "{text}"
    );
    assert!(text.contains("set by configuration"), "{text}");
    assert!(!dir.path().join("data").exists(), "config touches nothing");

    // A flag beats the environment.
    let mut c = bare_cmd(dir.path());
    c.args(["config", "--log-level", "error"])
        .env("LEAKTRACE_LOG_LEVEL", "warn");
    let out = run_command(c, None);
    assert!(
        out.stdout().contains("level = \"error\""),
        "{}",
        out.stdout()
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "bind = 3\n").unwrap();
    let mut c = bare_cmd(dir.path());
    c.args(["--config", bad.to_str().unwrap(), "config"]);
    run_command(c, None).fails_with(2, "invalid config file");
}

#[test]
fn malformed_database_url_is_named_without_password() {
    let dir = tempfile::tempdir().unwrap();
    for (url, needle) in [
        ("postgres://u:topsecret@/nodb", "empty host"),
        (
            "postgres://u:topsecret@host:99999/db",
            "malformed database URL",
        ),
        (
            "mysql://u:topsecret@h/db",
            "unsupported database URL scheme 'mysql'",
        ),
    ] {
        let mut c = bare_cmd(dir.path());
        c.args(["--data-dir", "d", "migrate"])
            .env("DATABASE_URL", url);
        let out = run_command(c, None);
        out.fails_with(2, needle);
        assert!(!out.stderr().contains("topsecret"), "{}", out.stderr());
    }
}

#[test]
fn unreachable_database_names_host_and_database_not_password() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = bare_cmd(dir.path());
    c.args(["--data-dir", "d", "--database-url"])
        .arg(format!(
            "postgres://app:topsecret@127.0.0.1:{port}/evidence"
        ))
        .arg("migrate");
    let out = run_command(c, None);
    out.fails_with(
        1,
        &format!("PostgreSQL database 'evidence' on 127.0.0.1:{port}"),
    );
    assert!(!out.stderr().contains("topsecret"), "{}", out.stderr());
    assert!(!out.stderr().contains("diesel"), "{}", out.stderr());
}

#[test]
fn unusable_data_dir_fails_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a folder").unwrap();
    let db_path = dir.path().join("elsewhere.db");
    for data_dir in [blocker.clone(), blocker.join("below")] {
        let mut c = bare_cmd(dir.path());
        c.arg("--data-dir")
            .arg(&data_dir)
            .arg("--database-url")
            .arg(&db_path)
            .args(["user", "add", "x", "--role", "viewer", "--password-stdin"]);
        run_command(c, Some("a long password\n")).fails_with(1, "is not usable");
        assert!(!db_path.exists(), "no database touched");
    }
}

#[test]
fn json_log_format_emits_json_lines() {
    let h = Harness::new();
    let out = h.run(&["--log-format", "json", "migrate"], None);
    out.success();
    let lines: Vec<_> = out.stderr().lines().map(str::to_string).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
    h.run(&["--log-format", "xml", "migrate"], None)
        .fails_with(2, "not a log format");
}
