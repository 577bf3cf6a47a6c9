//! One connection's life on its own thread: the handshake and LOGIN under
//! one deadline, then a loop that reads a frame, verifies it, and acts on
//! it through the shared state. Replies go through the connection's
//! [`Conn`] to delivery, so this thread never writes after login and never
//! waits for a slow reader.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_common::auth::{Opener, Sealer};
use chat_common::frame::{Deadline, read_frame};
use chat_common::handshake::server_handshake;
use chat_common::log::{Clip, Level, log, unix_ms};
use chat_common::message::{ClientMsg, Handshake, Outgoing, ServerMsg, kind};
use chat_common::trace::{Direction, Verdict, Watch};
use chat_common::validate::{validate_nick, validate_text};
use chat_common::{Error, ProtocolError};

use crate::delivery::{Conn, POOL_WRITE};
use crate::shared::Shared;
use crate::slots::{Slot, address_key};
use crate::state::{LoginRequest, Stored};
use crate::trace::Tracer;

/// Bytes read from the socket at a time. One page: measured, 64 KiB made
/// no difference to throughput (a read costs little next to a wake-up),
/// but every idle connection kept it.
pub const READ_BUFFER: usize = 4 * 1024;

/// Where `--trace` shows a connection's sealed frames: the tracer, and the
/// nickname; `None` when this connection is not traced.
type Traced<'a> = Option<(&'a Tracer, &'a str)>;

/// Reads, verifies and decodes one client frame; `Ok(None)` on a clean close.
fn read_msg<R: Read>(
    reader: &mut R,
    opener: &mut Opener,
    max: usize,
    buf: &mut Vec<u8>,
    trace: Traced<'_>,
) -> Result<Option<ClientMsg>, Error> {
    if !read_frame(reader, max, buf)? {
        return Ok(None);
    }
    // SECURITY: a frame reaches the decoder only as `Verified`: its tag and sequence number checked first.
    let opened = opener.open(buf);
    if let Some((tracer, nick)) = trace {
        let verdict = match &opened {
            Ok(_) => Verdict::Verified,
            Err(err) => Verdict::Failed(err),
        };
        tracer.received(nick, buf, verdict);
    }
    Ok(Some(ClientMsg::decode(&opened?)?))
}

/// Why reading stopped, in words for the log.
fn describe(err: &Error, idle: Duration) -> String {
    match err {
        Error::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            format!("idle for {idle:?}")
        }
        Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => "closed in the middle of a frame".into(),
        Error::Protocol(p) => format!("frame rejected: {p}"),
        other => other.to_string(),
    }
}

