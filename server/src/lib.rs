//! The hmac-chat server: `std::net`, a thread per connection (plus one
//! writer thread each), and the shared state behind one `Mutex`.
//!
//! - [`config`]: flags, defaults and `--help`.
//! - [`listener`]: the accept loop and the connection limits.
//! - [`session`]: one connection: handshake, login, then read → verify →
//!   dispatch.
//! - [`writer`]: one connection's delivery thread: mailbox → sealed frames
//!   → one write per batch.
//! - [`state`]: registered users, mailboxes, presence, exactly-once.
//! - [`conn`]: the wake-up handle the state keeps for each online connection.
//!
//! `docs/ARCHITECTURE.md` walks through how they fit together.
#![forbid(unsafe_code)]

pub mod config;
pub mod conn;
pub mod listener;
pub mod session;
pub mod state;
pub mod writer;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};

use chat_common::auth::Key;

pub use config::Config;
use state::State;

/// What every connection thread shares.
pub struct Shared {
    /// The flags the server was started with.
    pub config: Config,
    /// The shared key, input to every session's key derivation.
    pub key: Key,
    /// Users, mailboxes and presence. Never held during network I/O.
    state: Mutex<State>,
}

impl Shared {
    /// Locks the state. A thread that panicked while holding the lock left
    /// it consistent (every method finishes its changes before returning
    /// control), so a poisoned lock is still used.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the listening socket.
    pub fn bind(config: Config, key: Key) -> io::Result<Server> {
        let listener = TcpListener::bind((config.host.as_str(), config.port))?;
        let state = Mutex::new(State::new(config.mailbox));
        Ok(Server { listener, shared: Arc::new(Shared { config, key, state }) })
    }

    /// The address actually bound (the port is real even if 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until the process ends.
    pub fn run(self) -> io::Result<()> {
        listener::accept_loop(self.listener, self.shared)
    }
}
