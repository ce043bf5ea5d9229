//! A segment: the events of one appended batch stored under one key (and,
//! since format 4, the commands of one write: see `outbox::CommandRun`).
//!
//! sled's cost is per key, so one key per batch instead of one per event is
//! what makes appends cheap. Layout (little-endian):
//! `[count: u32][end offset of event i: u32; count][event bytes...]`, so any
//! one event can be sliced out without decoding the others.
//!
//! A segment is stored as that layout or as one zstd frame of it
//! (`log.compression`; about 4× smaller for these events, and a smaller
//! value is also less for sled to rewrite when it consolidates a page). The
//! two are told apart by zstd's magic number, which as a raw segment's
//! count would mean more events than a batch may hold
//! ([`STORED_EVENTS_MAX`]): reading needs no flag and a data dir may hold
//! both (format 3; see `FORMAT_VERSION`).

use std::borrow::Cow;

/// The first four bytes of a zstd frame (its magic number, little-endian).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Most events one segment holds: far below the count zstd's magic number
/// would read as, so a raw segment is never taken for a frame.
pub const STORED_EVENTS_MAX: usize = 1 << 24;

/// Largest segment read back once decompressed: the writer keeps a segment
/// below 4 GiB (its offsets are `u32`), so a frame claiming more is corrupt
/// and is refused before anything is allocated for it.
const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;

/// A segment's bytes as stored: compressed at `level`, or as they are.
pub fn stored(segment: Vec<u8>, level: Option<i32>) -> Vec<u8> {
    match level {
        Some(level) => compress(&segment, level),
        None => segment,
    }
}

/// A stored segment's layout bytes: decompressed when it is a zstd frame.
pub fn layout(stored: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    if !is_compressed(stored) {
        return Ok(Cow::Borrowed(stored));
    }
    decompress(stored, SEGMENT_BYTES_MAX)
        .map(Cow::Owned)
        .map_err(|why| format!("compressed segment: {why}"))
}

/// `bytes` as one zstd frame at `level` (the log's compression, used for
/// segments and snapshots alike).
pub fn compress(bytes: &[u8], level: i32) -> Vec<u8> {
    // Compressing a buffer in memory fails only on an invalid level,
    // which the config refuses before the log opens.
    zstd::bulk::compress(bytes, level).expect("a valid zstd level")
}

/// The bytes of one zstd frame, refused before anything is allocated for
/// them when its header claims more than `bytes_max`.
pub fn decompress(frame: &[u8], bytes_max: u64) -> Result<Vec<u8>, String> {
    let size = frame_size(frame, bytes_max)?;
    zstd::bulk::decompress(frame, size as usize).map_err(|e| format!("frame: {e}"))
}

/// The size a zstd frame's header claims, refused when missing or above
/// `bytes_max` (before anything is allocated for it).
fn frame_size(frame: &[u8], bytes_max: u64) -> Result<u64, String> {
    let size = zstd::zstd_safe::get_frame_content_size(frame)
        .map_err(|_| "a broken frame header".to_string())?
        .ok_or("a frame without its size")?;
    if size > bytes_max {
        return Err(format!("a frame that claims {size} bytes"));
    }
    Ok(size)
}

/// [`decompress`] into `buf` (its contents replaced, its allocation kept
/// when large enough) with a decompressor kept by the caller: a reader of
/// many segments allocates neither per segment.
pub fn decompress_into(
    d: &mut zstd::bulk::Decompressor<'static>,
    frame: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let size = frame_size(frame, SEGMENT_BYTES_MAX)?;
    buf.clear();
    buf.reserve(size as usize);
    let n = d
        .decompress_to_buffer(frame, buf)
        .map_err(|e| format!("frame: {e}"))?;
    if n as u64 != size {
        return Err(format!("a frame of {n} bytes that claims {size}"));
    }
    Ok(())
}

/// Whether stored segment bytes are a zstd frame.
pub fn is_compressed(stored: &[u8]) -> bool {
    stored.starts_with(&ZSTD_MAGIC)
}

#[derive(Debug, Default)]
pub struct SegmentWriter {
    ends: Vec<u32>,
    body: Vec<u8>,
}

