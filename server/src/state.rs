//! The chat's shared state, as plain data: registered users and their
//! mailboxes, who is online, and the exactly-once bookkeeping. It does no
//! I/O and calls nothing outside itself: every method changes memory and
//! *returns* what must happen next (frames to queue, connections to wake,
//! one to close), and leaves the journal records of its changes in a list
//! that the caller takes ([`State::take_records`]) and writes. The server
//! keeps one `State` behind one `Mutex` and does that I/O after unlocking;
//! the tests at the bottom use it with no sockets and no files.
//!
//! A new message is *staged*: it has its id and its journal record, but
//! reaches mailboxes (and its sender's SENT) only when [`State::publish`]
//! is told its record is on disk, so nobody sees a message that a crash
//! could still take back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chat_common::MAX_UNCONFIRMED_SENDS;
use chat_common::message::{ChatMsg, Outgoing, ServerMsg, kind, put_users};
use chat_common::validate::nick_key;

use crate::journal::{self, Record};
use crate::presence::{Presence, USERS_PER_FRAME};

/// What the state keeps of an online connection: the caller's handle to it
/// (the server's `Arc<Conn>`, a number in tests). The state never calls it:
/// it tells connections apart by [`Connection::id`] and hands them back in
/// what it returns.
pub trait Connection: Clone {
    /// Unique per connection, so a stale connection cannot log out (or
    /// take the mail of) its successor.
    fn id(&self) -> u64;
}

/// One registered nickname.
pub struct User {
    /// The nickname as first registered (its display form).
    pub nick: String,
    /// SHA-256 of the owner token; what the handshake mixes into the keys.
    pub verifier: [u8; 32],
    /// Messages not yet acknowledged, in id order, each payload shared.
    pub mailbox: VecDeque<(u64, Arc<[u8]>)>,
    /// Every message up to this id is acknowledged (or predates the user).
    pub acked_up_to: u64,
    /// Messages dropped from a full mailbox since the user was last told.
    pub dropped: u64,
    /// Highest client message id stored for this user.
    pub last_client_id: u64,
    /// The last few (client id, message id) pairs, to answer re-sent SENDs.
    pub recent: VecDeque<(u64, u64)>,
}

/// A user's current connection, and how far it has got.
struct Online<C> {
    conn: C,
    /// The display nickname (a copy, so the online list needs no lookups).
    nick: String,
    /// Highest message id taken for this connection; 0 at each login, so
    /// everything unacknowledged is sent again.
    sent_up_to: u64,
    /// Its cursor in the presence list.
    presence_seen: u64,
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
}

/// What publishing did: SENTs to queue and connections with new mail.
pub struct Published<C> {
    /// A SENT for each sender still online.
    pub sent: Vec<(C, Outgoing)>,
    /// Every online recipient, once.
    pub wake: Vec<C>,
}

/// Messages to deliver and how many were dropped, for one delivery round.
#[derive(Default)]
pub struct Mail {
    /// Payloads of MSG frames, in id order.
    pub messages: Vec<Arc<[u8]>>,
    /// Dropped from a full mailbox since last told (0 if none).
    pub dropped: u64,
    /// More is waiting beyond this batch.
    pub more: bool,
}

/// A message with an id and a journal record, not yet in any mailbox.
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
    mailbox_cap: usize,
    staged: VecDeque<Staged>,
    presence: Presence,
    /// Journal records of changes not yet taken, in the order of the
    /// changes; `None` when nothing is journaled (`--memory`).
    records: Option<Vec<Record>>,
    /// Records made since start: the ticket of the latest.
    tickets: u64,
}

