//! The journal's records: what each kind holds, and its bytes. A record is
//! the payload of a sealed frame; `journal.rs` seals and checks them.

use std::sync::Arc;

use chat_common::ProtocolError;
use chat_common::auth::Verified;
use chat_common::message::{ChatMsg, Fields, put_str, put_u64};

/// Record kinds. 0x4_, so a record can never be mistaken for a frame kind.
pub mod record_kind {
    /// The header: the key's fingerprint and the salt. First, and only first.
    pub const HEADER: u8 = 0x40;
    /// A user: nickname, verifier and bookkeeping.
    pub const USER: u8 = 0x41;
    /// A stored message: client id, then a MSG payload.
    pub const MESSAGE: u8 = 0x42;
    /// A user acknowledged everything up to an id.
    pub const ACK: u8 = 0x43;
    /// The next message id (written by compaction).
    pub const NEXT_ID: u8 = 0x44;
    /// A user logged in at a time.
    pub const SEEN: u8 = 0x45;
    /// The teacher banned or unbanned a nickname.
    pub const BAN: u8 = 0x46;
    /// A nickname was forgotten with its mail.
    pub const FORGET: u8 = 0x47;
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A registered user and what the exactly-once rules need about them.
    User { nick: String, verifier: [u8; 32], last_client_id: u64, acked_up_to: u64, dropped: u64 },
    /// A message, as the MSG payload its recipients get; `client_id` 0
    /// when written by compaction.
    Message { client_id: u64, payload: Arc<[u8]> },
    /// `nick` acknowledged every message up to `up_to`.
    Ack { nick: String, up_to: u64 },
    /// Ids below this are taken.
    NextId(u64),
    /// `nick` logged in at `at_ms` (Unix milliseconds).
    Seen { nick: String, at_ms: u64 },
    /// `nick` may (not `banned`) or may not log in.
    Ban { nick: String, banned: bool },
    /// `nick` is no longer registered; its mail is gone.
    Forget { nick: String },
}

impl Record {
    /// Appends the record's payload to `out`; returns its kind.
    pub(super) fn encode(&self, out: &mut Vec<u8>) -> u8 {
        match self {
            Record::User { nick, verifier, last_client_id, acked_up_to, dropped } => {
                put_str(out, nick);
                out.extend_from_slice(verifier);
                put_u64(out, *last_client_id);
                put_u64(out, *acked_up_to);
                put_u64(out, *dropped);
                record_kind::USER
            }
            Record::Message { client_id, payload } => {
                put_u64(out, *client_id);
                out.extend_from_slice(payload);
                record_kind::MESSAGE
            }
            Record::Ack { nick, up_to } => {
                put_str(out, nick);
                put_u64(out, *up_to);
                record_kind::ACK
            }
            Record::NextId(id) => {
                put_u64(out, *id);
                record_kind::NEXT_ID
            }
            Record::Seen { nick, at_ms } => {
                put_str(out, nick);
                put_u64(out, *at_ms);
                record_kind::SEEN
            }
            Record::Ban { nick, banned } => {
                put_str(out, nick);
                out.push(u8::from(*banned));
                record_kind::BAN
            }
            Record::Forget { nick } => {
                put_str(out, nick);
                record_kind::FORGET
            }
        }
    }

    /// Reads a record from a frame whose tag was checked.
    pub(super) fn decode(frame: &Verified<'_>) -> Result<Record, ProtocolError> {
        let mut fields = Fields::new(frame.payload());
        let record = match frame.kind() {
            record_kind::USER => Record::User {
                nick: fields.string("nick")?,
                verifier: fields.array("verifier")?,
                last_client_id: fields.u64("last_client_id")?,
                acked_up_to: fields.u64("acked_up_to")?,
                dropped: fields.u64("dropped")?,
            },
            record_kind::MESSAGE => {
                let client_id = fields.u64("client_id")?;
                let payload = fields.bytes(frame.payload().len() - 8, "message")?;
                // The payload must be a well-formed MSG.
                let mut msg = Fields::new(payload);
                ChatMsg::read(&mut msg)?;
                msg.finish()?;
                Record::Message { client_id, payload: payload.into() }
            }
            record_kind::ACK => Record::Ack { nick: fields.string("nick")?, up_to: fields.u64("up_to")? },
            record_kind::NEXT_ID => Record::NextId(fields.u64("next_id")?),
            record_kind::SEEN => Record::Seen { nick: fields.string("nick")?, at_ms: fields.u64("at_ms")? },
            record_kind::BAN => Record::Ban { nick: fields.string("nick")?, banned: fields.flag("banned")? },
            record_kind::FORGET => Record::Forget { nick: fields.string("nick")? },
            other => return Err(ProtocolError::UnknownKind(other)),
        };
        fields.finish()?;
        Ok(record)
    }
}

/// Reads back a MESSAGE record's payload, which [`Record::decode`] checked
/// when the record was replayed, so this cannot fail for stored messages.
pub fn chat_msg(payload: &[u8]) -> Option<ChatMsg> {
    ChatMsg::read(&mut Fields::new(payload)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_common::auth::{Opener, Sealer};
    use chat_common::message::ServerMsg;

    fn sealed(kind_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        Sealer::new(&[1; 32]).seal(kind_byte, payload, &mut frame);
        frame
    }

    #[test]
    fn every_record_round_trips() {
        let mut payload = Vec::new();
        ServerMsg::Msg(ChatMsg { id: 3, time_ms: 4, from: "a".into(), to: "".into(), text: "t".into() })
            .encode_payload(&mut payload);
        let records = [
            Record::User { nick: "a".into(), verifier: [1; 32], last_client_id: 2, acked_up_to: 3, dropped: 4 },
            Record::Message { client_id: 5, payload: payload.into() },
            Record::Ack { nick: "a".into(), up_to: 6 },
            Record::NextId(7),
            Record::Seen { nick: "a".into(), at_ms: 8 },
            Record::Ban { nick: "a".into(), banned: true },
            Record::Forget { nick: "a".into() },
        ];
        for record in records {
            let mut out = Vec::new();
            let frame = sealed(record.encode(&mut out), &out);
            assert_eq!(Record::decode(&Opener::new(&[1; 32]).open(&frame).unwrap()), Ok(record));
        }
    }

    #[test]
    fn a_message_record_must_hold_a_well_formed_msg() {
        let mut out = Vec::new();
        let frame = sealed(Record::Message { client_id: 1, payload: Arc::from(&b"junk"[..]) }.encode(&mut out), &out);
        assert!(Record::decode(&Opener::new(&[1; 32]).open(&frame).unwrap()).is_err());
    }
}
