//! Just enough ISO base media file format (MP4) reading for leaktrace: walking boxes in a byte
//! slice, the media timescale of an init segment and the earliest presentation time of a
//! fragment. Every read is bounds-checked: input may be hostile.

/// One box: its four-character type and its payload (without the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxRef<'a> {
    pub kind: [u8; 4],
    pub body: &'a [u8],
    /// The whole box, header included.
    pub whole: &'a [u8],
}

/// Iterates the boxes at one level of `data`. Stops at the first malformed box.
pub fn boxes(data: &[u8]) -> Boxes<'_> {
    Boxes { data, at: 0 }
}

pub struct Boxes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Boxes<'a> {
    type Item = BoxRef<'a>;

    fn next(&mut self) -> Option<BoxRef<'a>> {
        let rest = self.data.get(self.at..)?;
        let size32 = u32::from_be_bytes(rest.get(0..4)?.try_into().ok()?);
        let kind: [u8; 4] = rest.get(4..8)?.try_into().ok()?;
        let (header, size) = match size32 {
            0 => (8usize, rest.len()),
            1 => {
                let large = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
                (16usize, usize::try_from(large).ok()?)
            }
            s => (8usize, s as usize),
        };
        if size < header || size > rest.len() {
            self.at = self.data.len();
            return None;
        }
        self.at += size;
        Some(BoxRef {
            kind,
            body: &rest[header..size],
            whole: &rest[..size],
        })
    }
}

/// The first box reached by following `path` (one box type per level) from `data`.
pub fn find<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Option<BoxRef<'a>> {
    let (first, rest) = path.split_first()?;
    let found = boxes(data).find(|b| &b.kind == *first)?;
    if rest.is_empty() {
        Some(found)
    } else {
        find(found.body, rest)
    }
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// The media timescale (`mdhd`) of the first track of an init segment.
pub fn media_timescale(init: &[u8]) -> Option<u32> {
    let mdhd = find(init, &[b"moov", b"trak", b"mdia", b"mdhd"])?.body;
    // version(1) flags(3), then creation and modification times of 4 or 8 bytes each.
    let at = if *mdhd.first()? == 1 { 4 + 16 } else { 4 + 8 };
    be_u32(mdhd, at).filter(|&t| t > 0)
}

/// The presentation time (in media timescale ticks) of the first sample of a media fragment:
/// `tfdt` decode time plus the first sample's composition offset from `trun`. For a unit that
/// starts with its key frame, that is the unit's earliest presentation time.
pub fn first_presentation_time(fragment: &[u8]) -> Option<i64> {
    let traf = find(fragment, &[b"moof", b"traf"])?.body;
    let tfdt = find(traf, &[b"tfdt"])?.body;
    let decode = match *tfdt.first()? {
        1 => be_u64(tfdt, 4)?,
        _ => be_u32(tfdt, 4)? as u64,
    };
    let decode = i64::try_from(decode).ok()?;
    let Some(trun) = find(traf, &[b"trun"]) else {
        return Some(decode);
    };
    let trun = trun.body;
    let version = *trun.first()?;
    let flags = be_u32(trun, 0)? & 0x00ff_ffff;
    let count = be_u32(trun, 4)?;
    if count == 0 || flags & 0x800 == 0 {
        return Some(decode);
    }
    // Optional fields before the first sample record, then that record's fields in order.
    let mut at = 8;
    if flags & 0x1 != 0 {
        at += 4; // data offset
    }
    if flags & 0x4 != 0 {
        at += 4; // first sample flags
    }
    for bit in [0x100, 0x200, 0x400] {
        if flags & bit != 0 {
            at += 4; // duration, size, flags
        }
    }
    let raw = be_u32(trun, at)?;
    let offset = if version == 0 {
        raw as i64
    } else {
        raw as i32 as i64
    };
    // A hostile file can put a decode time near the end of the range: no time then, rather
    // than an overflow (found by fuzzing).
    decode.checked_add(offset)
}

#[cfg(test)]
pub(crate) fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_and_finds_nested_boxes() {
        let mdhd = {
            let mut p = vec![0u8; 4 + 8];
            p.extend_from_slice(&12800u32.to_be_bytes());
            p.extend_from_slice(&[0u8; 8]);
            boxed(b"mdhd", &p)
        };
        let init = [
            boxed(b"ftyp", b"iso6"),
            boxed(
                b"moov",
                &boxed(
                    b"trak",
                    &boxed(b"mdia", &[boxed(b"hdlr", b"x"), mdhd].concat()),
                ),
            ),
        ]
        .concat();
        let kinds: Vec<[u8; 4]> = boxes(&init).map(|b| b.kind).collect();
        assert_eq!(kinds, vec![*b"ftyp", *b"moov"]);
        assert_eq!(media_timescale(&init), Some(12800));
        assert_eq!(media_timescale(b"garbage"), None);
    }

    #[test]
    fn truncated_and_oversized_boxes_stop_the_walk() {
        let mut data = boxed(b"free", b"abcd");
        data.extend_from_slice(&100u32.to_be_bytes());
        data.extend_from_slice(b"mdat");
        assert_eq!(boxes(&data).count(), 1);
        assert_eq!(boxes(&[0, 0, 0, 4, b'a', b'b', b'c', b'd']).count(), 0);
        assert_eq!(boxes(&[]).count(), 0);
    }

    #[test]
    fn first_presentation_time_adds_the_composition_offset() {
        let tfdt = boxed(
            b"tfdt",
            &[&[1u8, 0, 0, 0][..], &1024u64.to_be_bytes()].concat(),
        );
        // version 1, flags: data offset + duration + size + flags + composition offset.
        let mut trun = vec![1u8, 0x00, 0x0f, 0x01];
        trun.extend_from_slice(&2u32.to_be_bytes()); // sample count
        trun.extend_from_slice(&100u32.to_be_bytes()); // data offset
        for sample in [(512u32, 9000u32, 0u32, 1024i32), (512, 100, 0, -512)] {
            trun.extend_from_slice(&sample.0.to_be_bytes());
            trun.extend_from_slice(&sample.1.to_be_bytes());
            trun.extend_from_slice(&sample.2.to_be_bytes());
            trun.extend_from_slice(&sample.3.to_be_bytes());
        }
        let fragment = boxed(
            b"moof",
            &boxed(b"traf", &[tfdt.clone(), boxed(b"trun", &trun)].concat()),
        );
        assert_eq!(first_presentation_time(&fragment), Some(2048));
        let no_trun = boxed(b"moof", &boxed(b"traf", &tfdt));
        assert_eq!(first_presentation_time(&no_trun), Some(1024));
        assert_eq!(first_presentation_time(b"not a fragment"), None);
    }
}
