//! The DASH MPD of a session: a video representation per rendition (the player switches
//! between them by bandwidth; every rendition's segment k carries the session's bits of the
//! watermark units it holds) and, when the title has audio, an audio one, whose
//! `SegmentTemplate`s point at the session-scoped segment URLs. No `ContentProtection`:
//! segments are decrypted by the page, not by EME.
//!
//! Fragmented MP4 has no edit list to hide the encoder's B-frame delay, so the first frame is
//! presented slightly after zero; `presentationTimeOffset` moves it back to the period start.

use formats::package::PackageManifest;

/// Renders the MPD for `session_id`.
pub fn render(m: &PackageManifest, session_id: &str) -> String {
    let v = &m.video;
    let [fr_num, fr_den] = v.frame_rate;
    let frame_rate = if fr_den == 1 {
        fr_num.to_string()
    } else {
        format!("{fr_num}/{fr_den}")
    };
    // The measured rate, or for titles packaged before it was measured a nominal one (0.1 bit
    // per pixel per frame), for the player's buffer planning and rendition choice.
    let bandwidth = v
        .bandwidth
        .unwrap_or((v.width as f64 * v.height as f64 * fr_num as f64 / fr_den as f64 * 0.1) as u64);
    let base = format!("/api/video/stream/{session_id}");
    // Timescale fr_num: one frame lasts fr_den ticks.
    let video_offset =
        (v.start_seconds * fr_num as f64 / fr_den as f64).round() as i64 * fr_den as i64;
    let audio = m.audio.as_ref().map(|a| {
        let rate = a.sample_rate;
        format!(
            r#"    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" lang="und" segmentAlignment="true" startWithSAP="1">
      <Representation id="audio" codecs="{codec}" audioSamplingRate="{rate}" bandwidth="128000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="{channels}"/>
        <SegmentTemplate timescale="{rate}" duration="{seg}" presentationTimeOffset="{offset}" startNumber="1" initialization="{base}/audio-init/" media="{base}/audio-$Number$/"/>
      </Representation>
    </AdaptationSet>
"#,
            codec = xml_escape(&a.codec),
            channels = a.channels,
            seg = (a.segment_seconds * rate as f64).round() as i64,
            offset = (a.start_seconds * rate as f64).round() as i64,
        )
    });
    // The top rendition (segments `init`, `N`), then the lower ones (`rI-init`, `rI-N`).
    let top = (
        "video".to_string(),
        String::new(),
        v.codec.as_str(),
        v.width,
        v.height,
        bandwidth,
    );
    let lower = m.renditions.iter().map(|r| {
        (
            format!("video-r{}", r.index),
            format!("r{}-", r.index),
            r.codec.as_str(),
            r.width,
            r.height,
            r.bandwidth,
        )
    });
    let representations: String = std::iter::once(top)
        .chain(lower)
        .map(|(id, prefix, codec, width, height, bandwidth)| {
            format!(
                r#"      <Representation id="{id}" codecs="{codecs}" width="{width}" height="{height}" frameRate="{frame_rate}" sar="{sar_n}:{sar_d}" bandwidth="{bandwidth}">
        <SegmentTemplate timescale="{fr_num}" duration="{seg}" presentationTimeOffset="{video_offset}" startNumber="1" initialization="{base}/{prefix}init/" media="{base}/{prefix}$Number$/"/>
      </Representation>
"#,
                codecs = xml_escape(codec),
                sar_n = v.sample_aspect[0],
                sar_d = v.sample_aspect[1],
                seg = v.segment_frames() as i64 * fr_den as i64,
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" mediaPresentationDuration="PT{duration:.3}S" minBufferTime="PT2S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
{representations}    </AdaptationSet>
{audio}  </Period>
</MPD>
"#,
        duration = v.duration_seconds,
        audio = audio.unwrap_or_default(),
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::package::{AudioTrack, SourceFile, VideoTrack, WatermarkParams};

    fn manifest(frame_rate: [i32; 2], start: f64, audio: bool) -> PackageManifest {
        PackageManifest {
            format_version: 1,
            video_id: "v".into(),
            title: "t".into(),
            video: VideoTrack {
                codec: "avc1.64001f".into(),
                width: 1280,
                height: 720,
                sample_aspect: [1, 1],
                frame_rate,
                frame_count: 300,
                unit_frames: 30,
                unit_count: 10,
                segment_units: 1,
                duration_seconds: 10.0,
                crf: 20,
                preset: "faster".into(),
                start_seconds: start,
                bandwidth: None,
            },
            audio: audio.then(|| AudioTrack {
                codec: "mp4a.40.2".into(),
                sample_rate: 48000,
                channels: 2,
                segment_count: 10,
                segment_seconds: 1.0,
                start_seconds: 0.0,
            }),
            watermark: WatermarkParams {
                algorithm: "x".into(),
                code: Default::default(),
                strength: 1.0,
            },
            source: SourceFile {
                file_name: "s.mp4".into(),
                size_bytes: 1,
                sha256: "00".into(),
                container: "mp4".into(),
                codec: "h264".into(),
                width: 1280,
                height: 720,
                duration_seconds: 10.0,
            },
            thumbnail_size: [32, 18],
            renditions: Vec::new(),
        }
    }

    #[test]
    fn every_rendition_is_a_representation_with_its_own_segments() {
        let mut m = manifest([25, 1], 0.08, false);
        m.video.bandwidth = Some(2_000_000);
        m.renditions = vec![formats::package::Rendition {
            index: 1,
            codec: "avc1.64001e".into(),
            width: 854,
            height: 480,
            bandwidth: 700_000,
        }];
        let mpd = render(&m, "s");
        assert!(mpd.contains(r#"<Representation id="video" codecs="avc1.64001f" width="1280" height="720" frameRate="25" sar="1:1" bandwidth="2000000">"#), "{mpd}");
        assert!(mpd.contains(r#"<Representation id="video-r1" codecs="avc1.64001e" width="854" height="480" frameRate="25" sar="1:1" bandwidth="700000">"#), "{mpd}");
        assert!(mpd.contains(r#"initialization="/api/video/stream/s/r1-init/" media="/api/video/stream/s/r1-$Number$/""#), "{mpd}");
        assert!(mpd.contains(r#"initialization="/api/video/stream/s/init/" media="/api/video/stream/s/$Number$/""#), "{mpd}");
        assert_eq!(
            mpd.matches("<AdaptationSet").count(),
            1,
            "one set: the player switches"
        );
    }

    #[test]
    fn presentation_offset_is_whole_frames_in_the_frame_rate_timescale() {
        let ntsc = render(&manifest([30000, 1001], 2.0 * 1001.0 / 30000.0, false), "s");
        assert!(
            ntsc.contains(r#"timescale="30000" duration="30030" presentationTimeOffset="2002""#),
            "{ntsc}"
        );
        assert!(!ntsc.contains("audio"));
        let pal = render(&manifest([25, 1], 0.08, true), "s");
        assert!(pal.contains(r#"presentationTimeOffset="2""#), "{pal}");
        assert!(pal.contains(r#"initialization="/api/video/stream/s/audio-init/""#));
        assert!(pal.contains(r#"timescale="48000" duration="48000""#));
    }
}
