//! A segment: the events of one appended batch stored under one key.
//!
//! sled's cost is per key, so one key per batch instead of one per event is
//! what makes appends cheap. Layout (little-endian):
//! `[count: u32][end offset of event i: u32; count][event bytes...]`, so any
//! one event can be sliced out without decoding the others.

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
        self.body.extend_from_slice(event);
        let end = u32::try_from(self.body.len()).expect("a segment stays below 4 GiB");
        self.ends.push(end);
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
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

    fn end(&self, i: usize) -> usize {
        u32::from_le_bytes(self.ends[4 * i..4 * i + 4].try_into().expect("4 bytes")) as usize
    }

    pub fn len(&self) -> usize {
        self.ends.len() / 4
    }

    /// The encoded event at index `i` of the segment.
    pub fn get(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        &self.body[start..self.end(i)]
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
        assert!(Segment::parse(&bytes[..bytes.len() - 1]).is_err());
        assert!(Segment::parse(&[9, 0, 0, 0]).is_err());
    }
}
