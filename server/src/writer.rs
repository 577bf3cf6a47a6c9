//! One connection's delivery thread. It sleeps on the connection's
//! [`Conn`] until there is something to send, copies it out of the shared
//! state under the lock, releases the lock, seals everything into one
//! buffer and writes it with one call. A slow reader blocks only this
//! thread; a write blocked past the write timeout closes the connection.

use std::io::{self, Write};
use std::net::TcpStream;

use chat_common::auth::Sealer;
use chat_common::log::{Level, log};
use chat_common::message::{ServerMsg, kind};

use crate::Shared;
use crate::conn::{Conn, Outgoing};

/// Most mailbox messages taken per lock and per write.
pub const MAIL_BATCH: usize = 512;

/// Delivers to `nick` on `stream` until the connection closes.
pub fn run(shared: &Shared, nick: &str, conn: &Conn, mut sealer: Sealer, mut stream: &TcpStream) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(work) = conn.wait() {
        buf.clear();
        for out in &work.control {
            sealer.seal(out.kind, &out.payload, &mut buf);
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
                sealer.seal(notice.kind, &notice.payload, &mut buf);
            }
            for payload in &mail.messages {
                sealer.seal(kind::MSG, payload, &mut buf);
            }
            if mail.more {
                conn.mail();
            }
        }
        if let Err(err) = stream.write_all(&buf) {
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