impl SegmentWriter {
    pub fn new() -> SegmentWriter {
        SegmentWriter {
            ends: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn push(&mut self, event: &[u8]) {
        assert!(
            self.ends.len() < STORED_EVENTS_MAX,
            "a batch holds fewer events than a segment may"
        );
        self.body.extend_from_slice(event);
        let end = u32::try_from(self.body.len()).expect("a segment stays below 4 GiB");
        self.ends.push(end);
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The bytes of its entries so far (without the table).
    pub fn body_bytes(&self) -> usize {
        self.body.len()
    }

    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 4 * self.ends.len() + self.body.len());
        out.extend_from_slice(&(self.ends.len() as u32).to_le_bytes());
        for e in &self.ends {
            out.extend_from_slice(&e.to_le_bytes());
        }
        out.extend_from_slice(&self.body);
        out
    }
}

/// A stored segment, checked on parse.
pub struct Segment<'a> {
    ends: &'a [u8],
    body: &'a [u8],
}

impl<'a> Segment<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Segment<'a>, String> {
        let count = bytes
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or("segment shorter than its header")?;
        let table_end = 4 + 4 * count;
        let ends = bytes
            .get(4..table_end)
            .ok_or("segment shorter than its table")?;
        let body = &bytes[table_end..];
        let s = Segment { ends, body };
        // Invariant on read: offsets rise and the last one is the body length.
        let mut prev = 0;
        for i in 0..count {
            let e = s.end(i);
            if e < prev {
                return Err(format!("segment offsets fall at {i}"));
            }
            prev = e;
        }
        if prev != body.len() {
            return Err("segment body length does not match its table".into());
        }
        Ok(s)
    }

    /// A segment [`parse`](Self::parse) has already checked, sliced again
    /// without the check (a reader keeps the bytes, not the borrow). On
    /// bytes that were not checked, [`get`](Self::get) may panic.
    pub fn parse_checked(bytes: &'a [u8]) -> Segment<'a> {
        let count = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        let table_end = 4 + 4 * count;
        Segment {
            ends: &bytes[4..table_end],
            body: &bytes[table_end..],
        }
    }

    fn end(&self, i: usize) -> usize {
        u32::from_le_bytes(self.ends[4 * i..4 * i + 4].try_into().expect("4 bytes")) as usize
    }

    pub fn len(&self) -> usize {
        self.ends.len() / 4
    }

    /// The encoded event at index `i` of the segment.
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.body[self.body_range(i)]
    }

    /// Where the entry at index `i` lies in the bytes the segment was
    /// parsed from (to keep a range instead of a borrow).
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        let table_end = 4 + self.ends.len();
        let r = self.body_range(i);
        r.start + table_end..r.end + table_end
    }

    fn body_range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        start..self.end(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_slice_back_out() {
        let mut w = SegmentWriter::new();
        for e in [&b"a"[..], b"", b"ccc"] {
            w.push(e);
        }
        let bytes = w.finish();
        let s = Segment::parse(&bytes).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s.get(0), s.get(1), s.get(2)),
            (&b"a"[..], &b""[..], &b"ccc"[..])
        );
        assert_eq!(&bytes[s.range(2)], b"ccc");
        assert_eq!(s.range(1), s.range(1).start..s.range(1).start);
        assert!(Segment::parse(&bytes[..bytes.len() - 1]).is_err());
        assert!(Segment::parse(&[9, 0, 0, 0]).is_err());
    }

    #[test]
    fn a_compressed_segment_reads_back_as_the_raw_one_and_a_raw_one_as_itself() {
        let mut w = SegmentWriter::new();
        for i in 0..500u32 {
            w.push(format!("event {i} of a batch, channel referral").as_bytes());
        }
        let raw = w.finish();
        let packed = stored(raw.clone(), Some(1));
        assert!(is_compressed(&packed) && packed.len() < raw.len() / 4);
        assert_eq!(&*layout(&packed).unwrap(), &raw[..]);
        // Stored as encoded, it is read as it is, without a copy.
        let plain = stored(raw.clone(), None);
        assert!(matches!(layout(&plain).unwrap(), Cow::Borrowed(b) if b == &raw[..]));
        // A damaged frame is an error, not a panic or a huge allocation.
        assert!(layout(&packed[..packed.len() / 2]).is_err());
        let mut huge = ZSTD_MAGIC.to_vec();
        huge.extend_from_slice(&[0xE0, 0, 0, 0, 0, 0, 0, 0, 0x80]);
        assert!(
            layout(&huge).unwrap_err().contains("claims"),
            "{:?}",
            layout(&huge).err()
        );
    }
}
