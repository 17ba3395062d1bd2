//! Streams a whole title as one viewer session and saves what a leaking viewer would: the
//! decrypted init segment and every video segment, joined. For the robustness benchmark
//! (`scripts/bench-robustness.sh`). Speaks docs/PROTOCOL.md with `streaming::crypto`.
//!
//! Usage: leak_session BASE_URL USER PASSWORD FINGERPRINT VIDEO_ID SEGMENTS OUT [RENDITIONS]
//! With RENDITIONS (e.g. `0,1,2`), the same session saves every listed rendition of a title
//! packaged with a ladder, each whole, as `OUT-r<I>.mp4` (0: the top rendition).
//! Prints the session id.

use std::io::Read;
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

fn field(v: &Value, name: &str) -> Result<String, String> {
    v[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("answer lacks {name}: {v}"))
}

fn run(args: &[String]) -> Result<(), String> {
    let (renditions, args) = match args {
        [rest @ .., list] if args.len() == 8 => (Some(list.as_str()), rest),
        _ => (None, args),
    };
    let [base, user, password, fingerprint, video, segments, out] = args else {
        return Err(
            "usage: leak_session BASE_URL USER PASSWORD FINGERPRINT VIDEO_ID SEGMENTS OUT \
             [RENDITIONS]"
                .into(),
        );
    };
    let outputs: Vec<(String, String)> = match renditions {
        None => vec![(String::new(), out.clone())],
        Some(list) => list
            .split(',')
            .map(|r| match r.trim() {
                "0" => Ok((String::new(), format!("{out}-r0.mp4"))),
                r if r.parse::<u32>().is_ok() => Ok((format!("r{r}-"), format!("{out}-r{r}.mp4"))),
                r => Err(format!("RENDITIONS: {r:?} is not a rendition number")),
            })
            .collect::<Result<_, _>>()?,
    };
    let segments: u32 = segments.parse().map_err(|e| format!("SEGMENTS: {e}"))?;
    let login = post(
        &format!("{base}/api/auth/login/"),
        None,
        json!({"username": user, "password": password}),
    )?;
    let key = DeviceKey::generate();
    let reg = post(
        &format!("{base}/api/register-device/"),
        Some(&field(&login, "user_token")?),
        json!({"device_fingerprint": fingerprint, "device_public_key": key.public_key()}),
    )?;
    let token = field(&reg, "device_token")?;
    let device_id = field(&reg, "device_id")?;
    let req = post(
        &format!("{base}/api/request-stream/"),
        Some(&token),
        json!({"video_id": video}),
    )?;
    let session = field(&req, "session_id")?;
    let server_public =
        crypto::decode_public_key(&field(&req, "server_public_key")?).map_err(|e| e.to_string())?;
    let (secret, public) = crypto::generate_keypair();
    let client_key = crypto::encode_public_key(&public);
    let proof = key.prove(
        Purpose::KeyExchange,
        &device_id,
        &key_exchange_binding(&session, &client_key),
    );
    let kex = post(
        &format!("{base}/api/complete-key-exchange/"),
        Some(&token),
        json!({"session_id": session, "client_public_key": client_key, "device_proof": proof}),
    )?;
    let key =
        crypto::derive_session_key(&secret, &server_public, &session).map_err(|e| e.to_string())?;
    let cek = crypto::unwrap_cek(&key, &session, &field(&kex, "encrypted_cek")?)
        .map_err(|e| e.to_string())?;
    for (prefix, out) in &outputs {
        let mut joined = Vec::new();
        let names = std::iter::once(format!("{prefix}init"))
            .chain((1..=segments).map(|k| format!("{prefix}{k}")));
        for name in names {
            let url = format!("{base}/api/video/stream/{session}/{name}/");
            let resp = ureq::get(&url)
                .set("Authorization", &format!("Bearer {token}"))
                .call()
                .map_err(|e| format!("GET {url}: {e}"))?;
            let mut body = Vec::new();
            resp.into_reader()
                .read_to_end(&mut body)
                .map_err(|e| format!("GET {url}: {e}"))?;
            let aad = crypto::segment_aad(&session, &name);
            let plain = crypto::open(&cek, aad.as_bytes(), &body).map_err(|e| e.to_string())?;
            joined.extend(plain);
        }
        std::fs::write(out, joined).map_err(|e| format!("{out}: {e}"))?;
    }
    println!("{session}");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leak_session: {e}");
            ExitCode::FAILURE
        }
    }
}
