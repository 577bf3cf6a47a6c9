//! The state directory: what a client keeps between runs, so that a restart
//! neither loses nor repeats anything.
//!
//! Each chat and nickname gets its own subdirectory (mode 0700), named by
//! the shared key's fingerprint and the nickname, `3f0c…e1_alice`: the
//! chat is the key, not the address typed, so `127.0.0.1`, `localhost`,
//! another port or the attack lab's proxy all reach the same nickname. It
//! holds three files (mode 0600), each replaced atomically (write a temp
//! file, fsync, rename, fsync the directory) so a crash leaves the old or
//! the new version, never half of one:
//! - `token`: the nickname's owner token, 64 hex characters, then a line
//!   `accepted` once the server has confirmed it. Secret.
//! - `last_seen`: the highest message id received, in decimal.
//! - `outbox`: unconfirmed messages and the next client message id
//!   (the format is [`Outbox::to_text`]).
//!
//! A fourth, empty file, `lock`, is locked while a client uses the
//! directory: two clients saving one outbox would lose each other's
//! messages. The system drops the lock when the process ends, however it
//! ends, so there is never a stale lock to clean up. A fifth, `exported`,
//! appears when the identity was moved to another computer
//! (`--export-identity`); the directory is then refused until it is
//! imported back.
//!
//! Earlier versions named the directory by the address typed,
//! `127.0.0.1_5555_alice`. Opening a chat through that same address moves
//! such a directory to its new name once; other old directories are left
//! alone, since nothing says which key they belong to.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chat_common::auth::TOKEN_LEN;
use chat_common::handshake::OwnerToken;
use chat_common::validate::nick_key;

use crate::outbox::Outbox;

/// A state file or directory that could not be used, and why.
#[derive(Debug)]
pub struct StoreError {
    /// The file or directory.
    pub path: PathBuf,
    /// What went wrong; `InvalidData` for a file we cannot parse.
    pub source: io::Error,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// Another client is using this state (its lock is held).
    pub fn is_locked(&self) -> bool {
        self.source.kind() == io::ErrorKind::WouldBlock
    }

    /// The identity was moved to another computer (`--export-identity`).
    pub fn is_exported(&self) -> bool {
        self.path.file_name().is_some_and(|name| name == EXPORTED)
    }
}

/// The name of the file that marks an identity moved away.
const EXPORTED: &str = "exported";

/// Which chat a state belongs to, and by which address it was opened.
#[derive(Clone, Copy, Debug)]
pub struct Chat<'a> {
    /// The shared key's fingerprint ([`chat_common::auth::Key::fingerprint`]).
    pub fingerprint: &'a str,
    /// The host and port typed, to find a directory of the old layout.
    pub address: Option<(&'a str, u16)>,
}

/// The state of one nickname in one chat, locked for this process.
#[derive(Debug)]
pub struct Store {
    /// `<state dir>/<key fingerprint>_<nickname in lower case>`.
    dir: PathBuf,
    /// Holds the directory's lock for as long as the store lives.
    _lock: File,
}

