//! The hmac-chat server: `std::net`, a reader thread per connection, a
//! small pool of writer threads, and the shared state behind one `Mutex`.
//!
//! - [`config`]: flags, defaults and `--help`.
//! - [`listener`]: the accept loop and the connection limits.
//! - [`session`]: one connection's reader thread: handshake, login, then
//!   read → verify → dispatch.
//! - [`writer`]: delivery: a pool thread (or, for a slow reader, a thread
//!   of its own) turns control frames, presence and mailbox into sealed
//!   frames, one write per round.
//! - [`state`]: registered users, mailboxes, who is online, exactly-once.
//! - [`presence`]: the shared list of logins and logouts behind JOINED and
//!   LEFT.
//! - [`journal`]: the append-only journal that makes SENT mean "on disk".
//! - [`conn`]: the wake-up handle the state keeps for each online connection.
//!
//! `docs/ARCHITECTURE.md` walks through how they fit together.
#![forbid(unsafe_code)]

pub mod config;
pub mod conn;
pub mod journal;
pub mod listener;
pub mod presence;
pub mod session;
pub mod state;
pub mod writer;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use chat_common::auth::{self, Key};
use chat_common::log::{Level, log};

pub use config::Config;
use journal::Disk;
use state::State;

/// What every connection thread shares.
pub struct Shared {
    /// The flags the server was started with.
    pub config: Config,
    /// The shared key, input to every session's key derivation.
    pub key: Key,
    /// Users, mailboxes and presence. Never held during network I/O.
    state: Mutex<State>,
    /// The journal file; `None` with `--memory`.
    disk: Option<Disk>,
    /// The writer pool's queue of connections with something to send.
    pub writers: Arc<writer::Pool>,
}

impl Shared {
    /// Locks the state. A thread that panicked while holding the lock left
    /// it consistent (every method finishes its changes before returning
    /// control), so a poisoned lock is still used.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes every journal record appended so far durable (one write and
    /// one `sync_data` for everyone waiting), then publishes the staged
    /// messages: into mailboxes, and SENT to their senders. A journal that
    /// cannot be written stops the server rather than acknowledge unsaved
    /// messages.
    pub fn flush(&self) {
        let ticket = self.state().journal_ticket();
        if let Some(disk) = &self.disk {
            let take = || self.state().journal_mut().map(|journal| journal.take_pending()).unwrap_or_default();
            if let Err(err) = disk.commit(ticket, take) {
                log(Level::Error, "server", format_args!("journal write failed: {err}; stopping"));
                std::process::exit(1);
            }
        }
        let mut state = self.state();
        state.publish(ticket);
        let compact = state.journal_mut().is_some_and(|journal| journal.wants_compaction());
        drop(state);
        if let (Some(disk), true) = (&self.disk, compact) {
            let before = self.state().journal_ticket();
            match disk.compact(&self.state) {
                Ok(()) => log(Level::Info, "server", format_args!("journal compacted after {before} records")),
                Err(err) => {
                    log(Level::Error, "server", format_args!("journal compaction failed: {err}; stopping"));
                    std::process::exit(1);
                }
            }
        }
    }

    /// The presence tick: gets JOINED and LEFT frames sent to every
    /// connection that has some to send (after letting go of the lock).
    pub fn release_presence(&self) {
        let conns = self.state().presence_due();
        for conn in conns {
            conn.release_presence();
        }
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Replays the journal (unless `--memory`) and binds the listening
    /// socket. The error is one line for the user.
    pub fn bind(config: Config, key: Key) -> Result<Server, String> {
        let mut state = State::new(config.mailbox);
        let disk = match &config.data_dir {
            None => None,
            Some(dir) => {
                let (journal, disk, restored) =
                    journal::open(dir, auth::journal_key(&key), config.compact_bytes, &mut state)
                        .map_err(|err| err.to_string())?;
                state.attach_journal(journal);
                if restored.cut_bytes > 0 {
                    let cut = restored.cut_bytes;
                    log(Level::Warn, "server", format_args!("journal: cut off a torn or garbled tail of {cut} bytes"));
                }
                let (users, messages) = state.counts();
                let (users, messages) = (thousands(users), thousands(messages));
                log(Level::Info, "server", format_args!("restored {users} users, {messages} undelivered messages"));
                Some(disk)
            }
        };
        let address = format!("{}:{}", config.host, config.port);
        let listener =
            TcpListener::bind(address.as_str()).map_err(|err| format!("cannot listen on {address}: {err}"))?;
        let shared = Shared { config, key, state: Mutex::new(state), disk, writers: Arc::default() };
        Ok(Server { listener, shared: Arc::new(shared) })
    }

    /// The address actually bound (the port is real even if 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the writer pool, and a thread that sends queued presence
    /// frames every [`conn::PRESENCE_DELAY`], then accepts connections until
    /// the process ends.
    pub fn run(self) -> io::Result<()> {
        writer::start_pool(&self.shared)?;
        let shared = self.shared.clone();
        thread::Builder::new().name("presence".into()).spawn(move || {
            loop {
                thread::sleep(conn::PRESENCE_DELAY);
                shared.release_presence();
            }
        })?;
        listener::accept_loop(self.listener, self.shared)
    }
}

/// `3412` as `3,412`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_groups_digits() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(3412), "3,412");
        assert_eq!(super::thousands(1_000_000), "1,000,000");
    }
}
