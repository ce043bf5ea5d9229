//! Event files: JSONL (one proto3-JSON `LeadEvent` per line) or
//! length-delimited protobuf (a varint length before each message, as
//! written by `prost::Message::encode_length_delimited`).
//!
//! A reader yields one item per record: the decoded event or, for a record
//! that cannot be decoded, the typed rejection together with its raw bytes,
//! so that the caller can keep it in the log. I/O errors are errors of the
//! file; a record cut short by the end of the file is one `undecodable`
//! record and ends the reading (see [`EventReader::truncated_at`]).

use super::{decode_event, encode_event, event_from_json, event_to_json};
use crate::domain::{LeadEvent, Rejection};
use std::io::{self, BufRead, Write};
use std::path::Path;

/// Largest single record accepted by default, in bytes (1 MiB, Kafka's
/// default `message.max.bytes`); `log.record_bytes_max` in the config.
pub const RECORD_BYTES_MAX_DEFAULT: usize = 1024 * 1024;

/// How much of a record that is rejected for its size (or cut short) is
/// kept with the rejection: enough to recognise it, never the whole thing.
pub const REJECTED_PREFIX_BYTES: usize = 4096;

/// Bytes skipped per step over an oversize record (memory stays flat).
const SKIP_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One proto3-JSON `LeadEvent` per line.
    Jsonl,
    /// Length-delimited protobuf `LeadEvent`s.
    Protobuf,
}

impl Format {
    /// Guesses the format from a file name: `.pb`, `.bin` and `.ldpb` are
    /// protobuf, anything else JSONL.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("pb" | "bin" | "ldpb") => Format::Protobuf,
            _ => Format::Jsonl,
        }
    }
}

/// One record of an event file.
pub type Record = Result<LeadEvent, (Rejection, Vec<u8>)>;

/// Reads records from an event file.
///
/// Every record comes out as an event or as a rejection with (a bounded
/// prefix of) its bytes; nothing is skipped silently and memory stays
/// bounded by `record_bytes_max` whatever the input:
/// - a record above `record_bytes_max` is `record_too_large`, read past in
///   chunks, with its first [`REJECTED_PREFIX_BYTES`] kept;
/// - a protobuf file that ends inside a record (a cut tail, or random
///   bytes read as a length) yields one `undecodable` record naming the
///   byte offset where the broken record starts, then ends;
///   [`truncated_at`](Self::truncated_at) reports that offset so that the
///   caller can fail loudly after appending everything before it.
pub struct EventReader<R> {
    input: R,
    format: Format,
    buf: Vec<u8>,
    record_bytes_max: usize,
    /// Bytes consumed so far: the byte offset of the next record.
    pos: u64,
    truncated_at: Option<u64>,
}

impl<R: BufRead> EventReader<R> {
    pub fn new(input: R, format: Format) -> Self {
        EventReader {
            input,
            format,
            buf: Vec::new(),
            record_bytes_max: RECORD_BYTES_MAX_DEFAULT,
            pos: 0,
            truncated_at: None,
        }
    }

    /// Sets the largest record accepted, in bytes.
    pub fn with_record_bytes_max(mut self, record_bytes_max: usize) -> Self {
        assert!(record_bytes_max > 0, "a record limit of 0 reads nothing");
        self.record_bytes_max = record_bytes_max;
        self
    }

    /// The underlying input.
    pub fn inner(&self) -> &R {
        &self.input
    }

    /// The byte offset of the next record.
    pub fn byte_offset(&self) -> u64 {
        self.pos
    }

    /// Where the file ended inside a record: the byte offset at which that
    /// broken record starts (it was yielded as one `undecodable` record).
    pub fn truncated_at(&self) -> Option<u64> {
        self.truncated_at
    }

