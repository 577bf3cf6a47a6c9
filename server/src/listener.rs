//! The accept loop. It enforces the two connection limits before a thread
//! is started, so a flood of connections costs a log line each, not a
//! thread each.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::log::{Level, log};

use crate::config::THREAD_STACK;
use crate::session;
use crate::shared::Shared;
use crate::slots::Slot;

/// Accepts connections forever, one named thread each.
pub fn accept_loop(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    let handshaking = Arc::new(AtomicUsize::new(0));
    let next_id = AtomicU64::new(1);
    let (max_conns, max_handshakes) = (shared.config.max_conns, shared.config.max_handshakes);
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
        // SECURITY: both limits are checked before any thread or buffer exists.
        let Some(open_slot) = Slot::take(&open, max_conns) else {
            log(Level::Warn, peer, format_args!("connection refused: limit of {max_conns} connections reached"));
            continue;
        };
        let Some(handshake_slot) = Slot::take(&handshaking, max_handshakes) else {
            log(Level::Warn, peer, format_args!("connection refused: {max_handshakes} connections mid-handshake"));
            continue;
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
