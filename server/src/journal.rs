//! Durability: an append-only file of records in the data directory, so
//! that SENT means "on disk". This file knows records and files only, not
//! the chat: [`Journal::open`] locks the directory and replays the records
//! into a callback, [`Journal::append`] writes and syncs a batch,
//! [`Journal::rewrite`] replaces the file with a shorter list (compaction),
//! [`Journal::rekey`] moves it to a new key. When to do which is decided
//! by `shared.rs`.
//!
//! The file starts with a header: the fingerprint of the shared key that
//! wrote it, so a start with another key is refused instead of taking the
//! records for damage, and a random salt. Each record after it is a sealed
//! frame (`len | seq | kind | payload | tag`, as on the wire) under a key
//! derived from the shared key and that salt. The tag detects a record
//! changed at rest, the sequence number a record removed or moved, and
//! only the server knows the salt: a student holds the shared key, but
//! cannot make bytes (a text, a verifier) that pass for a record.
//!
//! On start, only a torn tail is cut: a last record the file ends inside
//! (a crash mid-write; never acknowledged). A whole record that fails its
//! check is damage, and the start is refused unless `--repair` asks to cut
//! it, which first keeps a copy of the file.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chat_common::auth::{Key, Opener, Sealer, hkdf_extract, journal_key};
use chat_common::frame::{LEN_PREFIX, frame_len};
use chat_common::log::unix_ms;
use chat_common::message::{Fields, put_str};
use chat_common::random::random_bytes;

/// The journal's file name inside the data directory.
pub const FILE_NAME: &str = "journal";
/// The lock file: locked while a server uses the directory, and holding
/// its port, so that a second server can say which one is running.
pub const LOCK_NAME: &str = "lock";
/// Compaction is considered once the file has grown this many times past
/// its size after the last one (and past `--compact-bytes`).
pub const COMPACT_GROWTH: u64 = 4;
/// Largest record accepted on replay (a MESSAGE with a 64 KiB text fits).
const MAX_RECORD_LEN: usize = 1 << 20;

mod record;

pub use record::{Record, chat_msg, record_kind};

/// The keys of one journal file.
struct Keys {
    /// Tags the header: derived from the shared key alone.
    header: [u8; 32],
    /// Tags every record: derived from the shared key and the salt.
    record: [u8; 32],
    /// The shared key's fingerprint, written in the header.
    fingerprint: String,
    /// Random, kept in the header; a new one for each new file.
    salt: [u8; 32],
}

impl Keys {
    fn new(key: &Key, salt: [u8; 32]) -> Keys {
        let header = journal_key(key);
        // SECURITY: records are tagged under a key that mixes in the header's salt, which only the server reads.
        let record = hkdf_extract(&salt, &header);
        Keys { header, record, fingerprint: key.fingerprint(), salt }
    }

    fn fresh(key: &Key) -> io::Result<Keys> {
        Ok(Keys::new(key, random_bytes()?))
    }
}

/// The journal file, open for appending, and its directory, locked.
pub struct Journal {
    dir: PathBuf,
    /// The directory, opened once, to sync a rename without needing a new
    /// descriptor when there may be none to spare.
    dir_file: File,
    /// Locked for as long as the journal is open: one server per directory.
    lock: File,
    file: File,
    keys: Keys,
    /// Seals the next record with the next sequence number.
    sealer: Sealer,
    /// Records sealed but not yet written, because a write failed (a full
    /// disk): the next append writes them first, in order.
    unwritten: Vec<u8>,
    /// A rewrite renamed a new file into place, and the directory has not
    /// been synced since: nothing more is written until it is.
    dir_unsynced: bool,
    /// Bytes in the file.
    bytes: u64,
    /// Size at which compaction is next considered.
    compact_at: u64,
    /// `--compact-bytes`: never compact below this size.
    compact_min: u64,
}

