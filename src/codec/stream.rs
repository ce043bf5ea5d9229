//! Event files: JSONL (one proto3-JSON `LeadEvent` per line) or
//! length-delimited protobuf (a varint length before each message, as
//! written by `prost::Message::encode_length_delimited`).
//!
//! A reader yields one item per record: the decoded event or, for a record
//! that cannot be decoded, the typed rejection together with its raw bytes,
//! so that the caller can keep it in the log. I/O errors and a truncated
//! final record are errors of the file, not of a record.

use super::{decode_event, encode_event, event_from_json, event_to_json};
use crate::domain::{LeadEvent, Rejection};
use std::io::{self, BufRead, Write};
use std::path::Path;

/// Largest single record accepted, in bytes. A length prefix above it means
/// the file is not what it claims to be.
pub const RECORD_BYTES_MAX: usize = 4 * 1024 * 1024;

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
pub struct EventReader<R> {
    input: R,
    format: Format,
    buf: Vec<u8>,
}

impl<R: BufRead> EventReader<R> {
    pub fn new(input: R, format: Format) -> Self {
        EventReader {
            input,
            format,
            buf: Vec::new(),
        }
    }

    /// The underlying input.
    pub fn inner(&self) -> &R {
        &self.input
    }

    /// The next record, `Ok(None)` at the end of the file.
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        match self.format {
            Format::Jsonl => loop {
                self.buf.clear();
                if self.input.read_until(b'\n', &mut self.buf)? == 0 {
                    return Ok(None);
                }
                let line = trim_line(&self.buf);
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(match std::str::from_utf8(line) {
                    Ok(text) => event_from_json(text).map_err(|r| (r, line.to_vec())),
                    Err(e) => Err((
                        Rejection::Undecodable {
                            detail: format!("line is not UTF-8: {e}"),
                        },
                        line.to_vec(),
                    )),
                }));
            },
            Format::Protobuf => {
                let Some(len) = read_varint(&mut self.input)? else {
                    return Ok(None);
                };
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > RECORD_BYTES_MAX {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("record of {len} bytes exceeds {RECORD_BYTES_MAX}: not a length-delimited protobuf file?"),
                    ));
                }
                self.buf.resize(len, 0);
                self.input.read_exact(&mut self.buf)?;
                Ok(Some(
                    decode_event(&self.buf).map_err(|r| (r, self.buf.clone())),
                ))
            }
        }
    }
}

fn trim_line(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && (b[end - 1] == b'\n' || b[end - 1] == b'\r') {
        end -= 1;
    }
    &b[..end]
}

/// Reads a protobuf varint; `None` at a clean end of file.
fn read_varint<R: BufRead>(input: &mut R) -> io::Result<Option<u64>> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let mut byte = [0u8];
        if input.read(&mut byte)? == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ends inside a length prefix",
            ));
        }
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "length prefix longer than 10 bytes",
    ))
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
    fn a_truncated_protobuf_file_is_an_error() {
        let mut w = EventWriter::new(Vec::new(), Format::Protobuf);
        w.write(&event(1)).unwrap();
        let bytes = w.into_inner();
        let mut r = EventReader::new(&bytes[..bytes.len() - 1], Format::Protobuf);
        assert!(r.next_record().is_err());
    }
}
