//! The harnesses of leaktrace's fuzz targets: one function per parser that sees untrusted
//! bytes, fed the fuzzer's input. `fuzz_targets/<name>.rs` calls `<name>` here, except the
//! multipart target, whose harness (src/multipart.rs) compiles the binary's private form
//! reading into that target alone. The stable regression tests replay crashes through the
//! same calls: `shared/formats/tests/fuzz_regressions.rs`, `forensics/report/tests/
//! fuzz_regressions.rs` and `shared/tests/fuzz_regressions.rs` repeat these harnesses in
//! their crates (keep them in step); `tests/multipart_regressions.rs` runs the multipart
//! target itself. A harness panics only where the code under test did, or where what it
//! returned breaks an invariant the callers rely on.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use shared::auth::device_key::{self, DevicePublicKey, Purpose};
use shared::auth::tokens::{TokenKeys, TokenKind};

/// The ISOBMFF reading of suspect files, init segments and fragments: the box walk (at every
/// level, as deep as boxes nest, up to 16), `find`, `media_timescale`,
/// `first_presentation_time`, and the session marker (`marker::find_marker`, then `verify`
/// against a fixed key and `claimed`).
pub fn isobmff(data: &[u8]) {
    use formats::isobmff;
    fn walk(data: &[u8], depth: u32) {
        for b in isobmff::boxes(data) {
            assert!(
                b.whole.len() >= b.body.len() + 8,
                "a box shorter than its header"
            );
            assert!(b.whole.ends_with(b.body), "a box body outside its box");
            if depth < 16 {
                walk(b.body, depth + 1);
            }
        }
    }
    walk(data, 0);
    let _ = isobmff::find(data, &[b"moof", b"traf", b"trun"]);
    let _ = isobmff::media_timescale(data);
    let _ = isobmff::first_presentation_time(data);
    if let Ok(Some(found)) = formats::marker::find_marker(data) {
        static KEY: OnceLock<ed25519_dalek::VerifyingKey> = OnceLock::new();
        let key = KEY.get_or_init(|| {
            formats::marker::MarkerSigner::from_master_key(&MARKER_MASTER_KEY).verifying_key()
        });
        let _ = found.verify(key);
        let _ = found.claimed();
    }
}

/// The master key whose marker signer signed the seeds of `isobmff`.
pub const MARKER_MASTER_KEY: [u8; 32] = [7u8; 32];

/// The CA whose report-signing certificate signed the `report_check` seed.
pub const REPORT_CA_PEM: &str = include_str!("../fixtures/report_ca.pem");

/// A PDF submitted to `POST /api/reports/verify/`, checked by `report::signing::check`
/// against a fixed CA (the `/ByteRange` and `/Contents` reading, the CMS, the certificates).
pub fn report_check(data: &[u8]) {
    if let Ok(checked) = report::signing::check(data, REPORT_CA_PEM) {
        let _ = checked.valid();
    }
}

/// The JWT secret the `tokens` harness verifies with (and signs with, in its second mode).
pub const TOKEN_SECRET: &[u8] = b"leaktrace fuzz token secret (not a real one)";

/// `TokenKeys::verify`. The first byte chooses: bit 0 the kind asked for (user, device);
/// bit 1 clear, the rest is the token text; set, the rest is a header JSON and a claims JSON
/// split at the first newline, which the harness encodes and signs with [`TOKEN_SECRET`] so
/// that the input reaches the header and claim checks behind the signature.
pub fn tokens(data: &[u8]) {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    let keys = KEYS.get_or_init(|| TokenKeys::new(TOKEN_SECRET));
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

/// `header.claims.signature`, HS256 with [`TOKEN_SECRET`], over any bytes.
pub fn signed_token(header: &[u8], claims: &[u8]) -> String {
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

/// A valid device key (WebCrypto's, from shared/src/auth/device_key.rs's tests): proofs are
/// checked against it when the input's own key does not parse.
const KNOWN_DEVICE_KEY: &str =
    "BN1WoQIcjRly9YI88QI6Jm28Gky1nDCD/utXNuFszwEroJtJqELsd+sGAjah+zQjsfDvnkQeJk+HEcsZ+kaPDCU=";

/// `DevicePublicKey::parse`, `thumbprint`, `device_key::thumbprint_of_stored` and
/// `DevicePublicKey::verify`. The first byte chooses the purpose (modulo 3: refresh, key
/// exchange, logout); the rest, as text, is `key NUL device_id NUL binding NUL proof`.
pub fn device_key(data: &[u8]) {
    static KNOWN: OnceLock<DevicePublicKey> = OnceLock::new();
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
    let public = parsed.unwrap_or_else(|_| {
        KNOWN
            .get_or_init(|| DevicePublicKey::parse(KNOWN_DEVICE_KEY).expect("a valid key"))
            .clone()
    });
    let _ = public.verify(purpose, device_id, binding, proof);
}
