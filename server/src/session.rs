//! One connection's life on its own thread: the handshake under one
//! deadline, LOGIN, then a loop that reads a frame, verifies it, and acts
//! on it through the shared state. Replies go through the connection's
//! [`Conn`] to delivery, so this thread never writes after login and never
//! waits for a slow reader.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use chat_common::auth::{Opener, Sealer};
use chat_common::frame::{Deadline, read_frame};
use chat_common::handshake::server_handshake;
use chat_common::log::{Level, log, unix_ms};
use chat_common::message::{ClientMsg, Outgoing, ServerMsg};
use chat_common::validate::{validate_nick, validate_text};
use chat_common::{Error, ProtocolError};

use crate::delivery::{Conn, POOL_WRITE};
use crate::shared::Shared;
use crate::slots::Slot;
use crate::state::Stored;

/// Bytes read from the socket at a time. One page: measured, 64 KiB made
/// no difference to throughput (a read costs little next to a wake-up),
/// but every idle connection kept it.
pub const READ_BUFFER: usize = 4 * 1024;

/// Reads, verifies and decodes one client frame; `Ok(None)` on a clean close.
fn read_msg<R: Read>(
    reader: &mut R,
    opener: &mut Opener,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<Option<ClientMsg>, Error> {
    if !read_frame(reader, max, buf)? {
        return Ok(None);
    }
    // SECURITY: a frame reaches the decoder only as `Verified`: its tag and sequence number checked first.
    let frame = opener.open(buf)?;
    Ok(Some(ClientMsg::decode(&frame)?))
}

/// Why reading stopped, in words for the log.
fn describe(err: &Error, shared: &Shared) -> String {
    match err {
        Error::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            format!("idle for {:?}", shared.config.idle_timeout)
        }
        Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => "closed in the middle of a frame".into(),
        Error::Protocol(p) => format!("frame rejected: {p}"),
        other => other.to_string(),
    }
}

/// Serves one accepted connection to the end.
pub fn serve(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr, id: u64, accepted: Instant, slot: Slot) {
    log(Level::Info, peer, format_args!("connection opened"));
    let _ = stream.set_nodelay(true);
    let mut claimed = String::new();
    let handshake = {
        let mut timed = Deadline { stream: &stream, deadline: accepted + shared.config.handshake_timeout };
        server_handshake(&mut timed, &shared.key, |nick| {
            claimed = nick.to_string();
            shared.state().verifier(nick)
        })
    };
    drop(slot);
    let side = match handshake {
        Ok(side) => side,
        Err(err) => {
            let nick = if claimed.is_empty() { String::new() } else { format!(" as {claimed:?}") };
            log(Level::Warn, peer, format_args!("handshake failed{nick}: {err}"));
            return;
        }
    };
    let timeouts = stream
        .set_read_timeout(Some(shared.config.idle_timeout))
        .and_then(|()| stream.set_write_timeout(Some(POOL_WRITE)));
    if let Err(err) = timeouts {
        log(Level::Error, peer, format_args!("cannot set socket timeouts: {err}"));
        return;
    }
    // One descriptor serves the reader, the writer and `Conn::close`
    // (`&TcpStream` reads and writes): `try_clone` would cost two more per
    // connection, and 10,000 connections must fit a 20,000-descriptor limit.
    let stream = Arc::new(stream);
    let mut reader = BufReader::with_capacity(READ_BUFFER, &*stream);
    let mut opener = side.opener;
    let mut buf = Vec::new();
    let max = shared.config.max_frame;
    let (last_seen, register) = match read_msg(&mut reader, &mut opener, max, &mut buf) {
        Ok(Some(ClientMsg::Login { last_seen, register })) => (last_seen, register),
        Ok(Some(other)) => return log(Level::Warn, peer, format_args!("closed: expected LOGIN, got {other:?}")),
        Ok(None) => return log(Level::Info, peer, format_args!("closed before LOGIN")),
        Err(err) => return log(Level::Warn, peer, format_args!("closed before LOGIN: {}", describe(&err, shared))),
    };
    let mut sealer = side.sealer;
    let conn = Conn::new(id, &side.nick, stream.clone(), shared.config.max_control);
    // SECURITY: the nickname is checked before it is looked up, registered or delivered to.
    let login = validate_nick(&side.nick)
        .and_then(|()| shared.state().login(&side.nick, side.registered, last_seen, register, conn.clone(), unix_ms()));
    let login = match login {
        Ok(login) => login,
        Err(reason) => return reject(&stream, &mut sealer, peer, &side.nick, reason),
    };
    // A registration must be on disk before WELCOME confirms it.
    if login.registered_now {
        shared.commit();
    }
    if let Some(old) = &login.replaced {
        old.close("replaced by a newer login");
    }
    for frame in login.frames {
        conn.push(frame);
    }
    let nick = login.nick;
    let how = match (login.registered_now, login.replaced.is_some()) {
        (true, _) => " (registered a new nickname)",
        (false, true) => " (took over an older connection)",
        (false, false) => "",
    };
    log(Level::Info, &nick, format_args!("logged in from {peer}{how}"));

    conn.start(shared.writers.clone(), sealer);
    let reason = read_loop(shared, &nick, &conn, &mut reader, &mut opener);
    shared.state().logout(&nick, &conn);
    conn.close(&reason);
    let reason = conn.closed_because().unwrap_or(reason);
    log(Level::Info, &nick, format_args!("disconnected ({peer}): {reason}"));
}

