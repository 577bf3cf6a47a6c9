//! Durability: an append-only journal in the data directory, so that SENT
//! means "on disk".
//!
//! Each record is a sealed frame (`len | seq | kind | payload | tag`, as on
//! the wire) under a key derived from the shared key with its own label.
//! The tag detects a record changed at rest, the sequence number a record
//! removed or moved, and a torn last record (a crash mid-write) fails one
//! or the other. Replaying the records in order through the same [`State`]
//! methods that made them rebuilds users, mailboxes and the exactly-once
//! bookkeeping; a message's recipients follow from who was registered
//! when its record was written.
//!
//! The work is split so that no lock is held during disk I/O:
//! [`Journal`] (inside the state, under its lock) seals records into a
//! memory buffer; [`Disk`] (its own small lock) lets one thread at a time
//! write and `sync_data` everything buffered so far, while the others wait
//! for it — group commit.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use chat_common::ProtocolError;
use chat_common::auth::{Opener, Sealer, Verified};
use chat_common::frame::{LEN_PREFIX, frame_len};
use chat_common::message::{ChatMsg, Fields, put_str, put_u64};

use crate::state::State;

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
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A registered user and what the exactly-once rules need about them.
    User { nick: String, verifier: [u8; 32], last_client_id: u64, acked_up_to: u64, dropped: u64 },
    /// A message; `client_id` 0 when written by compaction.
    Message { client_id: u64, payload: Arc<[u8]> },
    /// `nick` acknowledged every message up to `up_to`.
    Ack { nick: String, up_to: u64 },
    /// Ids below this are taken.
    NextId(u64),
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
        }
    }

    fn decode(frame: &Verified<'_>) -> Result<Record, ProtocolError> {
        let payload = frame.payload();
        let mut fields = Fields::new(payload);
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
                let rest = fields.bytes(payload.len() - 8, "message")?;
                // The payload must be a well-formed MSG.
                let mut msg = Fields::new(rest);
                ChatMsg::read(&mut msg)?;
                msg.finish()?;
                Record::Message { client_id, payload: rest.into() }
            }
            record_kind::ACK => Record::Ack { nick: fields.string("nick")?, up_to: fields.u64("up_to")? },
            record_kind::NEXT_ID => Record::NextId(fields.u64("next_id")?),
            other => return Err(ProtocolError::UnknownKind(other)),
        };
        fields.finish()?;
        Ok(record)
    }
}

/// Decodes a MESSAGE record's payload (checked at replay, so it cannot fail
/// for records that made it into the state).
pub fn chat_msg(payload: &[u8]) -> Option<ChatMsg> {
    ChatMsg::read(&mut Fields::new(payload)).ok()
}

/// The in-memory half, kept inside [`State`] under the state lock.
pub struct Journal {
    key: [u8; 32],
    sealer: Sealer,
    /// Sealed records not yet handed to the disk.
    pending: Vec<u8>,
    /// Records appended since start: the ticket of the latest one.
    appended: u64,
    /// Bytes in the file plus bytes pending.
    bytes: u64,
    /// Size at which compaction is next considered.
    compact_at: u64,
    /// `--compact-bytes`: never compact below this size.
    compact_min: u64,
    scratch: Vec<u8>,
}

impl Journal {
    /// Seals `record` into the pending buffer; returns its ticket, which
    /// [`Disk::commit`] takes to wait until the record is on disk.
    pub fn append(&mut self, record: &Record) -> u64 {
        self.scratch.clear();
        let kind_byte = record.encode(&mut self.scratch);
        let before = self.pending.len();
        self.sealer.seal(kind_byte, &self.scratch, &mut self.pending);
        self.bytes += (self.pending.len() - before) as u64;
        self.appended += 1;
        self.appended
    }

    /// The ticket of the latest record.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Takes the pending bytes and the ticket they bring the disk up to.
    pub fn take_pending(&mut self) -> (Vec<u8>, u64) {
        (std::mem::take(&mut self.pending), self.appended)
    }

    /// Whether the file has grown enough to be worth rewriting.
    pub fn wants_compaction(&self) -> bool {
        self.bytes >= self.compact_at
    }

    fn after_rewrite(&mut self, sealer: Sealer, bytes: u64) {
        self.sealer = sealer;
        self.pending.clear();
        self.bytes = bytes;
        self.compact_at = (bytes * COMPACT_GROWTH).max(self.compact_min);
    }
}

struct DiskState {
    file: Arc<File>,
    /// Every ticket up to this one is on disk.
    durable: u64,
    /// A thread is writing; others wait on the condition variable.
    busy: bool,
}

/// The file half: one writer at a time, never while holding the state lock.
pub struct Disk {
    dir: PathBuf,
    inner: Mutex<DiskState>,
    done: Condvar,
}

