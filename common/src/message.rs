//! The message kinds and their byte layouts.
//!
//! Integers are big-endian; a string is a `u16` byte length followed by that
//! many bytes of UTF-8; a flag is one byte, 0 or 1. Handshake messages
//! travel as plain frames whose body starts with the kind byte; every other
//! message is the payload of a sealed frame (see [`crate::auth`]). Decoding
//! checks every length against the bytes present and rejects trailing bytes.

use std::sync::Arc;

use crate::auth::{NONCE_LEN, TAG_LEN, Verified};
use crate::error::ProtocolError;
use crate::frame::push_frame;

/// Kind bytes. Handshake: 0x0_, client: 0x1_, server: 0x2_.
pub mod kind {
    /// Client → server, plain: version, nonce, nickname.
    pub const HELLO: u8 = 0x01;
    /// Server → client, plain: nonce, registered flag.
    pub const CHALLENGE: u8 = 0x02;
    /// Client → server, plain: the client's proof.
    pub const PROOF: u8 = 0x03;
    /// Server → client, plain: the server's proof.
    pub const ACCEPT: u8 = 0x04;
    /// Server → client, plain: the handshake failed, with a reason.
    pub const FAIL: u8 = 0x05;
    /// Client → server: log in, acknowledging everything up to an id.
    pub const LOGIN: u8 = 0x10;
    /// Client → server: a message to everyone or to one nickname.
    pub const SEND: u8 = 0x11;
    /// Client → server: every message up to an id has arrived.
    pub const ACK: u8 = 0x12;
    /// Client → server: keep-alive.
    pub const PING: u8 = 0x13;
    /// Server → client: logged in.
    pub const WELCOME: u8 = 0x20;
    /// Server → client: login refused; the session ends.
    pub const REJECT: u8 = 0x21;
    /// Server → client: part of the list of online users.
    pub const USERS: u8 = 0x22;
    /// Server → client: users came online.
    pub const JOINED: u8 = 0x23;
    /// Server → client: users went offline.
    pub const LEFT: u8 = 0x24;
    /// Server → client: a chat message.
    pub const MSG: u8 = 0x25;
    /// Server → client: a SEND is stored.
    pub const SENT: u8 = 0x26;
    /// Server → client: answer to PING.
    pub const PONG: u8 = 0x27;
    /// Server → client: something went wrong that does not end the session.
    pub const ERROR: u8 = 0x28;
    /// Server → client: a SEND was not stored for now; send it again later.
    pub const RETRY: u8 = 0x29;
    /// Server → client: messages were dropped from the mailbox.
    pub const DROPPED: u8 = 0x2A;
    /// Server → client: how many online users the list leaves out.
    pub const UNLISTED: u8 = 0x2B;
}

/// The handshake messages, sent as plain (untagged) frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The client opens: who it is and its fresh nonce.
    Hello { version: u8, nonce: [u8; NONCE_LEN], nick: String },
    /// The server's fresh nonce, and whether the nickname has an owner.
    Challenge { nonce: [u8; NONCE_LEN], registered: bool },
    /// The client's proof of the key (and token).
    Proof { tag: [u8; TAG_LEN] },
    /// The server's proof; after it both sides use sealed frames.
    Accept { tag: [u8; TAG_LEN] },
    /// The server gives up on the handshake (unauthenticated, informational).
    Fail { reason: String },
}

/// Messages a client sends after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMsg {
    /// First message of a session: the highest message id already received,
    /// and, only when the CHALLENGE said the nickname is unregistered, the
    /// verifier of the owner token this client made to register it.
    Login { last_seen: u64, register: Option<[u8; 32]> },
    /// A message; `to` is a nickname, or empty for everyone.
    Send { client_id: u64, to: String, text: String },
    /// Every message with an id up to `up_to` has arrived.
    Ack { up_to: u64 },
    /// Keep-alive; the server answers PONG.
    Ping,
}

/// A chat message as the server delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMsg {
    /// Server-assigned, strictly increasing across the server.
    pub id: u64,
    /// When the server stored it, in Unix milliseconds.
    pub time_ms: u64,
    /// The sender's nickname.
    pub from: String,
    /// The recipient's nickname, or empty for everyone.
    pub to: String,
    /// The text.
    pub text: String,
}

