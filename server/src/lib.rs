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
//! - [`config`]: flags, defaults and `--help`.
//!
//! The arrows between modules point one way: listener → session →
//! {shared, delivery, state}; shared → {delivery, journal}; delivery →
//! {state, pool}; state → {mail, presence, journal}; journal, mail, pool,
//! presence, slots and config use nothing of the server (a test checks
//! there is no cycle). `docs/ARCHITECTURE.md` walks through how they fit.
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

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;

use chat_common::auth::{self, Key};
use chat_common::log::{Level, log};

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

impl Server {
    /// Replays the journal (unless `--memory`) and binds the listening
    /// socket. The error is one line for the user.
    pub fn bind(config: Config, key: Key) -> Result<Server, String> {
        let caps = Caps { messages: config.mailbox, bytes: config.mailbox_bytes, store_bytes: config.store_bytes };
        let limits = Limits { mail: caps, max_users: config.max_users, new_users_per_hour: config.new_users_per_hour };
        let mut state = ChatState::new(limits, config.data_dir.is_some());
        let journal = match &config.data_dir {
            None => None,
            Some(dir) => {
                let replay = |record| state.replay(record);
                let (journal, restored) = Journal::open(dir, auth::journal_key(&key), config.compact_bytes, replay)
                    .map_err(|err| err.to_string())?;
                if restored.cut_bytes > 0 {
                    let cut = restored.cut_bytes;
                    log(Level::Warn, "server", format_args!("journal: cut off a torn or garbled tail of {cut} bytes"));
                }
                state.settle();
                let (users, _, messages, _) = state.counts();
                log(Level::Info, "server", format_args!("restored {users} users, {messages} undelivered messages"));
                Some(journal)
            }
        };
        let address = format!("{}:{}", config.host, config.port);
        let listener =
            TcpListener::bind(address.as_str()).map_err(|err| format!("cannot listen on {address}: {err}"))?;
        Ok(Server { listener, config, key, state, journal })
    }

    /// The address actually bound (the port is real even if 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the writer pool, and a thread that gets presence frames sent
    /// every [`presence::PRESENCE_DELAY`], then accepts connections until the
    /// process ends.
    pub fn run(self) -> io::Result<()> {
        let state = Arc::new(Mutex::new(self.state));
        let context =
            Context { state: state.clone(), write_timeout: self.config.write_timeout, mailbox: self.config.mailbox };
        let writers = delivery::start_pool(context)?;
        let shared = Arc::new(Shared::new(self.config, self.key, state, self.journal, writers));
        let ticker = shared.clone();
        thread::Builder::new().name("ticker".into()).spawn(move || {
            for tick in 0u64.. {
                thread::sleep(presence::PRESENCE_DELAY);
                ticker.release_presence();
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
