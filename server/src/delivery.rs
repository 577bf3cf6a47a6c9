//! Delivery: who writes a connection's socket, and when. This is the one
//! place that decides it; the rest of the server only says "there is
//! something for this connection" ([`Conn::push`], [`wake_all`]).
//!
//! A [`Conn`] is one logged-in connection as everyone else sees it: a
//! short queue of control frames (WELCOME, SENT, PONG, ...), flags for
//! "mail waiting" and "presence waiting", and who writes for it:
//!
//! ```text
//!          start                work arrives                  round done,
//!   Off ─────────▶ Idle ────────────────────────▶ Pooled ─── nothing due ──▶ Idle
//!                   ▲                             │  ▲ │
//!                   │                 more is due │  └─┘ (queued again)
//!                   │                             │
//!                   │ idle for OWN_LINGER         │ a write blocks for POOL_WRITE
//!                   └─────────────────────── Own ◀┘ (a thread of its own)
//!
//!   close (any time): delivery stops, the socket is shut down, reads and writes return.
//! ```
//!
//! A pool thread (`pool.rs`, one per core) serves a queued connection for
//! one round: it copies the control frames, the presence frames and a
//! batch of mail out (the state lock held only for that), seals them into
//! one buffer and writes it with one call. A connection is queued at most
//! once and served by one thread at a time, so its frames stay in order.
//! A write that does not finish within [`POOL_WRITE`] means the peer reads
//! slowly: a thread of its own takes the connection over, so a slow reader
//! holds up nobody else, and an idle connection costs no writer thread.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::auth::Sealer;
use chat_common::log::{Level, log};
use chat_common::message::{Outgoing, ServerMsg, kind};

use crate::config::THREAD_STACK;
use crate::pool::Pool;
use crate::state::{Connection, State};
use crate::trace::Tracer;

/// The state as the server holds it: online users are reached through their
/// [`Conn`].
pub type ChatState = State<Arc<Conn>>;

/// The writer pool.
pub type Writers = Pool<Arc<Conn>>;

/// Most mailbox messages taken per lock and per write.
pub const MAIL_BATCH: usize = 512;

/// How long a pool thread's write may block (the socket's send timeout)
/// before the connection is handed to a thread of its own.
pub const POOL_WRITE: Duration = Duration::from_millis(20);

/// How long a connection's own writer thread waits for more work before
/// handing the connection back to the pool.
pub const OWN_LINGER: Duration = Duration::from_secs(5);

/// Who writes a connection's frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Writer {
    /// Nobody yet (before [`Conn::start`]): work waits.
    #[default]
    Off,
    /// Nothing in hand: new work queues the connection for the pool.
    Idle,
    /// In the pool's queue, or being served by a pool thread.
    Pooled,
    /// A thread of its own writes (its peer reads slowly); `waiting` while
    /// that thread sleeps on the condition variable.
    Own { waiting: bool },
}

#[derive(Default)]
struct Pending {
    /// Control frames in order (WELCOME, USERS, SENT, PONG, ...).
    control: Vec<Outgoing>,
    /// Their payload bytes.
    control_bytes: usize,
    /// The presence tick came by: there are presence frames to send.
    presence: bool,
    /// The user's mailbox may hold something not yet written.
    mail: bool,
    /// Why the connection was closed, once it is; delivery stops.
    closed: Option<String>,
    writer: Writer,
}

impl Pending {
    fn due(&self) -> bool {
        self.closed.is_none() && (self.mail || self.presence || !self.control.is_empty())
    }
}

/// What one round sends: taken from the connection's queue.
struct Work {
    control: Vec<Outgoing>,
    mail: bool,
    presence: bool,
}