impl Journal {
    /// Locks `dir` (creating it if needed), opens its journal (creating a
    /// new one, under `key`, if there is none), passes every record to
    /// `replay` in order, and cuts off a torn tail. A damaged record stops
    /// here, unless `repair` asks to cut it after keeping a copy.
    pub fn open(
        dir: &Path,
        key: &Key,
        compact_min: u64,
        repair: bool,
        mut replay: impl FnMut(Record),
    ) -> Result<(Journal, Restored), JournalError> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error(dir))?;
        let lock = lock_dir(dir)?;
        let dir_file = File::open(dir).map_err(io_error(dir))?;
        let path = dir.join(FILE_NAME);
        let file = open_private(&path).map_err(io_error(&path))?;
        let bytes = fs::read(&path).map_err(io_error(&path))?;

        let mut restored = Restored::default();
        let (mut keys, mut offset, mut damage) = (None, 0, None);
        if !bytes.is_empty() {
            // SECURITY: the header's fingerprint is read before its tag only to choose the message; another key is refused either way.
            if let Some(journal) = unverified_fingerprint(&bytes).filter(|found| *found != key.fingerprint()) {
                return Err(JournalError::WrongKey { path, journal, ours: key.fingerprint() });
            }
            match read_header(key, &bytes) {
                Ok((found, len)) => (keys, offset) = (Some(found), len),
                Err(reason) => damage = Some(reason),
            }
        }
        if let Some(found) = &keys {
            let mut opener = Opener::new(&found.record);
            while offset < bytes.len() {
                let rest = &bytes[offset..];
                let Some(len) = whole_record_len(rest) else {
                    // The file ends inside this record: a crash mid-write,
                    // unless a valid record follows, which only damage to
                    // this record's length can explain.
                    if valid_record_after(&found.record, &bytes, offset, restored.records) {
                        damage = Some("its length runs past the records after it".into());
                    }
                    break;
                };
                match check_record(&mut opener, &rest[..len]) {
                    Ok(record) => {
                        replay(record);
                        restored.records += 1;
                        offset += len;
                    }
                    Err(reason) => {
                        damage = Some(reason);
                        break;
                    }
                }
            }
        }
        if let Some(reason) = damage {
            if !repair {
                let (offset, size) = (offset as u64, bytes.len() as u64);
                return Err(JournalError::Damaged { path, offset, size, reason });
            }
            let copy = dir.join(format!("{FILE_NAME}.damaged-{}", unix_ms() / 1000));
            fs::copy(&path, &copy).map_err(io_error(&copy))?;
            restored.copy = Some(copy);
        }
        if offset < bytes.len() {
            restored.cut_bytes = (bytes.len() - offset) as u64;
            file.set_len(offset as u64).and_then(|()| file.sync_all()).map_err(io_error(&path))?;
        }
        let keys = match keys {
            Some(keys) => keys,
            None => Keys::fresh(key).map_err(io_error(&path))?,
        };
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            dir_file,
            lock,
            file,
            sealer: Sealer::starting_at(&keys.record, restored.records),
            keys,
            unwritten: Vec::new(),
            dir_unsynced: false,
            bytes: offset as u64,
            compact_at: 0,
            compact_min,
        };
        journal.compact_at = journal.next_compaction();
        if offset == 0 {
            // A new journal (or one cut to nothing): its header, written
            // whole or not at all.
            journal.rewrite(&[]).and_then(|()| journal.sync_dir()).map_err(io_error(&path))?;
        }
        Ok((journal, restored))
    }

    /// Rewrites the journal in `dir`, written under `old`, under `new` (and
    /// a new salt), keeping every record; returns how many it kept.
    pub fn rekey(dir: &Path, old: &Key, new: &Key) -> Result<u64, JournalError> {
        let mut records = Vec::new();
        let (mut journal, _) = Journal::open(dir, old, u64::MAX, false, |record| records.push(record))?;
        let path = dir.join(FILE_NAME);
        journal.keys = Keys::fresh(new).map_err(io_error(&path))?;
        journal.rewrite(&records).and_then(|()| journal.sync_dir()).map_err(io_error(&path))?;
        Ok(records.len() as u64)
    }

    /// Writes the port this server listens on into the lock file, for a
    /// second server's error message.
    pub fn note_port(&self, port: u16) -> io::Result<()> {
        self.lock.set_len(0)?;
        (&self.lock).write_all(format!("{port}\n").as_bytes())
    }

    /// Appends `records` with one write and one `sync_data`. If that fails
    /// (a full disk), the file is cut back to what it held before and the
    /// records are kept, to be written first by the next call.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let retrying = !self.unwritten.is_empty();
        // Kept before anything can fail: the caller has handed them over.
        seal_all(&mut self.sealer, records, &mut self.unwritten);
        if retrying {
            // A failed write may have left part of a batch behind.
            self.file.set_len(self.bytes)?;
        }
        self.sync_dir()?;
        if self.unwritten.is_empty() {
            return Ok(());
        }
        if let Err(err) = (&self.file).write_all(&self.unwritten).and_then(|()| self.file.sync_data()) {
            let _ = self.file.set_len(self.bytes);
            return Err(err);
        }
        self.bytes += self.unwritten.len() as u64;
        self.unwritten.clear();
        Ok(())
    }

    /// Whether the file has grown enough to be worth rewriting.
    pub fn wants_compaction(&self) -> bool {
        self.bytes >= self.compact_at
    }

    /// Replaces the file with `records` (the live state, for compaction):
    /// written to a new file, synced, then renamed over the old one, so a
    /// crash at any moment leaves one whole journal or the other. A failure
    /// (no space, no descriptor) leaves the old journal in use, removes the
    /// new file, and puts the next attempt off until the journal has grown.
    pub fn rewrite(&mut self, records: &[Record]) -> io::Result<()> {
        let mut bytes = Vec::new();
        let mut header = Vec::new();
        put_str(&mut header, &self.keys.fingerprint);
        header.extend_from_slice(&self.keys.salt);
        Sealer::new(&self.keys.header).seal(record_kind::HEADER, &header, &mut bytes);
        let mut sealer = Sealer::new(&self.keys.record);
        seal_all(&mut sealer, records, &mut bytes);

        let (path, temp) = (self.dir.join(FILE_NAME), self.dir.join(format!("{FILE_NAME}.new")));
        let _ = fs::remove_file(&temp);
        let written = OpenOptions::new().append(true).create_new(true).mode(0o600).open(&temp).and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &path)?;
            Ok(file)
        });
        let file = match written {
            Ok(file) => file,
            Err(err) => {
                let _ = fs::remove_file(&temp);
                self.compact_at = self.bytes + self.bytes / 2;
                return Err(err);
            }
        };
        // The new file is the journal now, whatever happens next.
        (self.file, self.sealer, self.bytes) = (file, sealer, bytes.len() as u64);
        self.unwritten.clear();
        self.compact_at = self.next_compaction();
        self.dir_unsynced = true;
        let _ = self.sync_dir();
        Ok(())
    }

    /// Makes the last rename durable, if it is not yet.
    fn sync_dir(&mut self) -> io::Result<()> {
        if self.dir_unsynced {
            self.dir_file.sync_all()?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    fn next_compaction(&self) -> u64 {
        (self.bytes * COMPACT_GROWTH).max(self.compact_min)
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> JournalError {
    let path = path.to_path_buf();
    move |err| JournalError::Io(path, err)
}

fn seal_all(sealer: &mut Sealer, records: &[Record], out: &mut Vec<u8>) {
    let mut scratch = Vec::new();
    for record in records {
        scratch.clear();
        let kind_byte = record.encode(&mut scratch);
        sealer.seal(kind_byte, &scratch, out);
    }
}

/// Opens a file for appending, mode 0600.
fn open_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// Takes the directory's lock, or says who holds it.
fn lock_dir(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(LOCK_NAME);
    // Not truncated: until we hold the lock, its port is another server's.
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path);
    let file = file.map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            let port = fs::read_to_string(&path).unwrap_or_default().trim().to_string();
            Err(JournalError::Locked { dir: dir.to_path_buf(), port })
        }
        Err(TryLockError::Error(err)) => Err(JournalError::Io(path, err)),
    }
}

