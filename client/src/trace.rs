//! The client's side of frame traces: `--trace` (one line per frame on
//! stderr) and the window's protocol pane both receive each frame as an
//! [`Event::Frame`](crate::Event::Frame) holding a [`TracedFrame`]: the
//! line in docs/PROTOCOL.md's format ("Frame traces", made by
//! `chat_common::trace`) and the frame's bytes.
//!
//! Frames are traced only while tracing is on ([`Tracer::is_on`], a flag
//! the UI switches through [`crate::Handle::set_trace`]); off, a frame
//! costs one load of that flag. The lines hold what crossed the wire,
//! shortened: never the key, the owner token or a derived key.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chat_common::log::unix_ms;
use chat_common::trace::{Direction, Seen, Verdict, handshake_line, sealed_line};

/// One frame as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracedFrame {
    /// Which connection of this run: 1 for the first, one more for each
    /// reconnection (a new session, with its own keys and numbering).
    pub connection: u64,
    /// We sent it, or received it.
    pub direction: Direction,
    /// A handshake frame (plain), not a sealed one.
    pub handshake: bool,
    /// We refused it (the line ends with `✗` and the reason).
    pub failed: bool,
    /// The trace line.
    pub line: String,
    /// The frame's bytes, length prefix included.
    pub bytes: Vec<u8>,
}

/// Makes [`TracedFrame`]s for one connection while tracing is on.
#[derive(Clone, Debug)]
pub struct Tracer {
    /// On or off, shared with the UI's handle and every connection.
    on: Arc<AtomicBool>,
    /// The server, as the lines name it (`host:port`).
    peer: String,
    /// The connection's number.
    connection: u64,
}

impl Tracer {
    /// A tracer for connection number `connection` to `peer`.
    pub fn new(on: Arc<AtomicBool>, peer: String, connection: u64) -> Tracer {
        Tracer { on, peer, connection }
    }

    /// The same tracer for connection number `connection`.
    pub fn numbered(&self, connection: u64) -> Tracer {
        Tracer { connection, ..self.clone() }
    }

    /// Whether frames are traced now.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// The frame, if tracing is on.
    pub fn frame(
        &self,
        direction: Direction,
        bytes: &[u8],
        handshake: bool,
        verdict: Verdict<'_>,
    ) -> Option<TracedFrame> {
        if !self.is_on() {
            return None;
        }
        let seen = Seen { unix_ms: unix_ms(), direction, peer: &self.peer };
        let line = if handshake { handshake_line(&seen, bytes, verdict) } else { sealed_line(&seen, bytes, verdict) };
        let failed = matches!(verdict, Verdict::Failed(_));
        Some(TracedFrame { connection: self.connection, direction, handshake, failed, line, bytes: bytes.to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_made_while_tracing_is_off() {
        let on = Arc::new(AtomicBool::new(false));
        let tracer = Tracer::new(on.clone(), "127.0.0.1:5555".into(), 2);
        let ping = [0, 0, 0, 41, 0, 0, 0, 0, 0, 0, 0, 0, 0x13].into_iter().chain([7; 32]).collect::<Vec<u8>>();
        assert_eq!(tracer.frame(Direction::Sent, &ping, false, Verdict::Sealed), None);
        on.store(true, Ordering::Relaxed);
        let frame = tracer.frame(Direction::Received, &ping, false, Verdict::Failed(&"bad tag")).unwrap();
        assert_eq!((frame.connection, frame.failed, frame.handshake, frame.bytes), (2, true, false, ping));
        assert!(frame.line.contains(" ← 127.0.0.1:5555 #0 PING len=41 tag=07070707… ✗ bad tag"), "{}", frame.line);
    }
}
