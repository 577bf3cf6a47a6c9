//! Why there is no connection, why a nickname was refused, and why the key
//! file cannot be used, as values: the headless mode prints their English
//! [`Display`](std::fmt::Display) text, and the window puts each case in
//! the user's language. Every text says what happened in plain words,
//! without error numbers, and where it can, what to check or do.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use chat_common::keyfile::KeyFileError;

/// Why the connection is down (the client tries again after its retry interval).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// No TCP connection could be made to `server` (`host:port`).
    Unreachable { server: String, cause: Unreachable },
    /// The server refused our proof: our key file is not the server's.
    KeyRefused,
    /// The server could not prove that it holds the key: not the real server.
    FakeServer,
    /// The server refused the handshake for another reason, in its words.
    Refused(String),
    /// The handshake broke off or went wrong; the detail says how.
    Handshake(String),
    /// The server closed the connection.
    Closed,
    /// Nothing was heard from the server for this many seconds.
    Silent { secs: u64 },
    /// The connection broke; the detail says how.
    Lost(String),
    /// A frame from the server failed its check (altered, replayed, forged).
    BadFrame(String),
    /// Something on this computer failed (a thread, a socket option).
    Local(String),
}

/// Why a TCP connection could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unreachable {
    /// Nothing listens on that port.
    Refused,
    /// Nothing answered in time.
    TimedOut,
    /// The network has no route to that address.
    NoRoute,
    /// The host name could not be resolved.
    UnknownHost,
    /// Anything else, in the system's words.
    Other(String),
}

/// Why a nickname was refused for good (the client stops).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The server has this nickname registered, and we hold no token for it.
    NicknameOwned,
    /// The server does not know the token it once accepted from us.
    TokenUnknown,
    /// The server's REJECT, in its words.
    Server(String),
}

/// Why the key file cannot be used. A client never makes a key: the only
/// key that works is the server's, so every case says to get that one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyTrouble {
    /// No file there; `looked` is the whole path that was tried.
    Missing { looked: PathBuf },
    /// Group or others may access it (`mode`); `chmod 600` fixes it.
    TooOpen { path: PathBuf, mode: u32 },
    /// A key anyone could guess (one byte repeated, a pattern, counting):
    /// not the server's, which refuses such keys too.
    Patterned { path: PathBuf },
    /// Not 64 hex characters; says what is wrong.
    Malformed { path: PathBuf, why: String },
    /// It cannot be read; says why.
    Unreadable { path: PathBuf, detail: String },
}

impl KeyTrouble {
    /// The trouble with `path`, from what loading it said; a relative path
    /// is shown under `cwd`, the folder it was looked for in.
    pub fn new(err: &KeyFileError, cwd: Option<&Path>) -> KeyTrouble {
        let path = err.path().to_path_buf();
        match err {
            KeyFileError::Missing(_) => KeyTrouble::Missing { looked: cwd.map_or(path.clone(), |cwd| cwd.join(&path)) },
            KeyFileError::TooOpen(_, mode) => KeyTrouble::TooOpen { path, mode: *mode },
            KeyFileError::Patterned(..) => KeyTrouble::Patterned { path },
            KeyFileError::Malformed(_, why) => KeyTrouble::Malformed { path, why: why.clone() },
            KeyFileError::Unreadable(_, err) => KeyTrouble::Unreadable { path, detail: plain_io(err) },
            KeyFileError::Exists(_) | KeyFileError::Unwritable(..) => {
                KeyTrouble::Unreadable { path, detail: err.to_string() }
            }
        }
    }

    /// The key file, as the user named it (or as looked for).
    pub fn path(&self) -> &Path {
        match self {
            KeyTrouble::Missing { looked: path }
            | KeyTrouble::TooOpen { path, .. }
            | KeyTrouble::Patterned { path }
            | KeyTrouble::Malformed { path, .. }
            | KeyTrouble::Unreadable { path, .. } => path,
        }
    }

    /// The command that makes the file private, ready to paste.
    pub fn chmod(&self) -> String {
        format!("chmod 600 {}", shell_word(self.path()))
    }
}

/// `path` as one shell word, so advice can be pasted as is.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,".contains(c);
    if text.chars().all(plain) { text } else { format!("'{}'", text.replace('\'', "'\\''")) }
}

impl fmt::Display for KeyTrouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path().display();
        let copy = "copy the server's chat.key (the very file the server uses, by a safe channel)";
        match self {
            KeyTrouble::Missing { .. } => {
                write!(f, "no key file at {path}; {copy} there, or give its place with --key-file FILE")
            }
            KeyTrouble::TooOpen { mode, .. } => write!(
                f,
                "{path}: mode {mode:04o} lets other users of this computer read the key; fix it with: {}",
                self.chmod()
            ),
            KeyTrouble::Patterned { .. } => {
                write!(f, "{path}: not a random key, so not the server's (it refuses such keys too); {copy}")
            }
            KeyTrouble::Malformed { why, .. } => {
                write!(f, "{path}: {why}, not the 64 hex characters of a key; {copy} again")
            }
            KeyTrouble::Unreadable { detail, .. } => write!(f, "{path}: {detail}"),
        }
    }
}

