//! The shared state behind one `Mutex`: registered users, their mailboxes,
//! who is online, and the exactly-once bookkeeping. Every method does no
//! network or disk I/O and returns quickly; callers hold the mutex only for
//! the call, then log and write outside it.
//!
//! A new message is *staged*: it has its id and its journal record, but
//! reaches mailboxes (and its sender's SENT) only when [`State::publish`]
//! is told its record is on disk. So nobody sees a message that a crash
//! could still take back.

use std::collections::HashMap;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chat_common::MAX_UNCONFIRMED_SENDS;
use chat_common::message::{ChatMsg, ServerMsg, kind, put_users};
use chat_common::validate::nick_key;

use crate::conn::{Conn, Outgoing};
use crate::journal::{self, Journal, Record};
use crate::presence::Presence;

/// Names per USERS, JOINED or LEFT frame: 1,000 × at most 34 bytes stays
/// far below 64 KiB.
pub const USERS_PER_FRAME: usize = 1000;

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
    /// Highest id the current connection's writer has taken from the
    /// mailbox; 0 at each login, so everything unacknowledged is re-sent.
    pub sent_up_to: u64,
    /// Messages dropped from a full mailbox since the user was last told.
    pub dropped: u64,
    /// Highest client message id stored for this user.
    pub last_client_id: u64,
    /// The last few (client id, message id) pairs, to answer re-sent SENDs.
    pub recent: VecDeque<(u64, u64)>,
    /// The connection currently logged in as this user.
    pub online: Option<Arc<Conn>>,
}

/// What a login did.
pub struct Login {
    /// The nickname's display form.
    pub nick: String,
    /// This login registered the nickname: the journal must be durable
    /// before WELCOME goes out.
    pub registered_now: bool,
    /// An older connection of the same owner, now closed.
    pub replaced: Option<Arc<Conn>>,
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

/// Messages to deliver and how many were dropped, for one writer round.
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
pub struct State {
    users: HashMap<String, User>,
    next_id: u64,
    mailbox_cap: usize,
    staged: VecDeque<Staged>,
    /// `None` when running with `--memory`.
    journal: Option<Journal>,
    /// Logins and logouts, for the writers to send as JOINED and LEFT.
    presence: Presence,
}

impl State {
    /// An empty state whose mailboxes hold at most `mailbox_cap` messages.
    pub fn new(mailbox_cap: usize) -> Self {
        State {
            users: HashMap::new(),
            next_id: 1,
            mailbox_cap,
            staged: VecDeque::new(),
            journal: None,
            presence: Presence::default(),
        }
    }

    /// Starts journaling every change from now on.
    pub fn attach_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }

    /// The journal, if there is one.
    pub fn journal_mut(&mut self) -> Option<&mut Journal> {
        self.journal.as_mut()
    }

    /// The ticket of the latest journal record (`u64::MAX` without a
    /// journal, so that everything counts as durable at once).
    pub fn journal_ticket(&self) -> u64 {
        self.journal.as_ref().map_or(u64::MAX, Journal::appended)
    }

