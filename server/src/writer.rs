//! Delivery. A small pool of writer threads, one per core, serves every
//! connection that has something to send: it takes the connection's
//! control frames and a batch of its mail (copied out under the state
//! lock), releases the lock, seals them into one buffer and writes it
//! with one call. A connection is in the pool's queue at most once and is
//! served by one thread at a time, so its frames stay in order; one with
//! more mail waiting goes to the back of the queue.
//!
//! A write that does not finish within [`POOL_WRITE`] means the peer reads
//! slowly: the connection gets a thread of its own, which finishes the
//! write (closing the connection if it stays blocked for the write
//! timeout) and serves it until it has been idle for [`OWN_LINGER`]. So a
//! slow reader never holds up the others, and an idle connection costs no
//! thread: 10,000 connections need 10,000 threads, not 20,000. (Each
//! thread costs four memory mappings, and Linux allows 65,530 per
//! process.)

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::auth::Sealer;
use chat_common::log::{Level, log};
use chat_common::message::{ServerMsg, kind};

use crate::Shared;
use crate::conn::{Conn, Outgoing, Work};
use crate::listener::THREAD_STACK;
use crate::state::Mail;

/// Most mailbox messages taken per lock and per write.
pub const MAIL_BATCH: usize = 512;

/// How long a pool thread's write may block (the socket's send timeout)
/// before the connection is handed to a thread of its own.
pub const POOL_WRITE: Duration = Duration::from_millis(20);

/// How long a connection's own writer thread waits for more work before
/// handing the connection back to the pool.
pub const OWN_LINGER: Duration = Duration::from_secs(5);

/// What delivering to one connection needs: kept in its [`Conn`].
pub struct Outbound {
    /// Tags the frames to the client; only the delivering thread uses it.
    pub sealer: Sealer,
    /// The socket, shared with the connection's reader.
    pub stream: Arc<TcpStream>,
}

/// The queue of connections with something to send.
#[derive(Default)]
pub struct Pool {
    ready: Mutex<Ready>,
    wake: Condvar,
}

