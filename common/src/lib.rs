//! The hmac-chat wire protocol, shared by the server and the client.
//!
//! This crate opens no sockets of its own and starts no threads: it turns
//! bytes into frames and frames into messages, and it owns every use of
//! HMAC-SHA256. `docs/PROTOCOL.md` describes the same protocol in prose.
//!
//! - [`frame`]: length-prefixed framing (sans-IO decode, thin read/write).
//! - [`auth`]: the shared key, key derivation, handshake proofs and the
//!   per-direction [`auth::Sealer`] / [`auth::Opener`] that tag every frame.
//! - [`handshake`]: the two sides of the handshake over a `TcpStream`.
//! - [`message`]: the message kinds and their byte layouts.
//! - [`keyfile`]: loading and creating the shared key file.
//! - [`validate`]: what makes a nickname or a text acceptable.
//! - [`trace`]: one line of text per frame, for watching the protocol
//!   (display only: it returns text, never a message).
//! - [`error`]: the error values every decoder returns instead of panicking.
//! - [`random`], [`log`]: OS randomness and one-line stderr logging.
#![forbid(unsafe_code)]

pub mod auth;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod keyfile;
pub mod log;
pub mod message;
pub mod random;
pub mod trace;
pub mod validate;

use std::time::Duration;

pub use error::{Error, ProtocolError};

/// Version byte sent in HELLO; a server refuses any other.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest frame body, in bytes, either side accepts by default (64 KiB).
pub const MAX_FRAME_LEN: usize = 64 * 1024;
/// Largest handshake frame body, in bytes, either side accepts: HELLO with
/// the longest nickname is 68 bytes, and a FAIL reason is one short line.
pub const MAX_HANDSHAKE_FRAME: usize = 256;
/// Largest message text, in bytes of UTF-8 (4 KiB).
pub const MAX_TEXT_LEN: usize = 4 * 1024;
/// Longest nickname, in ASCII characters.
pub const MAX_NICK_LEN: usize = 32;
/// Time a peer has to finish the handshake, counted from the connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client sends PING after this long without sending anything.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Either side drops a connection it has heard nothing from for this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A client acknowledges a message at most this long after it arrived
/// ([P-24]): one ACK covers everything received meanwhile.
pub const ACK_DELAY: Duration = Duration::from_millis(200);
/// ... or as soon as this many messages are unacknowledged.
pub const ACK_AFTER: u64 = 256;
/// Most SENDs a client may have unconfirmed; the server remembers this many
/// recent (client id, message id) pairs per user to answer re-sent SENDs.
pub const MAX_UNCONFIRMED_SENDS: usize = 256;
/// Default TCP port of the server (the original project's).
pub const DEFAULT_PORT: u16 = 5555;
/// Default key file, relative to the working directory.
pub const DEFAULT_KEY_FILE: &str = "chat.key";