    fn append(&mut self, record: &Record) -> u64 {
        self.journal.as_mut().map_or(0, |journal| journal.append(record))
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

    /// Display names of everyone online.
    pub fn online(&self) -> Vec<String> {
        self.users.values().filter(|user| user.online.is_some()).map(|user| user.nick.clone()).collect()
    }

    /// The logins and logouts `conn` has not sent yet (see [`Presence::take`]).
    pub fn take_presence(&mut self, conn: &Conn) -> Vec<Outgoing> {
        self.presence.take(conn)
    }

    /// The presence tick: forgets what every online connection has sent,
    /// and returns the connections that have some still to send.
    pub fn presence_due(&mut self) -> Vec<Arc<Conn>> {
        self.presence.due(self.users.values().filter_map(|user| user.online.as_ref()))
    }

    /// Logs `nick` in on `conn`. `registered` is what the handshake saw;
    /// `register` is LOGIN's verifier, present exactly when it was not
    /// [P-17]. Queues WELCOME and USERS on `conn` and JOINED for everyone
    /// else.
    pub fn login(
        &mut self,
        nick: &str,
        registered: bool,
        last_seen: u64,
        register: Option<[u8; 32]>,
        conn: &Arc<Conn>,
        now_ms: u64,
    ) -> Result<Login, String> {
        let key = nick_key(nick);
        let registered_now = !registered;
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
            self.append(&Record::User { nick: nick.into(), verifier, last_client_id: 0, acked_up_to, dropped: 0 });
            self.users.insert(key.clone(), User::new(nick, verifier, acked_up_to));
        }
        self.ack(nick, last_seen);
        // Registered users are never removed, and the handshake for a
        // registered nick succeeded only with its token: the user exists.
        let Some(user) = self.users.get_mut(&key) else { return Err("nickname unknown".into()) };
        let replaced = user.online.replace(conn.clone());
        user.sent_up_to = 0;
        let nick = user.nick.clone();
        if let Some(old) = &replaced {
            old.close("replaced by a newer login");
        }
        conn.push(Outgoing::new(&ServerMsg::Welcome { nick: nick.clone(), server_time_ms: now_ms }));
        // Encoded from borrowed names: with thousands online, cloning each
        // name for every login was a good part of a login's cost.
        let online: Vec<&str> = self.users.values().filter(|u| u.online.is_some()).map(|u| u.nick.as_str()).collect();
        let chunks = online.chunks(USERS_PER_FRAME);
        let count = chunks.len();
        for (index, chunk) in chunks.enumerate() {
            let mut payload = Vec::new();
            put_users(&mut payload, index + 1 == count, chunk.iter().copied());
            conn.push(Outgoing { kind: kind::USERS, payload: payload.into() });
        }
        if replaced.is_none() {
            self.presence.push(&nick, true);
        }
        // The USERS list covers everything before this point, and the
        // cursor after our own JOINED means no one hears of themselves.
        conn.presence_seen.store(self.presence.end(), Ordering::Relaxed);
        conn.mail();
        Ok(Login { nick, registered_now, replaced })
    }

