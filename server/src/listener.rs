//! The accept loop. It enforces the connection limits, in all and per
//! address, before a thread is started, so a flood of connections costs a
//! log line each, not a thread each.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::log::{Level, log};

use crate::config::THREAD_STACK;
use crate::session;
use crate::shared::Shared;
use crate::slots::address_key;

/// Accepts connections forever, one named thread each.
pub fn accept_loop(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    let next_id = AtomicU64::new(1);
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) => {
                // Typically out of file descriptors: back off instead of spinning.
                log(Level::Error, "server", format_args!("accept failed: {err}"));
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let accepted = Instant::now();
        // SECURITY: the connection limits, in all and per address, are checked before any thread or buffer exists.
        let address = address_key(peer.ip());
        let slots = shared.conns.take(address).and_then(|open| Ok((open, shared.handshakes.take(address)?)));
        let (open_slot, handshake_slot) = match slots {
            Ok(slots) => slots,
            Err(which) => {
                log(Level::Warn, peer, format_args!("connection refused: {which}"));
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let spawned = thread::Builder::new().name(format!("conn-{id}")).stack_size(THREAD_STACK).spawn(move || {
            let _open_slot = open_slot;
            session::serve(&shared, stream, peer, id, accepted, handshake_slot);
        });
        if let Err(err) = spawned {
            log(Level::Error, peer, format_args!("cannot start a thread for this connection: {err}"));
        }
    }
}
