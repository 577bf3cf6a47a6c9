//! Presence: who came online and who went, as one list that every
//! connection shares. A login or logout appends one entry; each online
//! connection has a cursor into the list (kept by the state) and sends what
//! lies past it as a few JOINED and LEFT frames. So n logins cost n
//! entries, not a frame for every online user each; the presence tick
//! forgets the entries every cursor has passed.

use std::collections::VecDeque;
use std::time::Duration;

use chat_common::message::{Outgoing, kind, put_nicks};

/// Names per USERS, JOINED or LEFT frame: 1,000 × at most 34 bytes stays
/// far below 64 KiB.
pub const USERS_PER_FRAME: usize = 1000;

/// How long presence frames may wait for the presence tick, which gets
/// them sent together. n logins make n²/2 JOINED names: a wake-up and a
/// write for each would keep the writers busy (a wake-up costs
/// microseconds) and slow a burst of logins down. Someone shown online a
/// quarter of a second late is not noticed.
pub const PRESENCE_DELAY: Duration = Duration::from_millis(250);

/// The shared list of logins and logouts.
#[derive(Default)]
pub struct Presence {
    entries: VecDeque<Entry>,
    /// Number of the entry at the front of `entries`.
    base: u64,
    /// The frames made last, for entries `.0` to `.1`. A tick finds most
    /// connections at the same cursor: they share one encoding, which took
    /// 10,000 logins from 4.8 to 4.3 s (PERFORMANCE.md, change 14).
    last: (u64, u64, Vec<Outgoing>),
}

/// One login (`joined`) or logout, and whom it is about.
struct Entry {
    nick: String,
    joined: bool,
}

impl Presence {
    /// Number of the next entry: a cursor here has sent everything.
    pub fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Records that `nick` came online (`joined`) or went.
    pub fn push(&mut self, nick: &str, joined: bool) {
        self.entries.push_back(Entry { nick: nick.to_string(), joined });
    }

    /// What a connection at `cursor` has not sent yet, as one JOINED or
    /// LEFT frame per run of the same kind (at most [`USERS_PER_FRAME`]
    /// names each); moves the cursor to the end.
    pub fn take(&mut self, cursor: &mut u64) -> Vec<Outgoing> {
        let (from, end) = ((*cursor).max(self.base), self.end());
        *cursor = end;
        if from == end {
            return Vec::new();
        }
        if (from, end) != (self.last.0, self.last.1) {
            self.last = (from, end, self.encode_from(from));
        }
        self.last.2.clone()
    }

    fn encode_from(&self, from: u64) -> Vec<Outgoing> {
        let mut frames = Vec::new();
        let mut start = (from - self.base) as usize;
        while start < self.entries.len() {
            let joined = self.entries[start].joined;
            let run = self.entries.range(start..).take(USERS_PER_FRAME).take_while(|e| e.joined == joined).count();
            let mut payload = Vec::new();
            put_nicks(&mut payload, self.entries.range(start..start + run).map(|entry| entry.nick.as_str()));
            frames.push(Outgoing { kind: if joined { kind::JOINED } else { kind::LEFT }, payload: payload.into() });
            start += run;
        }
        frames
    }

    /// Forgets the entries before `oldest`, the lowest cursor of anyone
    /// online.
    pub fn forget_before(&mut self, oldest: u64) {
        while self.base < oldest && self.entries.pop_front().is_some() {
            self.base += 1;
        }
    }

    /// Whether the list holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
