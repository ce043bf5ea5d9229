//! What a dispatcher needs of a stored command to publish it — its key and
//! its headers — read without decoding the rest: the explanation and the
//! facts are most of a command's bytes and all of its decoding's
//! allocations, and the dispatcher sends the stored bytes as they are.

use super::Rejection;
use prost::Message;

/// A command's key and headers (see `bus::outbox::headers`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandHeader {
    pub command_id: String,
    pub lead_id: String,
    pub causation_event_id: String,
    pub rule_id: String,
    /// As `CommandBody::type_name`.
    pub type_name: &'static str,
}

/// The fields of a `LeadCommand` the header needs, and its body's field
/// kept as bytes (never decoded): prost skips every field this leaves out.
#[derive(Clone, PartialEq, Message)]
struct Envelope {
    #[prost(string, tag = "1")]
    command_id: String,
    #[prost(string, tag = "2")]
    lead_id: String,
    #[prost(string, tag = "4")]
    causation_event_id: String,
    #[prost(string, tag = "5")]
    rule_id: String,
    #[prost(bytes = "vec", optional, tag = "10")]
    assign: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "11")]
    recall: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "12")]
    remind: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "13")]
    cancel: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "14")]
    decline_claim: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "15")]
    r#move: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "16")]
    update_score: Option<Vec<u8>>,
}

/// The header of a protobuf-encoded `LeadCommand` (the field numbers of
/// `proto/leadflow/v1/commands.proto`; a test holds them to the generated
/// decoder's).
pub fn decode_command_header(bytes: &[u8]) -> Result<CommandHeader, Rejection> {
    let e = Envelope::decode(bytes).map_err(|e| Rejection::Undecodable {
        detail: format!("protobuf: {e}"),
    })?;
    let type_name = [
        (e.assign.is_some(), "assign_lead"),
        (e.recall.is_some(), "recall_lead"),
        (e.remind.is_some(), "remind_follow_up"),
        (e.cancel.is_some(), "cancel_command"),
        (e.decline_claim.is_some(), "decline_claim"),
        (e.r#move.is_some(), "move_lead"),
        (e.update_score.is_some(), "update_score"),
    ]
    .into_iter()
    .find_map(|(present, name)| present.then_some(name))
    .ok_or(Rejection::UnknownEventType)?;
    Ok(CommandHeader {
        command_id: e.command_id,
        lead_id: e.lead_id,
        causation_event_id: e.causation_event_id,
        rule_id: e.rule_id,
        type_name,
    })
}
