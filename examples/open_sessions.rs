//! Opens N keyed viewer sessions on a running server, for load benchmarks
//! (`scripts/bench-delivery.sh`). Speaks docs/PROTOCOL.md with `streaming::crypto`.
//!
//! Usage: open_sessions BASE_URL USER PASSWORD COUNT VIDEO_ID
//! Prints one line per session: `<session_id> <device_token>`.

use std::process::ExitCode;

use serde_json::{json, Value};
use shared::auth::device_key::{key_exchange_binding, DeviceKey, Purpose};
use streaming::crypto;

fn post(url: &str, token: Option<&str>, body: Value) -> Result<Value, String> {
    let mut req = ureq::post(url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = req
        .send_json(body)
        .map_err(|e| format!("POST {url}: {e}"))?;
    resp.into_json().map_err(|e| format!("POST {url}: {e}"))
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str, String> {
    v[name]
        .as_str()
        .ok_or_else(|| format!("answer lacks {name}: {v}"))
}

fn run(args: &[String]) -> Result<(), String> {
    let [base, user, password, count, video] = args else {
        return Err("usage: open_sessions BASE_URL USER PASSWORD COUNT VIDEO_ID".into());
    };
    let count: usize = count.parse().map_err(|e| format!("COUNT: {e}"))?;
    let login = post(
        &format!("{base}/api/auth/login/"),
        None,
        json!({"username": user, "password": password}),
    )?;
    let user_token = field(&login, "user_token")?.to_string();
    for i in 0..count {
        let fingerprint = format!("{:064x}", i + 1);
        let key = DeviceKey::generate();
        let reg = post(
            &format!("{base}/api/register-device/"),
            Some(&user_token),
            json!({"device_fingerprint": fingerprint, "device_public_key": key.public_key()}),
        )?;
        let device_token = field(&reg, "device_token")?;
        let device_id = field(&reg, "device_id")?;
        let req = post(
            &format!("{base}/api/request-stream/"),
            Some(device_token),
            json!({"video_id": video}),
        )?;
        let session_id = field(&req, "session_id")?;
        let (_secret, public) = crypto::generate_keypair();
        let client_key = crypto::encode_public_key(&public);
        let proof = key.prove(
            Purpose::KeyExchange,
            device_id,
            &key_exchange_binding(session_id, &client_key),
        );
        post(
            &format!("{base}/api/complete-key-exchange/"),
            Some(device_token),
            json!({"session_id": session_id, "client_public_key": client_key, "device_proof": proof}),
        )?;
        println!("{session_id} {device_token}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("open_sessions: {e}");
            ExitCode::FAILURE
        }
    }
}
