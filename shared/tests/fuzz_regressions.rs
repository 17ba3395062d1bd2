//! Replays the seeds (`fuzz/corpus/<target>/seed-*`) and every input the `tokens` and
//! `device_key` fuzz targets ever crashed on (`fuzz/regressions/<target>/`, kept by
//! scripts/fuzz-parsers.sh) through the same calls as their harnesses (fuzz/src/lib.rs), on the
//! stable toolchain: no input may panic; errors are fine.
//!
//! `LEAKTRACE_WRITE_FUZZ_SEEDS=1 cargo test -p shared --test fuzz_regressions` rewrites the
//! seeds made here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fuzz_inputs::{fuzz_dir, replay};
use shared::auth::device_key::{self, DeviceKey, DevicePublicKey, Purpose};
use shared::auth::tokens::{TokenError, TokenKeys, TokenKind};

/// As in fuzz/src/lib.rs.
const TOKEN_SECRET: &[u8] = b"leaktrace fuzz token secret (not a real one)";
const KNOWN_DEVICE_KEY: &str =
    "BN1WoQIcjRly9YI88QI6Jm28Gky1nDCD/utXNuFszwEroJtJqELsd+sGAjah+zQjsfDvnkQeJk+HEcsZ+kaPDCU=";

/// `header.claims.signature`, HS256 with [`TOKEN_SECRET`], over any bytes.
fn signed_token(header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(TOKEN_SECRET),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("HS256 signs any bytes");
    format!("{input}.{signature}")
}

/// The harness of fuzz target `tokens` (fuzz/src/lib.rs).
fn tokens_harness(data: &[u8]) {
    let keys = TokenKeys::new(TOKEN_SECRET);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let kind = if mode & 1 == 0 {
        TokenKind::User
    } else {
        TokenKind::Device
    };
    let token = if mode & 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (header, claims) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        signed_token(header, claims)
    };
    if let Ok(claims) = keys.verify(&token, kind) {
        assert_eq!(claims.typ, kind, "a token of the wrong kind accepted");
    }
}

/// The harness of fuzz target `device_key` (fuzz/src/lib.rs).
fn device_key_harness(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let purpose = [Purpose::Refresh, Purpose::KeyExchange, Purpose::Logout][selector as usize % 3];
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(4, '\0');
    let key = parts.next().unwrap_or_default();
    let device_id = parts.next().unwrap_or_default();
    let binding = parts.next().unwrap_or_default();
    let proof = parts.next().unwrap_or_default();
    let _ = device_key::thumbprint_of_stored(key);
    let parsed = DevicePublicKey::parse(key);
    if let Ok(public) = &parsed {
        assert_eq!(public.thumbprint().len(), 64);
        assert_eq!(
            device_key::thumbprint_of_stored(public.encoded()),
            Some(public.thumbprint()),
            "the stored form's thumbprint differs from the key's"
        );
    }
    let public =
        parsed.unwrap_or_else(|_| DevicePublicKey::parse(KNOWN_DEVICE_KEY).expect("a valid key"));
    let _ = public.verify(purpose, device_id, binding, proof);
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// Claims that expire in 2100.
const USER_CLAIMS: &str = r#"{"iss":"leaktrace","sub":"u1","role":"viewer","typ":"user","iat":1700000000,"exp":4102444800,"jti":"j1"}"#;
const DEVICE_CLAIMS: &str = r#"{"iss":"leaktrace","sub":"u1","role":"viewer","typ":"device","did":"d1","dfp":"f1","dkt":"k1","chn":1700000000,"iat":1700000000,"exp":4102444800,"jti":"j2"}"#;
const EXPIRED_CLAIMS: &str =
    r#"{"iss":"leaktrace","sub":"u1","role":"admin","typ":"user","iat":1,"exp":2,"jti":"j3"}"#;

/// The seeds made here: (file name, contents).
fn seeds() -> Vec<(String, Vec<u8>)> {
    let raw = |mode: u8, claims: &str| {
        [
            vec![mode],
            signed_token(HEADER.as_bytes(), claims.as_bytes()).into_bytes(),
        ]
        .concat()
    };
    let to_sign =
        |mode: u8, claims: &str| format!("{}{HEADER}\n{claims}", mode as char).into_bytes();
    let mut out = vec![
        ("tokens/seed-user".into(), raw(0, USER_CLAIMS)),
        ("tokens/seed-device".into(), raw(1, DEVICE_CLAIMS)),
        ("tokens/seed-expired".into(), raw(0, EXPIRED_CLAIMS)),
        ("tokens/seed-user-to-sign".into(), to_sign(2, USER_CLAIMS)),
        (
            "tokens/seed-device-to-sign".into(),
            to_sign(3, DEVICE_CLAIMS),
        ),
    ];
    // WebCrypto's key and proof (shared/src/auth/device_key.rs's tests): key exchange.
    let webcrypto = [
        &[1u8][..],
        KNOWN_DEVICE_KEY.as_bytes(),
        b"\0device-1\0",
        device_key::key_exchange_binding("session-1", "client-key").as_bytes(),
        b"\0ommyFIuQ3tc54CJn+Zc81fnP59k7j3yt7T1wNAh1ozMq06WB2OOeIzn0sFIx1oOLSma1kfK4vP/O7ryAK6tqPg==",
    ]
    .concat();
    out.push(("device_key/seed-webcrypto-key-exchange".into(), webcrypto));
    let key = DeviceKey::generate();
    let refresh = format!(
        "\0{}\0d1\0jti-1\0{}",
        key.public_key(),
        key.prove(Purpose::Refresh, "d1", "jti-1")
    );
    out.push(("device_key/seed-refresh".into(), refresh.into_bytes()));
    out
}

#[test]
fn tokens_inputs_do_not_panic() {
    assert!(
        replay("tokens", tokens_harness) >= 5,
        "the seed corpus is missing"
    );
}

#[test]
fn device_key_inputs_do_not_panic() {
    assert!(
        replay("device_key", device_key_harness) >= 2,
        "the seed corpus is missing"
    );
}

#[test]
fn the_seeds_reach_what_they_are_for() {
    let keys = TokenKeys::new(TOKEN_SECRET);
    for (name, data) in seeds() {
        let path = fuzz_dir().join("corpus").join(&name);
        if std::env::var_os("LEAKTRACE_WRITE_FUZZ_SEEDS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &data).unwrap();
        }
        assert!(
            path.is_file(),
            "{name} missing (LEAKTRACE_WRITE_FUZZ_SEEDS=1)"
        );
    }
    let token = |claims: &str| signed_token(HEADER.as_bytes(), claims.as_bytes());
    assert!(keys.verify(&token(USER_CLAIMS), TokenKind::User).is_ok());
    assert!(keys
        .verify(&token(DEVICE_CLAIMS), TokenKind::Device)
        .is_ok());
    assert_eq!(
        keys.verify(&token(EXPIRED_CLAIMS), TokenKind::User),
        Err(TokenError::Expired)
    );
    let webcrypto =
        std::fs::read(fuzz_dir().join("corpus/device_key/seed-webcrypto-key-exchange")).unwrap();
    let text = String::from_utf8(webcrypto[1..].to_vec()).unwrap();
    let parts: Vec<&str> = text.splitn(4, '\0').collect();
    let public = DevicePublicKey::parse(parts[0]).unwrap();
    assert_eq!(
        public.verify(Purpose::KeyExchange, parts[1], parts[2], parts[3]),
        Ok(())
    );
}
