//! The handshake, both sides, over any `Read + Write` (in the programs, a
//! [`crate::frame::Deadline`] around the socket, so the whole handshake has
//! one deadline).
//!
//! ```text
//! client                                   server
//!   HELLO     version, nonce_c, nick   -->
//!             <--  CHALLENGE  nonce_s, registered
//!   (both: T = SHA-256(HELLO frame || CHALLENGE frame), keys = HKDF(T, key || verifier))
//!   PROOF     HMAC(client proof key, T)  -->
//!             <--  ACCEPT     HMAC(server proof key, T)   (only after PROOF checks out)
//! ```
//! Neither the shared key nor the owner token ever crosses the wire here.

use std::io::{self, Read, Write};

use crate::auth::{self, Key, NONCE_LEN, Opener, Proven, Sealer, SessionKeys, TOKEN_LEN};
use crate::error::{Error, ProtocolError};
use crate::frame::{LEN_PREFIX, read_frame};
use crate::message::{Handshake, kind};
use crate::random::random_bytes;
use crate::trace::{Direction, Verdict, Watch};
use crate::validate::validate_nick;
use crate::{MAX_HANDSHAKE_FRAME, PROTOCOL_VERSION};

/// A client's owner token for its nickname.
#[derive(Clone, Copy)]
pub struct OwnerToken {
    /// The secret itself; only its verifier ever leaves the client.
    pub token: [u8; TOKEN_LEN],
    /// The server has confirmed it (a WELCOME after registering it, or any
    /// login with it since).
    pub accepted: bool,
}

impl std::fmt::Debug for OwnerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnerToken(<secret>, accepted: {})", self.accepted)
    }
}

/// What the client has once the server has proven itself.
#[derive(Debug)]
pub struct ClientSide {
    /// Whether the server has the nickname registered. If not, LOGIN must
    /// carry our token's verifier to register it [P-19].
    pub registered: bool,
    /// Tags the frames the client sends.
    pub sealer: Sealer,
    /// Checks the frames the server sends.
    pub opener: Opener,
    /// The server's ACCEPT was checked: without it, no `ClientSide`.
    _proven: Proven,
}

/// What the server has once the client has proven itself.
#[derive(Debug)]
pub struct ServerSide {
    /// The nickname exactly as HELLO carried it (not yet validated).
    pub nick: String,
    /// Whether the keys were derived with an owner token's verifier.
    pub registered: bool,
    /// Tags the frames the server sends.
    pub sealer: Sealer,
    /// Checks the frames the client sends.
    pub opener: Opener,
    /// The client's PROOF was checked: without it, no `ServerSide`.
    _proven: Proven,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<secret>)")
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opener(<secret>)")
    }
}

/// Timeouts surface as `TimedOut` or `WouldBlock` depending on the platform.
fn io_error(err: Error) -> Error {
    match err {
        Error::Io(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
            Error::HandshakeTimeout
        }
        other => other,
    }
}

/// Tells the caller's trace, if any, about a frame.
fn note(watch: &mut Option<Watch<'_>>, direction: Direction, frame: &[u8], verdict: Verdict<'_>) {
    if let Some(watch) = watch {
        watch(direction, frame, verdict);
    }
}

