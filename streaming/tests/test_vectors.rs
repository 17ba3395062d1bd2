//! The worked example of docs/PROTOCOL.md, computed from fixed inputs. If this test fails,
//! either the code or the document changed: independent clients depend on both agreeing.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use streaming::crypto;
use x25519_dalek::{PublicKey, StaticSecret};

const SESSION_ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

fn seal_with(key: &[u8; 32], nonce: [u8; 12], aad: &str, msg: &[u8]) -> Vec<u8> {
    let mut out = nonce.to_vec();
    out.extend(
        Aes256Gcm::new(key.into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap(),
    );
    out
}

#[test]
fn worked_example_in_protocol_md() {
    let server_secret = StaticSecret::from([0x11u8; 32]);
    let client_secret = StaticSecret::from([0x22u8; 32]);
    let server_public = STANDARD.encode(PublicKey::from(&server_secret).as_bytes());
    let client_public = STANDARD.encode(PublicKey::from(&client_secret).as_bytes());
    let shared = client_secret.diffie_hellman(&PublicKey::from(&server_secret));
    let session_key = crypto::derive_session_key(
        &server_secret,
        &crypto::decode_public_key(&client_public).unwrap(),
        SESSION_ID,
    )
    .unwrap();
    let cek = [0x33u8; 32];
    let encrypted_cek = STANDARD.encode(seal_with(
        &session_key,
        [0x44; 12],
        &crypto::cek_aad(SESSION_ID),
        &cek,
    ));
    let segment = seal_with(
        &cek,
        [0x55; 12],
        &crypto::segment_aad(SESSION_ID, "1"),
        b"leaktrace",
    );

    let doc = include_str!("../../docs/PROTOCOL.md");
    let expect = [
        ("server_public_key", server_public.clone()),
        ("client_public_key", client_public.clone()),
        ("X25519 shared secret (hex)", hex::encode(shared.as_bytes())),
        ("session_key (hex)", hex::encode(session_key)),
        ("encrypted_cek", encrypted_cek.clone()),
        ("segment body (hex)", hex::encode(&segment)),
    ];
    let missing: Vec<String> = expect
        .iter()
        .map(|(name, value)| format!("| {name} | `{value}` |"))
        .filter(|line| !doc.contains(line.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "PROTOCOL.md lacks the lines:\n{}",
        missing.join("\n")
    );
    // And the client side opens what the server sealed.
    assert_eq!(
        crypto::unwrap_cek(&session_key, SESSION_ID, &encrypted_cek).unwrap(),
        cek
    );
    assert_eq!(
        crypto::open(
            &cek,
            crypto::segment_aad(SESSION_ID, "1").as_bytes(),
            &segment
        )
        .unwrap(),
        b"leaktrace"
    );
}
