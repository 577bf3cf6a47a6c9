//! What every connection thread shares, and the one place where a change
//! to the state becomes durable and visible: [`Shared::commit`] writes the
//! state's journal records (one write and one sync for everyone waiting:
//! group commit), publishes the messages they make durable, hands their
//! recipients to delivery, and compacts the journal when it has grown.
//!
//! A journal that cannot be written (a full disk) is a state, not a crash:
//! the records wait in the journal, in order, staged messages stay
//! unpublished (no SENT: their clients keep them), [`Shared::storage_full`]
//! tells the sessions to refuse new SENDs, and each later commit (the
//! presence tick makes one while full) tries again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use chat_common::auth::Key;
use chat_common::log::{Level, log, unix_ms};

use crate::config::Config;
use crate::delivery::{ChatState, Conn, Waiting, Writers, wake_all};
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
    /// The journal; `None` with `--memory`.
    journal: Option<Disk>,
    /// The last journal write failed; read without waiting for the journal.
    full: AtomicBool,
    /// The writer pool.
    pub writers: Arc<Writers>,
    /// Open connections (`--max-conns`, `--max-conns-per-ip`).
    pub conns: Limit,
    /// Connections mid-handshake (`--max-handshakes`, `--max-handshakes-per-ip`).
    pub handshakes: Limit,
}

/// The journal, and group commit: one thread writes and syncs for every
/// change made so far, while the others wait for it to finish.
struct Disk {
    /// Held by the one thread writing.
    journal: Mutex<Journal>,
    group: Mutex<Group>,
    /// Signalled when a write ends.
    done: Condvar,
}

struct Group {
    /// The ticket of the last change on disk: publish up to here.
    durable: u64,
    /// A thread is writing now.
    writing: bool,
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
        let group = Mutex::new(Group { durable: 0, writing: false });
        let journal = journal.map(|journal| Disk { journal: Mutex::new(journal), group, done: Condvar::new() });
        Shared { config, key, state, journal, full: AtomicBool::new(false), writers, conns, handshakes }
    }

    /// Locks the state.
    pub fn state(&self) -> MutexGuard<'_, ChatState> {
        lock(&self.state)
    }

    /// Whether the journal cannot be written just now: new SENDs should
    /// be refused (RETRY) until it can.
    pub fn storage_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Makes every change so far durable, then publishes the staged
    /// messages that became durable: into mailboxes, SENT to their senders,
    /// and their online recipients handed to delivery. Returns whether
    /// every change made before the call is on disk; `false` while the
    /// journal cannot be written, the changes then wait for a later commit.
    pub fn commit(&self) -> bool {
        let (durable, all) = match &self.journal {
            None => (u64::MAX, true),
            Some(disk) => {
                // Our changes are numbered up to `wanted`. While another
                // thread writes, wait: its write may cover them, and then
                // we return without a sync of our own.
                let wanted = self.state().ticket();
                let mut group = lock(&disk.group);
                while group.writing && group.durable < wanted {
                    group = disk.done.wait(group).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                if group.durable < wanted {
                    group.writing = true;
                    drop(group);
                    let durable = self.write(&mut lock(&disk.journal));
                    group = lock(&disk.group);
                    group.writing = false;
                    group.durable = group.durable.max(durable.unwrap_or(0));
                    disk.done.notify_all();
                }
                (group.durable, group.durable >= wanted)
            }
        };
        let published = self.state().publish(durable);
        for (conn, sent) in published.sent {
            conn.push(sent);
        }
        wake_all(&self.writers, published.wake, Waiting::Mail);
        all
    }

    /// Writes every change made so far (and compacts when the journal has
    /// grown); returns the ticket of the last one, or `None` if the
    /// journal cannot be written just now.
    fn write(&self, journal: &mut Journal) -> Option<u64> {
        let (records, ticket) = self.state().take_records();
        let written = journal.append(&records);
        self.note_storage(written.as_ref().err());
        written.ok()?;
        Some(if journal.wants_compaction() { self.compact(journal).unwrap_or(ticket) } else { ticket })
    }

    /// Logs when the journal stops, and starts again, taking writes.
    fn note_storage(&self, error: Option<&std::io::Error>) {
        let was_full = self.full.swap(error.is_some(), Ordering::Relaxed);
        match error {
            Some(err) if !was_full => log(
                Level::Error,
                "server",
                format_args!("storage full: cannot write the journal ({err}); new messages wait until it can"),
            ),
            None if was_full => log(Level::Info, "server", format_args!("storage available again: journal written")),
            _ => {}
        }
    }

    /// Rewrites the journal as the live state. The snapshot is taken under
    /// the state lock; the file is written after it is released, while the
    /// journal lock keeps every other write waiting. If the rewrite fails
    /// (it needs space for a second file), the changes it took are appended
    /// to the old journal instead, and compaction is tried again later.
    fn compact(&self, journal: &mut Journal) -> Option<u64> {
        let (records, snapshot, ticket) = {
            let mut state = self.state();
            // Changes not yet written are part of the snapshot.
            let (records, ticket) = state.take_records();
            (records, state.snapshot(), ticket)
        };
        match journal.rewrite(&snapshot) {
            Ok(()) => log(Level::Info, "server", format_args!("journal compacted to {} records", snapshot.len())),
            Err(err) => {
                log(Level::Warn, "server", format_args!("journal compaction failed ({err}); trying again later"));
                let written = journal.append(&records);
                self.note_storage(written.as_ref().err());
                written.ok()?;
            }
        }
        Some(ticket)
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
        wake_all(&self.writers, due, Waiting::Presence);
    }
}
