//! Where everything lives on disk: the data dir ([`DataLayout`]) and one packaged title's
//! folder ([`Layout`]). These two types are the only source of paths in leaktrace: nothing
//! else joins folder or file names.
//!
//! ```text
//! <data>/
//!   leaktrace.db                    the embedded SQLite database (unless DATABASE_URL is set)
//!   secrets/                        JWT key, master key, report CA and signing key (0700)
//!   videos/<video_id>/              one packaged title (below)
//!   videos/.staging-<video_id>/     a title being packaged, renamed into place when complete
//!   uploads/<id>.part               a suspect file arriving, renamed when complete
//!   uploads/<id>-<name>             a suspect file received for analysis
//!   sources/                        sources uploaded for packaging jobs
//!   reports/<case>-<sha>.pdf        signed evidence reports
//!   work/<job>-<id>/                scratch folders of analyses and reference store builds
//!   inbox/                          files crawlers name by path (unless configured elsewhere)
//!
//! <data>/videos/<video_id>/
//!   package.json                    PackageManifest
//!   video/init.mp4                  the one init segment (identical for A and B)
//!   video/a/<k>.m4s                 segment k (1-based) of variant A
//!   video/b/<k>.m4s                 segment k of variant B
//!   video/aa/<k>.m4s .. video/bb/<k>.m4s
//!                                   the four variants of segment k when each segment holds
//!                                   two units (`segment_units: 2`): one letter per unit
//!   audio/init.mp4                  unmarked audio track (when the source has audio)
//!   audio/<k>.m4s
//!   reference/thumbs.bin            per-frame luma thumbnails of the unmarked source (alignment)
//!   reference/units/<k>.lts         the reference store: unit k's A/B midpoint and half
//!                                   difference at the analysis width (built by a worker job)
//!   source/original.<ext>           the source as received
//!   work/                           packaging's scratch files (a.mp4, b.mp4, audio.mp4),
//!                                   removed before the title is committed
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The two watermark variants of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Variant {
    A,
    B,
}

impl Variant {
    /// The variant's folder name under `video/` (and its name in scratch files).
    pub fn folder(self) -> &'static str {
        match self {
            Variant::A => "a",
            Variant::B => "b",
        }
    }
}

/// The most watermark units one segment may hold (a segment of `n` units has `2^n` variants).
pub const MAX_SEGMENT_UNITS: u32 = 2;

/// One variant of a segment: the variant of each watermark unit it holds, in order. A title
/// whose segments hold one unit each has the two of [`Variant`]; one whose segments hold two
/// has four (`aa`, `ab`, `ba`, `bb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentVariant {
    /// Bit `i` (least significant first) is 1 when unit `i` of the segment is variant B.
    choices: u8,
    units: u8,
}

impl SegmentVariant {
    /// Every variant of a segment of `units` units (1 to [`MAX_SEGMENT_UNITS`]), the all-A
    /// one first and the all-B one last.
    pub fn all(units: u32) -> impl Iterator<Item = SegmentVariant> {
        let units = units.clamp(1, MAX_SEGMENT_UNITS) as u8;
        (0..1u8 << units).map(move |choices| SegmentVariant {
            // The first unit's letter comes first in the name and in the order.
            choices: (0..units).fold(0, |acc, i| acc | (choices >> (units - 1 - i) & 1) << i),
            units,
        })
    }

    /// Every unit of a segment of `units` units in `variant` (`aa` or `bb` for two).
    pub fn uniform(variant: Variant, units: u32) -> SegmentVariant {
        let units = units.clamp(1, MAX_SEGMENT_UNITS) as u8;
        SegmentVariant {
            choices: match variant {
                Variant::A => 0,
                Variant::B => (1u8 << units) - 1,
            },
            units,
        }
    }

    /// The variant whose units take `choices` in order (`None` for no choice or more than
    /// [`MAX_SEGMENT_UNITS`]).
    pub fn of(choices: &[Variant]) -> Option<SegmentVariant> {
        if choices.is_empty() || choices.len() > MAX_SEGMENT_UNITS as usize {
            return None;
        }
        Some(SegmentVariant::from_bits(choices.len() as u32, |i| {
            choices[i as usize] == Variant::B
        }))
    }

    /// The variant of a segment of `units` units (1 to [`MAX_SEGMENT_UNITS`]) whose unit `i`
    /// is B when `is_b(i)`: no allocation, for the segment route.
    pub(crate) fn from_bits(units: u32, is_b: impl Fn(u32) -> bool) -> SegmentVariant {
        let units = units.clamp(1, MAX_SEGMENT_UNITS);
        SegmentVariant {
            choices: (0..units).fold(0, |acc, i| acc | u8::from(is_b(i)) << i),
            units: units as u8,
        }
    }

    /// How many units the segment holds.
    pub fn units(self) -> u32 {
        self.units as u32
    }

