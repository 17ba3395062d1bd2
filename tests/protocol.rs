//! The whole viewer protocol end to end against a real server and a really packaged title:
//! a client that speaks docs/PROTOCOL.md logs in, registers, exchanges keys, fetches the MPD
//! and every segment, decrypts them, and FFmpeg decodes the result to the exact frame count.

mod common;

use common::media::{clip, count_frames, decode_errors, ClipSpec};
use common::{send, Harness, Server};
use serde_json::json;
use shared::codes;
use shared::db::repo::videos;
use shared::package::{Layout, PackageManifest, Variant};
use shared::sealing;
use streaming::crypto;

/// One viewer session as a client sees it.
struct Client<'a> {
    server: &'a Server,
    device_token: String,
    session_id: String,
    cek: [u8; 32],
}

impl<'a> Client<'a> {
    fn start(server: &'a Server, fingerprint: &str, video_id: &str) -> Client<'a> {
        let login = send(
            "POST",
            &server.url("/api/auth/login/"),
            None,
            Some(&json!({"username": "vic", "password": "vic's password"})),
        );
        let ut = login.json()["user_token"].as_str().unwrap().to_string();
        let reg = send(
            "POST",
            &server.url("/api/register-device/"),
            Some(&ut),
            Some(&json!({"device_fingerprint": fingerprint})),
        );
        let device_token = reg.json()["device_token"].as_str().unwrap().to_string();
        let req = send(
            "POST",
            &server.url("/api/request-stream/"),
            Some(&device_token),
            Some(&json!({"video_id": video_id})),
        );
        assert_eq!(req.status, 200, "{}", req.body);
        let session_id = req.json()["session_id"].as_str().unwrap().to_string();
        let server_public =
            crypto::decode_public_key(req.json()["server_public_key"].as_str().unwrap()).unwrap();
        let (secret, public) = crypto::generate_keypair();
        let kex = send(
            "POST",
            &server.url("/api/complete-key-exchange/"),
            Some(&device_token),
            Some(
                &json!({"session_id": session_id, "client_public_key": crypto::encode_public_key(&public)}),
            ),
        );
        assert_eq!(kex.status, 200, "{}", kex.body);
        let key = crypto::derive_session_key(&secret, &server_public, &session_id).unwrap();
        let cek = crypto::unwrap_cek(
            &key,
            &session_id,
            kex.json()["encrypted_cek"].as_str().unwrap(),
        )
        .unwrap();
        Client {
            server,
            device_token,
            session_id,
            cek,
        }
    }

    fn raw_segment(&self, segment: &str) -> (u16, Vec<u8>) {
        let url = self
            .server
            .url(&format!("/api/video/stream/{}/{segment}/", self.session_id));
        let resp = match ureq::get(&url)
            .set("Authorization", &format!("Bearer {}", self.device_token))
            .call()
        {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let status = resp.status();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
        (status, body)
    }

    fn segment(&self, segment: &str) -> Vec<u8> {
        let (status, body) = self.raw_segment(segment);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let aad = crypto::segment_aad(&self.session_id, segment);
        crypto::open(&self.cek, aad.as_bytes(), &body).expect("segment decrypts with its own AAD")
    }
}

fn setup() -> (Harness, Server, String, tempfile::TempDir) {
    let h = Harness::new();
    h.run(
        &["user", "add", "vic", "--role", "viewer", "--password-stdin"],
        Some("vic's password\n"),
    )
    .success();
    let dir = tempfile::tempdir().unwrap();
    // 20 s at 0.5 s units: about 40 units, so two sessions' codes coincide with probability
    // about 2^-40.
    let input = clip(
        dir.path(),
        "title.mp4",
        &ClipSpec {
            size: "192x108",
            rate: "25",
            seconds: 20.0,
            audio: false,
            vf: None,
            codec: &["-c:v", "libx264"],
        },
    );
    let out = h.run(
        &[
            "package",
            input.to_str().unwrap(),
            "--title",
            "Protocol Title",
            "--unit-seconds",
            "0.5",
            "--json",
        ],
        None,
    );
    out.success();
    let id = serde_json::from_str::<serde_json::Value>(out.stdout().trim()).unwrap()["video_id"]
        .as_str()
        .unwrap()
        .to_string();
    let server = h.serve(&[]);
    (h, server, id, dir)
}

#[test]
fn a_client_streams_decrypts_and_decodes_its_own_variant_sequence() {
    let (h, server, video_id, dir) = setup();
    let layout = Layout::new(h.data_dir.join("videos").join(&video_id));
    let package: PackageManifest =
        serde_json::from_slice(&std::fs::read(layout.manifest()).unwrap()).unwrap();
    let units = package.video.unit_count;
    assert!(units >= 38, "{units} units");
    let master: [u8; 32] = {
        let t = std::fs::read_to_string(h.data_dir.join("secrets/master.key")).unwrap();
        (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&t.trim()[i..i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap()
    };
    let db = h.db();
    let row = videos::get(&mut db.conn().unwrap(), &video_id).unwrap();
    let secret: [u8; 32] = sealing::open(
        &master,
        &sealing::video_secret_aad(&video_id),
        &row.sealed_secret,
    )
    .unwrap()
    .try_into()
    .unwrap();

    let mut sequences = Vec::new();
    for (n, fp) in ["1".repeat(64), "2".repeat(64)].iter().enumerate() {
        let client = Client::start(&server, fp, &video_id);
        let mpd = send(
            "GET",
            &server.url(&format!("/api/video/manifest/{}/", client.session_id)),
            Some(&client.device_token),
            None,
        );
        assert_eq!(mpd.status, 200, "{}", mpd.body);
        assert!(mpd.content_type.starts_with("application/dash+xml"));
        assert!(mpd.body.contains(&format!(
            "/api/video/stream/{}/$Number$/",
            client.session_id
        )));
        assert!(!mpd.body.contains("ContentProtection"));

        let mut joined = client.segment("init");
        assert_eq!(joined, std::fs::read(layout.video_init()).unwrap());
        let mut received = Vec::new();
        for k in 1..=units {
            let (_, wire) = client.raw_segment(&k.to_string());
            let a = std::fs::read(layout.video_unit(Variant::A, k)).unwrap();
            assert!(
                !wire.windows(8).any(|w| w == &a[..8]),
                "no plain MP4 box on the wire"
            );
            let plain = client.segment(&k.to_string());
            let variant = if plain == a {
                Variant::A
            } else {
                assert_eq!(
                    plain,
                    std::fs::read(layout.video_unit(Variant::B, k)).unwrap(),
                    "unit {k}"
                );
                Variant::B
            };
            received.push(variant);
            joined.extend(plain);
        }
        // The sequence received is the session's code.
        let code = codes::session_code(&secret, &client.session_id, units);
        let expected: Vec<Variant> = (1..=units)
            .map(|k| codes::variant_for(&code, k).unwrap())
            .collect();
        assert_eq!(received, expected, "session {n}");
        sequences.push(received);

        let file = dir.path().join(format!("session{n}.mp4"));
        std::fs::write(&file, &joined).unwrap();
        assert_eq!(decode_errors(&file), "");
        assert_eq!(count_frames(&file), package.video.frame_count);

        // A body only opens with its own segment's AAD.
        let (_, wire) = client.raw_segment("3");
        let other = crypto::segment_aad(&client.session_id, "4");
        assert!(crypto::open(&client.cek, other.as_bytes(), &wire).is_err());
        // Two fetches of one segment never repeat bytes (fresh nonce).
        assert_ne!(client.raw_segment("3").1, wire);

        let status = send(
            "GET",
            &server.url(&format!("/api/security/status/{}/", client.session_id)),
            Some(&client.device_token),
            None,
        )
        .json();
        assert_eq!(status["state"], "streaming");
        // init once, every unit twice (wire check and decryption), unit 3 twice more.
        assert_eq!(
            status["segments_served"].as_i64().unwrap(),
            1 + 2 * units as i64 + 2
        );
    }
    assert_ne!(sequences[0], sequences[1], "two sessions, two codes");
}

#[test]
fn segments_are_refused_before_keying_out_of_range_and_to_other_devices() {
    let (_h, server, video_id, _dir) = setup();
    let client = Client::start(&server, &"3".repeat(64), &video_id);
    let (status, body) = client.raw_segment("0");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert_eq!(client.raw_segment("999").0, 404);
    assert_eq!(client.raw_segment("abc").0, 404);
    assert_eq!(client.raw_segment("../../package.json").0, 404);

    let other = Client::start(&server, &"4".repeat(64), &video_id);
    let url = server.url(&format!("/api/video/stream/{}/1/", client.session_id));
    send("GET", &url, None, None).assert_error(401, "missing_token");
    send("GET", &url, Some(&other.device_token), None).assert_error(403, "device_mismatch");
    // The session was revoked by that attempt: its own device is refused from now on.
    send("GET", &url, Some(&client.device_token), None).assert_error(403, "session_revoked");

    // A session whose key exchange is not done cannot stream.
    let req = send(
        "POST",
        &server.url("/api/request-stream/"),
        Some(&client.device_token),
        Some(&json!({"video_id": video_id})),
    );
    let pending = req.json()["session_id"].as_str().unwrap().to_string();
    send(
        "GET",
        &server.url(&format!("/api/video/stream/{pending}/1/")),
        Some(&client.device_token),
        None,
    )
    .assert_error(409, "not_keyed");
    send(
        "GET",
        &server.url(&format!("/api/video/manifest/{pending}/")),
        Some(&client.device_token),
        None,
    )
    .assert_error(409, "not_keyed");
}
