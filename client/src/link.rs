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
use chat_common::trace::{Direction, Verdict};
use chat_common::{Error, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_FRAME_LEN};

use crate::trace::{TracedFrame, Tracer};
use crate::trouble::{Rejection, Trouble, Unreachable, plain_io};

/// What a connection thread reports, in this order: `Connected`, `Ready`,
/// any number of `Message`s, and always one `Down` or `Refused` at the end
/// (unless nobody listens any more); while tracing, a `Frame` before the
/// report each frame leads to.
pub enum LinkEvent {
    /// TCP is up and the handshake is running; this clone lets the session
    /// cut the connection if it stops meanwhile.
    Connected(TcpStream),
    /// The server proved itself; frames to it are sealed with this. The
    /// flag says whether it has the nickname registered already.
    Ready(Sealer, bool),
    /// A verified message from the server.
    Message(ServerMsg),
    /// The connection ended or never came up; the client tries again.
    Down(Trouble),
    /// Retrying cannot help: the nickname belongs to someone else, or the
    /// server lost it.
    Refused(Rejection),
    /// A frame, while tracing is on; before the event it led to.
    Frame(TracedFrame),
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
pub fn run(dial: Dial, tracer: Tracer, report: impl Fn(LinkEvent) -> bool) {
    let end = connect_and_read(&dial, &tracer, &report);
    report(end);
}

/// `host:port`, with brackets around an IPv6 address.
pub fn server_label(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Connects to the first of the host's addresses that answers.
fn connect(dial: &Dial, deadline: Instant) -> Result<TcpStream, Unreachable> {
    let addrs = (dial.host.as_str(), dial.port).to_socket_addrs().map_err(|_| Unreachable::UnknownHost)?;
    let mut last_error = Unreachable::UnknownHost;
    for addr in addrs {
        let time_left = deadline.saturating_duration_since(Instant::now());
        if time_left.is_zero() {
            return Err(Unreachable::TimedOut);
        }
        match TcpStream::connect_timeout(&addr, time_left) {
            // Chat frames are small and wanted now, not batched by Nagle.
            Ok(stream) => return stream.set_nodelay(true).map(|()| stream).map_err(|err| Unreachable::from_io(&err)),
            Err(err) => last_error = Unreachable::from_io(&err),
        }
    }
    Err(last_error)
}

/// Why the handshake failed, in words for the user; `Refused` when final.
fn handshake_failure(err: Error) -> LinkEvent {
    let trouble = match err {
        Error::NicknameOwned => return LinkEvent::Refused(Rejection::NicknameOwned),
        Error::TokenUnknown => return LinkEvent::Refused(Rejection::TokenUnknown),
        Error::ServerProofFailed => Trouble::FakeServer,
        Error::Refused(reason) if reason == "authentication failed" => Trouble::KeyRefused,
        Error::Refused(reason) => Trouble::Refused(reason),
        Error::Io(err) => Trouble::Handshake(format!("connection lost: {}", plain_io(&err))),
        Error::HandshakeTimeout => {
            Trouble::Handshake(format!("the server did not finish it within {} s", HANDSHAKE_TIMEOUT.as_secs()))
        }
        Error::Protocol(err) => Trouble::Handshake(format!("bad handshake from the server: {err}")),
        other => Trouble::Handshake(other.to_string()),
    };
    LinkEvent::Down(trouble)
}

fn connect_and_read(dial: &Dial, tracer: &Tracer, report: &impl Fn(LinkEvent) -> bool) -> LinkEvent {
    let stopped = || LinkEvent::Down(Trouble::Local("stopped".into()));
    let cannot_use = |err: io::Error| LinkEvent::Down(Trouble::Local(format!("cannot use the connection: {err}")));
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let stream = match connect(dial, deadline) {
        Ok(stream) => stream,
        Err(cause) => {
            return LinkEvent::Down(Trouble::Unreachable { server: server_label(&dial.host, dial.port), cause });
        }
    };
    let clone = match stream.try_clone() {
        Ok(clone) => clone,
        Err(err) => return cannot_use(err),
    };
    if !report(LinkEvent::Connected(clone)) {
        return stopped();
    }
    let mut timed = Deadline { stream: &stream, deadline };
    let mut watch = |direction, frame: &[u8], verdict: Verdict<'_>| {
        if let Some(traced) = tracer.frame(direction, frame, true, verdict) {
            report(LinkEvent::Frame(traced));
        }
    };
    let side = match client_handshake(&mut timed, &dial.key, &dial.nick, Some(&dial.token), Some(&mut watch)) {
        Ok(side) => side,
        Err(err) => return handshake_failure(err),
    };
    // [P-26] A server that is silent this long is gone; we PING well before.
    if let Err(err) = stream.set_read_timeout(Some(IDLE_TIMEOUT)) {
        return cannot_use(err);
    }
    if !report(LinkEvent::Ready(side.sealer, side.registered)) {
        return stopped();
    }
    let mut opener = side.opener;
    let mut frame = Vec::new();
    loop {
        match read_frame(&mut &stream, MAX_FRAME_LEN, &mut frame) {
            Ok(true) => {}
            Ok(false) => return LinkEvent::Down(Trouble::Closed),
            Err(Error::Io(err)) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return LinkEvent::Down(Trouble::Silent { secs: IDLE_TIMEOUT.as_secs() });
            }
            Err(Error::Io(err)) => return LinkEvent::Down(Trouble::Lost(plain_io(&err))),
            Err(err) => return LinkEvent::Down(Trouble::BadFrame(err.to_string())),
        }
        // SECURITY: [P-13] verified before any field is looked at; a bad frame ends the connection.
        let opened = opener.open(&frame);
        if tracer.is_on() {
            let verdict = opened.as_ref().map_or_else(|err| Verdict::Failed(err), |_| Verdict::Verified);
            if let Some(traced) = tracer.frame(Direction::Received, &frame, false, verdict) {
                report(LinkEvent::Frame(traced));
            }
        }
        let message = opened.and_then(|verified| ServerMsg::decode(&verified));
        let message = match message {
            Ok(message) => message,
            Err(err) => return LinkEvent::Down(Trouble::BadFrame(err.to_string())),
        };
        if !report(LinkEvent::Message(message)) {
            return stopped();
        }
    }
}
