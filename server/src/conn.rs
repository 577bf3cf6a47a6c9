//! The handle the shared state keeps for one online connection: a small
//! queue of control frames, "mail waiting" and "presence waiting" flags,
//! and who delivers them — the writer pool, or a writer thread of the
//! connection's own (see [`crate::writer`]). Pushing to it never blocks on
//! the network.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::writer::{Outbound, Pool};

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

/// How long presence frames (JOINED, LEFT) may wait before the presence
/// ticker ([`crate::Shared::release_presence`]) gets them sent together.
/// n logins make n²/2 of them: one wake-up and one write each would keep
/// the writers busy (a wake-up costs microseconds), and a burst of logins
/// would slow itself down. Someone shown online a quarter of a second late
/// is not noticed.
pub const PRESENCE_DELAY: Duration = Duration::from_millis(250);

/// Who delivers a connection's frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Delivery {
    /// Nobody yet (before [`Conn::start`], and in unit tests): work waits.
    #[default]
    Off,
    /// Nothing in hand: new work queues the connection for the pool.
    Idle,
    /// In the pool's queue, or being delivered by a pool thread.
    Pooled,
    /// A thread of its own delivers (its peer reads slowly); `waiting`
    /// while that thread sleeps on the condition variable.
    Own { waiting: bool },
}

#[derive(Default)]
struct Pending {
    /// Control frames in order (WELCOME, USERS, SENT, JOINED, ...).
    control: Vec<Outgoing>,
    /// A frame in `control` must go out now.
    urgent: bool,
    /// The presence ticker came by: there are presence frames to send.
    presence_due: bool,
    /// The user's mailbox may hold something not yet written.
    mail: bool,
    /// Why the connection was closed, once it is; delivery stops.
    closed: Option<String>,
    delivery: Delivery,
    /// Where to queue the connection; set by [`Conn::start`].
    pool: Option<Arc<Pool>>,
}

impl Pending {
    /// Something must be sent now.
    fn due(&self) -> bool {
        self.closed.is_none() && (self.mail || self.urgent || self.presence_due)
    }

    fn take(&mut self) -> Work {
        self.urgent = false;
        let presence = std::mem::take(&mut self.presence_due);
        Work { control: std::mem::take(&mut self.control), mail: std::mem::take(&mut self.mail), presence }
    }
}

/// One online connection, as seen by everyone who may need to wake it.
pub struct Conn {
    /// Unique per connection, so a stale connection's logout cannot log
    /// out its successor.
    pub id: u64,
    /// Control frames queued beyond this (`--max-control`) mean the peer is
    /// not reading; the connection is closed rather than let the queue grow.
    max_control: usize,
    /// The socket, shared with the reader and the writer, to unblock both
    /// when closing.
    stream: Option<Arc<TcpStream>>,
    pending: Mutex<Pending>,
    /// Wakes the connection's own writer thread, while it has one.
    wake: Condvar,
    /// The nickname's display form, whose mailbox is delivered; set by
    /// [`Conn::start`].
    nick: OnceLock<String>,
    /// The sealer and socket: locked by whoever delivers a round, which
    /// is one thread at a time, so never contended.
    outbound: Mutex<Option<Outbound>>,
    /// Number of the first presence entry in the state's shared list
    /// that this connection has not sent; read and written only under the
    /// state lock.
    pub presence_seen: AtomicU64,
}

/// What the writer should send next.
pub struct Work {
    /// Control frames, in order.
    pub control: Vec<Outgoing>,
    /// Whether to look in the mailbox.
    pub mail: bool,
    /// Whether to look for presence frames.
    pub presence: bool,
}

