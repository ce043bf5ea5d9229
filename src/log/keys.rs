//! Key layout of the `log` tree. All keyspaces share one sled tree because
//! sled applies a batch atomically only within one tree: event segments, the
//! id index, lead records (state and timeline), rejections, counters and source
//! positions of one batch must land together or not at all.
//!
//! Numbers are big-endian so that byte order is numeric order; lead ids are
//! length-prefixed so that one lead's prefix is never a prefix of another's.

pub const EVENT: u8 = b'e'; // e + first seq      -> segment of protobuf LeadEvents
                            // b'i' and b's' held the id index and lead records in format 1; both are
                            // in memory now (see `index`).
pub const REJECTED: u8 = b'r'; // r + rseq        -> bincode StoredRejection
pub const LEAD_REJECTED: u8 = b'x'; // x + lead + rseq -> ()
pub const DEAD_LETTER: u8 = b'q'; // q + rseq    -> () while unpublished
pub const COMMAND: u8 = b'k'; // k + cseq      -> protobuf LeadCommand: formats 2 and 3 (read,
                              // no longer written)
pub const COMMAND_RUN: u8 = b'g'; // g + first cseq -> a segment of the commands of one write,
                                  // cseqs from the key's on (format 4; see `outbox::CommandRun`)
pub const OUTBOX: u8 = b'o'; // o + cseq        -> () while unpublished (written before
                             // `m commands_sent_below`; read at open, removed when sent)
pub const SENT_ABOVE: u8 = b'j'; // j + cseq  -> () acknowledged above the oldest pending command
pub const SHADOW: u8 = b'h'; // h + hseq       -> protobuf LeadCommand of the shadow policy
pub const COMMAND_ID: u8 = b'K'; // K + command_id -> cseq: written before the command-id
                                 // index moved to memory (2026-11-27); no longer written or read,
                                 // removed when that index is first built (`outbox::command_known`)
pub const POSITION: u8 = b'p'; // p + source      -> next offset
pub const COUNTER: u8 = b'c'; // c + reason code  -> count
pub const META: u8 = b'm'; // m + name            -> value
pub const POLICY_INPUT: u8 = b't'; // t + after_seq + n -> JSON policy::PolicyInput

/// `t + after_seq + n`: the n-th policy input recorded after event
/// `after_seq` (before event `after_seq + 1`).
pub fn input_key(after_seq: u64, n: u32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = POLICY_INPUT;
    k[1..9].copy_from_slice(&after_seq.to_be_bytes());
    k[9..].copy_from_slice(&n.to_be_bytes());
    k
}

/// The (after_seq, n) of an `input_key`.
pub fn parse_input_key(key: &[u8]) -> Option<(u64, u32)> {
    if key.len() != 13 || key[0] != POLICY_INPUT {
        return None;
    }
    let seq = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let n = u32::from_be_bytes(key[9..].try_into().ok()?);
    Some((seq, n))
}

pub fn seq_key(space: u8, seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = space;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub fn str_key(space: u8, s: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + s.len());
    k.push(space);
    k.extend_from_slice(s.as_bytes());
    k
}

/// `space + len(lead) + lead`: the prefix of one lead's entries.
pub fn lead_prefix(space: u8, lead_id: &str) -> Vec<u8> {
    let len = u16::try_from(lead_id.len()).expect("lead ids are bounded by the lifecycle");
    let mut k = Vec::with_capacity(3 + lead_id.len() + 8);
    k.push(space);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(lead_id.as_bytes());
    k
}

pub fn lead_seq_key(space: u8, lead_id: &str, seq: u64) -> Vec<u8> {
    let mut k = lead_prefix(space, lead_id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The trailing big-endian u64 of a key.
pub fn trailing_u64(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

pub fn u64_value(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}
