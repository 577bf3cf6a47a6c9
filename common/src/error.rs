//! Error values. Decoders and verifiers return a [`ProtocolError`] (small,
//! `Copy`, comparable in tests); I/O and handshake outcomes wrap it in
//! [`Error`]. Nothing reachable from network input panics.

use std::fmt;
use std::io;

/// Why a frame or a message was refused. Facts, not prose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// The length prefix announced more than the receiver accepts.
    FrameTooLong { len: usize, max: usize },
    /// The frame is shorter than its kind requires.
    FrameTooShort { len: usize, min: usize },
    /// The HMAC tag does not match: altered, forged, or the wrong key.
    BadTag,
    /// The tag is right but the sequence number is not the next one:
    /// a replayed, reordered or deleted frame.
    UnexpectedSequence { got: u64, want: u64 },
    /// A kind byte this protocol does not define (or not in this phase).
    UnknownKind(u8),
    /// The payload ended inside the named field.
    Truncated { field: &'static str },
    /// Bytes were left over after the last field.
    TrailingBytes { count: usize },
    /// The named string field is not valid UTF-8.
    InvalidUtf8 { field: &'static str },
    /// A flag byte other than 0 or 1.
    BadFlag { field: &'static str, value: u8 },
    /// HELLO named a protocol version this side does not speak.
    UnsupportedVersion { got: u8 },
    /// Both sides sent the same nonce: a reflected HELLO.
    EqualNonces,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameTooLong { len, max } => write!(f, "frame too long ({len} bytes, max {max})"),
            Self::FrameTooShort { len, min } => write!(f, "frame too short ({len} bytes, min {min})"),
            Self::BadTag => write!(f, "bad tag"),
            Self::UnexpectedSequence { got, want } => {
                write!(f, "wrong sequence number (got {got}, expected {want})")
            }
            Self::UnknownKind(kind) => write!(f, "unknown frame kind 0x{kind:02x}"),
            Self::Truncated { field } => write!(f, "malformed: truncated in {field}"),
            Self::TrailingBytes { count } => write!(f, "malformed: {count} trailing bytes"),
            Self::InvalidUtf8 { field } => write!(f, "malformed: invalid UTF-8 in {field}"),
            Self::BadFlag { field, value } => write!(f, "malformed: {field} flag is {value}"),
            Self::UnsupportedVersion { got } => write!(f, "unsupported protocol version {got}"),
            Self::EqualNonces => write!(f, "peer echoed our nonce"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Anything that can end a connection or a handshake.
#[derive(Debug)]
pub enum Error {
    /// The socket failed, timed out, or closed.
    Io(io::Error),
    /// The peer sent something the protocol forbids.
    Protocol(ProtocolError),
    /// The peer's handshake proof was wrong: it lacks the key (or the
    /// nickname's owner token).
    AuthFailed,
    /// The server refused the handshake and said why (unauthenticated text).
    Refused(String),
    /// The server reports the nickname as registered and we hold no token.
    NicknameOwned,
    /// The server says the nickname is unregistered but we hold a token it
    /// once accepted: the server's data was reset, or it is not the real
    /// server. (Raised by the client, which knows whether it was accepted.)
    TokenUnknown,
    /// The server's proof was wrong: it does not hold the key (or the
    /// token's verifier), so it is not the real server.
    ServerProofFailed,
    /// The handshake did not finish before its deadline.
    HandshakeTimeout,
    /// HELLO named a nickname that breaks the rules [P-18].
    BadNick(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(err) => write!(f, "{err}"),
            Self::Protocol(err) => write!(f, "{err}"),
            Self::AuthFailed => write!(f, "authentication failed (wrong key or owner token)"),
            Self::Refused(reason) => write!(f, "server refused: {reason}"),
            Self::NicknameOwned => write!(f, "nickname belongs to another user"),
            Self::TokenUnknown => write!(
                f,
                "the server does not know this nickname's owner token (its data was reset, or it is not the real server)"
            ),
            Self::ServerProofFailed => write!(f, "the server could not prove it holds the key: not the real server"),
            Self::HandshakeTimeout => write!(f, "handshake timed out"),
            Self::BadNick(why) => write!(f, "invalid nickname: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

impl From<ProtocolError> for Error {
    fn from(err: ProtocolError) -> Self {
        Self::Protocol(err)
    }
}
