//! The shared state behind one `Mutex`: registered users, their mailboxes,
//! who is online, and the exactly-once bookkeeping. Every method locks
//! nothing itself, does no I/O, and returns quickly; callers hold the
//! mutex only for the call, then log and write outside it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chat_common::MAX_UNCONFIRMED_SENDS;
use chat_common::auth::TOKEN_LEN;
use chat_common::message::{ChatMsg, ServerMsg};
use chat_common::validate::nick_key;

use crate::conn::{Conn, Outgoing};

/// Names per USERS frame: 1,000 × at most 34 bytes stays far below 64 KiB.
pub const USERS_PER_FRAME: usize = 1000;

/// One registered nickname.
pub struct User {
    /// The nickname as first registered (its display form).
    pub nick: String,
    /// SHA-256 of the owner token; what the handshake mixes into the keys.
    pub verifier: [u8; 32],
    /// Messages not yet acknowledged, in id order, each payload shared.
    pub mailbox: VecDeque<(u64, Arc<[u8]>)>,
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
    /// The owner token, when this login registered the nickname.
    pub token: Option<[u8; TOKEN_LEN]>,
    /// An older connection of the same owner, now closed.
    pub replaced: Option<Arc<Conn>>,
}

/// What became of a SEND.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored as this message id, for this many recipients.
    New { id: u64, recipients: usize },
    /// A re-sent client id; its id if still remembered, else 0.
    Duplicate { id: u64 },
    /// `to` names no registered user; nothing stored.
    UnknownRecipient,
}

/// Messages to deliver and how many were dropped, for one writer round.
pub struct Mail {
    /// Payloads of MSG frames, in id order.
    pub messages: Vec<Arc<[u8]>>,
    /// Dropped from a full mailbox since last told (0 if none).
    pub dropped: u64,
    /// More is waiting beyond this batch.
    pub more: bool,
}

/// All users, keyed by the case-folded nickname.
pub struct State {
    users: HashMap<String, User>,
    next_id: u64,
    mailbox_cap: usize,
}

impl State {
    /// An empty state whose mailboxes hold at most `mailbox_cap` messages.
    pub fn new(mailbox_cap: usize) -> Self {
        State { users: HashMap::new(), next_id: 1, mailbox_cap }
    }

    /// The token verifier of a registered nickname.
    pub fn verifier(&self, nick: &str) -> Option<[u8; 32]> {
        self.users.get(&nick_key(nick)).map(|user| user.verifier)
    }

    /// Number of registered users and of messages waiting in mailboxes.
    pub fn counts(&self) -> (usize, usize) {
        (self.users.len(), self.users.values().map(|user| user.mailbox.len()).sum())
    }

    /// Display names of everyone online.
    pub fn online(&self) -> Vec<String> {
        self.users.values().filter(|user| user.online.is_some()).map(|user| user.nick.clone()).collect()
    }

    fn broadcast(&self, except: &str, out: &Outgoing) {
        for (key, user) in &self.users {
            if let (Some(conn), false) = (&user.online, key == except) {
                conn.push(out.clone());
            }
        }
    }

    /// Logs `nick` in on `conn`. `registered` is what the handshake saw;
    /// `new_token` is used if this login registers the nickname. Queues
    /// WELCOME and USERS on `conn` and JOINED for everyone else.
    pub fn login(
        &mut self,
        nick: &str,
        registered: bool,
        last_seen: u64,
        new_token: [u8; TOKEN_LEN],
        conn: &Arc<Conn>,
        now_ms: u64,
    ) -> Result<Login, String> {
        let key = nick_key(nick);
        let mut token = None;
        if !registered {
            // Someone registered it between our CHALLENGE and this LOGIN.
            if self.users.contains_key(&key) {
                return Err("nickname taken".into());
            }
            self.users.insert(key.clone(), User::new(nick, chat_common::auth::token_verifier(&new_token)));
            token = Some(new_token);
        }
        // Registered users are never removed, and the handshake for a
        // registered nick succeeded only with its token: the user exists.
        let Some(user) = self.users.get_mut(&key) else { return Err("nickname unknown".into()) };
        let replaced = user.online.replace(conn.clone());
        acknowledge(user, last_seen);
        // Everything unacknowledged goes out again on the new connection.
        user.sent_up_to = 0;
        let nick = user.nick.clone();
        if let Some(old) = &replaced {
            old.close("replaced by a newer login");
        }
        conn.push(Outgoing::new(&ServerMsg::Welcome { nick: nick.clone(), token, server_time_ms: now_ms }));
        let online = self.online();
        let chunks = online.chunks(USERS_PER_FRAME);
        let count = chunks.len();
        for (index, chunk) in chunks.enumerate() {
            conn.push(Outgoing::new(&ServerMsg::Users { last: index + 1 == count, nicks: chunk.to_vec() }));
        }
        if replaced.is_none() {
            self.broadcast(&key, &Outgoing::new(&ServerMsg::Joined { nick: nick.clone() }));
        }
        conn.mail();
        Ok(Login { nick, token, replaced })
    }