    /// The variant of the segment's unit `i` (0-based; A past the last).
    pub fn unit(self, i: u32) -> Variant {
        if i < self.units as u32 && self.choices >> i & 1 == 1 {
            Variant::B
        } else {
            Variant::A
        }
    }

    /// The variant's folder name under `video/`: one letter per unit (`a`, `b`, `aa`, `ab`).
    pub fn folder(self) -> String {
        (0..self.units as u32)
            .map(|i| self.unit(i).folder())
            .collect()
    }
}

impl From<Variant> for SegmentVariant {
    fn from(variant: Variant) -> SegmentVariant {
        SegmentVariant::uniform(variant, 1)
    }
}

/// The data dir's folders and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLayout {
    pub root: PathBuf,
}

impl DataLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataLayout { root: root.into() }
    }

    /// The embedded database.
    pub fn sqlite_database(&self) -> PathBuf {
        self.root.join("leaktrace.db")
    }

    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets")
    }

    /// The folder of every packaged title.
    pub fn videos(&self) -> PathBuf {
        self.root.join("videos")
    }

    /// Where title `video_id` lives relative to the data dir (stored in the database, so a
    /// data dir can move).
    pub fn relative_title_dir(video_id: &str) -> String {
        format!("videos/{video_id}")
    }

    /// A recorded title, from its stored relative folder.
    pub fn title(&self, storage_dir: &str) -> Layout {
        Layout::new(self.root.join(storage_dir))
    }

    /// The folder title `video_id` is committed to.
    pub fn title_dir(&self, video_id: &str) -> PathBuf {
        self.videos().join(video_id)
    }

    /// The folder title `video_id` is packaged in before it is renamed into place.
    pub fn staging_dir(&self, video_id: &str) -> PathBuf {
        self.videos().join(format!(".staging-{video_id}"))
    }

    /// Suspect files received for analysis.
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Sources uploaded for packaging jobs.
    pub fn sources(&self) -> PathBuf {
        self.root.join("sources")
    }

    /// Signed evidence reports.
    pub fn reports(&self) -> PathBuf {
        self.root.join("reports")
    }

    /// The report of `case_id` whose SHA-256 starts with `sha_prefix`.
    pub fn report(&self, case_id: &str, sha_prefix: &str) -> PathBuf {
        self.reports().join(format!("{case_id}-{sha_prefix}.pdf"))
    }

    /// The scratch folder: jobs' folders ([`DataLayout::work`]) and unnamed temporary files.
    pub fn work_root(&self) -> PathBuf {
        self.root.join("work")
    }

    /// A scratch folder of its own for one run of a job (`name` says which).
    pub fn work(&self, name: &str) -> PathBuf {
        self.work_root().join(name)
    }

    /// The crawler inbox when the configuration names none.
    pub fn default_inbox(&self) -> PathBuf {
        self.root.join("inbox")
    }
}