/// Messages the server sends after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerMsg {
    /// Logged in (and, if LOGIN carried a verifier, registered).
    Welcome { nick: String, server_time_ms: u64 },
    /// Login refused (invalid or taken nickname); the server closes.
    Reject { reason: String },
    /// A chunk of the online list; `last` marks the final chunk.
    Users { last: bool, nicks: Vec<String> },
    /// Users came online, in order (a server may gather several).
    Joined { nicks: Vec<String> },
    /// Users went offline, in order.
    Left { nicks: Vec<String> },
    /// A chat message.
    Msg(ChatMsg),
    /// The SEND with `client_id` is stored as message `id`.
    Sent { client_id: u64, id: u64 },
    /// Answer to PING.
    Pong,
    /// A problem that does not end the session; `client_id` names the SEND
    /// it is about, or is 0.
    Error { client_id: u64, reason: String },
    /// The SEND with `client_id` was not stored for now (the server's
    /// storage is full, or a limit applies), nor will any later SEND of
    /// this session be until this one is sent again [P-27].
    Retry { client_id: u64, reason: String },
    /// `count` messages were dropped unread from this user's mailbox
    /// since the user was last told, because it held `limit` [P-25].
    Dropped { count: u64, limit: u64 },
    /// `count` users are online but not in the list, which names at most
    /// `--max-listed` [P-28]; replaces the count told before.
    Unlisted { count: u64 },
}

impl ChatMsg {
    /// Appends the MSG layout: id, time, from, to, text.
    pub fn write(&self, out: &mut Vec<u8>) {
        put_u64(out, self.id);
        put_u64(out, self.time_ms);
        put_str(out, &self.from);
        put_str(out, &self.to);
        put_str(out, &self.text);
    }

    /// Reads the MSG layout (for [`ServerMsg::decode`], and for the
    /// server's journal, which stores MSG payloads inside its own tagged
    /// records).
    pub fn read(fields: &mut Fields<'_>) -> Result<Self, ProtocolError> {
        Ok(ChatMsg {
            id: fields.u64("id")?,
            time_ms: fields.u64("time_ms")?,
            from: fields.string("from")?,
            to: fields.string("to")?,
            text: fields.string("text")?,
        })
    }
}

/// A server message encoded once, ready to be sealed for any number of
/// connections: a public message's payload is shared by all its recipients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The kind byte.
    pub kind: u8,
    /// The payload (what follows the kind byte).
    pub payload: Arc<[u8]>,
}

impl Outgoing {
    /// Encodes `msg` once.
    pub fn new(msg: &ServerMsg) -> Self {
        let mut payload = Vec::new();
        msg.encode_payload(&mut payload);
        Outgoing { kind: msg.kind(), payload: payload.into() }
    }
}

/// Describes a frame's kind and payload in words, for tools that show
/// traffic they cannot verify (the attack lab's proxy). It returns text,
/// not a message, so that nothing can act on a frame whose tag was not
/// checked.
pub fn describe_unverified(kind: u8, payload: &[u8]) -> String {
    let decoded = if kind < kind::WELCOME {
        ClientMsg::read(kind, payload).map(|msg| format!("{msg:?}"))
    } else {
        ServerMsg::read(kind, payload).map(|msg| format!("{msg:?}"))
    };
    decoded.unwrap_or_else(|err| format!("kind 0x{kind:02x}, {} bytes: {err}", payload.len()))
}

/// Appends a big-endian `u64`.
pub fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a string, cut at a character boundary if it exceeds the `u16`
/// length field (callers validate lengths long before this).
pub fn put_str(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(u16::MAX as usize);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&text.as_bytes()[..end]);
}

/// Appends a USERS payload from borrowed names, so that a server can build
/// one from its whole online list without cloning every name.
pub fn put_users<'a>(out: &mut Vec<u8>, last: bool, nicks: impl ExactSizeIterator<Item = &'a str>) {
    out.push(u8::from(last));
    put_nicks(out, nicks);
}

/// Appends a list of nicknames: a `u16` count, then each as a string (the
/// payload of JOINED and LEFT, and the rest of USERS).
pub fn put_nicks<'a>(out: &mut Vec<u8>, nicks: impl ExactSizeIterator<Item = &'a str>) {
    // Senders chunk the list well below u16::MAX names per frame.
    out.extend_from_slice(&(nicks.len().min(u16::MAX as usize) as u16).to_be_bytes());
    for nick in nicks.take(u16::MAX as usize) {
        put_str(out, nick);
    }
}

