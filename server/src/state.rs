//! The chat's shared state, as plain data: registered users, who is online,
//! the exactly-once bookkeeping, and the messages waiting for each user
//! (kept by [`crate::mail`]). It does no I/O and calls nothing outside
//! itself: every method changes memory and *returns* what must happen next
//! (frames to queue, connections to wake, one to close), and leaves the
//! journal records of its changes in a list that the caller takes
//! ([`State::take_records`]) and writes. The server keeps one `State`
//! behind one `Mutex` and does that I/O after unlocking; the tests at the
//! bottom use it with no sockets and no files.
//!
//! A new message is *staged*: it has its id and its journal record, but
//! reaches mailboxes (and its sender's SENT) only when [`State::publish`]
//! is told its record is on disk, so nobody sees a message that a crash
//! could still take back.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use chat_common::MAX_UNCONFIRMED_SENDS;
use chat_common::message::{ChatMsg, Outgoing, ServerMsg};
use chat_common::validate::nick_key;

use crate::journal::Record;
use crate::mail::{Caps, Mailbox, Store, Taken};
use crate::presence::Presence;

mod replay;
mod teacher;

pub use teacher::UserReport;

/// What the state keeps of an online connection: the caller's handle to it
/// (the server's `Arc<Conn>`, a number in tests). The state never calls it:
/// it tells connections apart by [`Connection::id`] and hands them back in
/// what it returns.
pub trait Connection: Clone {
    /// Unique per connection, so a stale connection cannot log out (or
    /// take the mail of) its successor.
    fn id(&self) -> u64;
}

/// The limits the state enforces, from the flags.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How much mail may wait (see [`crate::mail`]).
    pub mail: Caps,
    /// `--max-users`: registered nicknames.
    pub max_users: usize,
    /// `--new-users-per-hour`: registrations per address per hour.
    pub new_users_per_hour: u32,
    /// `--max-listed`: names in the online list.
    pub max_listed: usize,
}

/// One registered nickname.
pub struct User {
    /// The nickname as first registered (its display form).
    pub nick: String,
    /// SHA-256 of the owner token; what the handshake mixes into the keys.
    pub verifier: [u8; 32],
    /// Its position in the timeline and its direct messages.
    mailbox: Mailbox,
    /// Every message up to this id is acknowledged (or predates the user).
    pub acked_up_to: u64,
    /// Highest client message id stored for this user.
    pub last_client_id: u64,
    /// The last few (client id, message id) pairs, to answer re-sent SENDs.
    pub recent: VecDeque<(u64, u64)>,
    /// When it last logged in, in Unix milliseconds.
    pub seen_ms: u64,
    /// The teacher refuses its logins.
    pub banned: bool,
}

/// A user's current connection, and how far it has got.
struct Online<C> {
    conn: C,
    /// Highest message id taken for this connection; 0 at each login, so
    /// everything unacknowledged is sent again.
    sent_up_to: u64,
    /// Its cursor in the presence list.
    presence_seen: u64,
    /// Its login number in the presence list (see [`Presence::came`]).
    login: u64,
}

/// What a LOGIN asks for, with what the handshake saw.
pub struct LoginRequest<'a> {
    /// The nickname from HELLO.
    pub nick: &'a str,
    /// The handshake found it registered (and the proof used its verifier).
    pub registered: bool,
    /// LOGIN's last_seen: everything up to it is acknowledged.
    pub last_seen: u64,
    /// LOGIN's verifier, present exactly when `registered` is not [P-17].
    pub register: Option<[u8; 32]>,
    /// The peer's address (see `slots::address_key`).
    pub from: IpAddr,
}

/// What a login did, and what the caller must do about it.
pub struct Login<C> {
    /// The nickname's display form.
    pub nick: String,
    /// This login registered the nickname: its journal record must be on
    /// disk before WELCOME goes out.
    pub registered_now: bool,
    /// An older connection of the same owner, to be closed.
    pub replaced: Option<C>,
    /// WELCOME and the online list, to queue on the new connection.
    pub frames: Vec<Outgoing>,
}

/// What became of a SEND.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// Staged as this message id, for this many recipients; SENT follows
    /// once it is published.
    New { id: u64, recipients: usize },
    /// A re-sent client id already published: its id if still remembered,
    /// else 0.
    Duplicate { id: u64 },
    /// A re-sent client id still staged: its SENT is yet to come.
    Staged,
    /// `to` names no registered user; nothing stored.
    UnknownRecipient,
    /// `--store-bytes` is reached: nothing stored; the client sends it again later.
    Full,
}

