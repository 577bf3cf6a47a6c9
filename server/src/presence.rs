//! Presence: who is online, and who came and went, as one list that
//! every connection shares. A login or logout appends an entry or two;
//! each online connection has a cursor into the list (kept by the state)
//! and sends what lies past it as a few JOINED, LEFT and UNLISTED frames.
//! So n logins cost n entries, not a frame for every online user each; the
//! presence tick forgets the entries every cursor has passed.
//!
//! The list names at most `--max-listed` users, the first to come online;
//! the rest are a count (UNLISTED), and the oldest of them takes the place
//! of a listed user who leaves. Without the cap, n logins send n² names:
//! 10,000 logins, 700 MB of frames.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chat_common::message::{Outgoing, ServerMsg, kind, put_nicks, put_users};

/// Names per USERS, JOINED or LEFT frame: 1,000 × at most 34 bytes stays
/// far below 64 KiB.
pub const USERS_PER_FRAME: usize = 1000;

/// How long presence frames may wait for the presence tick, which gets
/// them sent together. n logins make up to n × `--max-listed` JOINED
/// names and as many UNLISTED counts: a wake-up and a write for each
/// would keep the writers busy (a wake-up costs microseconds) and slow a
/// burst of logins down. Someone shown online a quarter of a second late
/// is not noticed.
pub const PRESENCE_DELAY: Duration = Duration::from_millis(250);

/// Who is online, and the shared list of changes.
#[derive(Default)]
pub struct Presence {
    entries: VecDeque<Change>,
    /// Number of the entry at the front of `entries`.
    base: u64,
    /// The frames made last, for entries `.0` to `.1`. A tick finds most
    /// connections at the same cursor: they share one encoding, which took
    /// 10,000 logins from 4.8 to 4.3 s (PERFORMANCE.md, change 14).
    last: (u64, u64, Vec<Outgoing>),
    /// Online users in the list, and the others, by login number (so the
    /// longest online is listed first).
    listed: BTreeMap<u64, String>,
    unlisted: BTreeMap<u64, String>,
    /// The USERS frames for `listed`, made at the first login after it
    /// changed: once the list is full, thousands of logins share them.
    listing: Option<Vec<Outgoing>>,
    /// `--max-listed`.
    max_listed: usize,
    logins: u64,
}

/// One change to what connections show.
enum Change {
    Joined(String),
    Left(String),
    /// The number of online users not listed is now this.
    Unlisted(u64),
}

impl Presence {
    /// No one online; at most `max_listed` will be listed.
    pub fn new(max_listed: usize) -> Self {
        Presence { max_listed, ..Presence::default() }
    }

    /// Number of the next entry: a cursor here has sent everything.
    pub fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// `nick` came online: listed if there is room. Returns its login
    /// number, for [`Presence::went`].
    pub fn came(&mut self, nick: &str) -> u64 {
        self.logins += 1;
        // SECURITY: the list names at most --max-listed users: a login sends at most that many names, not one per user online.
        if self.listed.len() < self.max_listed {
            self.listing = None;
            self.listed.insert(self.logins, nick.to_string());
            self.entries.push_back(Change::Joined(nick.to_string()));
        } else {
            self.unlisted.insert(self.logins, nick.to_string());
            self.entries.push_back(Change::Unlisted(self.unlisted.len() as u64));
        }
        self.logins
    }

    /// The user with login number `login` went; the longest online of the
    /// unlisted takes a listed user's place.
    pub fn went(&mut self, login: u64) {
        // Whether the number of unlisted users changed.
        let fewer_unlisted = match self.listed.remove(&login) {
            Some(nick) => {
                self.listing = None;
                self.entries.push_back(Change::Left(nick));
                let next = self.unlisted.pop_first();
                if let Some((login, nick)) = &next {
                    self.entries.push_back(Change::Joined(nick.clone()));
                    self.listed.insert(*login, nick.clone());
                }
                next.is_some()
            }
            None => self.unlisted.remove(&login).is_some(),
        };
        if fewer_unlisted {
            self.entries.push_back(Change::Unlisted(self.unlisted.len() as u64));
        }
    }

    /// The online list for a new connection: USERS frames (at most
    /// [`USERS_PER_FRAME`] names each, the last one marked), then UNLISTED
    /// if the list leaves anyone out.
    pub fn users(&mut self) -> Vec<Outgoing> {
        let listed = &self.listed;
        let mut frames = self.listing.get_or_insert_with(|| encode_users(listed)).clone();
        if !self.unlisted.is_empty() {
            frames.push(Outgoing::new(&ServerMsg::Unlisted { count: self.unlisted.len() as u64 }));
        }
        frames
    }

    /// What a connection at `cursor` has not sent yet, as one JOINED or
    /// LEFT frame per run of the same kind (at most [`USERS_PER_FRAME`]
    /// names each), then the latest UNLISTED count; moves the cursor to the
    /// end.
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
        let (mut frames, mut unlisted) = (Vec::new(), None);
        let (mut run, mut run_kind) = (Vec::new(), kind::JOINED);
        let flush = |frames: &mut Vec<Outgoing>, run: &mut Vec<&str>, kind| {
            if !run.is_empty() {
                let mut payload = Vec::new();
                put_nicks(&mut payload, run.drain(..));
                frames.push(Outgoing { kind, payload: payload.into() });
            }
        };
        for change in self.entries.range((from - self.base) as usize..) {
            let (nick, kind) = match change {
                Change::Joined(nick) => (nick, kind::JOINED),
                Change::Left(nick) => (nick, kind::LEFT),
                Change::Unlisted(count) => {
                    unlisted = Some(*count);
                    continue;
                }
            };
            if kind != run_kind || run.len() == USERS_PER_FRAME {
                flush(&mut frames, &mut run, run_kind);
                run_kind = kind;
            }
            run.push(nick);
        }
        flush(&mut frames, &mut run, run_kind);
        if let Some(count) = unlisted {
            frames.push(Outgoing::new(&ServerMsg::Unlisted { count }));
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

/// USERS frames naming `listed`, at most [`USERS_PER_FRAME`] each, the last
/// one marked.
fn encode_users(listed: &BTreeMap<u64, String>) -> Vec<Outgoing> {
    let names: Vec<&str> = listed.values().map(String::as_str).collect();
    let chunks = names.chunks(USERS_PER_FRAME);
    let count = chunks.len();
    let mut frames = Vec::new();
    for (index, chunk) in chunks.enumerate() {
        let mut payload = Vec::new();
        put_users(&mut payload, index + 1 == count, chunk.iter().copied());
        frames.push(Outgoing { kind: kind::USERS, payload: payload.into() });
    }
    frames
}