/// Reads fields off the front of a payload, naming the field that is short.
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// Starts reading `payload`.
    pub fn new(payload: &'a [u8]) -> Self {
        Fields { rest: payload }
    }

    /// The next `len` bytes.
    pub fn bytes(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], ProtocolError> {
        if self.rest.len() < len {
            return Err(ProtocolError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    /// A byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A flag byte, 0 or 1.
    pub fn flag(&mut self, field: &'static str) -> Result<bool, ProtocolError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(ProtocolError::BadFlag { field, value }),
        }
    }

    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self, field: &'static str) -> Result<String, ProtocolError> {
        let len = self.u16(field)? as usize;
        let bytes = self.bytes(len, field)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(ProtocolError::InvalidUtf8 { field }),
        }
    }

    /// A `u16` count and that many strings. No pre-allocation from the
    /// count: each name must actually be present.
    pub fn nicks(&mut self) -> Result<Vec<String>, ProtocolError> {
        let count = self.u16("count")?;
        (0..count).map(|_| self.string("nicks")).collect()
    }

    /// Succeeds only if nothing is left.
    pub fn finish(self) -> Result<(), ProtocolError> {
        match self.rest.len() {
            0 => Ok(()),
            count => Err(ProtocolError::TrailingBytes { count }),
        }
    }
}

impl Handshake {
    /// Appends this message to `out` as one plain frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(64);
        match self {
            Handshake::Hello { version, nonce, nick } => {
                body.push(kind::HELLO);
                body.push(*version);
                body.extend_from_slice(nonce);
                put_str(&mut body, nick);
            }
            Handshake::Challenge { nonce, registered } => {
                body.push(kind::CHALLENGE);
                body.extend_from_slice(nonce);
                body.push(u8::from(*registered));
            }
            Handshake::Proof { tag } => {
                body.push(kind::PROOF);
                body.extend_from_slice(tag);
            }
            Handshake::Accept { tag } => {
                body.push(kind::ACCEPT);
                body.extend_from_slice(tag);
            }
            Handshake::Fail { reason } => {
                body.push(kind::FAIL);
                put_str(&mut body, reason);
            }
        }
        push_frame(out, &body);
    }

    /// Decodes a plain frame's body (without the length prefix).
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let mut fields = Fields::new(body);
        let message = match fields.u8("kind")? {
            kind::HELLO => Handshake::Hello {
                version: fields.u8("version")?,
                nonce: fields.array("nonce")?,
                nick: fields.string("nick")?,
            },
            kind::CHALLENGE => {
                Handshake::Challenge { nonce: fields.array("nonce")?, registered: fields.flag("registered")? }
            }
            kind::PROOF => Handshake::Proof { tag: fields.array("tag")? },
            kind::ACCEPT => Handshake::Accept { tag: fields.array("tag")? },
            kind::FAIL => Handshake::Fail { reason: fields.string("reason")? },
            other => return Err(ProtocolError::UnknownKind(other)),
        };
        fields.finish()?;
        Ok(message)
    }
}

impl ClientMsg {
    /// The kind byte of this message.
    pub fn kind(&self) -> u8 {
        match self {
            ClientMsg::Login { .. } => kind::LOGIN,
            ClientMsg::Send { .. } => kind::SEND,
            ClientMsg::Ack { .. } => kind::ACK,
            ClientMsg::Ping => kind::PING,
        }
    }

    /// Appends the payload (what follows the kind byte) to `out`.
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            ClientMsg::Login { last_seen, register } => {
                put_u64(out, *last_seen);
                out.push(u8::from(register.is_some()));
                if let Some(verifier) = register {
                    out.extend_from_slice(verifier);
                }
            }
            ClientMsg::Send { client_id, to, text } => {
                put_u64(out, *client_id);
                put_str(out, to);
                put_str(out, text);
            }
            ClientMsg::Ack { up_to } => put_u64(out, *up_to),
            ClientMsg::Ping => {}
        }
    }

    /// Decodes a sealed frame that [`crate::auth::Opener::open`] verified.
    pub fn decode(frame: &Verified<'_>) -> Result<Self, ProtocolError> {
        Self::read(frame.kind(), frame.payload())
    }

    /// Decodes a payload whose tag nobody may have checked: only for
    /// text that shows traffic ([`describe_unverified`], [`crate::trace`]).
    pub(crate) fn read(kind: u8, payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut fields = Fields::new(payload);
        let message = match kind {
            kind::LOGIN => ClientMsg::Login {
                last_seen: fields.u64("last_seen")?,
                register: if fields.flag("register")? { Some(fields.array("verifier")?) } else { None },
            },
            kind::SEND => ClientMsg::Send {
                client_id: fields.u64("client_id")?,
                to: fields.string("to")?,
                text: fields.string("text")?,
            },
            kind::ACK => ClientMsg::Ack { up_to: fields.u64("up_to")? },
            kind::PING => ClientMsg::Ping,
            other => return Err(ProtocolError::UnknownKind(other)),
        };
        fields.finish()?;
        Ok(message)
    }
}