impl Conn {
    /// A handle for connection `id`; `stream` is `None` in unit tests.
    pub fn new(id: u64, stream: Option<Arc<TcpStream>>, max_control: usize) -> Arc<Self> {
        let pending = Mutex::default();
        let (wake, nick, outbound, presence_seen) =
            (Condvar::new(), OnceLock::new(), Mutex::new(None), AtomicU64::new(0));
        Arc::new(Conn { id, max_control, stream, pending, wake, nick, outbound, presence_seen })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves plain data, still usable.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands the connection to the writer pool once `nick` has logged in;
    /// what was queued so far (WELCOME, USERS) goes out first.
    pub fn start(self: &Arc<Self>, pool: Arc<Pool>, nick: String, outbound: Outbound) {
        let _ = self.nick.set(nick);
        *self.outbound() = Some(outbound);
        let mut pending = self.lock();
        (pending.pool, pending.delivery) = (Some(pool), Delivery::Idle);
        self.signal(pending);
    }

    /// The nickname this connection delivers to (empty before login).
    pub fn nick(&self) -> &str {
        self.nick.get().map_or("", String::as_str)
    }

    /// The sealer and socket, for the one thread delivering a round.
    pub fn outbound(&self) -> MutexGuard<'_, Option<Outbound>> {
        self.outbound.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a control frame to be sent at once. Returns false, and
    /// closes the connection, if the peer has let `max_control` frames
    /// pile up.
    pub fn push(self: &Arc<Self>, out: Outgoing) -> bool {
        let mut pending = self.lock();
        // SECURITY: a peer that does not read cannot make this queue grow without bound.
        if pending.control.len() >= self.max_control {
            drop(pending);
            self.close(&format!("not reading: {} control frames queued", self.max_control));
            return false;
        }
        pending.control.push(out);
        pending.urgent = true;
        self.signal(pending);
        true
    }

    /// The presence tick: there are presence frames to send.
    pub fn release_presence(self: &Arc<Self>) {
        let mut pending = self.lock();
        pending.presence_due = true;
        self.signal(pending);
    }

    /// Tells the writer that the mailbox has something new. Many messages
    /// published while the connection is queued or being served cost
    /// nothing more.
    pub fn mail(self: &Arc<Self>) {
        let mut pending = self.lock();
        pending.mail = true;
        self.signal(pending);
    }

    /// Gets due work delivered: queues the connection for the pool, or
    /// wakes its own thread, unless one of them has it in hand already.
    /// Both happen after unlocking, so nobody wakes up only to block on
    /// the lock we hold.
    fn signal(self: &Arc<Self>, mut pending: MutexGuard<'_, Pending>) {
        if !pending.due() {
            return;
        }
        match pending.delivery {
            Delivery::Idle => {
                pending.delivery = Delivery::Pooled;
                let pool = pending.pool.clone();
                drop(pending);
                if let Some(pool) = pool {
                    pool.schedule(self.clone());
                }
            }
            Delivery::Own { waiting: true } => {
                drop(pending);
                self.wake.notify_one();
            }
            Delivery::Off | Delivery::Pooled | Delivery::Own { waiting: false } => {}
        }
    }

    /// Ends the connection: delivery stops and blocked reads and writes
    /// return. The first reason given is the one kept.
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

    /// For a pool thread: takes what is queued, or `None` once closed.
    pub fn take(&self) -> Option<Work> {
        let mut pending = self.lock();
        pending.closed.is_none().then(|| pending.take())
    }

    /// For a pool thread, after a round: back into the pool's queue if
    /// more came meanwhile, else idle.
    pub fn round_done(self: &Arc<Self>) {
        let mut pending = self.lock();
        if pending.delivery == Delivery::Pooled {
            pending.delivery = Delivery::Idle;
            self.signal(pending);
        }
    }

    /// For a pool thread whose write did not finish in time: from now on
    /// a thread of the connection's own delivers.
    pub fn make_own(&self) {
        self.lock().delivery = Delivery::Own { waiting: false };
    }

    /// For the connection's own thread: blocks until there is work, and
    /// returns `None` once closed, or after `linger` with nothing to do
    /// (the connection goes back to the pool).
    pub fn wait_own(&self, linger: Duration) -> Option<Work> {
        let mut pending = self.lock();
        let mut lingered = false;
        while !pending.due() {
            if pending.closed.is_some() {
                return None;
            }
            if lingered {
                pending.delivery = Delivery::Idle;
                return None;
            }
            pending.delivery = Delivery::Own { waiting: true };
            let (guard, timeout) =
                self.wake.wait_timeout(pending, linger).unwrap_or_else(|poisoned| poisoned.into_inner());
            pending = guard;
            pending.delivery = Delivery::Own { waiting: false };
            lingered = timeout.timed_out();
        }
        Some(pending.take())
    }

    /// Takes queued control frames without waiting (for tests).
    pub fn drain(&self) -> Vec<Outgoing> {
        std::mem::take(&mut self.lock().control)
    }
}