/// The files of one packaged title's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub fn manifest(&self) -> PathBuf {
        self.root.join("package.json")
    }

    fn video_dir(&self) -> PathBuf {
        self.root.join("video")
    }

    pub fn video_init(&self) -> PathBuf {
        self.video_dir().join("init.mp4")
    }

    /// The folder of one variant's segments.
    pub fn variant_dir(&self, variant: impl Into<SegmentVariant>) -> PathBuf {
        self.video_dir().join(variant.into().folder())
    }

    /// Segment `unit` is 1-based, as in segment URLs.
    pub fn video_unit(&self, variant: impl Into<SegmentVariant>, unit: u32) -> PathBuf {
        self.variant_dir(variant).join(format!("{unit}.m4s"))
    }

    /// The folder of lower rendition `index` (1-based; the top rendition is `video/`).
    fn rendition_dir(&self, index: u32) -> PathBuf {
        self.root.join(format!("video-r{index}"))
    }

    /// Rendition `index`'s init segment; 0 is the top rendition's.
    pub fn rendition_init(&self, index: u32) -> PathBuf {
        match index {
            0 => self.video_init(),
            i => self.rendition_dir(i).join("init.mp4"),
        }
    }

    /// The folder of one variant's segments of rendition `index`; 0 is the top rendition's.
    pub fn rendition_variant_dir(&self, index: u32, variant: impl Into<SegmentVariant>) -> PathBuf {
        match index {
            0 => self.variant_dir(variant),
            i => self.rendition_dir(i).join(variant.into().folder()),
        }
    }

    /// Segment `unit` (1-based) of rendition `index` in `variant`; 0 is the top rendition.
    pub fn rendition_unit(
        &self,
        index: u32,
        variant: impl Into<SegmentVariant>,
        unit: u32,
    ) -> PathBuf {
        self.rendition_variant_dir(index, variant)
            .join(format!("{unit}.m4s"))
    }

    pub fn audio_dir(&self) -> PathBuf {
        self.root.join("audio")
    }

    pub fn audio_init(&self) -> PathBuf {
        self.audio_dir().join("init.mp4")
    }

    pub fn audio_unit(&self, unit: u32) -> PathBuf {
        self.audio_dir().join(format!("{unit}.m4s"))
    }

    /// The folder of the alignment thumbnails and the reference store.
    pub fn reference_dir(&self) -> PathBuf {
        self.root.join("reference")
    }

    pub fn thumbnails(&self) -> PathBuf {
        self.reference_dir().join("thumbs.bin")
    }

    /// The reference store's folder (published whole, by a rename).
    pub fn reference_store(&self) -> PathBuf {
        self.reference_dir().join("units")
    }

    /// The reference store's file of 1-based `unit`.
    pub fn reference_unit(&self, unit: u32) -> PathBuf {
        self.reference_store().join(format!("{unit}.lts"))
    }

    pub fn source_dir(&self) -> PathBuf {
        self.root.join("source")
    }

    /// The copy of the source, by its (sanitised) extension.
    pub fn source_file(&self, extension: &str) -> PathBuf {
        self.source_dir().join(format!("original.{extension}"))
    }

    /// Packaging's scratch folder, removed before the title is committed.
    pub fn work_dir(&self) -> PathBuf {
        self.root.join("work")
    }

    /// A scratch file of packaging (`a.mp4`, `b.mp4`, `audio.mp4`).
    pub fn work_file(&self, name: &str) -> PathBuf {
        self.work_dir().join(name)
    }

    /// Every folder packaging writes into other than the variants', created before it
    /// starts.
    pub fn folders(&self) -> [PathBuf; 3] {
        [self.source_dir(), self.reference_dir(), self.work_dir()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_a_title_and_of_the_data_dir() {
        let data = DataLayout::new("/d");
        let l = data.title(&DataLayout::relative_title_dir("v1"));
        assert_eq!(l.root, data.title_dir("v1"));
        let rel = |p: PathBuf| {
            p.strip_prefix(&l.root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(rel(l.manifest()), "package.json");
        assert_eq!(rel(l.video_init()), "video/init.mp4");
        assert_eq!(rel(l.video_unit(Variant::B, 3)), "video/b/3.m4s");
        let ab = SegmentVariant::of(&[Variant::A, Variant::B]).unwrap();
        assert_eq!(rel(l.video_unit(ab, 3)), "video/ab/3.m4s");
        assert_eq!(rel(l.rendition_unit(2, ab, 1)), "video-r2/ab/1.m4s");
        assert_eq!(rel(l.audio_unit(2)), "audio/2.m4s");
        assert_eq!(rel(l.thumbnails()), "reference/thumbs.bin");
        assert_eq!(rel(l.reference_unit(7)), "reference/units/7.lts");
        assert_eq!(rel(l.source_file("mp4")), "source/original.mp4");
        assert_eq!(rel(l.work_file("a.mp4")), "work/a.mp4");
        assert_eq!(
            data.staging_dir("v1"),
            PathBuf::from("/d/videos/.staging-v1")
        );
        assert_eq!(data.report("c", "ab"), PathBuf::from("/d/reports/c-ab.pdf"));
        assert_eq!(data.work("x"), PathBuf::from("/d/work/x"));
        assert_eq!(data.sqlite_database(), PathBuf::from("/d/leaktrace.db"));
    }

    #[test]
    fn a_segment_has_one_variant_per_choice_of_its_units() {
        let names = |units| {
            SegmentVariant::all(units)
                .map(SegmentVariant::folder)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(1), ["a", "b"]);
        assert_eq!(names(2), ["aa", "ab", "ba", "bb"]);
        for units in 1..=MAX_SEGMENT_UNITS {
            for v in SegmentVariant::all(units) {
                let choices: Vec<Variant> = (0..units).map(|i| v.unit(i)).collect();
                assert_eq!(SegmentVariant::of(&choices), Some(v));
                assert_eq!(v.units(), units);
            }
            assert_eq!(
                SegmentVariant::all(units).next(),
                Some(SegmentVariant::uniform(Variant::A, units))
            );
            assert_eq!(
                SegmentVariant::all(units).last(),
                Some(SegmentVariant::uniform(Variant::B, units))
            );
        }
        assert_eq!(SegmentVariant::from(Variant::B).folder(), "b");
        assert_eq!(SegmentVariant::of(&[]), None);
        assert_eq!(SegmentVariant::of(&[Variant::A; 3]), None);
        let ba = SegmentVariant::of(&[Variant::B, Variant::A]).unwrap();
        assert_eq!(
            (ba.unit(0), ba.unit(1), ba.unit(2)),
            (Variant::B, Variant::A, Variant::A)
        );
    }
}
