//! What every connection thread shares, and the one place where a change
//! to the state becomes durable and visible: [`Shared::commit`] writes the
//! state's journal records (one write and one sync for everyone waiting:
//! group commit), publishes the messages they make durable, hands their
//! recipients to delivery, and compacts the journal when it has grown.

use std::sync::{Arc, Mutex, MutexGuard};

use chat_common::auth::Key;
use chat_common::log::{Level, log, unix_ms};

use crate::config::Config;
use crate::delivery::{ChatState, Conn, Writers, wake_all};
use crate::journal::Journal;
use crate::slots::Limit;

/// What every connection thread shares.
pub struct Shared {
    /// The flags the server was started with.
    pub config: Config,
    /// The shared key, input to every session's key derivation.
    pub key: Key,
    /// Users, mailboxes and presence. Never held during network or disk I/O.
    pub state: Arc<Mutex<ChatState>>,
    /// The journal file; `None` with `--memory`. Held while writing, which
    /// is what makes the others wait for that write (group commit).
    journal: Option<Mutex<Journal>>,
    /// The writer pool.
    pub writers: Arc<Writers>,
    /// Open connections (`--max-conns`, `--max-conns-per-ip`).
    pub conns: Limit,
    /// Connections mid-handshake (`--max-handshakes`, `--max-handshakes-per-ip`).
    pub handshakes: Limit,
}

/// Locks a mutex whose data stays consistent even if a holder panicked:
/// every method finishes its changes before it returns.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Puts the parts together.
    pub fn new(
        config: Config,
        key: Key,
        state: Arc<Mutex<ChatState>>,
        journal: Option<Journal>,
        writers: Arc<Writers>,
    ) -> Self {
        let conns = Limit::new("connections", config.max_conns, config.max_conns_per_ip);
        let handshakes = Limit::new("connections mid-handshake", config.max_handshakes, config.max_handshakes_per_ip);
        Shared { config, key, state, journal: journal.map(Mutex::new), writers, conns, handshakes }
    }

    /// Locks the state.
    pub fn state(&self) -> MutexGuard<'_, ChatState> {
        lock(&self.state)
    }

    /// Makes every change so far durable, then publishes the staged
    /// messages that became durable: into mailboxes, SENT to their senders,
    /// and their online recipients handed to delivery. A journal that
    /// cannot be written stops the server rather than confirm unsaved
    /// messages.
    pub fn commit(&self) {
        let durable = match &self.journal {
            None => u64::MAX,
            Some(journal) => {
                // Whoever holds the journal writes for everyone who staged
                // before it took the records; the others wait here, then
                // usually find nothing left to write.
                let mut journal = lock(journal);
                let (records, durable) = self.state().take_records();
                if !records.is_empty()
                    && let Err(err) = journal.append(&records)
                {
                    log(Level::Error, "server", format_args!("journal write failed: {err}; stopping"));
                    std::process::exit(1);
                }
                if journal.wants_compaction() { self.compact(&mut journal) } else { durable }
            }
        };
        let published = self.state().publish(durable);
        for (conn, sent) in published.sent {
            conn.push(sent);
        }
        wake_all(&self.writers, published.wake);
    }

    /// Rewrites the journal as the live state; returns the ticket of the
    /// last change it covers. The snapshot is taken under the state lock;
    /// the file is written after it is released, while the journal lock
    /// keeps every other write waiting.
    fn compact(&self, journal: &mut Journal) -> u64 {
        let (records, durable) = {
            let mut state = self.state();
            // Changes not yet written are part of the snapshot.
            let (_, durable) = state.take_records();
            (state.snapshot(), durable)
        };
        match journal.rewrite(&records) {
            Ok(()) => log(Level::Info, "server", format_args!("journal compacted to {} records", records.len())),
            Err(err) => {
                log(Level::Error, "server", format_args!("journal compaction failed: {err}; stopping"));
                std::process::exit(1);
            }
        }
        durable
    }

    /// Forgets the nicknames not logged in for `--forget-after-days`.
    pub fn forget_idle(&self) {
        let before = unix_ms().saturating_sub(self.config.forget_after.as_millis() as u64);
        let forgotten = self.state().forget_idle(before);
        if let Some(first) = forgotten.first() {
            let (count, days) = (forgotten.len(), self.config.forget_after.as_secs() / 86_400);
            log(Level::Info, "server", format_args!("forgot {count} nicknames idle for {days} days ({first}, ...)"));
            self.commit();
        }
    }

    /// The presence tick: gets JOINED and LEFT frames sent to every
    /// connection that has some to send.
    pub fn release_presence(&self) {
        let due: Vec<Arc<Conn>> = self.state().presence_due();
        for conn in due {
            conn.release_presence();
        }
    }
}