/// Reads one handshake frame and decides about it with `check`, which gets
/// its full bytes and the message; the trace sees the frame with the
/// decision (`✗` and the reason when `check` refuses it).
fn receive<S: Read, T>(
    stream: &mut S,
    watch: &mut Option<Watch<'_>>,
    check: impl FnOnce(&[u8], Handshake) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut frame = Vec::new();
    // SECURITY: handshake frames are small; a longer one is refused from its length prefix.
    if !read_frame(stream, MAX_HANDSHAKE_FRAME, &mut frame).map_err(io_error)? {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    let decided =
        Handshake::decode(&frame[LEN_PREFIX..]).map_err(Error::from).and_then(|message| check(&frame, message));
    match &decided {
        Ok(_) => note(watch, Direction::Received, &frame, Verdict::Verified),
        Err(err) => note(watch, Direction::Received, &frame, Verdict::Failed(err)),
    }
    decided
}

fn send<S: Write>(stream: &mut S, message: &Handshake, watch: &mut Option<Watch<'_>>) -> Result<Vec<u8>, Error> {
    let mut frame = Vec::new();
    message.encode(&mut frame);
    stream.write_all(&frame).map_err(|e| io_error(e.into()))?;
    note(watch, Direction::Sent, &frame, Verdict::Sealed);
    Ok(frame)
}

fn unexpected(message: &Handshake) -> Error {
    let kind = match message {
        Handshake::Hello { .. } => kind::HELLO,
        Handshake::Challenge { .. } => kind::CHALLENGE,
        Handshake::Proof { .. } => kind::PROOF,
        Handshake::Accept { .. } => kind::ACCEPT,
        Handshake::Fail { .. } => kind::FAIL,
    };
    ProtocolError::UnknownKind(kind).into()
}

/// Runs the client's side for `nick`, with the nickname's owner token if
/// this client has one; `watch`, if given, sees each frame (`--trace`).
/// Fails if the server cannot prove it holds the key (and, for a
/// registered nickname, the token's verifier) [P-9], and stops for good
/// [P-6] with:
/// - [`Error::NicknameOwned`] if the nickname is registered and our token
///   is missing, or not yet accepted and refused (so it is not ours);
/// - [`Error::TokenUnknown`] if the server calls the nickname unregistered
///   although it accepted our token before.
pub fn client_handshake<S: Read + Write>(
    stream: &mut S,
    key: &Key,
    nick: &str,
    token: Option<&OwnerToken>,
    mut watch: Option<Watch<'_>>,
) -> Result<ClientSide, Error> {
    let nonce_client = random_bytes::<NONCE_LEN>()?;
    let hello = Handshake::Hello { version: PROTOCOL_VERSION, nonce: nonce_client, nick: nick.into() };
    let hello = send(stream, &hello, &mut watch)?;
    let (challenge, registered) = receive(stream, &mut watch, |frame, message| match message {
        // SECURITY: an echoed nonce means our own HELLO came back to us.
        Handshake::Challenge { nonce, .. } if nonce == nonce_client => Err(ProtocolError::EqualNonces.into()),
        Handshake::Challenge { registered, .. } => match (registered, token) {
            (true, None) => Err(Error::NicknameOwned),
            // SECURITY: re-registering would hand the verifier to an impostor.
            (false, Some(OwnerToken { accepted: true, .. })) => Err(Error::TokenUnknown),
            _ => Ok((frame.to_vec(), registered)),
        },
        Handshake::Fail { reason } => Err(Error::Refused(reason)),
        other => Err(unexpected(&other)),
    })?;
    let transcript = auth::transcript_hash(&hello, &challenge);
    let verifier = token.filter(|_| registered).map(|owned| auth::token_verifier(&owned.token));
    let keys = SessionKeys::derive(key, verifier.as_ref(), &transcript);
    send(stream, &Handshake::Proof { tag: auth::proof(&keys.client_proof, &transcript) }, &mut watch)?;
    receive(stream, &mut watch, |_, message| match message {
        Handshake::Accept { tag } => match auth::verify_proof(&keys.server_proof, &transcript, &tag) {
            Some(proven) => Ok(ClientSide {
                registered,
                sealer: Sealer::new(&keys.client_to_server),
                opener: Opener::new(&keys.server_to_client),
                _proven: proven,
            }),
            None => Err(Error::ServerProofFailed),
        },
        // A token never accepted and refused: the nickname is someone else's
        // (our own registration would have made it work).
        Handshake::Fail { .. } if registered && token.is_some_and(|owned| !owned.accepted) => Err(Error::NicknameOwned),
        Handshake::Fail { reason } => Err(Error::Refused(reason)),
        other => Err(unexpected(&other)),
    })
}

/// Runs the server's side. `lookup` returns the stored token verifier of a
/// registered nickname; it is called only with a valid nickname. `watch`,
/// if given, sees each frame (`--trace`). Every failure the server can
/// name is sent as FAIL with a short reason (a wrong proof is only
/// "authentication failed"), and the error says which check failed.
pub fn server_handshake<S: Read + Write>(
    stream: &mut S,
    key: &Key,
    lookup: impl FnOnce(&str) -> Option<[u8; 32]>,
    mut watch: Option<Watch<'_>>,
) -> Result<ServerSide, Error> {
    let result = server_steps(stream, key, lookup, &mut watch);
    let reason = match &result {
        Ok(_) | Err(Error::Io(_)) | Err(Error::HandshakeTimeout) => None,
        Err(Error::Protocol(ProtocolError::UnknownKind(_))) => Some("unexpected frame in the handshake".into()),
        Err(Error::Protocol(ProtocolError::UnsupportedVersion { got })) => {
            Some(format!("unsupported protocol version {got}; this server speaks {PROTOCOL_VERSION}"))
        }
        Err(Error::BadNick(why)) => Some(format!("invalid nickname: {why}")),
        Err(Error::AuthFailed) => Some("authentication failed".into()),
        Err(other) => Some(format!("malformed handshake: {other}")),
    };
    if let Some(reason) = reason {
        let _ = send(stream, &Handshake::Fail { reason }, &mut watch);
    }
    result
}

fn server_steps<S: Read + Write>(
    stream: &mut S,
    key: &Key,
    lookup: impl FnOnce(&str) -> Option<[u8; 32]>,
    watch: &mut Option<Watch<'_>>,
) -> Result<ServerSide, Error> {
    let (hello, nonce_client, nick) = receive(stream, watch, |frame, message| match message {
        Handshake::Hello { version, .. } if version != PROTOCOL_VERSION => {
            Err(ProtocolError::UnsupportedVersion { got: version }.into())
        }
        Handshake::Hello { nonce, nick, .. } => {
            // SECURITY: the nickname is checked before any lookup, lock or log line uses it.
            validate_nick(&nick).map_err(Error::BadNick)?;
            Ok((frame.to_vec(), nonce, nick))
        }
        other => Err(unexpected(&other)),
    })?;
    let verifier = lookup(&nick);
    let nonce_server = random_bytes::<NONCE_LEN>()?;
    // SECURITY: a peer that sends our nonce back is reflecting frames.
    if nonce_server == nonce_client {
        return Err(ProtocolError::EqualNonces.into());
    }
    let registered = verifier.is_some();
    let challenge = send(stream, &Handshake::Challenge { nonce: nonce_server, registered }, watch)?;
    let transcript = auth::transcript_hash(&hello, &challenge);
    let keys = SessionKeys::derive(key, verifier.as_ref(), &transcript);
    let proven = receive(stream, watch, |_, message| match message {
        Handshake::Proof { tag } => auth::verify_proof(&keys.client_proof, &transcript, &tag).ok_or(Error::AuthFailed),
        other => Err(unexpected(&other)),
    })?;
    // SECURITY: the server proves itself only to a client that proved itself first.
    send(stream, &Handshake::Accept { tag: auth::proof(&keys.server_proof, &transcript) }, watch)?;
    Ok(ServerSide {
        nick,
        registered,
        sealer: Sealer::new(&keys.server_to_client),
        opener: Opener::new(&keys.client_to_server),
        _proven: proven,
    })
}