impl<C: Connection> State<C> {
    /// An empty state whose mailboxes hold at most `mailbox_cap` messages;
    /// `journaled` keeps the journal records of its changes.
    pub fn new(mailbox_cap: usize, journaled: bool) -> Self {
        State {
            users: HashMap::new(),
            online: HashMap::new(),
            next_id: 1,
            mailbox_cap,
            staged: VecDeque::new(),
            presence: Presence::default(),
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

    /// The token verifier of a registered nickname.
    pub fn verifier(&self, nick: &str) -> Option<[u8; 32]> {
        self.users.get(&nick_key(nick)).map(|user| user.verifier)
    }

    /// Registered users, and distinct messages waiting in mailboxes.
    pub fn counts(&self) -> (usize, usize) {
        let mut ids: Vec<u64> = self.users.values().flat_map(|user| user.mailbox.iter().map(|(id, _)| *id)).collect();
        ids.sort_unstable();
        ids.dedup();
        (self.users.len(), ids.len())
    }

    /// Logs `nick` in on `conn`. `registered` is what the handshake saw;
    /// `register` is LOGIN's verifier, present exactly when it was not
    /// [P-17].
    pub fn login(
        &mut self,
        nick: &str,
        registered: bool,
        last_seen: u64,
        register: Option<[u8; 32]>,
        conn: C,
        now_ms: u64,
    ) -> Result<Login<C>, String> {
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
            // A new user has, in effect, acknowledged everything before it.
            let acked_up_to = self.next_id - 1;
            self.record(Record::User { nick: nick.into(), verifier, last_client_id: 0, acked_up_to, dropped: 0 });
            self.users.insert(key.clone(), User::new(nick, verifier, acked_up_to));
        }
        self.ack(nick, last_seen);
        // The handshake for a registered nick succeeded only with its token,
        // and users are never removed: the user exists.
        let Some(user) = self.users.get(&key) else { return Err("nickname unknown".into()) };
        let nick = user.nick.clone();
        let online = Online { conn, nick: nick.clone(), sent_up_to: 0, presence_seen: 0 };
        let replaced = self.online.insert(key.clone(), online).map(|old| old.conn);
        let mut frames = vec![Outgoing::new(&ServerMsg::Welcome { nick: nick.clone(), server_time_ms: now_ms })];
        // Encoded from borrowed names: with thousands online, cloning each
        // name for every login was a good part of a login's cost.
        let names: Vec<&str> = self.online.values().map(|online| online.nick.as_str()).collect();
        let chunks = names.chunks(USERS_PER_FRAME);
        let count = chunks.len();
        for (index, chunk) in chunks.enumerate() {
            let mut payload = Vec::new();
            put_users(&mut payload, index + 1 == count, chunk.iter().copied());
            frames.push(Outgoing { kind: kind::USERS, payload: payload.into() });
        }
        if replaced.is_none() {
            self.presence.push(&nick, true);
        }
        // USERS covers everything before this point, and a cursor after our
        // own JOINED means no one hears of themselves.
        let end = self.presence.end();
        if let Some(online) = self.online.get_mut(&key) {
            online.presence_seen = end;
        }
        Ok(Login { nick, registered_now: register.is_some(), replaced, frames })
    }

    /// Logs out `conn` if it is still the user's connection (a newer one
    /// may have taken over), telling everyone else.
    pub fn logout(&mut self, nick: &str, conn: &C) {
        let key = nick_key(nick);
        if self.online.get(&key).is_some_and(|online| online.conn.id() == conn.id()) {
            let gone = self.online.remove(&key).map(|online| online.nick).unwrap_or_default();
            self.presence.push(&gone, false);
        }
    }

    /// Stages a SEND from `from` (text already validated): it gets an id
    /// and a journal record now, and reaches mailboxes at [`State::publish`].
    pub fn send(&mut self, from: &str, client_id: u64, to: &str, text: &str, now_ms: u64) -> Stored {
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
        let id = self.next_id;
        self.next_id += 1;
        let msg = ChatMsg { id, time_ms: now_ms, from: sender.nick.clone(), to: to_nick, text: text.into() };
        let payload = Outgoing::new(&ServerMsg::Msg(msg)).payload;
        let recipients = if to.is_empty() { self.users.len() } else { 1 + usize::from(to_key != from_key) };
        if let Some(sender) = self.users.get_mut(&from_key) {
            remember_client_id(sender, client_id, id);
        }
        let ticket = self.record(Record::Message { client_id, payload: payload.clone() });
        let to = (!to.is_empty()).then_some(to_key);
        self.staged.push_back(Staged { ticket, id, client_id, from: from_key, to, payload });
        Stored::New { id, recipients }
    }

    /// Moves every staged message whose journal ticket is at most `durable`
    /// into its recipients' mailboxes; returns a SENT for each sender, and
    /// the online recipients to wake.
    pub fn publish(&mut self, durable: u64) -> Published<C> {
        let mut published = Published { sent: Vec::new(), wake: Vec::new() };
        let mut any = false;
        while self.staged.front().is_some_and(|staged| staged.ticket <= durable) {
            let Some(staged) = self.staged.pop_front() else { break };
            any = true;
            deposit(&mut self.users, self.mailbox_cap, staged.id, &staged.from, staged.to.as_deref(), &staged.payload);
            if let Some(online) = self.online.get(&staged.from) {
                let sent = ServerMsg::Sent { client_id: staged.client_id, id: staged.id };
                published.sent.push((online.conn.clone(), Outgoing::new(&sent)));
            }
        }
        // Once per publish, not per message: a commit often publishes
        // hundreds of messages to the same people.
        if any {
            for (key, online) in &self.online {
                let newest = self.users.get(key).and_then(|user| user.mailbox.back()).map_or(0, |(id, _)| *id);
                if newest > online.sent_up_to {
                    published.wake.push(online.conn.clone());
                }
            }
        }
        published
    }

    /// `nick` has every message up to `up_to`: they leave the mailbox.
    pub fn ack(&mut self, nick: &str, up_to: u64) {
        // SECURITY: no client can acknowledge (and so drop) ids that do not exist yet.
        let up_to = up_to.min(self.next_id - 1);
        let Some(user) = self.users.get_mut(&nick_key(nick)) else { return };
        if up_to <= user.acked_up_to {
            return;
        }
        trim(user, up_to);
        let nick = user.nick.clone();
        self.record(Record::Ack { nick, up_to });
    }

    /// Takes up to `max` messages not yet taken for `conn`, which must be
    /// `nick`'s current connection (an old one gets nothing).
    pub fn take_mail(&mut self, nick: &str, conn: &C, max: usize) -> Mail {
        let key = nick_key(nick);
        let (Some(user), Some(online)) = (self.users.get_mut(&key), self.online.get_mut(&key)) else {
            return Mail::default();
        };
        if online.conn.id() != conn.id() {
            return Mail::default();
        }
        let start = user.mailbox.partition_point(|(id, _)| *id <= online.sent_up_to);
        let mut messages = Vec::new();
        for (id, payload) in user.mailbox.range(start..).take(max) {
            messages.push(payload.clone());
            online.sent_up_to = *id;
        }
        let more = user.mailbox.len() > start + messages.len();
        Mail { messages, dropped: std::mem::take(&mut user.dropped), more }
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

    /// Applies one journal record at start-up.
    pub fn replay(&mut self, record: Record) {
        match record {
            Record::User { nick, verifier, last_client_id, acked_up_to, dropped } => {
                let mut user = User::new(&nick, verifier, acked_up_to);
                user.last_client_id = last_client_id;
                user.dropped = dropped;
                self.users.insert(nick_key(&nick), user);
            }
            Record::Message { client_id, payload } => {
                let Some(msg) = journal::chat_msg(&payload) else { return };
                self.next_id = self.next_id.max(msg.id + 1);
                let from = nick_key(&msg.from);
                let to = (!msg.to.is_empty()).then(|| nick_key(&msg.to));
                deposit(&mut self.users, self.mailbox_cap, msg.id, &from, to.as_deref(), &payload);
                if let (Some(user), true) = (self.users.get_mut(&from), client_id > 0) {
                    remember_client_id(user, client_id, msg.id);
                }
            }
            Record::Ack { nick, up_to } => {
                if let Some(user) = self.users.get_mut(&nick_key(&nick)) {
                    trim(user, up_to.max(user.acked_up_to));
                }
            }
            Record::NextId(id) => self.next_id = self.next_id.max(id),
        }
    }

    /// The live state as journal records, for compaction: the next id,
    /// every user, then every message still in a mailbox or staged.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut records = vec![Record::NextId(self.next_id)];
        for user in self.users.values() {
            records.push(Record::User {
                nick: user.nick.clone(),
                verifier: user.verifier,
                last_client_id: user.last_client_id,
                acked_up_to: user.acked_up_to,
                dropped: user.dropped,
            });
        }
        let mut live: BTreeMap<u64, (u64, Arc<[u8]>)> = BTreeMap::new();
        for user in self.users.values() {
            for (id, payload) in &user.mailbox {
                live.entry(*id).or_insert_with(|| (0, payload.clone()));
            }
        }
        for staged in &self.staged {
            live.insert(staged.id, (staged.client_id, staged.payload.clone()));
        }
        records.extend(live.into_values().map(|(client_id, payload)| Record::Message { client_id, payload }));
        records
    }
}

impl User {
    fn new(nick: &str, verifier: [u8; 32], acked_up_to: u64) -> Self {
        User {
            nick: nick.into(),
            verifier,
            mailbox: VecDeque::new(),
            acked_up_to,
            dropped: 0,
            last_client_id: 0,
            recent: VecDeque::new(),
        }
    }
}

/// Puts message `id` in the mailbox of each of its recipients: everyone
/// for a public message, else `to` and the sender.
fn deposit(users: &mut HashMap<String, User>, cap: usize, id: u64, from: &str, to: Option<&str>, payload: &Arc<[u8]>) {
    for (key, user) in users.iter_mut() {
        let addressed = to.is_none_or(|to| to == key) || key == from;
        if addressed && user.acked_up_to < id {
            // SECURITY: every mailbox is capped; when full the oldest goes, counted so the user is told.
            if user.mailbox.len() >= cap && user.mailbox.pop_front().is_some() {
                user.dropped += 1;
            }
            user.mailbox.push_back((id, payload.clone()));
        }
    }
}

/// Everything up to `up_to` is acknowledged: it leaves the mailbox.
fn trim(user: &mut User, up_to: u64) {
    user.acked_up_to = up_to;
    while user.mailbox.front().is_some_and(|(id, _)| *id <= up_to) {
        user.mailbox.pop_front();
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
mod tests {
    use super::*;
    use chat_common::auth::{Opener, Sealer};

    /// In these tests a connection is just its number.
    impl Connection for u64 {
        fn id(&self) -> u64 {
            *self
        }
    }

    fn decode(out: &Outgoing) -> ServerMsg {
        let mut frame = Vec::new();
        Sealer::new(&[1; 32]).seal(out.kind, &out.payload, &mut frame);
        ServerMsg::decode(&Opener::new(&[1; 32]).open(&frame).unwrap()).unwrap()
    }

    fn logged_in(state: &mut State<u64>, nick: &str, conn: u64) -> Login<u64> {
        let registered = state.verifier(nick).is_some();
        let register = (!registered).then_some([conn as u8; 32]);
        state.login(nick, registered, 0, register, conn, 0).unwrap()
    }

    #[test]
    fn login_queues_welcome_and_the_online_list_and_registers_once() {
        let mut state = State::new(10, true);
        let login = logged_in(&mut state, "Ana", 1);
        assert!(login.registered_now && login.replaced.is_none());
        let frames: Vec<ServerMsg> = login.frames.iter().map(decode).collect();
        assert!(matches!(&frames[0], ServerMsg::Welcome { nick, .. } if nick == "Ana"));
        assert_eq!(frames[1], ServerMsg::Users { last: true, nicks: vec!["Ana".into()] });
        let (records, ticket) = state.take_records();
        assert!(matches!(records[..], [Record::User { .. }]) && ticket == 1, "the registration is journaled");
        let again = logged_in(&mut state, "ana", 2);
        assert!(!again.registered_now && again.replaced == Some(1), "the newer login takes over");
        assert_eq!(state.take_records().0, [], "nothing new to journal");
    }

    #[test]
    fn public_message_is_stored_once_and_shared_by_every_mailbox() {
        let mut state = State::new(10, false);
        for (n, nick) in ["a", "b", "c"].iter().enumerate() {
            logged_in(&mut state, nick, n as u64);
        }
        assert_eq!(state.send("a", 1, "", "hi", 5), Stored::New { id: 1, recipients: 3 });
        assert_eq!(state.counts(), (3, 0), "staged, not yet published");
        let published = state.publish(u64::MAX);
        let mut woken = published.wake.clone();
        woken.sort_unstable();
        assert_eq!(woken, [0, 1, 2]);
        assert_eq!(published.sent.len(), 1);
        assert_eq!(decode(&published.sent[0].1), ServerMsg::Sent { client_id: 1, id: 1 });
        let payloads: Vec<Arc<[u8]>> =
            [("a", 0), ("b", 1), ("c", 2)].iter().map(|(n, c)| state.take_mail(n, c, 10).messages[0].clone()).collect();
        assert!(Arc::ptr_eq(&payloads[0], &payloads[1]) && Arc::ptr_eq(&payloads[1], &payloads[2]));
        assert_eq!(state.counts(), (3, 1), "one message, three mailboxes");
    }

    #[test]
    fn a_message_is_published_only_once_its_record_is_durable() {
        let mut state = State::new(10, true);
        logged_in(&mut state, "a", 1);
        state.take_records();
        state.send("a", 1, "", "x", 0);
        let (records, ticket) = state.take_records();
        assert!(matches!(records[..], [Record::Message { client_id: 1, .. }]));
        assert!(state.publish(ticket - 1).wake.is_empty(), "not yet on disk");
        assert_eq!(state.publish(ticket).wake, [1]);
    }

    #[test]
    fn take_mail_resumes_after_what_it_took_and_ack_trims() {
        let mut state = State::new(10, false);
        logged_in(&mut state, "a", 1);
        for n in 1..=5 {
            state.send("a", n, "", "x", 0);
        }
        state.publish(u64::MAX);
        let first = state.take_mail("a", &1, 3);
        assert_eq!((first.messages.len(), first.more), (3, true));
        let rest = state.take_mail("a", &1, 3);
        assert_eq!((rest.messages.len(), rest.more), (2, false));
        state.ack("a", 4);
        assert_eq!(state.counts().1, 1);
    }

    #[test]
    fn an_old_connection_gets_no_mail_and_cannot_log_out_its_successor() {
        let mut state = State::new(10, false);
        logged_in(&mut state, "w", 1);
        logged_in(&mut state, "a", 2);
        logged_in(&mut state, "a", 3);
        state.send("w", 1, "a", "for a", 0);
        state.publish(u64::MAX);
        assert!(state.take_mail("a", &2, 10).messages.is_empty(), "the replaced connection");
        assert_eq!(state.take_mail("a", &3, 10).messages.len(), 1);
        state.logout("a", &2);
        state.logout("a", &3);
        let frames: Vec<ServerMsg> = state.take_presence("w", &1).iter().map(decode).collect();
        assert_eq!(
            frames,
            [ServerMsg::Joined { nicks: vec!["a".into()] }, ServerMsg::Left { nicks: vec!["a".into()] }]
        );
    }

    #[test]
    fn resent_client_ids_are_duplicates_with_their_original_id() {
        let mut state = State::new(10, false);
        logged_in(&mut state, "a", 1);
        assert_eq!(state.send("a", 7, "", "x", 0), Stored::New { id: 1, recipients: 1 });
        assert_eq!(state.send("a", 7, "", "x", 0), Stored::Staged);
        state.publish(u64::MAX);
        assert_eq!(state.send("a", 7, "", "x", 0), Stored::Duplicate { id: 1 });
        assert_eq!(state.send("a", 3, "", "x", 0), Stored::Duplicate { id: 0 });
        assert_eq!(state.send("a", 8, "nobody", "x", 0), Stored::UnknownRecipient);
    }

    #[test]
    fn overflow_counts_what_was_dropped_and_reports_it_once() {
        let mut state = State::new(2, false);
        logged_in(&mut state, "a", 1);
        for n in 1..=5 {
            state.send("a", n, "", "x", 0);
        }
        state.publish(u64::MAX);
        let mail = state.take_mail("a", &1, 10);
        assert_eq!((mail.messages.len(), mail.dropped), (2, 3));
        assert_eq!(state.take_mail("a", &1, 10).dropped, 0);
    }

    #[test]
    fn replaying_the_snapshot_rebuilds_the_same_mailboxes() {
        let mut state = State::new(10, true);
        logged_in(&mut state, "a", 1);
        state.send("a", 1, "", "before b", 0);
        state.publish(u64::MAX);
        logged_in(&mut state, "b", 2);
        state.send("a", 2, "", "to all", 0);
        state.send("b", 1, "a", "direct", 0);
        state.publish(u64::MAX);
        state.ack("a", 2);
        let mut copy = State::<u64>::new(10, true);
        for record in state.snapshot() {
            copy.replay(record);
        }
        for nick in ["a", "b"] {
            let ids = |s: &State<u64>| s.users[nick].mailbox.iter().map(|(id, _)| *id).collect::<Vec<_>>();
            assert_eq!(ids(&copy), ids(&state), "{nick}");
        }
        assert_eq!(copy.users["a"].mailbox.len(), 1, "a keeps only the direct message");
        assert_eq!(copy.users["b"].mailbox.len(), 2, "b never had the message from before it registered");
        assert_eq!(copy.send("a", 2, "", "resent", 0), Stored::Duplicate { id: 0 });
        assert!(matches!(copy.send("a", 3, "", "new", 0), Stored::New { id: 4, .. }));
    }

    #[test]
    fn presence_is_shared_trimmed_once_sent_and_never_about_oneself() {
        let mut state = State::new(10, false);
        logged_in(&mut state, "a", 1);
        logged_in(&mut state, "B", 2);
        let kinds: Vec<u8> = state.take_presence("a", &1).iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [kind::JOINED], "a hears of B, not of itself");
        assert!(state.take_presence("b", &2).is_empty(), "B joined after a: in its USERS, not JOINED");
        assert!(state.presence_due().is_empty());
        assert!(state.presence.is_empty(), "everyone has sent everything");
        state.logout("b", &2);
        assert_eq!(state.presence_due(), [1], "a has a LEFT to send");
        let kinds: Vec<u8> = state.take_presence("a", &1).iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [kind::LEFT]);
    }

    #[test]
    fn connections_at_one_cursor_share_one_encoding_and_others_get_their_own() {
        let mut state = State::new(10, false);
        logged_in(&mut state, "a", 1);
        logged_in(&mut state, "b", 2);
        state.take_presence("a", &1);
        logged_in(&mut state, "c", 3);
        logged_in(&mut state, "d", 4);
        let (for_a, for_b) = (state.take_presence("a", &1), state.take_presence("b", &2));
        assert_eq!(for_a, for_b, "both hear of c and d");
        assert!(Arc::ptr_eq(&for_a[0].payload, &for_b[0].payload), "encoded once");
        let for_c = state.take_presence("c", &3);
        let heard = |frames: &[Outgoing]| match decode(&frames[0]) {
            ServerMsg::Joined { nicks } => nicks,
            other => panic!("{other:?}"),
        };
        assert_eq!(heard(&for_a), ["c", "d"]);
        assert_eq!(heard(&for_c), ["d"], "c was at its own cursor");
        assert!(state.take_presence("d", &4).is_empty() && state.take_presence("a", &1).is_empty());
    }
}