    /// Logs out `conn` if it is still the user's connection (a newer one
    /// may have taken over), telling everyone else.
    pub fn logout(&mut self, nick: &str, conn: &Conn) {
        let key = nick_key(nick);
        let Some(user) = self.users.get_mut(&key) else { return };
        if user.online.as_ref().is_some_and(|online| online.id == conn.id) {
            user.online = None;
            let left = Outgoing::new(&ServerMsg::Left { nick: user.nick.clone() });
            self.broadcast(&key, &left);
        }
    }

    /// Stores a SEND from `from` (text already validated): every recipient's
    /// mailbox gets the one shared payload, and their writers are woken.
    pub fn send(&mut self, from: &str, client_id: u64, to: &str, text: &str, now_ms: u64) -> Stored {
        let from_key = nick_key(from);
        let Some(sender) = self.users.get(&from_key) else { return Stored::UnknownRecipient };
        if client_id <= sender.last_client_id {
            let id = sender.recent.iter().find(|(cid, _)| *cid == client_id).map_or(0, |(_, id)| *id);
            return Stored::Duplicate { id };
        }
        let to_key = nick_key(to);
        if !to.is_empty() && !self.users.contains_key(&to_key) {
            return Stored::UnknownRecipient;
        }
        let id = self.next_id;
        self.next_id += 1;
        let from_nick = sender.nick.clone();
        let to_nick = if to.is_empty() { String::new() } else { self.users[&to_key].nick.clone() };
        let msg = ChatMsg { id, time_ms: now_ms, from: from_nick, to: to_nick, text: text.into() };
        let payload = Outgoing::new(&ServerMsg::Msg(msg)).payload;
        let cap = self.mailbox_cap;
        let mut recipients = 0;
        for (key, user) in self.users.iter_mut() {
            if to.is_empty() || *key == to_key || *key == from_key {
                deposit(user, id, &payload, cap);
                recipients += 1;
            }
        }
        // The sender was looked up at the top of this function.
        let sender = self.users.get_mut(&from_key).expect("sender exists");
        sender.last_client_id = client_id;
        if sender.recent.len() == MAX_UNCONFIRMED_SENDS {
            sender.recent.pop_front();
        }
        sender.recent.push_back((client_id, id));
        Stored::New { id, recipients }
    }

    /// Removes every message up to `up_to` from `nick`'s mailbox.
    pub fn ack(&mut self, nick: &str, up_to: u64) {
        if let Some(user) = self.users.get_mut(&nick_key(nick)) {
            acknowledge(user, up_to);
        }
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
}

impl User {
    fn new(nick: &str, verifier: [u8; 32]) -> Self {
        User {
            nick: nick.into(),
            verifier,
            mailbox: VecDeque::new(),
            sent_up_to: 0,
            dropped: 0,
            last_client_id: 0,
            recent: VecDeque::new(),
            online: None,
        }
    }
}

fn acknowledge(user: &mut User, up_to: u64) {
    while user.mailbox.front().is_some_and(|(id, _)| *id <= up_to) {
        user.mailbox.pop_front();
    }
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
    use chat_common::message::kind;

    fn logged_in(state: &mut State, nick: &str, conn_id: u64) -> Arc<Conn> {
        let conn = Conn::new(conn_id, None);
        let registered = state.verifier(nick).is_some();
        state.login(nick, registered, 0, [conn_id as u8; 32], &conn, 0).unwrap();
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
        let payloads: Vec<Arc<[u8]>> =
            ["a", "b", "c"].iter().map(|n| state.take_mail(n, 10).messages[0].clone()).collect();
        assert!(Arc::ptr_eq(&payloads[0], &payloads[1]) && Arc::ptr_eq(&payloads[1], &payloads[2]));
        assert_eq!(state.counts(), (3, 3));
    }

    #[test]
    fn take_mail_resumes_after_what_it_took_and_ack_trims() {
        let mut state = State::new(10);
        logged_in(&mut state, "a", 1);
        for n in 1..=5 {
            state.send("a", n, "", "x", 0);
        }
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
        let mail = state.take_mail("a", 10);
        assert_eq!((mail.messages.len(), mail.dropped), (2, 3));
        assert_eq!(state.take_mail("a", 10).dropped, 0);
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
        let kinds: Vec<u8> = watcher.drain().iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [kind::JOINED, kind::LEFT]);
    }
}
