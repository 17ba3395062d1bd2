//! The whole viewer protocol end to end against a real server and a really packaged title:
//! a client that speaks docs/PROTOCOL.md logs in, registers, exchanges keys, fetches the MPD
//! and every segment, decrypts them, and FFmpeg decodes the result to the exact frame count.

use crate::common;

use crate::common::media::{clip, count_frames, decode_errors, ClipSpec};
use crate::common::viewer::{request_stream, Client};
use crate::common::{send, Harness, Server};
use formats::codes;
use formats::layout::{Layout, Variant};
use formats::marker::{find_marker, MarkerSigner};
use formats::package::PackageManifest;
use formats::sealing;
use shared::db::repo::videos;
use streaming::crypto;

fn setup() -> (Harness, Server, String, tempfile::TempDir) {
    let h = Harness::new();
    h.add_user("vic", "viewer", common::viewer::PASSWORD);
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
    let v = h.package(&input, "Protocol Title", &["--unit-seconds", "0.5"]);
    let id = v["video_id"].as_str().unwrap().to_string();
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
    let master = h.master_key();
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
        let client = Client::start(&server, "vic", fp, &video_id);
        let mpd = client.manifest();
        assert_eq!(mpd.status, 200, "{}", mpd.body);
        assert!(mpd.content_type.starts_with("application/dash+xml"));
        assert!(mpd.body.contains(&format!(
            "/api/video/stream/{}/$Number$/",
            client.session_id
        )));
        assert!(!mpd.body.contains("ContentProtection"));

        // The init segment is the title's, followed by this session's signed marker box.
        let mut joined = client.segment("init");
        let init = std::fs::read(layout.video_init()).unwrap();
        assert!(joined.starts_with(&init));
        let marker = find_marker(&joined[init.len()..])
            .unwrap()
            .expect("marker box");
        let stated = marker
            .verify(&MarkerSigner::from_master_key(&master).verifying_key())
            .expect("marker signed by this server");
        assert_eq!(stated.session_id, client.session_id);
        assert_eq!(stated.video_id, video_id);
        let mut received = Vec::new();
        for k in 1..=units {
            let (_, wire, _) = client.raw_segment(&k.to_string());
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
        let code = codes::session_code(
            &secret,
            codes::CodeScheme::Uniform,
            &client.session_id,
            units,
        );
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
        let (_, wire, _) = client.raw_segment("3");
        let other = crypto::segment_aad(&client.session_id, "4");
        assert!(crypto::open(&client.cek, other.as_bytes(), &wire).is_err());
        // Two fetches of one segment never repeat bytes (fresh nonce).
        assert_ne!(client.raw_segment("3").1, wire);

        let status = client
            .get(&format!("/api/security/status/{}/", client.session_id))
            .json();
        assert_eq!(status["state"], "streaming");
        // Video units count (init does not): every unit twice (wire check and decryption),
        // unit 3 twice more.
        assert_eq!(
            status["segments_served"].as_i64().unwrap(),
            2 * units as i64 + 2
        );
    }
    assert_ne!(sequences[0], sequences[1], "two sessions, two codes");
}

#[test]
fn segments_are_refused_before_keying_out_of_range_and_to_other_devices() {
    let (h, server, video_id, _dir) = setup();
    let client = Client::start(&server, "vic", &"3".repeat(64), &video_id);
    let (status, body, _) = client.raw_segment("0");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert_eq!(client.raw_segment("999").0, 404);
    assert_eq!(client.raw_segment("abc").0, 404);
    assert_eq!(client.raw_segment("../../package.json").0, 404);

    h.add_user("mallory", "viewer", common::viewer::PASSWORD);
    let other = Client::start(&server, "mallory", &"4".repeat(64), &video_id);
    let url = server.url(&format!("/api/video/stream/{}/1/", client.session_id));
    send("GET", &url, None, None).assert_error(401, "missing_token");
    // Another user's device, who learnt the session's id, is refused...
    send("GET", &url, Some(&other.device_token), None).assert_error(403, "device_mismatch");
    // ... and that attempt did not touch the session: its own device still streams.
    let own = send("GET", &url, Some(&client.device_token), None);
    assert_eq!(own.status, 200, "{}", own.body);

    // A session whose key exchange is not done cannot stream.
    let req = request_stream(&server, &client.device_token, &video_id);
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
