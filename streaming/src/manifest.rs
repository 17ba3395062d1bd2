//! The DASH MPD of a session: one video representation whose `SegmentTemplate` points at the
//! session-scoped segment URLs. No `ContentProtection`: segments are decrypted by the page.

use shared::package::PackageManifest;

/// Renders the MPD for `session_id`.
pub fn render(m: &PackageManifest, session_id: &str) -> String {
    let v = &m.video;
    let [fr_num, fr_den] = v.frame_rate;
    let frame_rate = if fr_den == 1 {
        fr_num.to_string()
    } else {
        format!("{fr_num}/{fr_den}")
    };
    // Nominal bandwidth for the player's buffer planning (0.1 bit per pixel per frame).
    let bandwidth = (v.width as f64 * v.height as f64 * fr_num as f64 / fr_den as f64 * 0.1) as u64;
    let base = format!("/api/video/stream/{session_id}");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" mediaPresentationDuration="PT{duration:.3}S" minBufferTime="PT2S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="video" codecs="{codecs}" width="{width}" height="{height}" frameRate="{frame_rate}" sar="{sar_n}:{sar_d}" bandwidth="{bandwidth}">
        <SegmentTemplate timescale="{fr_num}" duration="{seg}" startNumber="1" initialization="{base}/init/" media="{base}/$Number$/"/>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#,
        duration = v.duration_seconds,
        codecs = xml_escape(&v.codec),
        width = v.width,
        height = v.height,
        sar_n = v.sample_aspect[0],
        sar_d = v.sample_aspect[1],
        seg = v.unit_frames as i64 * fr_den as i64,
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