#[derive(Default)]
struct Ready {
    conns: VecDeque<Arc<Conn>>,
    /// Pool threads asleep on `wake`; only then is a wake-up needed.
    sleeping: usize,
    /// Wake-ups sent that no sleeper has taken yet: a burst of schedules
    /// wakes each sleeper once, not once per connection.
    woken: usize,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Ready> {
        self.ready.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `conn` for a pool thread (see [`Conn::start`], which makes
    /// sure a connection is queued at most once).
    pub fn schedule(&self, conn: Arc<Conn>) {
        let mut ready = self.lock();
        ready.conns.push_back(conn);
        let wake = ready.sleeping > ready.woken;
        ready.woken += usize::from(wake);
        drop(ready);
        if wake {
            self.wake.notify_one();
        }
    }

    fn next(&self) -> Arc<Conn> {
        let mut ready = self.lock();
        loop {
            if let Some(conn) = ready.conns.pop_front() {
                return conn;
            }
            ready.sleeping += 1;
            ready = self.wake.wait(ready).unwrap_or_else(|poisoned| poisoned.into_inner());
            ready.sleeping -= 1;
            // A spurious wake-up may take one meant for another sleeper,
            // which then costs one more wake-up later, never a lost one.
            ready.woken = ready.woken.saturating_sub(1);
        }
    }
}

/// Starts the pool's threads, one per core (at least two).
pub fn start_pool(shared: &Arc<Shared>) -> io::Result<()> {
    let threads = thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    for index in 0..threads {
        let shared = shared.clone();
        thread::Builder::new().name(format!("writer-{index}")).stack_size(THREAD_STACK).spawn(move || {
            // Reused for every round: the pool, not each connection, holds
            // the buffers.
            let mut buf = Vec::new();
            loop {
                let conn = shared.writers.next();
                serve_round(&shared, &conn, &mut buf);
            }
        })?;
    }
    Ok(())
}

/// One round for `conn` on a pool thread.
fn serve_round(shared: &Arc<Shared>, conn: &Arc<Conn>, buf: &mut Vec<u8>) {
    let Some(work) = conn.take() else { return };
    let round = collect(shared, conn, work);
    let mut outbound = conn.outbound();
    // A connection is queued only after `Conn::start` gave it an outbound.
    let Some(out) = outbound.as_mut() else { return };
    buf.clear();
    round.seal(shared, conn.nick(), &mut out.sealer, buf);
    let written = write_briefly(&out.stream, buf);
    drop(outbound);
    match written {
        Ok(()) => conn.round_done(),
        Err(Stalled::After(written)) => own_thread(shared, conn, buf[written..].to_vec()),
        Err(Stalled::Failed(err)) => conn.close(&describe(shared, &err)),
    }
}

/// What one round sends, copied out of the connection and the state.
struct Round {
    work: Work,
    presence: Vec<Outgoing>,
    mail: Mail,
}

/// Takes presence and a batch of mail for `conn` from the state, holding
/// none of the connection's locks (the lock order is state, then conn).
/// Presence is taken whenever the state is locked anyway, so a JOINED
/// goes out no later than mail that follows it.
fn collect(shared: &Shared, conn: &Arc<Conn>, work: Work) -> Round {
    let (mut presence, mut mail) = (Vec::new(), Mail::default());
    if work.mail || work.presence {
        let mut state = shared.state();
        presence = state.take_presence(conn);
        if work.mail {
            mail = state.take_mail(conn.nick(), MAIL_BATCH);
        }
    }
    if mail.more {
        conn.mail();
    }
    Round { work, presence, mail }
}

impl Round {
    /// Seals the control frames, then presence, then mail, into `buf`.
    fn seal(self, shared: &Shared, nick: &str, sealer: &mut Sealer, buf: &mut Vec<u8>) {
        for out in self.work.control.iter().chain(&self.presence) {
            sealer.seal(out.kind, &out.payload, buf);
        }
        if self.mail.dropped > 0 {
            let (dropped, limit) = (self.mail.dropped, shared.config.mailbox);
            log(Level::Warn, nick, format_args!("mailbox full: {dropped} oldest messages dropped"));
            let reason =
                format!("{dropped} unacknowledged messages were dropped because your mailbox was full (limit {limit})");
            let notice = Outgoing::new(&ServerMsg::Error { client_id: 0, reason });
            sealer.seal(notice.kind, &notice.payload, buf);
        }
        for payload in &self.mail.messages {
            sealer.seal(kind::MSG, payload, buf);
        }
    }
}

/// Why a pool thread's write stopped.
enum Stalled {
    /// The send timeout passed after this many bytes: the peer is slow.
    After(usize),
    /// The socket failed.
    Failed(io::Error),
}

/// Writes `bytes` unless the socket's send timeout ([`POOL_WRITE`]) passes.
fn write_briefly(mut stream: &TcpStream, bytes: &[u8]) -> Result<(), Stalled> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(Stalled::Failed(io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if is_timeout(&err) => return Err(Stalled::After(written)),
            Err(err) => return Err(Stalled::Failed(err)),
        }
    }
    Ok(())
}

/// Writes `bytes`, retrying after each send timeout until the configured
/// write timeout has passed.
fn write_patiently(mut stream: &TcpStream, mut bytes: &[u8], limit: Duration) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if is_timeout(&err) && Instant::now() < deadline => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn describe(shared: &Shared, err: &io::Error) -> String {
    if is_timeout(err) {
        return format!("write blocked for {:?}", shared.config.write_timeout);
    }
    format!("write failed: {err}")
}

/// Moves `conn` to a thread of its own, which first writes `unwritten`.
fn own_thread(shared: &Arc<Shared>, conn: &Arc<Conn>, unwritten: Vec<u8>) {
    conn.make_own();
    let (shared, conn_for_thread) = (shared.clone(), conn.clone());
    let spawned = thread::Builder::new().name(format!("write-{}", conn.id)).stack_size(THREAD_STACK).spawn(move || {
        let conn = conn_for_thread;
        let Some(stream) = conn.outbound().as_ref().map(|out| out.stream.clone()) else { return };
        log(Level::Info, conn.nick(), format_args!("reads slowly: a writer thread of its own takes over"));
        let mut buf = unwritten;
        loop {
            if let Err(err) = write_patiently(&stream, &buf, shared.config.write_timeout) {
                return conn.close(&describe(&shared, &err));
            }
            let Some(work) = conn.wait_own(OWN_LINGER) else { return };
            let round = collect(&shared, &conn, work);
            buf.clear();
            if let Some(out) = conn.outbound().as_mut() {
                round.seal(&shared, conn.nick(), &mut out.sealer, &mut buf);
            }
        }
    });
    if let Err(err) = spawned {
        conn.close(&format!("cannot start a writer thread for a slow reader: {err}"));
    }
}