/// What publishing did: SENTs to queue and connections with new mail.
pub struct Published<C> {
    /// A SENT for each sender still online.
    pub sent: Vec<(C, Outgoing)>,
    /// Every online recipient, once.
    pub wake: Vec<C>,
}

/// A message with an id and a journal record, not yet delivered.
struct Staged {
    ticket: u64,
    id: u64,
    client_id: u64,
    from: String,
    /// The recipient's key, or `None` for everyone.
    to: Option<String>,
    payload: Arc<[u8]>,
}

/// All users, keyed by the case-folded nickname.
pub struct State<C> {
    users: HashMap<String, User>,
    online: HashMap<String, Online<C>>,
    next_id: u64,
    limits: Limits,
    mail: Store,
    staged: VecDeque<Staged>,
    presence: Presence,
    /// Per address: registrations allowed now (a token bucket, refilled
    /// at `new_users_per_hour`) and when it was last refilled.
    registrations: HashMap<IpAddr, (f64, u64)>,
    /// Journal records of changes not yet taken, in the order of the
    /// changes; `None` when nothing is journaled (`--memory`).
    records: Option<Vec<Record>>,
    /// Records made since start: the ticket of the latest.
    tickets: u64,
}

const HOUR_MS: u64 = 3_600_000;

impl<C: Connection> State<C> {
    /// An empty state within `limits`; `journaled` keeps the journal records
    /// of its changes.
    pub fn new(limits: Limits, journaled: bool) -> Self {
        State {
            users: HashMap::new(),
            online: HashMap::new(),
            next_id: 1,
            limits,
            mail: Store::new(limits.mail),
            staged: VecDeque::new(),
            presence: Presence::new(limits.max_listed),
            registrations: HashMap::new(),
            records: journaled.then(Vec::new),
            tickets: 0,
        }
    }

    fn record(&mut self, record: Record) -> u64 {
        if let Some(records) = &mut self.records {
            records.push(record);
        }
        self.tickets += 1;
        self.tickets
    }

    /// Takes the journal records made so far, and the ticket of the last
    /// one: once they are on disk, [`State::publish`] may publish up to it.
    pub fn take_records(&mut self) -> (Vec<Record>, u64) {
        (self.records.as_mut().map(std::mem::take).unwrap_or_default(), self.tickets)
    }

    /// The ticket of the latest change: [`State::publish`] up to it once
    /// everything [`State::take_records`] gave is on disk.
    pub fn ticket(&self) -> u64 {
        self.tickets
    }

    /// The token verifier of a registered nickname.
    pub fn verifier(&self, nick: &str) -> Option<[u8; 32]> {
        self.users.get(&nick_key(nick)).map(|user| user.verifier)
    }