/// Serves one accepted connection to the end. `handshaking` is its unit of
/// the mid-handshake limit, held until LOGIN has arrived.
pub fn serve(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr, id: u64, accepted: Instant, handshaking: Slot) {
    log(Level::Info, peer, format_args!("connection opened"));
    let _ = stream.set_nodelay(true);
    // One deadline for the handshake and LOGIN: a peer that proves itself
    // and then says nothing holds a slot no longer than one that says nothing.
    let deadline = accepted + shared.config.handshake_timeout;
    let mut timed = Deadline { stream: &stream, deadline };
    let mut claimed = String::new();
    let tracer = Tracer::new(shared.config.trace.as_deref());
    let mut watch = tracer.as_ref().map(|tracer| tracer.handshake(peer));
    let handshake = server_handshake(
        &mut timed,
        &shared.key,
        |nick| {
            claimed = nick.to_string();
            shared.state().verifier(nick)
        },
        watch.as_mut().map(|watch| watch as Watch<'_>),
    );
    let side = match handshake {
        Ok(side) => side,
        Err(err) => {
            if matches!(err, Error::HandshakeTimeout) {
                fail_late(&stream, "handshake timed out", watch.as_mut().map(|watch| watch as Watch<'_>));
            }
            let nick = if claimed.is_empty() { String::new() } else { format!(" as {claimed:?}") };
            return log(Level::Warn, peer, format_args!("handshake failed{nick}: {err}"));
        }
    };
    let mut opener = side.opener;
    let mut buf = Vec::new();
    let idle = shared.config.idle_timeout;
    // Read unbuffered (`read_frame` takes exactly one frame), so nothing of
    // the next frame is left in a buffer that is thrown away.
    let traced = tracer.as_ref().filter(|tracer| tracer.wants(&side.nick)).map(|tracer| (tracer, side.nick.as_str()));
    let (last_seen, register) = match read_msg(&mut timed, &mut opener, shared.config.max_frame, &mut buf, traced) {
        Ok(Some(ClientMsg::Login { last_seen, register })) => (last_seen, register),
        Ok(Some(other)) => {
            return log(Level::Warn, peer, format_args!("closed: expected LOGIN, got kind 0x{:02x}", other.kind()));
        }
        Ok(None) => return log(Level::Info, peer, format_args!("closed before LOGIN")),
        Err(Error::Io(err)) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            return log(Level::Warn, peer, format_args!("no LOGIN: handshake timed out"));
        }
        Err(err) => return log(Level::Warn, peer, format_args!("no LOGIN: {}", describe(&err, idle))),
    };
    drop(handshaking);
    let timeouts = stream.set_read_timeout(Some(idle)).and_then(|()| stream.set_write_timeout(Some(POOL_WRITE)));
    if let Err(err) = timeouts {
        return log(Level::Error, peer, format_args!("cannot set socket timeouts: {err}"));
    }
    // One descriptor serves the reader, the writer and `Conn::close`
    // (`&TcpStream` reads and writes): `try_clone` would cost two more per
    // connection, and 10,000 connections must fit a 20,000-descriptor limit.
    let stream = Arc::new(stream);
    let mut sealer = side.sealer;
    let (max_control, max_bytes) = (shared.config.max_control, shared.config.max_control_bytes);
    let conn = Conn::new(id, &side.nick, stream.clone(), max_control, max_bytes);
    let request = LoginRequest {
        nick: &side.nick,
        registered: side.registered,
        last_seen,
        register,
        from: address_key(peer.ip()),
    };
    let login = shared.state().login(request, conn.clone(), unix_ms());
    let login = match login {
        Ok(login) => login,
        Err(reason) => return reject(&stream, &mut sealer, peer, &side.nick, reason, traced),
    };
    // A registration must be on disk before WELCOME confirms it. If the
    // disk is full it is undone: the client, which saw no WELCOME, comes
    // back and registers again.
    if login.registered_now && !shared.commit() {
        let mut state = shared.state();
        state.logout(&login.nick, &conn);
        let _ = state.forget(&login.nick);
        drop(state);
        return log(Level::Warn, peer, format_args!("registration of {} waits: server storage is full", login.nick));
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
    let mut reader = BufReader::with_capacity(READ_BUFFER, &*stream);
    let reason = read_loop(shared, &nick, &conn, &mut reader, &mut opener, traced.map(|(tracer, _)| tracer));
    shared.state().logout(&nick, &conn);
    conn.close(&reason);
    let reason = conn.closed_because().unwrap_or(reason);
    log(Level::Info, &nick, format_args!("disconnected ({peer}): {reason}"));
}

/// Tells a peer whose handshake deadline passed why it is closed; the
/// handshake's own writes cannot, since they share that deadline.
fn fail_late(mut stream: &TcpStream, reason: &str, watch: Option<Watch<'_>>) {
    let mut frame = Vec::new();
    Handshake::Fail { reason: reason.into() }.encode(&mut frame);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&frame);
    if let Some(watch) = watch {
        watch(Direction::Sent, &frame, Verdict::Sealed);
    }
}

/// Sends REJECT on the still writer-less connection and logs it.
fn reject(mut stream: &TcpStream, sealer: &mut Sealer, peer: SocketAddr, nick: &str, reason: String, trace: Traced) {
    log(Level::Warn, peer, format_args!("login as {nick:?} rejected: {reason}"));
    let mut frame = Vec::new();
    let msg = Outgoing::new(&ServerMsg::Reject { reason });
    sealer.seal(msg.kind, &msg.payload, &mut frame);
    let _ = stream.write_all(&frame);
    if let Some((tracer, nick)) = trace {
        tracer.sent(nick, &frame);
    }
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
    tracer: Option<&Tracer>,
) -> String {
    let traced = tracer.map(|tracer| (tracer, nick));
    let mut buf = Vec::new();
    let mut staged = false;
    // After a RETRY for this client id, every later SEND of the session is
    // refused too until it comes again, so none is stored out of order.
    let mut retry_from: Option<u64> = None;
    loop {
        if staged && reader.buffer().is_empty() {
            shared.commit();
            staged = false;
        }
        let msg = match read_msg(reader, opener, shared.config.max_frame, &mut buf, traced) {
            Ok(Some(msg)) => msg,
            Ok(None) => return "closed by the client".into(),
            Err(err) => {
                let reason = describe(&err, shared.config.idle_timeout);
                if matches!(err, Error::Protocol(_)) {
                    log(Level::Warn, nick, format_args!("{reason}"));
                }
                return reason;
            }
        };
        let reply = match msg {
            ClientMsg::Send { client_id, .. } if retry_from.is_some_and(|first| client_id > first) => {
                Some(ServerMsg::Retry { client_id, reason: "an earlier message must be sent again first".into() })
            }
            ClientMsg::Send { client_id, to, text } => {
                let reply = handle_send(shared, nick, client_id, &to, &text);
                staged |= reply.is_none();
                if matches!(reply, Some(ServerMsg::Retry { .. })) {
                    retry_from.get_or_insert(client_id);
                } else if retry_from == Some(client_id) {
                    retry_from = None;
                }
                reply
            }
            ClientMsg::Ack { up_to } => {
                shared.state().ack(nick, up_to);
                None
            }
            ClientMsg::Ping => Some(ServerMsg::Pong),
            ClientMsg::Login { .. } => {
                let reason = format!("frame rejected: {}", ProtocolError::UnknownKind(kind::LOGIN));
                log(Level::Warn, nick, format_args!("{reason} (LOGIN after login)"));
                return reason;
            }
        };
        if reply.is_some_and(|reply| !conn.push(Outgoing::new(&reply))) {
            return conn.closed_because().unwrap_or_default();
        }
    }
}

/// Validates and stages one SEND. Returns the immediate reply: none when a
/// new message was staged (its SENT comes once it is on disk).
fn handle_send(shared: &Shared, nick: &str, client_id: u64, to: &str, text: &str) -> Option<ServerMsg> {
    let refuse = |reason: String| {
        log(Level::Warn, nick, format_args!("message {client_id} refused: {reason}"));
        Some(ServerMsg::Error { client_id, reason })
    };
    // SECURITY: a text is checked (length, characters) before it is stored or delivered.
    if let Err(reason) = validate_text(text, shared.config.max_text) {
        return refuse(reason);
    }
    // SECURITY: a recipient that is not a nickname is refused without echoing it whole.
    if !to.is_empty() && validate_nick(to).is_err() {
        return refuse(format!("no such user: not a nickname ({} bytes)", to.len()));
    }
    if client_id == 0 {
        return refuse("client_id 0 is not allowed; client ids start at 1".into());
    }
    let stored = shared.state().send(nick, client_id, to, text, unix_ms(), shared.storage_full());
    match stored {
        Stored::New { id, recipients } => {
            let to_whom = if to.is_empty() { "*" } else { to };
            let bytes = text.len();
            let shown = if shared.config.verbose { format!(": {}", Clip(text)) } else { String::new() };
            let recipients = format!("{recipients} recipient{}", if recipients == 1 { "" } else { "s" });
            log(Level::Info, nick, format_args!("message {id} to {to_whom} ({bytes} bytes, {recipients}){shown}"));
            None
        }
        Stored::Duplicate { id } => Some(ServerMsg::Sent { client_id, id }),
        Stored::Staged => None,
        Stored::UnknownRecipient => refuse(format!("no such user: {to}")),
        Stored::Full => {
            log(Level::Warn, nick, format_args!("message {client_id} not stored: server storage is full"));
            Some(ServerMsg::Retry { client_id, reason: "server storage is full".into() })
        }
    }
}
