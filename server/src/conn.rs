//! The handle the shared state keeps for one online connection: a small
//! queue of control frames, a "mail waiting" flag, and a condition
//! variable that wakes the connection's writer thread. Pushing to it never
//! blocks on the network.

use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A server message encoded once, ready to be sealed for any connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The kind byte.
    pub kind: u8,
    /// The payload, shared by every connection it goes to.
    pub payload: Arc<[u8]>,
}

impl Outgoing {
    /// Encodes `msg` once.
    pub fn new(msg: &chat_common::message::ServerMsg) -> Self {
        let mut payload = Vec::new();
        msg.encode_payload(&mut payload);
        Outgoing { kind: msg.kind(), payload: payload.into() }
    }
}

/// Control frames queued beyond this mean the peer is not reading; the
/// connection is closed rather than let the queue grow.
pub const MAX_CONTROL_QUEUE: usize = 4096;

/// How long presence frames (JOINED, LEFT) may wait before the presence
/// ticker ([`crate::Shared::release_presence`]) sends them out together.
/// n logins queue n²/2 of them: one wake-up and one write each would keep
/// every writer busy (a wake-up costs microseconds), and a burst of logins
/// would slow itself down. Someone shown online a quarter of a second late
/// is not noticed.
pub const PRESENCE_DELAY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Pending {
    /// Control frames in order (WELCOME, USERS, SENT, JOINED, ...).
    control: Vec<Outgoing>,
    /// A frame in `control` must go out now (anything but presence).
    urgent: bool,
    /// The presence ticker came by: presence frames in `control` go out.
    presence_due: bool,
    /// The user's mailbox may hold something not yet written.
    mail: bool,
    /// Why the connection was closed, once it is; the writer stops.
    closed: Option<String>,
    /// The writer is asleep on the condition variable. Only then does a
    /// producer pay for a wake-up (a futex system call); a busy writer
    /// checks the flags again before it sleeps.
    waiting: bool,
}

/// One online connection, as seen by everyone who may need to wake it.
pub struct Conn {
    /// Unique per connection, so a stale connection's logout cannot log
    /// out its successor.
    pub id: u64,
    /// The socket, shared with both threads, to unblock them when closing.
    stream: Option<Arc<TcpStream>>,
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// What the writer should send next.
pub struct Work {
    /// Control frames, in order.
    pub control: Vec<Outgoing>,
    /// Whether to look in the mailbox.
    pub mail: bool,
}

impl Conn {
    /// A handle for connection `id`; `stream` is `None` in unit tests.
    pub fn new(id: u64, stream: Option<Arc<TcpStream>>) -> Arc<Self> {
        Arc::new(Conn { id, stream, pending: Mutex::default(), wake: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves plain data, still usable.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a control frame for the writer to send at once. Returns
    /// false, and closes the connection, if the peer has let
    /// [`MAX_CONTROL_QUEUE`] frames pile up.
    pub fn push(&self, out: Outgoing) -> bool {
        self.enqueue(out, true)
    }

    /// Queues a presence frame without waking the writer: it goes out with
    /// the next urgent frame or mail, or at the next presence tick.
    pub fn push_presence(&self, out: Outgoing) -> bool {
        self.enqueue(out, false)
    }

    /// The presence tick: wakes the writer if it has frames queued.
    pub fn release_presence(&self) {
        let mut pending = self.lock();
        if pending.control.is_empty() {
            return;
        }
        pending.presence_due = true;
        let wake = pending.waiting;
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }

    fn enqueue(&self, out: Outgoing, urgent: bool) -> bool {
        let mut pending = self.lock();
        // SECURITY: a peer that does not read cannot make this queue grow without bound.
        if pending.control.len() >= MAX_CONTROL_QUEUE {
            drop(pending);
            self.close(&format!("not reading: {MAX_CONTROL_QUEUE} control frames queued"));
            return false;
        }
        pending.control.push(out);
        pending.urgent |= urgent;
        let wake = urgent && pending.waiting;
        drop(pending);
        // Notified after unlocking, so the writer does not wake up only to
        // block on the lock we still hold.
        if wake {
            self.wake.notify_one();
        }
        true
    }

    /// Tells the writer that the mailbox has something new. Many messages
    /// published while the writer is busy cost one wake-up, or none.
    pub fn mail(&self) {
        let mut pending = self.lock();
        let wake = !pending.mail && pending.waiting;
        pending.mail = true;
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Ends the connection: the writer stops and blocked reads return.
    /// The first reason given is the one kept.
    pub fn close(&self, reason: &str) {
        self.lock().closed.get_or_insert_with(|| reason.to_string());
        self.wake.notify_one();
        if let Some(stream) = &self.stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Why [`Conn::close`] was called, if it was.
    pub fn closed_because(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    /// Blocks until there is work or the connection is closed (`None`).
    pub fn wait(&self) -> Option<Work> {
        let mut pending = self.lock();
        while pending.closed.is_none() && !pending.mail && !pending.urgent && !pending.presence_due {
            pending.waiting = true;
            pending = self.wake.wait(pending).unwrap_or_else(|poisoned| poisoned.into_inner());
            pending.waiting = false;
        }
        if pending.closed.is_some() {
            return None;
        }
        let mail = std::mem::take(&mut pending.mail);
        (pending.urgent, pending.presence_due) = (false, false);
        Some(Work { control: std::mem::take(&mut pending.control), mail })
    }

    /// Takes queued control frames without waiting (for tests).
    pub fn drain(&self) -> Vec<Outgoing> {
        std::mem::take(&mut self.lock().control)
    }
}
