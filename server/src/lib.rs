//! The hmac-chat server: `std::net`, a reader thread per connection, a
//! small pool of writer threads, and the shared state behind one `Mutex`.
//!
//! Read it in layers. The core is a complete chat server:
//! - [`listener`]: the accept loop and the connection limits ([`slots`]).
//! - [`session`]: one connection's thread: handshake, login, then
//!   read → verify → act.
//! - [`state`]: registered users, who is online, exactly-once; plain data,
//!   no I/O: its methods return what must happen next. Its messages wait
//!   in [`mail`]: one timeline for public messages, a mailbox each for
//!   direct ones.
//!
//! Beneath it, the machinery that makes it fast and durable:
//! - [`shared`]: what the threads share; commit → publish → compact.
//! - [`delivery`]: who writes a connection's socket, and when; the writer
//!   [`pool`] and a thread of its own for a slow reader.
//! - [`presence`]: the shared list behind JOINED and LEFT.
//! - [`journal`]: the append-only file that makes SENT mean "on disk".
//! - [`console`]: the teacher's commands on standard input.
//! - [`trace`]: `--trace`, every frame of chosen connections on stderr.
//! - [`config`]: flags, defaults and `--help`.
//!
//! The arrows between modules point one way: listener → session →
//! {shared, delivery, state, trace}; shared → {delivery, journal};
//! delivery → {state, pool, trace}; state → {mail, presence, journal};
//! journal, mail, pool, presence, slots, trace and config use nothing of
//! the server (a test checks there is no cycle). `docs/ARCHITECTURE.md` walks through how they fit.
#![forbid(unsafe_code)]

pub mod config;
pub mod console;
pub mod delivery;
pub mod journal;
pub mod listener;
pub mod mail;
pub mod pool;
pub mod presence;
pub mod session;
pub mod shared;
pub mod slots;
pub mod state;
pub mod trace;

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;

use chat_common::auth::Key;
use chat_common::log::{Level, log};
use chat_common::random;

pub use config::Config;
use delivery::{ChatState, Context};
use journal::Journal;
use mail::Caps;
use shared::Shared;
use state::Limits;

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    config: Config,
    key: Key,
    state: ChatState,
    journal: Option<Journal>,
}

/// Descriptors the server needs besides one per connection: stdin, stdout
/// and stderr, the listener, the journal, its directory and lock file,
/// `/dev/urandom`, compaction's new file, and a connection accepted only to
/// be refused; the rest is headroom.
pub const RESERVED_DESCRIPTORS: usize = 16;

impl Server {
    /// Fits `--max-conns` to the descriptor limit, replays the journal
    /// (unless `--memory`) and binds the listening socket. The error is one
    /// line for the user.
    pub fn bind(mut config: Config, key: Key) -> Result<Server, String> {
        fit_descriptors(&mut config);
        // Opened once, now: a handshake never needs a descriptor of its own.
        random::source().map_err(|err| format!("/dev/urandom: {err}"))?;
        let fingerprint = key.fingerprint();
        log(Level::Info, "server", format_args!("key {} (fingerprint {fingerprint})", config.key_file.display()));
        let caps = Caps { messages: config.mailbox, bytes: config.mailbox_bytes, store_bytes: config.store_bytes };
        let limits = Limits {
            mail: caps,
            max_users: config.max_users,
            new_users_per_hour: config.new_users_per_hour,
            max_listed: config.max_listed,
        };
        let mut state = ChatState::new(limits, config.data_dir.is_some());
        let journal = match &config.data_dir {
            None => None,
            Some(dir) => {
                let replay = |record| state.replay(record);
                let (journal, restored) = Journal::open(dir, &key, config.compact_bytes, config.repair, replay)
                    .map_err(|err| err.to_string())?;
                let (path, cut) = (dir.join(journal::FILE_NAME), restored.cut_bytes);
                match &restored.copy {
                    Some(copy) => log(
                        Level::Warn,
                        "server",
                        format_args!(
                            "--repair: cut {cut} bytes off the journal; the file as it was is in {}",
                            copy.display()
                        ),
                    ),
                    None if cut > 0 => log(
                        Level::Warn,
                        "server",
                        format_args!(
                            "journal: cut off a torn last record of {cut} bytes (a write a crash interrupted)"
                        ),
                    ),
                    None => {}
                }
                state.settle();
                let (users, _, messages, _) = state.counts();
                log(
                    Level::Info,
                    "server",
                    format_args!("restored {users} users, {messages} undelivered messages from {}", path.display()),
                );
                Some(journal)
            }
        };
        let address = format!("{}:{}", config.host, config.port);
        let listener =
            TcpListener::bind(address.as_str()).map_err(|err| format!("cannot listen on {address}: {err}"))?;
        if let (Some(journal), Ok(addr)) = (&journal, listener.local_addr()) {
            let _ = journal.note_port(addr.port());
        }
        Ok(Server { listener, config, key, state, journal })
    }

    /// The address actually bound (the port is real even if 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the writer pool, and a thread that gets presence frames sent
    /// every [`presence::PRESENCE_DELAY`] (and retries the journal while it
    /// cannot be written), then accepts connections until the process ends.
    pub fn run(self) -> io::Result<()> {
        let state = Arc::new(Mutex::new(self.state));
        let context = Context {
            state: state.clone(),
            write_timeout: self.config.write_timeout,
            mailbox: self.config.mailbox,
            trace: trace::Tracer::new(self.config.trace.as_deref()),
        };
        let writers = delivery::start_pool(context)?;
        let shared = Arc::new(Shared::new(self.config, self.key, state, self.journal, writers));
        let ticker = shared.clone();
        thread::Builder::new().name("ticker".into()).spawn(move || {
            for tick in 0u64.. {
                thread::sleep(presence::PRESENCE_DELAY);
                ticker.release_presence();
                // While the disk is full, nothing else may commit again.
                if ticker.storage_full() {
                    ticker.commit();
                }
                // About once a minute.
                if tick % 240 == 0 {
                    ticker.forget_idle();
                }
            }
        })?;
        let teacher = shared.clone();
        thread::Builder::new().name("console".into()).spawn(move || console::run(teacher))?;
        listener::accept_loop(self.listener, shared)
    }
}

/// Lowers `--max-conns` to what the open-file limit allows, with a warning
/// that says how to raise the limit.
fn fit_descriptors(config: &mut Config) {
    let Some(limit) = open_file_limit() else { return };
    let fit = limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    if config.max_conns > fit {
        log(
            Level::Warn,
            "server",
            format_args!(
                "the open-file limit is {limit} (ulimit -n), too low for --max-conns {}: serving at most {fit} \
                 connections. To allow more, raise it before starting the server (ulimit -n 20000, up to \
                 ulimit -Hn; LimitNOFILE= in a systemd unit)",
                config.max_conns
            ),
        );
        config.max_conns = fit;
    }
}

/// The soft limit on open files (`ulimit -n`), from `/proc/self/limits`;
/// `None` if it is unlimited or cannot be read.
fn open_file_limit() -> Option<usize> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