/// Escapes everything but `[A-Za-z0-9.-]` as `%XX`, so that any host makes
/// one safe file name component and `_` can separate the parts.
fn file_name_part(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A token as 64 lower-case hex digits.
pub fn token_hex(token: &[u8; TOKEN_LEN]) -> String {
    token.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Reads [`token_hex`]'s form.
pub fn parse_token_hex(hex: &str) -> Option<[u8; TOKEN_LEN]> {
    let hex = hex.as_bytes();
    if hex.len() != 2 * TOKEN_LEN {
        return None;
    }
    let mut token = [0u8; TOKEN_LEN];
    for (byte, pair) in token.iter_mut().zip(hex.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(token)
}

fn parse_token_file(text: &str) -> Option<OwnerToken> {
    let mut lines = text.lines();
    let token = parse_token_hex(lines.next()?)?;
    let accepted = match lines.next() {
        None => false,
        Some("accepted") => true,
        Some(_) => return None,
    };
    Some(OwnerToken { token, accepted })
}

/// Locks `dir/lock` for this process, or says who holds it.
fn lock(dir: &Path, nick: &str) -> Result<File, StoreError> {
    let path = dir.join("lock");
    let failed = |source| StoreError { path: path.clone(), source };
    let lock = OpenOptions::new().create(true).write(true).truncate(false).mode(0o600).open(&path).map_err(failed)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(failed(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("another chat client is running as {nick} in this chat; close it first"),
        ))),
        Err(TryLockError::Error(err)) => Err(failed(err)),
    }
}

impl Store {
    /// Opens (creating if needed) the state of `nick` in `chat` and locks
    /// it; fails if another client holds it, or if the identity was
    /// exported. Nicknames are case-insensitive, so `Alice` and `alice`
    /// share one.
    pub fn open(state_dir: &Path, chat: Chat, nick: &str) -> Result<Store, StoreError> {
        let store = Store::open_even_if_exported(state_dir, chat, nick)?;
        match store.read(EXPORTED)? {
            None => Ok(store),
            Some(note) => Err(StoreError {
                path: store.dir.join(EXPORTED),
                source: io::Error::other(format!(
                    "{nick}'s identity was moved to another computer ({}); to use it here again, \
                     import it with --import-identity FILE, or delete {} to start afresh as someone new",
                    note.trim(),
                    store.dir.display()
                )),
            }),
        }
    }

    /// [`Store::open`] without the check for an exported identity, for
    /// importing one.
    pub fn open_even_if_exported(state_dir: &Path, chat: Chat, nick: &str) -> Result<Store, StoreError> {
        let nick_part = file_name_part(&nick_key(nick));
        let dir = state_dir.join(format!("{}_{nick_part}", file_name_part(chat.fingerprint)));
        let failed = |path: &Path, source| StoreError { path: path.to_owned(), source };
        if let Some((host, port)) = chat.address {
            // The port separates the parts, so the old name is never "." or "..".
            let old = state_dir.join(format!("{}_{port}_{nick_part}", file_name_part(host)));
            if old.is_dir() && !dir.exists() {
                // Locked first, so a client of the old version cannot be writing it.
                let lock = lock(&old, nick)?;
                fs::rename(&old, &dir).map_err(|source| failed(&old, source))?;
                File::open(state_dir)
                    .and_then(|parent| parent.sync_all())
                    .map_err(|source| failed(state_dir, source))?;
                return Ok(Store { dir, _lock: lock });
            }
        }
        DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|source| failed(&dir, source))?;
        let lock = lock(&dir, nick)?;
        Ok(Store { dir, _lock: lock })
    }

    /// The state's directory, for messages.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Marks the identity as moved away; `note` says where and when.
    pub fn mark_exported(&self, note: &str) -> Result<(), StoreError> {
        self.write(EXPORTED, &format!("{note}\n"))
    }

    /// Clears the mark of [`Store::mark_exported`].
    pub fn clear_exported(&self) -> Result<(), StoreError> {
        let path = self.dir.join(EXPORTED);
        match fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(StoreError { path, source: err }),
            _ => File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(|source| StoreError { path, source }),
        }
    }

    /// The owner token, if this client has made one for this nickname.
    pub fn load_token(&self) -> Result<Option<OwnerToken>, StoreError> {
        let Some(text) = self.read("token")? else {
            return Ok(None);
        };
        // SECURITY: the error never echoes the file's contents: it is a secret.
        parse_token_file(&text).map(Some).ok_or_else(|| self.corrupt("token", "expected 64 hex characters"))
    }

    /// Saves the owner token; on return it is on disk.
    pub fn save_token(&self, owned: &OwnerToken) -> Result<(), StoreError> {
        let accepted = if owned.accepted { "accepted\n" } else { "" };
        self.write("token", &format!("{}\n{accepted}", token_hex(&owned.token)))
    }

    /// The highest message id received (0 before the first).
    pub fn load_last_seen(&self) -> Result<u64, StoreError> {
        match self.read("last_seen")? {
            None => Ok(0),
            Some(text) => {
                text.trim_end().parse().map_err(|_| self.corrupt("last_seen", "expected a message id in decimal"))
            }
        }
    }

    /// Saves the highest message id received.
    pub fn save_last_seen(&self, id: u64) -> Result<(), StoreError> {
        self.write("last_seen", &format!("{id}\n"))
    }

    /// The saved outbox (empty before the first message).
    pub fn load_outbox(&self) -> Result<Outbox, StoreError> {
        match self.read("outbox")? {
            None => Ok(Outbox::default()),
            Some(text) => Outbox::from_text(&text).map_err(|why| self.corrupt("outbox", &why)),
        }
    }

    /// Saves the outbox.
    pub fn save_outbox(&self, outbox: &Outbox) -> Result<(), StoreError> {
        self.write("outbox", &outbox.to_text())
    }

    fn corrupt(&self, name: &str, why: &str) -> StoreError {
        let why = format!("{why}; move the file away to start afresh");
        StoreError { path: self.dir.join(name), source: io::Error::new(io::ErrorKind::InvalidData, why) }
    }

    /// The file's contents, or `None` if it does not exist.
    fn read(&self, name: &str) -> Result<Option<String>, StoreError> {
        let path = self.dir.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError { path, source }),
        }
    }

    /// Replaces the file atomically and durably.
    fn write(&self, name: &str, contents: &str) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let temp = self.dir.join(format!("{name}.tmp"));
        let result = (|| {
            // SECURITY: 0600 from creation on; the token must never be readable by others.
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?;
            file.write_all(contents.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temp, &path)?;
            // The rename itself is durable only once the directory is synced.
            File::open(&self.dir)?.sync_all()
        })();
        result.map_err(|source| StoreError { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_state_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hmac-chat-store-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The chat of key fingerprint `fingerprint`, opened through no address.
    fn chat(fingerprint: &str) -> Chat<'_> {
        Chat { fingerprint, address: None }
    }

    #[test]
    fn a_fresh_store_is_empty_and_everything_round_trips() {
        let state = temp_state_dir("roundtrip");
        let store = Store::open(&state, chat("00aa"), "Alice").unwrap();
        assert!(store.load_token().unwrap().is_none());
        assert_eq!(store.load_last_seen().unwrap(), 0);
        assert!(store.load_outbox().unwrap().is_empty());

        let mut outbox = Outbox::default();
        outbox.push("bob".into(), "hola".into());
        store.save_token(&OwnerToken { token: [0xab; 32], accepted: true }).unwrap();
        store.save_last_seen(41).unwrap();
        store.save_outbox(&outbox).unwrap();

        let dir = store.dir.clone();
        drop(store);
        let again = Store::open(&state, chat("00aa"), "alice").unwrap();
        assert_eq!(again.dir, dir, "nicknames are case-insensitive");
        let token = again.load_token().unwrap().unwrap();
        assert_eq!((token.token, token.accepted), ([0xab; 32], true));
        assert_eq!(again.load_last_seen().unwrap(), 41);
        assert_eq!(again.load_outbox().unwrap(), outbox);
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn one_client_at_a_time_uses_a_state_directory() {
        let state = temp_state_dir("lock");
        let first = Store::open(&state, chat("00aa"), "carol").unwrap();
        let err = Store::open(&state, chat("00aa"), "Carol").unwrap_err();
        assert!(err.is_locked() && !err.is_exported());
        assert!(err.to_string().ends_with("another chat client is running as Carol in this chat; close it first"));
        assert!(Store::open(&state, chat("00aa"), "dave").is_ok(), "other nicknames are not locked");
        drop(first);
        assert!(Store::open(&state, chat("00aa"), "carol").is_ok(), "the lock ends with its holder");
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn files_are_private_and_no_temp_file_is_left_behind() {
        let state = temp_state_dir("modes");
        let store = Store::open(&state, chat("00aa"), "bob").unwrap();
        store.save_token(&OwnerToken { token: [1; 32], accepted: false }).unwrap();
        assert!(!store.load_token().unwrap().unwrap().accepted);
        store.save_last_seen(1).unwrap();
        store.save_last_seen(2).unwrap();
        assert_eq!(mode(&store.dir), 0o700);
        assert_eq!(mode(&store.dir.join("token")), 0o600);
        assert_eq!(mode(&store.dir.join("last_seen")), 0o600);
        assert_eq!(mode(&store.dir.join("lock")), 0o600);
        let mut names: Vec<_> = fs::read_dir(&store.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["last_seen", "lock", "token"]);
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn a_stale_temp_file_from_a_crash_does_not_matter() {
        let state = temp_state_dir("crash");
        let store = Store::open(&state, chat("00aa"), "bob").unwrap();
        store.save_last_seen(7).unwrap();
        fs::write(store.dir.join("last_seen.tmp"), "half a wri").unwrap();
        assert_eq!(store.load_last_seen().unwrap(), 7);
        store.save_last_seen(8).unwrap();
        assert_eq!(store.load_last_seen().unwrap(), 8);
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn keys_and_nicknames_get_separate_safe_directories_whatever_the_address() {
        let state = temp_state_dir("separate");
        let here = Chat { fingerprint: "00aa", address: Some(("127.0.0.1", 5555)) };
        let a = Store::open(&state, here, "alice").unwrap();
        let b = Store::open(&state, chat("00bb"), "alice").unwrap();
        let c = Store::open(&state, chat("00aa"), "..").unwrap();
        a.save_last_seen(1).unwrap();
        assert_eq!(b.load_last_seen().unwrap(), 0);
        assert_eq!(a.dir, state.join("00aa_alice"));
        assert_eq!(c.dir, state.join("00aa_.."));
        assert_eq!(c.dir.parent(), Some(state.as_path()));
        drop(a);
        let elsewhere = Chat { fingerprint: "00aa", address: Some(("localhost", 6666)) };
        let again = Store::open(&state, elsewhere, "Alice").unwrap();
        assert_eq!(again.load_last_seen().unwrap(), 1, "another address of the same chat");
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn a_directory_of_the_old_layout_moves_when_its_address_is_used_again() {
        let state = temp_state_dir("migrate");
        let old = state.join("127.0.0.1_5555_alice");
        fs::create_dir_all(&old).unwrap();
        fs::write(old.join("last_seen"), "41\n").unwrap();
        let other_address = Chat { fingerprint: "00aa", address: Some(("localhost", 5555)) };
        let unrelated = Store::open(&state, other_address, "alice").unwrap();
        assert_eq!(unrelated.load_last_seen().unwrap(), 0, "only the address it was filed under finds it");
        drop(unrelated);
        fs::remove_dir_all(state.join("00aa_alice")).unwrap();

        let same_address = Chat { fingerprint: "00aa", address: Some(("127.0.0.1", 5555)) };
        let moved = Store::open(&state, same_address, "Alice").unwrap();
        assert_eq!(moved.load_last_seen().unwrap(), 41);
        assert!(!old.exists() && moved.dir == state.join("00aa_alice"));
        drop(moved);
        assert_eq!(Store::open(&state, chat("00aa"), "alice").unwrap().load_last_seen().unwrap(), 41);
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn an_exported_identity_is_refused_until_imported_back() {
        let state = temp_state_dir("exported");
        let store = Store::open(&state, chat("00aa"), "bob").unwrap();
        store.mark_exported("to bob.identity").unwrap();
        drop(store);
        let err = Store::open(&state, chat("00aa"), "bob").unwrap_err();
        assert!(err.is_exported() && !err.is_locked());
        let err = err.to_string();
        assert!(err.contains("bob's identity was moved to another computer (to bob.identity)"), "{err}");
        assert!(err.contains("--import-identity"), "{err}");
        let store = Store::open_even_if_exported(&state, chat("00aa"), "bob").unwrap();
        assert!(store.dir.join(EXPORTED).exists());
        store.clear_exported().unwrap();
        drop(store);
        assert!(Store::open(&state, chat("00aa"), "bob").is_ok());
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn corrupt_files_are_errors_that_name_the_file_and_never_show_the_token() {
        let state = temp_state_dir("corrupt");
        let store = Store::open(&state, chat("00aa"), "bob").unwrap();
        fs::write(store.dir.join("token"), "secretsecret\n").unwrap();
        let err = store.load_token().unwrap_err().to_string();
        assert!(err.contains("token: expected 64 hex characters"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        fs::write(store.dir.join("last_seen"), "forty-one\n").unwrap();
        assert!(store.load_last_seen().unwrap_err().to_string().contains("last_seen: expected a message id"));
        fs::write(store.dir.join("outbox"), "garbage\n").unwrap();
        assert!(store.load_outbox().unwrap_err().to_string().contains("outbox: line 1"));
        fs::remove_dir_all(&state).unwrap();
    }
}
