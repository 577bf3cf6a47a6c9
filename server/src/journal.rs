//! Durability: an append-only file of records in the data directory, so
//! that SENT means "on disk". This file knows records and files only, not
//! the chat: [`Journal::open`] replays the records into a callback,
//! [`Journal::append`] writes and syncs a batch, [`Journal::rewrite`]
//! replaces the file with a shorter list (compaction). When to do which is
//! decided by `shared.rs`.
//!
//! Each record is a sealed frame (`len | seq | kind | payload | tag`, as on
//! the wire) under a key derived from the shared key with its own label.
//! The tag detects a record changed at rest, the sequence number a record
//! removed or moved, and a torn last record (a crash mid-write) fails one
//! or the other.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chat_common::ProtocolError;
use chat_common::auth::{Opener, Sealer, Verified};
use chat_common::frame::{LEN_PREFIX, frame_len};
use chat_common::message::{ChatMsg, Fields, put_str, put_u64};

/// The journal's file name inside the data directory.
pub const FILE_NAME: &str = "journal";
/// Compaction is considered once the file has grown this many times past
/// its size after the last one (and past `--compact-bytes`).
pub const COMPACT_GROWTH: u64 = 4;
/// Largest record accepted on replay (a MESSAGE with a 64 KiB text fits).
const MAX_RECORD_LEN: usize = 1 << 20;

/// Record kinds. 0x4_, so a record can never be mistaken for a frame kind.
pub mod record_kind {
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
    fn encode(&self, out: &mut Vec<u8>) -> u8 {
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

    fn decode(frame: &Verified<'_>) -> Result<Record, ProtocolError> {
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

/// The journal file, open for appending.
pub struct Journal {
    dir: PathBuf,
    file: File,
    key: [u8; 32],
    /// Seals the next record with the next sequence number.
    sealer: Sealer,
    /// Bytes in the file.
    bytes: u64,
    /// Size at which compaction is next considered.
    compact_at: u64,
    /// `--compact-bytes`: never compact below this size.
    compact_min: u64,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, passes every
    /// record to `replay` in order, and cuts off a torn tail.
    pub fn open(
        dir: &Path,
        key: [u8; 32],
        compact_min: u64,
        mut replay: impl FnMut(Record),
    ) -> Result<(Journal, Restored), JournalError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |err| JournalError::Io(path, err)
        };
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error(dir))?;
        let path = dir.join(FILE_NAME);
        let file = open_private(&path, false).map_err(io_error(&path))?;
        let bytes = fs::read(&path).map_err(io_error(&path))?;

        let mut opener = Opener::new(&key);
        let mut restored = Restored::default();
        let mut offset = 0;
        while offset < bytes.len() {
            match check_record(&mut opener, &bytes[offset..]) {
                Ok((record, len)) => {
                    replay(record);
                    restored.records += 1;
                    offset += len;
                }
                Err(reason) if valid_record_after(&key, &bytes, offset) => {
                    return Err(JournalError::Damaged {
                        path,
                        record: restored.records,
                        offset: offset as u64,
                        reason,
                    });
                }
                Err(_) => {
                    restored.cut_bytes = (bytes.len() - offset) as u64;
                    file.set_len(offset as u64).and_then(|()| file.sync_all()).map_err(io_error(&path))?;
                    break;
                }
            }
        }
        let size = offset as u64;
        let journal = Journal {
            dir: dir.to_path_buf(),
            file,
            key,
            sealer: Sealer::starting_at(&key, restored.records),
            bytes: size,
            compact_at: (size * COMPACT_GROWTH).max(compact_min),
            compact_min,
        };
        Ok((journal, restored))
    }

    /// Appends `records` with one write and one `sync_data`.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let bytes = seal_all(&mut self.sealer, records);
        (&self.file).write_all(&bytes)?;
        self.file.sync_data()?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Whether the file has grown enough to be worth rewriting.
    pub fn wants_compaction(&self) -> bool {
        self.bytes >= self.compact_at
    }

    /// Replaces the file with `records` (the live state, for compaction):
    /// written to a new file, synced, then renamed over the old one, so a
    /// crash at any moment leaves one whole journal or the other.
    pub fn rewrite(&mut self, records: &[Record]) -> io::Result<()> {
        let mut sealer = Sealer::new(&self.key);
        let bytes = seal_all(&mut sealer, records);
        let (path, temp) = (self.dir.join(FILE_NAME), self.dir.join(format!("{FILE_NAME}.new")));
        let mut file = open_private(&temp, true)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&temp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        self.file = open_private(&path, false)?;
        self.sealer = sealer;
        self.bytes = bytes.len() as u64;
        self.compact_at = (self.bytes * COMPACT_GROWTH).max(self.compact_min);
        Ok(())
    }
}

fn seal_all(sealer: &mut Sealer, records: &[Record]) -> Vec<u8> {
    let (mut bytes, mut scratch) = (Vec::new(), Vec::new());
    for record in records {
        scratch.clear();
        let kind_byte = record.encode(&mut scratch);
        sealer.seal(kind_byte, &scratch, &mut bytes);
    }
    bytes
}

/// Opens a file for appending, mode 0600; `truncate` starts it empty.
fn open_private(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new().create(true).append(!truncate).write(true).truncate(truncate).mode(0o600).open(path)
}

/// What replay found, for the start-up log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Records replayed.
    pub records: u64,
    /// Bytes of torn or garbled tail cut off the end.
    pub cut_bytes: u64,
}

/// Why the journal cannot be used; the server refuses to start.
#[derive(Debug)]
pub enum JournalError {
    /// The directory or file could not be created, read or written.
    Io(PathBuf, io::Error),
    /// A damaged record with valid records after it: not a torn tail.
    Damaged { path: PathBuf, record: u64, offset: u64, reason: String },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io(path, err) => write!(f, "{}: {err}", path.display()),
            JournalError::Damaged { path, record, offset, reason } => write!(
                f,
                "{}: record {record} at byte {offset} is damaged ({reason}) and valid records follow it, \
                 so this is not a torn write: the file was changed or the disk is failing. \
                 Restore it from a backup, or move it away to start with no users and no mail",
                path.display()
            ),
        }
    }
}

/// The record at the start of `bytes` and its length, or why it is not one.
fn check_record(opener: &mut Opener, bytes: &[u8]) -> Result<(Record, usize), String> {
    let len = match frame_len(bytes, MAX_RECORD_LEN) {
        Ok(Some(len)) => len,
        Ok(None) => return Err("cut short".into()),
        Err(err) => return Err(err.to_string()),
    };
    // SECURITY: a journal record's tag is checked before any of its fields is used.
    let frame = opener.open(&bytes[..len]).map_err(|err| err.to_string())?;
    let record = Record::decode(&frame).map_err(|err| err.to_string())?;
    Ok((record, len))
}

/// Whether a record with a valid tag starts anywhere after `from`.
fn valid_record_after(key: &[u8; 32], bytes: &[u8], from: usize) -> bool {
    let opener = Opener::new(key);
    (from + 1..bytes.len().saturating_sub(LEN_PREFIX)).any(|start| match frame_len(&bytes[start..], MAX_RECORD_LEN) {
        Ok(Some(len)) => opener.verify(&bytes[start..start + len]).is_ok(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