/// The fingerprint of the key that wrote the journal in `dir`, read from
/// its header without checking it (there is no key to check it with);
/// `None` if there is no journal or it is empty.
pub fn written_under(dir: &Path) -> Option<String> {
    let mut head = Vec::new();
    File::open(dir.join(FILE_NAME)).and_then(|file| file.take(1024).read_to_end(&mut head)).ok()?;
    (!head.is_empty()).then_some(())?;
    Some(unverified_fingerprint(&head).unwrap_or_else(|| "unknown (the header is damaged)".into()))
}

/// What replay found, for the start-up log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Records replayed.
    pub records: u64,
    /// Bytes cut off the end: a torn last record, or with `--repair`
    /// everything from the damaged record on.
    pub cut_bytes: u64,
    /// Where `--repair` kept the file as it was before cutting.
    pub copy: Option<PathBuf>,
}

/// Why the journal cannot be used; the server refuses to start.
#[derive(Debug)]
pub enum JournalError {
    /// The directory or file could not be created, read or written.
    Io(PathBuf, io::Error),
    /// Another server (or `--rekey`) holds the directory's lock; `port` is
    /// what it wrote in the lock file, if anything.
    Locked { dir: PathBuf, port: String },
    /// The journal was written under another key: fingerprints of both.
    WrongKey { path: PathBuf, journal: String, ours: String },
    /// A whole record at `offset` of a file of `size` bytes fails its
    /// check: not a torn write.
    Damaged { path: PathBuf, offset: u64, size: u64, reason: String },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io(path, err) => write!(f, "{}: {err}", path.display()),
            JournalError::Locked { dir, port } => {
                let who = if port.is_empty() { String::new() } else { format!(", listening on port {port}") };
                write!(
                    f,
                    "{}: in use by another chat-server{who}; stop that one first, or give this one another --data-dir",
                    dir.display()
                )
            }
            JournalError::WrongKey { path, journal, ours } => write!(
                f,
                "{}: written under the key with fingerprint {journal}, but this key's fingerprint is {ours}; \
                 nothing was changed. Start the server with --key-file naming the key this journal was \
                 written under (to move the journal to a new key, run that with --rekey NEW_KEY_FILE). \
                 Only if that key is lost for good, move the journal away, losing its users and mail",
                path.display()
            ),
            JournalError::Damaged { path, offset, size, reason } => write!(
                f,
                "{}: the record at byte {offset} is damaged ({reason}), which a torn write cannot do: the \
                 file was changed or the disk is failing; nothing was changed. \
                 Restore the journal from a backup, or start once with --repair to cut it there, losing \
                 the last {} of its {size} bytes (the file is copied first)",
                path.display(),
                size - offset
            ),
        }
    }
}