impl Disk {
    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns once every record up to `ticket` is written and synced.
    /// `take` is called (without this lock) to collect what is pending;
    /// whoever calls it writes for everyone who is waiting.
    pub fn commit(&self, ticket: u64, take: impl FnOnce() -> (Vec<u8>, u64)) -> io::Result<()> {
        let mut take = Some(take);
        let mut inner = self.lock();
        loop {
            if inner.durable >= ticket {
                return Ok(());
            }
            if inner.busy {
                inner = self.done.wait(inner).unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            let Some(take) = take.take() else {
                // Our own write finished but did not reach `ticket`:
                // impossible, since take() returns everything appended.
                return Err(io::Error::other("journal ticket not reached"));
            };
            inner.busy = true;
            let file = inner.file.clone();
            drop(inner);
            let (bytes, up_to) = take();
            let written = (&*file).write_all(&bytes).and_then(|()| file.sync_data());
            inner = self.lock();
            inner.busy = false;
            if written.is_ok() {
                inner.durable = inner.durable.max(up_to);
            }
            self.done.notify_all();
            written?;
        }
    }

    /// Rewrites the journal as the state's live content (users, messages
    /// still in a mailbox) and renames it over the old one. Holds the state
    /// lock for the rewrite: a short pause, rare by [`COMPACT_GROWTH`].
    pub fn compact(&self, state: &Mutex<State>) -> io::Result<()> {
        let mut inner = self.lock();
        while inner.busy {
            inner = self.done.wait(inner).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        inner.busy = true;
        drop(inner);
        let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = self.rewrite(&mut state);
        let mut inner = self.lock();
        inner.busy = false;
        if let Ok(file) = &result {
            inner.file = file.clone();
            inner.durable = state.journal_ticket();
        }
        self.done.notify_all();
        drop(inner);
        let ticket = state.journal_ticket();
        state.publish(ticket);
        result.map(|_| ())
    }

    fn rewrite(&self, state: &mut State) -> io::Result<Arc<File>> {
        let Some(journal) = state.journal_mut() else { return Err(io::Error::other("no journal")) };
        let key = journal.key;
        let mut sealer = Sealer::new(&key);
        let mut bytes = Vec::new();
        let mut scratch = Vec::new();
        for record in state.snapshot() {
            scratch.clear();
            let kind_byte = record.encode(&mut scratch);
            sealer.seal(kind_byte, &scratch, &mut bytes);
        }
        let path = self.dir.join(FILE_NAME);
        let temp = self.dir.join(format!("{FILE_NAME}.new"));
        let mut file = create_private(&temp, true)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&temp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        let file = create_private(&path, false)?;
        if let Some(journal) = state.journal_mut() {
            journal.after_rewrite(sealer, bytes.len() as u64);
        }
        Ok(Arc::new(file))
    }
}

/// Opens a file for appending, mode 0600; `truncate` starts it empty.
fn create_private(path: &Path, truncate: bool) -> io::Result<File> {
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

/// Why one record at `offset` could not be replayed.
fn check_record(opener: &mut Opener, bytes: &[u8]) -> Result<(Record, usize), String> {
    let len = match frame_len(bytes, MAX_RECORD_LEN) {
        Ok(Some(len)) => len,
        Ok(None) => return Err("cut short".into()),
        Err(err) => return Err(err.to_string()),
    };
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

/// Opens (creating if needed) the journal in `dir`, replays it into
/// `state`, cuts off a torn tail, and returns the two halves.
pub fn open(
    dir: &Path,
    key: [u8; 32],
    compact_min: u64,
    state: &mut State,
) -> Result<(Journal, Disk, Restored), JournalError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |err| JournalError::Io(path, err)
    };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error(dir))?;
    let path = dir.join(FILE_NAME);
    let file = create_private(&path, false).map_err(io_error(&path))?;
    let bytes = fs::read(&path).map_err(io_error(&path))?;

    let mut opener = Opener::new(&key);
    let mut restored = Restored::default();
    let mut offset = 0;
    while offset < bytes.len() {
        match check_record(&mut opener, &bytes[offset..]) {
            Ok((record, len)) => {
                state.replay(record);
                restored.records += 1;
                offset += len;
            }
            Err(reason) if valid_record_after(&key, &bytes, offset) => {
                return Err(JournalError::Damaged { path, record: restored.records, offset: offset as u64, reason });
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
        key,
        sealer: Sealer::starting_at(&key, restored.records),
        pending: Vec::new(),
        appended: 0,
        bytes: size,
        compact_at: (size * COMPACT_GROWTH).max(compact_min),
        compact_min,
        scratch: Vec::new(),
    };
    let disk = Disk {
        dir: dir.to_path_buf(),
        inner: Mutex::new(DiskState { file: Arc::new(file), durable: 0, busy: false }),
        done: Condvar::new(),
    };
    Ok((journal, disk, restored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_common::message::ServerMsg;

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
        ];
        for record in records {
            let mut out = Vec::new();
            let kind_byte = record.encode(&mut out);
            let mut frame = Vec::new();
            Sealer::new(&[1; 32]).seal(kind_byte, &out, &mut frame);
            assert_eq!(Record::decode(&Opener::new(&[1; 32]).open(&frame).unwrap()), Ok(record));
        }
    }

    #[test]
    fn a_message_record_must_hold_a_well_formed_msg() {
        let mut out = Vec::new();
        let kind_byte = Record::Message { client_id: 1, payload: Arc::from(&b"junk"[..]) }.encode(&mut out);
        let mut frame = Vec::new();
        Sealer::new(&[1; 32]).seal(kind_byte, &out, &mut frame);
        assert!(Record::decode(&Opener::new(&[1; 32]).open(&frame).unwrap()).is_err());
    }
}