/// One online connection, as seen by everyone who may need to wake it.
pub struct Conn {
    /// Unique per connection.
    pub id: u64,
    /// The nickname it delivers to (as HELLO gave it; looked up case-folded).
    nick: String,
    /// Control frames queued beyond this many (`--max-control`) or bytes
    /// (`--max-control-bytes`) mean the peer is not reading: the
    /// connection is closed rather than let the queue grow.
    max_control: (usize, usize),
    /// The socket, shared with the reader (`&TcpStream` reads and writes,
    /// so one descriptor serves both).
    stream: Arc<TcpStream>,
    pending: Mutex<Pending>,
    /// Wakes the connection's own writer thread, while it has one.
    wake: Condvar,
    /// The pool to queue it on, once started.
    pool: Mutex<Option<Arc<Writers>>>,
    /// Tags the frames to the client: locked by whoever writes a round,
    /// which is one thread at a time, so never contended.
    sealer: Mutex<Option<Sealer>>,
}

impl Connection for Arc<Conn> {
    fn id(&self) -> u64 {
        self.id
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (plain flags and queues, each change finished before unlocking).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Conn {
    /// A connection for `nick`; nothing is written until [`Conn::start`].
    pub fn new(id: u64, nick: &str, stream: Arc<TcpStream>, max_frames: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(Conn {
            id,
            nick: nick.to_string(),
            max_control: (max_frames, max_bytes),
            stream,
            pending: Mutex::default(),
            wake: Condvar::new(),
            pool: Mutex::new(None),
            sealer: Mutex::new(None),
        })
    }

    /// Starts delivery once the user is logged in: what was queued so far
    /// (WELCOME, USERS) goes out first, then the mailbox.
    pub fn start(self: &Arc<Self>, pool: Arc<Writers>, sealer: Sealer) {
        *lock(&self.sealer) = Some(sealer);
        *lock(&self.pool) = Some(pool);
        self.note(|pending| {
            pending.writer = Writer::Idle;
            pending.mail = true;
        });
    }

    /// Queues a control frame to be sent at once. Returns false, and
    /// closes the connection, if the peer has let too many pile up.
    pub fn push(self: &Arc<Self>, out: Outgoing) -> bool {
        let (max_frames, max_bytes) = self.max_control;
        let mut full = false;
        self.note(|pending| {
            // SECURITY: a peer that does not read cannot make its reply queue grow past a count or a size.
            full = pending.control.len() >= max_frames || pending.control_bytes + out.payload.len() > max_bytes;
            if !full {
                pending.control_bytes += out.payload.len();
                pending.control.push(out);
            }
        });
        if full {
            self.close(&format!("not reading: replies queued past {max_frames} frames or {max_bytes} bytes"));
        }
        !full
    }

    /// Changes the pending work, then gets it written: queues the
    /// connection for the pool, or wakes its own thread, unless one of them
    /// has it in hand already.
    fn note(self: &Arc<Self>, change: impl FnOnce(&mut Pending)) {
        if self.note_quietly(change)
            && let Some(pool) = lock(&self.pool).clone()
        {
            pool.schedule_all([self.clone()]);
        }
    }

    /// [`Conn::note`] without queuing: returns whether the caller must
    /// queue the connection for the pool. Wakes happen after unlocking, so
    /// nobody wakes up only to wait for our lock.
    fn note_quietly(&self, change: impl FnOnce(&mut Pending)) -> bool {
        let mut pending = lock(&self.pending);
        change(&mut pending);
        if !pending.due() {
            return false;
        }
        match pending.writer {
            Writer::Idle => {
                pending.writer = Writer::Pooled;
                true
            }
            Writer::Own { waiting: true } => {
                drop(pending);
                self.wake.notify_one();
                false
            }
            Writer::Off | Writer::Pooled | Writer::Own { waiting: false } => false,
        }
    }

    /// Ends the connection: delivery stops and blocked reads and writes
    /// return. The first reason given is the one kept.
    pub fn close(&self, reason: &str) {
        lock(&self.pending).closed.get_or_insert_with(|| reason.to_string());
        self.wake.notify_one();
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Why [`Conn::close`] was called, if it was.
    pub fn closed_because(&self) -> Option<String> {
        lock(&self.pending).closed.clone()
    }

    /// For a pool thread: takes what is queued, or `None` once closed.
    fn take(&self) -> Option<Work> {
        let mut pending = lock(&self.pending);
        if pending.closed.is_some() {
            return None;
        }
        let (presence, mail) = (std::mem::take(&mut pending.presence), std::mem::take(&mut pending.mail));
        pending.control_bytes = 0;
        Some(Work { control: std::mem::take(&mut pending.control), mail, presence })
    }

    /// For a pool thread, after a round: queued again if more came
    /// meanwhile, else idle.
    fn round_done(self: &Arc<Self>) {
        self.note(|pending| {
            if pending.writer == Writer::Pooled {
                pending.writer = Writer::Idle;
            }
        });
    }

    /// For the connection's own thread: blocks until there is work, and
    /// returns `None` once closed, or after `linger` with nothing to do
    /// (the connection goes back to the pool).
    fn wait_own(&self, linger: Duration) -> Option<Work> {
        let mut pending = lock(&self.pending);
        let mut lingered = false;
        while !pending.due() {
            if pending.closed.is_some() {
                return None;
            }
            if lingered {
                pending.writer = Writer::Idle;
                return None;
            }
            pending.writer = Writer::Own { waiting: true };
            let (guard, timeout) =
                self.wake.wait_timeout(pending, linger).unwrap_or_else(|poisoned| poisoned.into_inner());
            pending = guard;
            pending.writer = Writer::Own { waiting: false };
            lingered = timeout.timed_out();
        }
        drop(pending);
        self.take()
    }
}

/// What is waiting for a connection.
#[derive(Clone, Copy)]
pub enum Waiting {
    /// Its mailbox has something new.
    Mail,
    /// The presence tick came by with JOINED or LEFT to send.
    Presence,
}

/// Tells each connection what is waiting, and queues those that were idle
/// with one call, which wakes each sleeping pool thread at most once: a
/// message to 1,000 people, or a presence tick, makes 1,000 connections
/// due, and one wake-up each made 10,000 logins 10 % slower.
pub fn wake_all(pool: &Writers, conns: Vec<Arc<Conn>>, waiting: Waiting) {
    let note = |pending: &mut Pending| match waiting {
        Waiting::Mail => pending.mail = true,
        Waiting::Presence => pending.presence = true,
    };
    let due: Vec<Arc<Conn>> = conns.into_iter().filter(|conn| conn.note_quietly(note)).collect();
    pool.schedule_all(due);
}

/// What a delivering thread needs besides the connection.
pub struct Context {
    /// The shared state, to take presence and mail from.
    pub state: Arc<Mutex<ChatState>>,
    /// `--write-timeout-secs`: a write blocked this long closes the connection.
    pub write_timeout: Duration,
    /// `--mailbox`, for the overflow notice.
    pub mailbox: usize,
    /// `--trace`: shows the frames each round seals; `None` costs one branch.
    pub trace: Option<Tracer>,
}

/// Starts the writer pool: one thread per core (at least two).
pub fn start_pool(context: Context) -> io::Result<Arc<Writers>> {
    let threads = thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let context = Arc::new(context);
    Pool::start("writer", threads, THREAD_STACK, move |conn: Arc<Conn>| round(&context, &conn))
}

/// One round for `conn` on a pool thread.
fn round(context: &Arc<Context>, conn: &Arc<Conn>) {
    let Some(work) = conn.take() else { return };
    BUFFER.with_borrow_mut(|buf| {
        buf.clear();
        // A connection is queued only after `Conn::start` gave it a sealer.
        // The state lock is taken inside, while the sealer's is held: the
        // lock order is sealer, then state, and nothing that holds the
        // state lock waits for a sealer.
        if let Some(sealer) = lock(&conn.sealer).as_mut() {
            seal_round(context, conn, work, sealer, buf);
        }
        if let Some(tracer) = &context.trace {
            tracer.sent(&conn.nick, buf);
        }
        // The socket's send timeout is POOL_WRITE: a write blocked that long
        // is handed over, not retried.
        match write_by(&conn.stream, buf, Instant::now()) {
            Ok(()) => conn.round_done(),
            Err((written, err)) if is_timeout(&err) => own_thread(context, conn, buf[written..].to_vec()),
            Err((_, err)) => conn.close(&describe(context, &err)),
        }
    });
}

thread_local! {
    /// Each pool thread's buffer, kept from one round to the next: a round
    /// can be megabytes (the online list, a backlog), and growing a new
    /// buffer for each cost 10,000 logins a tenth of their time in copying.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Seals the control frames, then presence, then a batch of mail (copied
/// out of the state under its lock) into `buf`. Presence is taken whenever
/// the state is locked anyway, so a JOINED goes out no later than mail that
/// follows it.
fn seal_round(context: &Context, conn: &Arc<Conn>, work: Work, sealer: &mut Sealer, buf: &mut Vec<u8>) {
    let (mut presence, mut mail) = (Vec::new(), None);
    if work.mail || work.presence {
        let mut state = lock(&context.state);
        presence = state.take_presence(&conn.nick, conn);
        mail = work.mail.then(|| state.take_mail(&conn.nick, conn, MAIL_BATCH));
    }
    for out in work.control.iter().chain(&presence) {
        sealer.seal(out.kind, &out.payload, buf);
    }
    let Some(mail) = mail else { return };
    if mail.more {
        conn.note_quietly(|pending| pending.mail = true);
    }
    if mail.dropped > 0 {
        let (count, limit) = (mail.dropped, context.mailbox as u64);
        log(Level::Warn, &conn.nick, format_args!("fell too far behind: {count} messages dropped unread"));
        let notice = Outgoing::new(&ServerMsg::Dropped { count, limit });
        sealer.seal(notice.kind, &notice.payload, buf);
    }
    for payload in &mail.messages {
        sealer.seal(kind::MSG, payload, buf);
    }
}

/// Writes `bytes`, retrying after each send timeout until `deadline`; on
/// failure, says how many bytes went out.
fn write_by(mut stream: &TcpStream, bytes: &[u8], deadline: Instant) -> Result<(), (usize, io::Error)> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if is_timeout(&err) && Instant::now() < deadline => {}
            Err(err) => return Err((written, err)),
        }
    }
    Ok(())
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn describe(context: &Context, err: &io::Error) -> String {
    if is_timeout(err) {
        return format!("write blocked for {:?}", context.write_timeout);
    }
    format!("write failed: {err}")
}

/// Moves `conn` to a thread of its own, which first writes `unwritten`.
fn own_thread(context: &Arc<Context>, conn: &Arc<Conn>, unwritten: Vec<u8>) {
    lock(&conn.pending).writer = Writer::Own { waiting: false };
    let (context, conn_for_thread) = (context.clone(), conn.clone());
    let spawned = thread::Builder::new().name(format!("write-{}", conn.id)).stack_size(THREAD_STACK).spawn(move || {
        let conn = conn_for_thread;
        log(Level::Info, &conn.nick, format_args!("reads slowly: a writer thread of its own takes over"));
        let mut buf = unwritten;
        loop {
            if let Err((_, err)) = write_by(&conn.stream, &buf, Instant::now() + context.write_timeout) {
                return conn.close(&describe(&context, &err));
            }
            let Some(work) = conn.wait_own(OWN_LINGER) else { return };
            buf.clear();
            if let Some(sealer) = lock(&conn.sealer).as_mut() {
                seal_round(&context, &conn, work, sealer, &mut buf);
            }
            if let Some(tracer) = &context.trace {
                tracer.sent(&conn.nick, &buf);
            }
        }
    });
    if let Err(err) = spawned {
        conn.close(&format!("cannot start a writer thread for a slow reader: {err}"));
    }
}