/// Sends REJECT on the still writer-less connection and logs it.
fn reject(mut stream: &TcpStream, sealer: &mut Sealer, peer: SocketAddr, nick: &str, reason: String) {
    log(Level::Warn, peer, format_args!("login as {nick:?} rejected: {reason}"));
    let msg = ServerMsg::Reject { reason };
    let mut payload = Vec::new();
    msg.encode_payload(&mut payload);
    let mut frame = Vec::new();
    sealer.seal(msg.kind(), &payload, &mut frame);
    let _ = stream.write_all(&frame);
}

/// Reads frames until the connection ends; returns why it ended. SENDs
/// that arrived together are made durable together: the journal is
/// flushed only when no further frame is already buffered.
fn read_loop(
    shared: &Shared,
    nick: &str,
    conn: &Arc<Conn>,
    reader: &mut BufReader<&TcpStream>,
    opener: &mut Opener,
) -> String {
    let mut buf = Vec::new();
    let mut staged = false;
    loop {
        if staged && reader.buffer().is_empty() {
            shared.commit();
            staged = false;
        }
        let msg = match read_msg(reader, opener, shared.config.max_frame, &mut buf) {
            Ok(Some(msg)) => msg,
            Ok(None) => return "closed by the client".into(),
            Err(err) => {
                let reason = describe(&err, shared);
                if matches!(err, Error::Protocol(_)) {
                    log(Level::Warn, nick, format_args!("{reason}"));
                }
                return reason;
            }
        };
        let reply = match msg {
            ClientMsg::Send { client_id, to, text } => {
                let (reply, new) = handle_send(shared, nick, client_id, &to, &text);
                staged |= new;
                reply
            }
            ClientMsg::Ack { up_to } => {
                shared.state().ack(nick, up_to);
                None
            }
            ClientMsg::Ping => Some(ServerMsg::Pong),
            ClientMsg::Login { .. } => {
                let reason = format!("frame rejected: {}", ProtocolError::UnknownKind(msg.kind()));
                log(Level::Warn, nick, format_args!("{reason} (LOGIN after login)"));
                return reason;
            }
        };
        if reply.is_some_and(|reply| !conn.push(Outgoing::new(&reply))) {
            return conn.closed_because().unwrap_or_default();
        }
    }
}

/// Validates and stages one SEND. Returns the immediate reply, if any (SENT
/// for a new message comes at publication), and whether it staged one.
fn handle_send(shared: &Shared, nick: &str, client_id: u64, to: &str, text: &str) -> (Option<ServerMsg>, bool) {
    // SECURITY: a text is checked (length, characters) before it is stored or delivered.
    if let Err(reason) = validate_text(text, shared.config.max_text) {
        log(Level::Warn, nick, format_args!("message {client_id} refused: {reason}"));
        return (Some(ServerMsg::Error { client_id, reason }), false);
    }
    let stored = shared.state().send(nick, client_id, to, text, unix_ms());
    match stored {
        Stored::New { id, recipients } => {
            let to_whom = if to.is_empty() { "*" } else { to };
            let shown = if shared.config.verbose { format!(": {text:?}") } else { String::new() };
            let bytes = text.len();
            log(
                Level::Info,
                nick,
                format_args!("message {id} to {to_whom} ({bytes} bytes, {recipients} mailboxes){shown}"),
            );
            (None, true)
        }
        Stored::Duplicate { id } => (Some(ServerMsg::Sent { client_id, id }), false),
        Stored::Staged => (None, false),
        Stored::UnknownRecipient => {
            log(Level::Warn, nick, format_args!("message {client_id} refused: no such user {to:?}"));
            (Some(ServerMsg::Error { client_id, reason: format!("no such user: {to}") }), false)
        }
    }
}