impl ServerMsg {
    /// The kind byte of this message.
    pub fn kind(&self) -> u8 {
        match self {
            ServerMsg::Welcome { .. } => kind::WELCOME,
            ServerMsg::Reject { .. } => kind::REJECT,
            ServerMsg::Users { .. } => kind::USERS,
            ServerMsg::Joined { .. } => kind::JOINED,
            ServerMsg::Left { .. } => kind::LEFT,
            ServerMsg::Msg(_) => kind::MSG,
            ServerMsg::Sent { .. } => kind::SENT,
            ServerMsg::Pong => kind::PONG,
            ServerMsg::Error { .. } => kind::ERROR,
            ServerMsg::Retry { .. } => kind::RETRY,
            ServerMsg::Dropped { .. } => kind::DROPPED,
            ServerMsg::Unlisted { .. } => kind::UNLISTED,
        }
    }

    /// Appends the payload (what follows the kind byte) to `out`.
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            ServerMsg::Welcome { nick, server_time_ms } => {
                put_str(out, nick);
                put_u64(out, *server_time_ms);
            }
            ServerMsg::Reject { reason } => put_str(out, reason),
            ServerMsg::Users { last, nicks } => put_users(out, *last, nicks.iter().map(String::as_str)),
            ServerMsg::Joined { nicks } | ServerMsg::Left { nicks } => put_nicks(out, nicks.iter().map(String::as_str)),
            ServerMsg::Msg(msg) => msg.write(out),
            ServerMsg::Sent { client_id, id } => {
                put_u64(out, *client_id);
                put_u64(out, *id);
            }
            ServerMsg::Pong => {}
            ServerMsg::Error { client_id, reason } | ServerMsg::Retry { client_id, reason } => {
                put_u64(out, *client_id);
                put_str(out, reason);
            }
            ServerMsg::Dropped { count, limit } => {
                put_u64(out, *count);
                put_u64(out, *limit);
            }
            ServerMsg::Unlisted { count } => put_u64(out, *count),
        }
    }

    /// Decodes a sealed frame that [`crate::auth::Opener::open`] verified.
    pub fn decode(frame: &Verified<'_>) -> Result<Self, ProtocolError> {
        Self::read(frame.kind(), frame.payload())
    }

    /// Decodes a payload whose tag nobody may have checked: only for
    /// text that shows traffic ([`describe_unverified`], [`crate::trace`]).
    pub(crate) fn read(kind: u8, payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut fields = Fields::new(payload);
        let message = match kind {
            kind::WELCOME => {
                ServerMsg::Welcome { nick: fields.string("nick")?, server_time_ms: fields.u64("server_time_ms")? }
            }
            kind::REJECT => ServerMsg::Reject { reason: fields.string("reason")? },
            kind::USERS => ServerMsg::Users { last: fields.flag("last")?, nicks: fields.nicks()? },
            kind::JOINED => ServerMsg::Joined { nicks: fields.nicks()? },
            kind::LEFT => ServerMsg::Left { nicks: fields.nicks()? },
            kind::MSG => ServerMsg::Msg(ChatMsg::read(&mut fields)?),
            kind::SENT => ServerMsg::Sent { client_id: fields.u64("client_id")?, id: fields.u64("id")? },
            kind::PONG => ServerMsg::Pong,
            kind::ERROR => ServerMsg::Error { client_id: fields.u64("client_id")?, reason: fields.string("reason")? },
            kind::RETRY => ServerMsg::Retry { client_id: fields.u64("client_id")?, reason: fields.string("reason")? },
            kind::DROPPED => ServerMsg::Dropped { count: fields.u64("count")?, limit: fields.u64("limit")? },
            kind::UNLISTED => ServerMsg::Unlisted { count: fields.u64("count")? },
            other => return Err(ProtocolError::UnknownKind(other)),
        };
        fields.finish()?;
        Ok(message)
    }
}