/// The header at the start of `bytes`, checked: this journal's keys, and
/// the header's length.
fn read_header(key: &Key, bytes: &[u8]) -> Result<(Keys, usize), String> {
    let len = whole_record_len(bytes).ok_or("no header")?;
    let header = Opener::new(&journal_key(key)).open(&bytes[..len]).map_err(|err| err.to_string())?;
    if header.kind() != record_kind::HEADER {
        return Err("no header".into());
    }
    let mut fields = Fields::new(header.payload());
    fields.string("fingerprint").map_err(|err| err.to_string())?;
    let salt = fields.array("salt").map_err(|err| err.to_string())?;
    fields.finish().map_err(|err| err.to_string())?;
    Ok((Keys::new(key, salt), len))
}

/// The fingerprint field of a header at the start of `bytes`, unchecked.
fn unverified_fingerprint(bytes: &[u8]) -> Option<String> {
    let frame = &bytes[..whole_record_len(bytes)?];
    let body = frame.get(LEN_PREFIX + 8..)?;
    let (&kind_byte, payload) = body.split_first()?;
    (kind_byte == record_kind::HEADER).then_some(())?;
    Fields::new(payload).string("fingerprint").ok()
}

/// The length of the record at the start of `rest`, if the file holds all
/// of it; `None` if the file ends inside it.
fn whole_record_len(rest: &[u8]) -> Option<usize> {
    let prefix: [u8; LEN_PREFIX] = rest.get(..LEN_PREFIX)?.try_into().ok()?;
    let len = LEN_PREFIX + u32::from_be_bytes(prefix) as usize;
    (len <= rest.len()).then_some(len)
}

/// The whole record `frame`, checked and decoded, or why it is not one.
fn check_record(opener: &mut Opener, frame: &[u8]) -> Result<Record, String> {
    frame_len(frame, MAX_RECORD_LEN).map_err(|err| err.to_string())?;
    // SECURITY: a journal record's tag is checked before any of its fields is used.
    let frame = opener.open(frame).map_err(|err| err.to_string())?;
    Record::decode(&frame).map_err(|err| err.to_string())
}

/// Whether a record of this journal, later than record number `seq`,
/// starts anywhere after `from`.
fn valid_record_after(record_key: &[u8; 32], bytes: &[u8], from: usize, seq: u64) -> bool {
    let opener = Opener::new(record_key);
    (from + 1..bytes.len().saturating_sub(LEN_PREFIX)).any(|start| match frame_len(&bytes[start..], MAX_RECORD_LEN) {
        // SECURITY: only a later record under this journal's salted key counts; bytes a client chose cannot be one.
        Ok(Some(len)) => opener.verify(&bytes[start..start + len]).is_ok_and(|found| found > seq),
        _ => false,
    })
}
