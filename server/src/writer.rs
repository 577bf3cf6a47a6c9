//! One connection's delivery thread. It sleeps on the connection's
//! [`Conn`] until there is something to send, copies it out of the shared
//! state under the lock, releases the lock, seals it into a buffer and
//! writes it with as few calls as [`WRITE_CHUNK`] allows. A slow reader
//! blocks only this thread; a write blocked past the write timeout closes
//! the connection.

use std::io::{self, Write};
use std::net::TcpStream;

use chat_common::auth::{SEAL_OVERHEAD, Sealer};
use chat_common::log::{Level, log};
use chat_common::message::{ServerMsg, kind};

use crate::Shared;
use crate::conn::{Conn, Outgoing, Work};

/// Most mailbox messages taken per lock.
pub const MAIL_BATCH: usize = 512;

/// Bytes sealed before they are written: enough for many frames per system
/// call, little enough that 10,000 connections do not each hold a large
/// buffer. A buffer lives for one round of work only, so an idle
/// connection holds none.
pub const WRITE_CHUNK: usize = 32 * 1024;

/// Delivers to `nick` on `stream` until the connection closes.
pub fn run(shared: &Shared, nick: &str, conn: &Conn, mut sealer: Sealer, stream: &TcpStream) {
    while let Some(work) = conn.wait() {
        if let Err(err) = deliver(shared, nick, conn, work, &mut sealer, stream) {
            let reason = match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    format!("write blocked for {:?}", shared.config.write_timeout)
                }
                _ => format!("write failed: {err}"),
            };
            conn.close(&reason);
            return;
        }
    }
}

/// Seals and writes one round: the control frames, then a batch of mail.
fn deliver(
    shared: &Shared,
    nick: &str,
    conn: &Conn,
    work: Work,
    sealer: &mut Sealer,
    stream: &TcpStream,
) -> io::Result<()> {
    let mut out = Chunks { stream, sealer, buf: Vec::with_capacity(WRITE_CHUNK) };
    for control in &work.control {
        out.seal(control.kind, &control.payload)?;
    }
    if work.mail {
        let mail = shared.state().take_mail(nick, MAIL_BATCH);
        if mail.dropped > 0 {
            let limit = shared.config.mailbox;
            log(Level::Warn, nick, format_args!("mailbox full: {} oldest messages dropped", mail.dropped));
            let reason = format!(
                "{} unacknowledged messages were dropped because your mailbox was full (limit {limit})",
                mail.dropped
            );
            let notice = Outgoing::new(&ServerMsg::Error { client_id: 0, reason });
            out.seal(notice.kind, &notice.payload)?;
        }
        for payload in &mail.messages {
            out.seal(kind::MSG, payload)?;
        }
        if mail.more {
            conn.mail();
        }
    }
    out.write()
}

/// Sealed frames on their way to the socket.
struct Chunks<'a> {
    stream: &'a TcpStream,
    sealer: &'a mut Sealer,
    buf: Vec<u8>,
}

impl Chunks<'_> {
    /// Seals one frame, first writing what is buffered if it would not fit.
    fn seal(&mut self, kind: u8, payload: &[u8]) -> io::Result<()> {
        if !self.buf.is_empty() && self.buf.len() + SEAL_OVERHEAD + payload.len() > WRITE_CHUNK {
            self.write()?;
        }
        self.sealer.seal(kind, payload, &mut self.buf);
        Ok(())
    }

    fn write(&mut self) -> io::Result<()> {
        let written = self.stream.write_all(&self.buf);
        self.buf.clear();
        written
    }
}