    /// Registered users, online users, and the messages and bytes stored.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let (messages, bytes) = self.mail.size();
        (self.users.len(), self.online.len(), messages, bytes)
    }

    /// Logs a user in on `conn`, registering the nickname if LOGIN asks to.
    pub fn login(&mut self, request: LoginRequest<'_>, conn: C, now_ms: u64) -> Result<Login<C>, String> {
        let LoginRequest { nick, registered, last_seen, register, from } = request;
        let key = nick_key(nick);
        // SECURITY: a verifier registers only a nickname the handshake saw unregistered, never replaces one.
        match (registered, register) {
            (true, Some(_)) => return Err("LOGIN carries a verifier for a registered nickname".into()),
            (false, None) => return Err("LOGIN must carry a verifier to register this nickname".into()),
            // Someone registered it between our CHALLENGE and this LOGIN.
            (false, Some(_)) if self.users.contains_key(&key) => return Err("nickname taken".into()),
            _ => {}
        }
        if let Some(verifier) = register {
            self.register(nick, verifier, from, now_ms)?;
        }
        let Some(user) = self.users.get_mut(&key) else { return Err("nickname unknown".into()) };
        if user.banned {
            return Err("the teacher has banned this nickname".into());
        }
        user.seen_ms = now_ms;
        let nick = user.nick.clone();
        self.record(Record::Seen { nick: nick.clone(), at_ms: now_ms });
        self.ack(&nick, last_seen);
        // A new connection of someone online keeps its place in the list.
        let login = match self.online.get(&key) {
            Some(old) => old.login,
            None => self.presence.came(&nick),
        };
        let online = Online { conn, sent_up_to: 0, presence_seen: 0, login };
        let replaced = self.online.insert(key.clone(), online).map(|old| old.conn);
        let mut frames = vec![Outgoing::new(&ServerMsg::Welcome { nick: nick.clone(), server_time_ms: now_ms })];
        frames.extend(self.presence.users());
        // USERS covers everything before this point, and a cursor after our
        // own JOINED means no one hears of themselves.
        let end = self.presence.end();
        if let Some(online) = self.online.get_mut(&key) {
            online.presence_seen = end;
        }
        Ok(Login { nick, registered_now: register.is_some(), replaced, frames })
    }

    /// Registers a new nickname, within `--max-users` and the address's
    /// `--new-users-per-hour`.
    fn register(&mut self, nick: &str, verifier: [u8; 32], from: IpAddr, now_ms: u64) -> Result<(), String> {
        // SECURITY: registrations are capped in all and per address per hour, so no one can take every nickname.
        if self.users.len() >= self.limits.max_users {
            return Err(format!("the server has its limit of {} nicknames; ask the teacher", self.limits.max_users));
        }
        let per_hour = f64::from(self.limits.new_users_per_hour);
        let (tokens, since) = self.registrations.get(&from).copied().unwrap_or((per_hour, now_ms));
        let tokens = (tokens + per_hour * now_ms.saturating_sub(since) as f64 / HOUR_MS as f64).min(per_hour);
        if tokens < 1.0 {
            let minutes = ((1.0 - tokens) / per_hour * 60.0).ceil();
            return Err(format!("too many new nicknames from your address; try again in {minutes} minutes"));
        }
        // Addresses whose bucket is full again need no entry.
        if self.registrations.len() > 10_000 {
            self.registrations.retain(|_, (_, since)| now_ms.saturating_sub(*since) < HOUR_MS);
        }
        self.registrations.insert(from, (tokens - 1.0, now_ms));
        // A new user has, in effect, acknowledged everything before it.
        let acked_up_to = self.next_id - 1;
        self.record(Record::User { nick: nick.into(), verifier, last_client_id: 0, acked_up_to, dropped: 0 });
        self.add_user(nick, verifier, acked_up_to);
        Ok(())
    }

    fn add_user(&mut self, nick: &str, verifier: [u8; 32], acked_up_to: u64) -> &mut User {
        let mailbox = self.mail.open();
        let user = User {
            nick: nick.into(),
            verifier,
            mailbox,
            acked_up_to,
            last_client_id: 0,
            recent: VecDeque::new(),
            seen_ms: 0,
            banned: false,
        };
        self.users.entry(nick_key(nick)).insert_entry(user).into_mut()
    }

    /// Logs out `conn` if it is still the user's connection (a newer one
    /// may have taken over), telling everyone else.
    pub fn logout(&mut self, nick: &str, conn: &C) {
        let key = nick_key(nick);
        if self.online.get(&key).is_some_and(|online| online.conn.id() == conn.id())
            && let Some(gone) = self.online.remove(&key)
        {
            self.presence.went(gone.login);
        }
    }

    /// Stages a SEND from `from` (text already validated): it gets an id
    /// and a journal record now, and reaches mailboxes at [`State::publish`].
    /// `disk_full` refuses new messages (a re-send still gets its SENT).
    pub fn send(&mut self, from: &str, client_id: u64, to: &str, text: &str, now_ms: u64, disk_full: bool) -> Stored {
        let from_key = nick_key(from);
        let Some(sender) = self.users.get(&from_key) else { return Stored::UnknownRecipient };
        if client_id <= sender.last_client_id {
            if self.staged.iter().any(|s| s.from == from_key && s.client_id == client_id) {
                return Stored::Staged;
            }
            let id = sender.recent.iter().find(|(cid, _)| *cid == client_id).map_or(0, |(_, id)| *id);
            return Stored::Duplicate { id };
        }
        let to_key = nick_key(to);
        let to_nick = match self.users.get(&to_key) {
            _ if to.is_empty() => String::new(),
            Some(user) => user.nick.clone(),
            None => return Stored::UnknownRecipient,
        };
        let msg =
            ChatMsg { id: self.next_id, time_ms: now_ms, from: sender.nick.clone(), to: to_nick, text: text.into() };
        let payload = Outgoing::new(&ServerMsg::Msg(msg)).payload;
        let copies = if to.is_empty() { 1 } else { 1 + usize::from(to_key != from_key) };
        let staged_bytes: usize = self.staged.iter().map(|staged| staged.payload.len()).sum();
        // SECURITY: everything stored together stays within --store-bytes; past it a SEND is refused, nothing dropped.
        if disk_full || !self.mail.fits(staged_bytes + copies * payload.len()) {
            return Stored::Full;
        }
        let (id, recipients) = (self.next_id, if to.is_empty() { self.users.len() } else { copies });
        self.next_id += 1;
        if let Some(sender) = self.users.get_mut(&from_key) {
            remember_client_id(sender, client_id, id);
        }
        let ticket = self.record(Record::Message { client_id, payload: payload.clone() });
        let to = (!to.is_empty()).then_some(to_key);
        self.staged.push_back(Staged { ticket, id, client_id, from: from_key, to, payload });
        Stored::New { id, recipients }
    }

    /// Delivers every staged message whose journal ticket is at most
    /// `durable`; returns a SENT for each sender, and the online recipients
    /// to wake.
    pub fn publish(&mut self, durable: u64) -> Published<C> {
        let mut published = Published { sent: Vec::new(), wake: Vec::new() };
        // Who has new mail: everyone online after a public message, else
        // the two people of each direct one. Woken once per publish, not
        // per message: a commit often publishes hundreds of messages.
        let (mut public, mut direct) = (false, Vec::new());
        while self.staged.front().is_some_and(|staged| staged.ticket <= durable) {
            let Some(staged) = self.staged.pop_front() else { break };
            self.deliver(staged.id, &staged.from, staged.to.as_deref(), &staged.payload);
            public |= staged.to.is_none();
            direct.extend(staged.to.iter().chain([&staged.from]).cloned());
            if let Some(online) = self.online.get(&staged.from) {
                let sent = ServerMsg::Sent { client_id: staged.client_id, id: staged.id };
                published.sent.push((online.conn.clone(), Outgoing::new(&sent)));
            }
        }
        if public {
            published.wake = self.online.values().map(|online| online.conn.clone()).collect();
        } else {
            direct.sort_unstable();
            direct.dedup();
            published.wake = direct.iter().filter_map(|key| self.online.get(key)).map(|o| o.conn.clone()).collect();
        }
        published
    }

    /// Stores a message for its recipients: in the timeline if public,
    /// else in the mailboxes of `to` and of the sender.
    fn deliver(&mut self, id: u64, from: &str, to: Option<&str>, payload: &Arc<[u8]>) {
        let Some(to) = to else { return self.mail.add_public(id, payload) };
        let people = if from == to { vec![to] } else { vec![to, from] };
        for key in people {
            if let Some(user) = self.users.get_mut(key).filter(|user| user.acked_up_to < id) {
                self.mail.add_direct(&mut user.mailbox, id, payload);
            }
        }
    }

    /// `nick` has every message up to `up_to`.
    pub fn ack(&mut self, nick: &str, up_to: u64) {
        // SECURITY: no client can acknowledge (and so drop) ids that do not exist yet.
        let up_to = up_to.min(self.next_id - 1);
        let Some(user) = self.users.get_mut(&nick_key(nick)) else { return };
        if up_to <= user.acked_up_to {
            return;
        }
        user.acked_up_to = up_to;
        self.mail.ack(&mut user.mailbox, up_to);
        let nick = user.nick.clone();
        self.record(Record::Ack { nick, up_to });
    }

    /// Takes up to `max` messages not yet taken for `conn`, which must be
    /// `nick`'s current connection (an old one gets nothing).
    pub fn take_mail(&mut self, nick: &str, conn: &C, max: usize) -> Taken {
        let key = nick_key(nick);
        let (Some(user), Some(online)) = (self.users.get_mut(&key), self.online.get_mut(&key)) else {
            return Taken::default();
        };
        if online.conn.id() != conn.id() {
            return Taken::default();
        }
        let taken = self.mail.take(&mut user.mailbox, online.sent_up_to.max(user.acked_up_to), max);
        online.sent_up_to = online.sent_up_to.max(taken.last_id);
        taken
    }

    /// The logins and logouts `conn` (logged in as `nick`) has not sent yet,
    /// as JOINED and LEFT frames.
    pub fn take_presence(&mut self, nick: &str, conn: &C) -> Vec<Outgoing> {
        match self.online.get_mut(&nick_key(nick)) {
            Some(online) if online.conn.id() == conn.id() => self.presence.take(&mut online.presence_seen),
            _ => Vec::new(),
        }
    }

    /// The presence tick: forgets what every online connection has sent,
    /// and returns the connections that have some still to send.
    pub fn presence_due(&mut self) -> Vec<C> {
        let end = self.presence.end();
        let oldest = self.online.values().map(|online| online.presence_seen).min().unwrap_or(end);
        self.presence.forget_before(oldest);
        self.online.values().filter(|online| online.presence_seen < end).map(|online| online.conn.clone()).collect()
    }
}

fn remember_client_id(user: &mut User, client_id: u64, id: u64) {
    user.last_client_id = user.last_client_id.max(client_id);
    if user.recent.len() == MAX_UNCONFIRMED_SENDS {
        user.recent.pop_front();
    }
    user.recent.push_back((client_id, id));
}

#[cfg(test)]
mod tests;