/// An I/O error in words: the system's text without its `(os error N)`.
pub fn plain_io(err: &io::Error) -> String {
    let text = err.to_string();
    let text = text.rfind(" (os error ").map_or(text.as_str(), |at| &text[..at]);
    let mut chars = text.chars();
    chars.next().map(|first| first.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

impl Unreachable {
    /// Classifies a failed `connect`.
    pub fn from_io(err: &io::Error) -> Unreachable {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => Unreachable::Refused,
            io::ErrorKind::TimedOut => Unreachable::TimedOut,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => Unreachable::NoRoute,
            _ => Unreachable::Other(plain_io(err)),
        }
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreachable::Refused => write!(f, "nothing answers on that port (is the server running?)"),
            Unreachable::TimedOut => write!(f, "no answer (check the address and the firewall)"),
            Unreachable::NoRoute => write!(f, "no route to it (check the address and the network)"),
            Unreachable::UnknownHost => write!(f, "unknown host name"),
            Unreachable::Other(detail) => write!(f, "{detail}"),
        }
    }
}

impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trouble::Unreachable { server, cause } => write!(f, "server not reachable at {server}: {cause}"),
            Trouble::KeyRefused => write!(f, "the server refused our key (is your key file the server's?)"),
            Trouble::FakeServer => write!(f, "fake server: it could not prove it holds the key"),
            Trouble::Refused(reason) => write!(f, "the server refused us: {reason}"),
            Trouble::Handshake(detail) => write!(f, "the handshake failed: {detail}"),
            Trouble::Closed => write!(f, "the server closed the connection"),
            Trouble::Silent { secs } => write!(f, "nothing heard from the server for {secs} s"),
            Trouble::Lost(detail) => write!(f, "connection lost: {detail}"),
            Trouble::BadFrame(detail) => write!(f, "bad frame from the server: {detail}"),
            Trouble::Local(detail) => write!(f, "{detail}"),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NicknameOwned => write!(f, "nickname belongs to another user"),
            Rejection::TokenUnknown => write!(
                f,
                "the server does not know this nickname's owner token (its data was reset, or it is not the real server)"
            ),
            Rejection::Server(reason) => write!(f, "{reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_lose_their_numbers() {
        let refused = io::Error::from_raw_os_error(111);
        assert_eq!(plain_io(&refused), "connection refused");
        assert_eq!(Unreachable::from_io(&refused), Unreachable::Refused);
        assert_eq!(plain_io(&io::Error::other("Odd thing")), "odd thing");
    }

    #[test]
    fn key_troubles_say_where_and_what_to_do_and_never_to_make_a_key() {
        let missing = KeyTrouble::new(&KeyFileError::Missing("chat.key".into()), Some(Path::new("/home/ana/lab")));
        assert_eq!(
            missing.to_string(),
            "no key file at /home/ana/lab/chat.key; copy the server's chat.key (the very file the server uses, \
             by a safe channel) there, or give its place with --key-file FILE"
        );
        let open = KeyTrouble::new(&KeyFileError::TooOpen("my key".into(), 0o644), None);
        assert!(open.to_string().ends_with("fix it with: chmod 600 'my key'"), "{open}");
        let patterned = KeyTrouble::new(&KeyFileError::Patterned("k".into(), chat_common::auth::Key([0; 32])), None);
        let malformed = KeyTrouble::new(&KeyFileError::Malformed("k".into(), "holds 4 characters".into()), None);
        assert_eq!(
            malformed.to_string(),
            format!(
                "k: holds 4 characters, not the 64 hex characters of a key; copy the server's chat.key (the very file the server uses, by a safe channel) again"
            )
        );
        for trouble in [missing, open, patterned, malformed] {
            let text = trouble.to_string();
            assert!(!text.contains("make") && !text.contains("new key") && !text.contains("create"), "{text}");
        }
    }

    #[test]
    fn every_reason_is_plain_words() {
        let server = "192.168.1.10:5555".to_owned();
        let unreachable = Trouble::Unreachable { server, cause: Unreachable::Refused };
        assert_eq!(
            unreachable.to_string(),
            "server not reachable at 192.168.1.10:5555: nothing answers on that port (is the server running?)"
        );
        assert_eq!(Trouble::KeyRefused.to_string(), "the server refused our key (is your key file the server's?)");
        assert!(Trouble::FakeServer.to_string().starts_with("fake server: "));
        assert_eq!(Rejection::NicknameOwned.to_string(), "nickname belongs to another user");
        for text in [unreachable.to_string(), Trouble::Silent { secs: 60 }.to_string()] {
            assert!(!text.contains("os error"), "{text}");
        }
    }
}