    /// The next record, `Ok(None)` at the end of the file.
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        if self.truncated_at.is_some() {
            return Ok(None);
        }
        match self.format {
            Format::Jsonl => self.next_line(),
            Format::Protobuf => self.next_delimited(),
        }
    }

    fn next_line(&mut self) -> io::Result<Option<Record>> {
        loop {
            let start = self.pos;
            let Some(total) = self.read_line()? else {
                return Ok(None);
            };
            if total > self.buf.len() {
                // Only a prefix was kept: the line is longer than the limit.
                return Ok(Some(Err(self.too_large(start, total))));
            }
            let line = trim_line(&self.buf);
            if line.is_empty() {
                continue;
            }
            if line.len() > self.record_bytes_max {
                let len = line.len();
                return Ok(Some(Err(self.too_large(start, len))));
            }
            return Ok(Some(match std::str::from_utf8(line) {
                Ok(text) => event_from_json(text).map_err(|r| (r, line.to_vec())),
                Err(e) => Err((
                    Rejection::Undecodable {
                        detail: format!("line at byte {start} is not UTF-8: {e}"),
                    },
                    line.to_vec(),
                )),
            }));
        }
    }

    /// Reads one line (through its newline) into `buf`, keeping at most
    /// `record_bytes_max + 2` bytes of it; returns the line's full length,
    /// `None` at the end of the input.
    fn read_line(&mut self) -> io::Result<Option<usize>> {
        self.buf.clear();
        let keep_max = self.record_bytes_max + 2;
        let mut total = 0usize;
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                return Ok((total > 0).then_some(total));
            }
            let (take, done) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            let room = keep_max.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&available[..take.min(room)]);
            self.input.consume(take);
            self.pos += take as u64;
            total += take;
            if done {
                return Ok(Some(total));
            }
        }
    }

    fn next_delimited(&mut self) -> io::Result<Option<Record>> {
        let start = self.pos;
        let len = match self.read_varint()? {
            Varint::End => return Ok(None),
            Varint::Value(len) => len,
            Varint::Cut => return Ok(Some(Err(self.cut(start, "inside a length prefix")))),
            Varint::TooLong => {
                return Ok(Some(Err(
                    self.cut(start, "in a length prefix longer than 10 bytes")
                )))
            }
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.record_bytes_max {
            // Read past it in chunks, keeping a prefix: a real oversize
            // record is rejected for its size, a length that runs past the
            // end of the file is a broken tail.
            self.buf.clear();
            let mut left = len;
            while left > 0 {
                let available = self.input.fill_buf()?;
                if available.is_empty() {
                    let detail = format!("inside a record of {len} bytes (a length above record_bytes_max that runs past the end: not length-delimited protobuf?)");
                    return Ok(Some(Err(self.cut(start, &detail))));
                }
                let take = available.len().min(left).min(SKIP_CHUNK_BYTES);
                let room = REJECTED_PREFIX_BYTES.saturating_sub(self.buf.len());
                self.buf.extend_from_slice(&available[..take.min(room)]);
                self.input.consume(take);
                self.pos += take as u64;
                left -= take;
            }
            return Ok(Some(Err(self.too_large(start, len))));
        }
        self.buf.clear();
        while self.buf.len() < len {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                let detail = format!("inside a record of {len} bytes ({} read)", self.buf.len());
                return Ok(Some(Err(self.cut(start, &detail))));
            }
            let take = available.len().min(len - self.buf.len());
            self.buf.extend_from_slice(&available[..take]);
            self.input.consume(take);
            self.pos += take as u64;
        }
        Ok(Some(
            decode_event(&self.buf).map_err(|r| (r, self.buf.clone())),
        ))
    }

    /// The rejection of a record above the limit, with its prefix.
    fn too_large(&mut self, start: u64, bytes: usize) -> (Rejection, Vec<u8>) {
        self.buf.truncate(REJECTED_PREFIX_BYTES);
        (
            Rejection::RecordTooLarge {
                bytes: bytes as u64,
                max: self.record_bytes_max as u64,
                byte_offset: Some(start),
            },
            std::mem::take(&mut self.buf),
        )
    }

    /// The file ends inside the record that starts at `start`: one
    /// undecodable record, and the end of the reading.
    fn cut(&mut self, start: u64, detail: &str) -> (Rejection, Vec<u8>) {
        self.truncated_at = Some(start);
        self.buf.truncate(REJECTED_PREFIX_BYTES);
        (
            Rejection::Undecodable {
                detail: format!("the file ends {detail} at byte {start}"),
            },
            std::mem::take(&mut self.buf),
        )
    }

    /// Reads a protobuf varint, keeping its bytes in `buf`.
    fn read_varint(&mut self) -> io::Result<Varint> {
        self.buf.clear();
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = match self.input.fill_buf()?.first() {
                Some(b) => *b,
                None if i == 0 => return Ok(Varint::End),
                None => return Ok(Varint::Cut),
            };
            self.input.consume(1);
            self.pos += 1;
            self.buf.push(byte);
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(Varint::Value(value));
            }
        }
        Ok(Varint::TooLong)
    }
}

enum Varint {
    End,
    Value(u64),
    Cut,
    TooLong,
}

fn trim_line(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && (b[end - 1] == b'\n' || b[end - 1] == b'\r') {
        end -= 1;
    }
    &b[..end]
}

/// Writes events in either format.
pub struct EventWriter<W> {
    out: W,
    format: Format,
}

impl<W: Write> EventWriter<W> {
    pub fn new(out: W, format: Format) -> Self {
        EventWriter { out, format }
    }

    pub fn write(&mut self, event: &LeadEvent) -> io::Result<()> {
        match self.format {
            Format::Jsonl => {
                self.out.write_all(event_to_json(event).as_bytes())?;
                self.out.write_all(b"\n")
            }
            Format::Protobuf => self.write_raw(&encode_event(event)),
        }
    }

