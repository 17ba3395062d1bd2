//! A title packaged for real, and copies leaked from it through the real protocol.

use std::path::Path;

use super::media::title_clip;
use super::viewer::{Client, PASSWORD};
use super::{Harness, Server};

pub struct Title {
    pub h: Harness,
    pub dir: tempfile::TempDir,
    pub video_id: String,
    /// Watermark units (bits of a session's code).
    pub units: u32,
    /// Video segments a player fetches (fewer than units when each holds two).
    pub segments: u32,
}

/// A title of `seconds` (480x270, 25 fps) packaged in a fresh harness with the viewers vic,
/// val and vera.
pub fn packaged(seconds: f64) -> Title {
    packaged_with(seconds, &[])
}

/// [`packaged`] with more `leaktrace package` options (e.g. `--code tardos-v2`).
pub fn packaged_with(seconds: f64, options: &[&str]) -> Title {
    let h = Harness::new();
    for user in ["vic", "val", "vera"] {
        h.add_user(user, "viewer", PASSWORD);
    }
    let dir = tempfile::tempdir().unwrap();
    let input = title_clip(dir.path(), seconds);
    let v = h.package(&input, "Leakable", options);
    Title {
        video_id: v["video_id"].as_str().unwrap().to_string(),
        units: v["units"].as_u64().unwrap() as u32,
        segments: v["segments"].as_u64().unwrap() as u32,
        h,
        dir,
    }
}

/// What a leaking viewer saves: the decrypted init segment and every video segment, joined.
pub fn leak(server: &Server, user: &str, fp: &str, t: &Title, out: &Path) -> String {
    let client = Client::start(server, user, fp, &t.video_id);
    let mut bytes = client.segment("init");
    for k in 1..=t.segments {
        bytes.extend(client.segment(&k.to_string()));
    }
    std::fs::write(out, bytes).unwrap();
    client.session_id.clone()
}

/// What colluding viewers save: each video segment from the session `pick(segment)` chooses
/// among `viewers` (user, fingerprint), behind the first one's init segment. Returns their
/// session ids in the order given.
pub fn leak_mixed(
    server: &Server,
    viewers: &[(&str, &str)],
    t: &Title,
    out: &Path,
    pick: impl Fn(u32) -> usize,
) -> Vec<String> {
    let clients: Vec<Client> = viewers
        .iter()
        .map(|(user, fp)| Client::start(server, user, fp, &t.video_id))
        .collect();
    let mut bytes = clients[0].segment("init");
    for k in 1..=t.segments {
        bytes.extend(clients[pick(k) % clients.len()].segment(&k.to_string()));
    }
    std::fs::write(out, bytes).unwrap();
    clients.iter().map(|c| c.session_id.clone()).collect()
}
