//! One connection to the server, run on its own thread: connect, do the
//! handshake, then read, verify and decode frames until the connection
//! ends. It reports everything through a callback and writes nothing after
//! the handshake: the session thread writes on a clone of the socket.
//!
//! Doing the connect and handshake here, not on the session thread, keeps
//! the session answering the UI while a server is slow to answer.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Instant;

use chat_common::auth::{Key, Sealer};
use chat_common::frame::{Deadline, read_frame};
use chat_common::handshake::{OwnerToken, client_handshake};
use chat_common::message::ServerMsg;
use chat_common::{Error, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_FRAME_LEN};

/// What a connection thread reports, in this order: `Connected`, `Ready`,
/// any number of `Message`s, and always one `Down` at the end (unless
/// nobody listens any more).
pub enum LinkEvent {
    /// TCP is up and the handshake is running; this clone lets the session
    /// cut the connection if it stops meanwhile.
    Connected(TcpStream),
    /// The server proved itself; frames to it are sealed with this. The
    /// flag says whether it has the nickname registered already.
    Ready(Sealer, bool),
    /// A verified message from the server.
    Message(ServerMsg),
    /// The connection ended or never came up. `fatal`: retrying cannot
    /// help (the nickname belongs to someone else, or the server lost it).
    Down { reason: String, fatal: bool },
}

/// Whom to connect to, as whom.
#[derive(Clone)]
pub struct Dial {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The shared key.
    pub key: Key,
    /// Our nickname.
    pub nick: String,
    /// The nickname's owner token, made by this client before its first
    /// login; only its verifier ever leaves the client, once.
    pub token: OwnerToken,
}

/// Runs one connection to its end. `report` returns false once nobody
/// listens, and the thread then stops.
pub fn run(dial: Dial, report: impl Fn(LinkEvent) -> bool) {
    let (reason, fatal) = connect_and_read(&dial, &report);
    report(LinkEvent::Down { reason, fatal });
}

fn connect(dial: &Dial, deadline: Instant) -> io::Result<TcpStream> {
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (dial.host.as_str(), dial.port).to_socket_addrs()? {
        let time_left = deadline.saturating_duration_since(Instant::now());
        if time_left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match TcpStream::connect_timeout(&addr, time_left) {
            Ok(stream) => {
                // Chat frames are small and wanted now, not batched by Nagle.
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(err) => last_error = err,
        }
    }
    Err(last_error)
}

/// Why the handshake failed, in words for the user, and whether it is final.
fn handshake_failure(err: Error) -> (String, bool) {
    match err {
        Error::NicknameOwned | Error::TokenUnknown => (err.to_string(), true),
        Error::ServerProofFailed => (format!("fake server: {err}"), false),
        Error::Refused(reason) if reason == "authentication failed" => {
            (format!("server refused: {reason} (is your key file the server's?)"), false)
        }
        Error::Io(err) => (format!("connection lost during the handshake: {err}"), false),
        Error::Protocol(err) => (format!("bad handshake from the server: {err}"), false),
        other => (other.to_string(), false),
    }
}

fn connect_and_read(dial: &Dial, report: &impl Fn(LinkEvent) -> bool) -> (String, bool) {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let stream = match connect(dial, deadline) {
        Ok(stream) => stream,
        Err(err) => return (format!("cannot connect to {}:{}: {err}", dial.host, dial.port), false),
    };
    let clone = match stream.try_clone() {
        Ok(clone) => clone,
        Err(err) => return (format!("cannot use the connection: {err}"), false),
    };
    if !report(LinkEvent::Connected(clone)) {
        return ("stopped".into(), false);
    }
    let mut timed = Deadline { stream: &stream, deadline };
    let side = match client_handshake(&mut timed, &dial.key, &dial.nick, Some(&dial.token)) {
        Ok(side) => side,
        Err(err) => return handshake_failure(err),
    };
    // [P-26] A server that is silent this long is gone; we PING well before.
    if let Err(err) = stream.set_read_timeout(Some(IDLE_TIMEOUT)) {
        return (format!("cannot use the connection: {err}"), false);
    }
    if !report(LinkEvent::Ready(side.sealer, side.registered)) {
        return ("stopped".into(), false);
    }
    let mut opener = side.opener;
    let mut frame = Vec::new();
    loop {
        match read_frame(&mut &stream, MAX_FRAME_LEN, &mut frame) {
            Ok(true) => {}
            Ok(false) => return ("the server closed the connection".into(), false),
            Err(Error::Io(err)) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return (format!("nothing heard from the server for {} s", IDLE_TIMEOUT.as_secs()), false);
            }
            Err(err) => return (format!("connection lost: {err}"), false),
        }
        // SECURITY: [P-13] verified before any field is looked at; a bad frame ends the connection.
        let message = opener.open(&frame).and_then(|verified| ServerMsg::decode(&verified));
        let message = match message {
            Ok(message) => message,
            Err(err) => return (format!("bad frame from the server: {err}"), false),
        };
        if !report(LinkEvent::Message(message)) {
            return ("stopped".into(), false);
        }
    }
}