    /// Writes a raw record as is (for deliberately bad input in tests and the
    /// simulator): a line in JSONL, a length-prefixed blob in protobuf.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.format {
            Format::Jsonl => {
                self.out.write_all(bytes)?;
                self.out.write_all(b"\n")
            }
            Format::Protobuf => {
                let mut len = Vec::with_capacity(10);
                prost::encoding::encode_varint(bytes.len() as u64, &mut len);
                self.out.write_all(&len)?;
                self.out.write_all(bytes)
            }
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;

    fn event(i: i64) -> LeadEvent {
        LeadEvent {
            event_id: format!("e{i}"),
            lead_id: "l".into(),
            occurred_at_ms: i,
            producer: String::new(),
            tenant_id: String::new(),
            body: EventBody::Scored(LeadScored {
                score: 1,
                attribute_score: 0,
                behaviour_score: 0,
                predictive_score: 0,
                model_version: String::new(),
            }),
        }
    }

    #[test]
    fn both_formats_round_trip_and_keep_bad_records() {
        for format in [Format::Jsonl, Format::Protobuf] {
            let mut w = EventWriter::new(Vec::new(), format);
            w.write(&event(1)).unwrap();
            w.write_raw(b"\xff\xfe garbage").unwrap();
            w.write(&event(2)).unwrap();
            let bytes = w.into_inner();
            let mut r = EventReader::new(&bytes[..], format);
            assert_eq!(r.next_record().unwrap().unwrap().unwrap(), event(1));
            let (why, raw) = r.next_record().unwrap().unwrap().unwrap_err();
            assert_eq!(why.code(), "undecodable", "{format:?}");
            assert_eq!(raw, b"\xff\xfe garbage");
            assert_eq!(r.next_record().unwrap().unwrap().unwrap(), event(2));
            assert!(r.next_record().unwrap().is_none());
        }
    }

    #[test]
    fn a_protobuf_file_cut_short_yields_its_whole_records_then_one_undecodable() {
        let mut w = EventWriter::new(Vec::new(), Format::Protobuf);
        w.write(&event(1)).unwrap();
        w.write(&event(2)).unwrap();
        let bytes = w.into_inner();
        let second_at = (bytes.len() / 2) as u64;
        for cut in [1, 7] {
            let mut r = EventReader::new(&bytes[..bytes.len() - cut], Format::Protobuf);
            assert_eq!(r.next_record().unwrap().unwrap().unwrap(), event(1));
            let (why, _) = r.next_record().unwrap().unwrap().unwrap_err();
            assert_eq!(why.code(), "undecodable");
            assert!(
                why.to_string().contains(&format!("at byte {second_at}")),
                "{why}"
            );
            assert_eq!(r.truncated_at(), Some(second_at));
            assert!(r.next_record().unwrap().is_none());
        }
    }

    #[test]
    fn random_bytes_read_as_a_huge_length_are_a_broken_tail_not_an_allocation() {
        // A varint of ~2^62 followed by a few bytes: no 4 EiB buffer, one
        // undecodable record at byte 0.
        let mut bytes = vec![0xff; 8];
        bytes.push(0x3f);
        bytes.extend_from_slice(b"junk");
        let mut r = EventReader::new(&bytes[..], Format::Protobuf);
        let (why, raw) = r.next_record().unwrap().unwrap().unwrap_err();
        assert_eq!(why.code(), "undecodable");
        assert!(raw.len() <= REJECTED_PREFIX_BYTES);
        assert_eq!(r.truncated_at(), Some(0));
    }

    #[test]
    fn records_above_the_limit_are_rejected_with_a_prefix_and_reading_goes_on() {
        for format in [Format::Jsonl, Format::Protobuf] {
            let mut w = EventWriter::new(Vec::new(), format);
            w.write(&event(1)).unwrap();
            let big = vec![b'x'; 100_000];
            w.write_raw(&big).unwrap();
            w.write(&event(2)).unwrap();
            let bytes = w.into_inner();
            let mut r = EventReader::new(&bytes[..], format).with_record_bytes_max(10_000);
            assert_eq!(r.next_record().unwrap().unwrap().unwrap(), event(1));
            let (why, raw) = r.next_record().unwrap().unwrap().unwrap_err();
            assert_eq!(why.code(), "record_too_large", "{format:?}");
            assert!(
                why.to_string().contains("above the limit of 10000"),
                "{why}"
            );
            assert_eq!(raw.len(), REJECTED_PREFIX_BYTES, "{format:?}");
            assert_eq!(r.next_record().unwrap().unwrap().unwrap(), event(2));
            assert!(r.next_record().unwrap().is_none());
            assert_eq!(r.truncated_at(), None);
            assert_eq!(r.byte_offset(), bytes.len() as u64);
        }
    }
}
