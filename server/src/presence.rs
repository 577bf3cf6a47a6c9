//! Presence: who came online and who went, as one list that every
//! connection shares. A login or logout appends one entry; each
//! connection's writer takes what it has not sent yet (its cursor is
//! [`Conn::presence_seen`]) as a few JOINED and LEFT frames. So n logins
//! cost n entries, not a frame for every online user each; the presence
//! tick forgets the entries everyone has sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chat_common::message::{kind, put_str};

use crate::conn::{Conn, Outgoing};
use crate::state::USERS_PER_FRAME;

/// The shared list of logins and logouts.
#[derive(Default)]
pub struct Presence {
    entries: VecDeque<Entry>,
    /// Number of the entry at the front of `entries`.
    base: u64,
    /// The frames made last, for entries `.0` to `.1`. A tick finds most
    /// connections at the same cursor, so they share one encoding.
    last: (u64, u64, Vec<Outgoing>),
}

/// One login (`joined`) or logout, and whom it is about (who is not told).
struct Entry {
    nick: String,
    joined: bool,
}

impl Presence {
    /// Number of the next entry: a cursor here has sent everything.
    pub fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Whether every online connection has sent every entry kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records that `nick` came online (`joined`) or went.
    pub fn push(&mut self, nick: &str, joined: bool) {
        self.entries.push_back(Entry { nick: nick.to_string(), joined });
    }

    /// What `conn` has not sent yet, as one JOINED or LEFT frame per run (at
    /// most [`USERS_PER_FRAME`] names each); advances its cursor. With
    /// thousands logging in, each connection has thousands of names to
    /// send: they are encoded once for every connection at the same cursor.
    pub fn take(&mut self, conn: &Conn) -> Vec<Outgoing> {
        let (from, end) = (conn.presence_seen.load(Ordering::Relaxed).max(self.base), self.end());
        conn.presence_seen.store(end, Ordering::Relaxed);
        if from == end {
            return Vec::new();
        }
        if (from, end) != (self.last.0, self.last.1) {
            self.last = (from, end, self.encode_from(from));
        }
        self.last.2.clone()
    }

    /// Encodes the entries from number `from` on.
    fn encode_from(&self, from: u64) -> Vec<Outgoing> {
        let mut frames = Vec::new();
        // (joined, names so far, payload: a count patched in at the end, then the names)
        let mut run: Option<(bool, u16, Vec<u8>)> = None;
        let finish = |(joined, count, mut payload): (bool, u16, Vec<u8>)| {
            payload[..2].copy_from_slice(&count.to_be_bytes());
            Outgoing { kind: if joined { kind::JOINED } else { kind::LEFT }, payload: payload.into() }
        };
        for entry in self.entries.range((from - self.base) as usize..) {
            match &mut run {
                Some((joined, count, payload)) if *joined == entry.joined && usize::from(*count) < USERS_PER_FRAME => {
                    put_str(payload, &entry.nick);
                    *count += 1;
                }
                _ => {
                    frames.extend(run.take().map(finish));
                    let mut payload = vec![0, 0];
                    put_str(&mut payload, &entry.nick);
                    run = Some((entry.joined, 1, payload));
                }
            }
        }
        frames.extend(run.map(finish));
        frames
    }

    /// The tick: forgets the entries all of `online` have sent, and returns
    /// those of them with some still to send.
    pub fn due<'a>(&mut self, online: impl Iterator<Item = &'a Arc<Conn>> + Clone) -> Vec<Arc<Conn>> {
        let end = self.end();
        let oldest = online.clone().map(|conn| conn.presence_seen.load(Ordering::Relaxed)).min().unwrap_or(end);
        while self.base < oldest && self.entries.pop_front().is_some() {
            self.base += 1;
        }
        online.filter(|conn| conn.presence_seen.load(Ordering::Relaxed) < end).cloned().collect()
    }
}