    /// Logs out `conn` if it is still the user's connection (a newer one
    /// may have taken over), telling everyone else.
    pub fn logout(&mut self, nick: &str, conn: &Conn) {
        let key = nick_key(nick);
        let Some(user) = self.users.get_mut(&key) else { return };
        if user.online.as_ref().is_some_and(|online| online.id == conn.id) {
            user.online = None;
            self.presence.push(&user.nick, false);
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
        remember_client_id(self.users.get_mut(&from_key).expect("sender looked up above"), client_id, id);
        let ticket = self.append(&Record::Message { client_id, payload: payload.clone() });
        let to = (!to.is_empty()).then_some(to_key);
        self.staged.push_back(Staged { ticket, id, client_id, from: from_key, to, payload });
        Stored::New { id, recipients }
    }

    /// Moves every staged message whose journal ticket is at most `durable`
    /// into its recipients' mailboxes, and queues SENT for its sender.
    pub fn publish(&mut self, durable: u64) {
        while self.staged.front().is_some_and(|staged| staged.ticket <= durable) {
            let Some(staged) = self.staged.pop_front() else { break };
            self.deposit(staged.id, &staged.from, staged.to.as_deref(), &staged.payload);
            if let Some(conn) = self.users.get(&staged.from).and_then(|user| user.online.as_ref()) {
                conn.push(Outgoing::new(&ServerMsg::Sent { client_id: staged.client_id, id: staged.id }));
            }
        }
    }

    fn deposit(&mut self, id: u64, from: &str, to: Option<&str>, payload: &Arc<[u8]>) {
        let cap = self.mailbox_cap;
        for (key, user) in self.users.iter_mut() {
            let addressed = to.is_none_or(|to| to == key) || key == from;
            if addressed && user.acked_up_to < id {
                deposit(user, id, payload, cap);
            }
        }
    }

    /// `nick` has every message up to `up_to`: they leave the mailbox.
    pub fn ack(&mut self, nick: &str, up_to: u64) {
        // A client cannot acknowledge ids that do not exist yet.
        let up_to = up_to.min(self.next_id - 1);
        let Some(user) = self.users.get_mut(&nick_key(nick)) else { return };
        if up_to <= user.acked_up_to {
            return;
        }
        user.acked_up_to = up_to;
        while user.mailbox.front().is_some_and(|(id, _)| *id <= up_to) {
            user.mailbox.pop_front();
        }
        let nick = user.nick.clone();
        self.append(&Record::Ack { nick, up_to });
    }

    /// Takes up to `max` messages the writer has not yet sent.
    pub fn take_mail(&mut self, nick: &str, max: usize) -> Mail {
        let Some(user) = self.users.get_mut(&nick_key(nick)) else {
            return Mail { messages: Vec::new(), dropped: 0, more: false };
        };
        let start = user.mailbox.partition_point(|(id, _)| *id <= user.sent_up_to);
        let mut messages = Vec::new();
        for (id, payload) in user.mailbox.range(start..).take(max) {
            messages.push(payload.clone());
            user.sent_up_to = *id;
        }
        let more = user.mailbox.len() > start + messages.len();
        Mail { messages, dropped: std::mem::take(&mut user.dropped), more }
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
                self.deposit(msg.id, &from, to.as_deref(), &payload);
                if let (Some(user), true) = (self.users.get_mut(&from), client_id > 0) {
                    remember_client_id(user, client_id, msg.id);
                }
            }
            Record::Ack { nick, up_to } => {
                if let Some(user) = self.users.get_mut(&nick_key(&nick)) {
                    user.acked_up_to = user.acked_up_to.max(up_to);
                    while user.mailbox.front().is_some_and(|(id, _)| *id <= up_to) {
                        user.mailbox.pop_front();
                    }
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
            sent_up_to: 0,
            dropped: 0,
            last_client_id: 0,
            recent: VecDeque::new(),
            online: None,
        }
    }
}

fn remember_client_id(user: &mut User, client_id: u64, id: u64) {
    user.last_client_id = user.last_client_id.max(client_id);
    if user.recent.len() == MAX_UNCONFIRMED_SENDS {
        user.recent.pop_front();
    }
    user.recent.push_back((client_id, id));
}

/// Appends to a mailbox. SECURITY: the mailbox is capped; when full the
/// oldest unacknowledged message goes, and is counted so the user is told.
fn deposit(user: &mut User, id: u64, payload: &Arc<[u8]>, cap: usize) {
    if user.mailbox.len() >= cap && user.mailbox.pop_front().is_some() {
        user.dropped += 1;
    }
    user.mailbox.push_back((id, payload.clone()));
    if let Some(conn) = &user.online {
        conn.mail();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(out: &Outgoing) -> ServerMsg {
        let mut frame = Vec::new();
        chat_common::auth::Sealer::new(&[1; 32]).seal(out.kind, &out.payload, &mut frame);
        ServerMsg::decode(&chat_common::auth::Opener::new(&[1; 32]).open(&frame).unwrap()).unwrap()
    }

    fn logged_in(state: &mut State, nick: &str, conn_id: u64) -> Arc<Conn> {
        let conn = Conn::new(conn_id, None, 4096);
        let registered = state.verifier(nick).is_some();
        let register = (!registered).then_some([conn_id as u8; 32]);
        state.login(nick, registered, 0, register, &conn, 0).unwrap();
        conn.drain();
        conn
    }

    #[test]
    fn public_message_is_stored_once_and_shared_by_every_mailbox() {
        let mut state = State::new(10);
        for (n, nick) in ["a", "b", "c"].iter().enumerate() {
            logged_in(&mut state, nick, n as u64);
        }
        assert_eq!(state.send("a", 1, "", "hi", 5), Stored::New { id: 1, recipients: 3 });
        assert_eq!(state.counts(), (3, 0), "staged, not yet published");
        state.publish(u64::MAX);
        let payloads: Vec<Arc<[u8]>> =
            ["a", "b", "c"].iter().map(|n| state.take_mail(n, 10).messages[0].clone()).collect();
        assert!(Arc::ptr_eq(&payloads[0], &payloads[1]) && Arc::ptr_eq(&payloads[1], &payloads[2]));
        assert_eq!(state.counts(), (3, 1), "one message, three mailboxes");
    }

    #[test]
    fn take_mail_resumes_after_what_it_took_and_ack_trims() {
        let mut state = State::new(10);
        logged_in(&mut state, "a", 1);
        for n in 1..=5 {
            state.send("a", n, "", "x", 0);
        }
        state.publish(u64::MAX);
        let first = state.take_mail("a", 3);
        assert_eq!((first.messages.len(), first.more), (3, true));
        let rest = state.take_mail("a", 3);
        assert_eq!((rest.messages.len(), rest.more), (2, false));
        state.ack("a", 4);
        assert_eq!(state.counts().1, 1);
    }

    #[test]
    fn resent_client_ids_are_duplicates_with_their_original_id() {
        let mut state = State::new(10);
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
        let mut state = State::new(2);
        logged_in(&mut state, "a", 1);
        for n in 1..=5 {
            state.send("a", n, "", "x", 0);
        }
        state.publish(u64::MAX);
        let mail = state.take_mail("a", 10);
        assert_eq!((mail.messages.len(), mail.dropped), (2, 3));
        assert_eq!(state.take_mail("a", 10).dropped, 0);
    }

    #[test]
    fn replaying_the_snapshot_rebuilds_the_same_mailboxes() {
        let mut state = State::new(10);
        logged_in(&mut state, "a", 1);
        state.send("a", 1, "", "before b", 0);
        state.publish(u64::MAX);
        logged_in(&mut state, "b", 2);
        state.send("a", 2, "", "to all", 0);
        state.send("b", 1, "a", "direct", 0);
        state.publish(u64::MAX);
        state.ack("a", 2);
        let mut copy = State::new(10);
        for record in state.snapshot() {
            copy.replay(record);
        }
        for nick in ["a", "b"] {
            let ids = |s: &State| s.users[nick].mailbox.iter().map(|(id, _)| *id).collect::<Vec<_>>();
            assert_eq!(ids(&copy), ids(&state), "{nick}");
        }
        assert_eq!(copy.users["a"].mailbox.len(), 1, "a keeps only the direct message");
        assert_eq!(copy.users["b"].mailbox.len(), 2, "b never had the message from before it registered");
        assert_eq!(copy.send("a", 2, "", "resent", 0), Stored::Duplicate { id: 0 });
        assert!(matches!(copy.send("a", 3, "", "new", 0), Stored::New { id: 4, .. }));
    }

    #[test]
    fn a_stale_connection_cannot_log_out_its_successor() {
        let mut state = State::new(10);
        let watcher = logged_in(&mut state, "w", 1);
        let old = logged_in(&mut state, "a", 2);
        let new = logged_in(&mut state, "a", 3);
        assert!(old.closed_because().is_some());
        state.logout("a", &old);
        assert_eq!(state.online().len(), 2);
        state.logout("a", &new);
        assert_eq!(state.online(), ["w"]);
        let frames = state.take_presence(&watcher);
        let decoded: Vec<ServerMsg> = frames.iter().map(decode).collect();
        assert_eq!(
            decoded,
            [ServerMsg::Joined { nicks: vec!["a".into()] }, ServerMsg::Left { nicks: vec!["a".into()] }]
        );
    }

    #[test]
    fn presence_is_shared_trimmed_once_sent_and_never_about_oneself() {
        let mut state = State::new(10);
        let a = logged_in(&mut state, "a", 1);
        let b = logged_in(&mut state, "B", 2);
        let kinds: Vec<u8> = state.take_presence(&a).iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [kind::JOINED], "a hears of B, not of itself");
        assert!(state.take_presence(&b).is_empty(), "B joined after a: in its USERS, not JOINED");
        assert_eq!(state.presence_due().len(), 0);
        assert!(state.presence.is_empty(), "everyone has sent everything");
        state.logout("b", &b);
        assert_eq!(state.presence_due().len(), 1, "a has a LEFT to send");
        let kinds: Vec<u8> = state.take_presence(&a).iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [kind::LEFT]);
    }

    #[test]
    fn connections_at_one_cursor_share_one_encoding_and_others_get_their_own() {
        let mut state = State::new(10);
        let (a, b) = (logged_in(&mut state, "a", 1), logged_in(&mut state, "b", 2));
        state.take_presence(&a);
        let c = logged_in(&mut state, "c", 3);
        let d = logged_in(&mut state, "d", 4);
        let (for_a, for_b) = (state.take_presence(&a), state.take_presence(&b));
        assert_eq!(for_a, for_b, "both hear of c and d");
        assert!(Arc::ptr_eq(&for_a[0].payload, &for_b[0].payload), "encoded once");
        let for_c = state.take_presence(&c);
        let heard = |frames: &[Outgoing]| match decode(&frames[0]) {
            ServerMsg::Joined { nicks } => nicks,
            other => panic!("{other:?}"),
        };
        assert_eq!(heard(&for_a), ["c", "d"]);
        assert_eq!(heard(&for_c), ["d"], "c was at its own cursor");
        assert!(state.take_presence(&d).is_empty() && state.take_presence(&a).is_empty());
    }
}
