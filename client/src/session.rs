//! The client's protocol logic, sans-IO: what to send, save and report in
//! answer to the user's commands and the server's messages. The driver in
//! [`crate::net`] owns the sockets, threads and clocks, feeds a batch of
//! inputs in, then carries out the [`Actions`] in their documented order.
//!
//! **Invariant:** nothing is reported to the UI or acknowledged to the
//! server before the state it depends on is saved: a new owner token
//! first, then the highest id seen and the outbox, then events, then frames.

use std::mem;
use std::time::{Duration, Instant};

use chat_common::message::{ChatMsg, ClientMsg, ServerMsg};
use chat_common::validate::{validate_nick, validate_text};
use chat_common::{ACK_AFTER, ACK_DELAY, MAX_TEXT_LEN};

use crate::outbox::Outbox;
use crate::trace::TracedFrame;
use crate::trouble::{Rejection, Trouble};

/// What the UI asks the network thread to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send a message to one nickname, or to everyone (`None`).
    Send { to: Option<String>, text: String },
    /// Send what is still in the outbox (for at most 5 s), then stop.
    Quit,
}

/// What the network thread tells the UI, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Logged in (after WELCOME); `server` is `host:port`.
    Connected { nick: String, server: String },
    /// Everyone online, ourselves included.
    Users(Vec<String>),
    /// A user came online.
    Joined(String),
    /// A user went offline.
    Left(String),
    /// This many more are online than the server lists (UNLISTED).
    Unlisted(u64),
    /// A new message, reported once per id ever (per state directory).
    /// `missed`: it was sent before this connection's login, while we were away.
    Message { msg: ChatMsg, missed: bool },
    /// Our message is in the outbox as `client_id`, not yet confirmed:
    /// just typed, or left from an earlier run (reported at the start).
    Queued { client_id: u64, to: Option<String>, text: String },
    /// The server stored our message `client_id` as message `id` (0 when
    /// the server confirms an old re-send it no longer remembers the id of).
    Sent { client_id: u64, id: u64 },
    /// The server did not store `client_id` for now (RETRY), nor any later
    /// one: all of them stay in the outbox and go again after `retry_in`.
    Retry { client_id: u64, reason: String, retry_in: Duration },
    /// The server refused `client_id` for good (ERROR); it left the outbox.
    Failed { client_id: u64, reason: String },
    /// `count` messages to us were dropped unread because our mailbox on
    /// the server held `limit` (DROPPED).
    Dropped { count: u64, limit: u64 },
    /// The number of messages waiting to be sent changed.
    Outbox(usize),
    /// The connection dropped or could not be made; the next try is in `retry_in`.
    Disconnected { reason: Trouble, retry_in: Duration },
    /// The server refused this nickname for good; no retry. [`Event::Stopped`] follows.
    Rejected { reason: Rejection },
    /// Something failed that does not end the session (a message we could
    /// not accept, the state not saved, the server's ERROR about no message).
    Error { reason: String },
    /// A frame sent or received, while tracing is on ([`crate::Handle::set_trace`]).
    Frame(TracedFrame),
    /// The network thread has ended, after a quit or a rejection. Always the last event.
    Stopped,
}

/// What the driver must do after a batch, in this field order.
#[derive(Debug, Default)]
pub struct Actions {
    /// The server accepted our owner token (WELCOME after registering):
    /// save that, durably, before anything else.
    pub token_accepted: bool,
    /// The highest id seen changed: save it before reporting the messages.
    pub save_last_seen: bool,
    /// The outbox changed: save it before sending what it holds.
    pub save_outbox: bool,
    /// Events for the UI.
    pub events: Vec<Event>,
    /// Messages for the server, on the current connection only.
    pub send: Vec<ClientMsg>,
}

/// The state of one nickname's session across connections.
#[derive(Debug)]
pub struct Session {
    /// `host:port`, for [`Event::Connected`].
    server: String,
    /// Messages typed and not yet confirmed.
    pub outbox: Outbox,
    /// The highest message id received; lower or equal ids are duplicates.
    pub last_seen: u64,
    /// The highest id acknowledged on the current connection.
    acked: u64,
    /// When the oldest message not yet acknowledged arrived.
    unacked_since: Option<Instant>,
    /// Whether the handshake of the current connection is done (LOGIN sent).
    linked: bool,
    /// The current LOGIN registers our token; its WELCOME accepts it.
    registering: bool,
    /// WELCOME's server time on the current connection: messages older than
    /// this were missed. `None` until WELCOME, when nothing may be sent.
    welcome_time_ms: Option<u64>,
    /// USERS chunks gathered until the last one.
    users: Vec<String>,
    /// The outbox size the UI last heard of.
    reported_outbox: usize,
    /// How long to wait after RETRY before sending the outbox again (the
    /// reconnect interval: the server asked us to come back later).
    retry: Duration,
    /// A RETRY held the outbox in this batch: start the timer at its end.
    hold_started: bool,
    /// When a held outbox is sent again.
    resend_at: Option<Instant>,
}

impl Session {
    /// A session resuming from saved state; `retry` is the time between
    /// attempts, both to reconnect and to send again after RETRY.
    pub fn new(server: String, outbox: Outbox, last_seen: u64, retry: Duration) -> Session {
        let reported_outbox = outbox.len();
        Session {
            server,
            outbox,
            last_seen,
            acked: last_seen,
            unacked_since: None,
            linked: false,
            registering: false,
            welcome_time_ms: None,
            users: Vec::new(),
            reported_outbox,
            retry,
            hold_started: false,
            resend_at: None,
        }
    }

    /// The messages left in the outbox by an earlier run, for the UI at the start.
    pub fn queued_events(&self) -> Vec<Event> {
        let queued = self.outbox.entries().map(|entry| Event::Queued {
            client_id: entry.client_id,
            to: (!entry.to.is_empty()).then(|| entry.to.clone()),
            text: entry.text.clone(),
        });
        queued.collect()
    }

    /// When an acknowledgement falls due, if one is waiting.
    pub fn ack_due(&self) -> Option<Instant> {
        self.unacked_since.filter(|_| self.linked).map(|since| since + ACK_DELAY)
    }

    /// When the session must run [`Session::finish_batch`] even if nothing
    /// arrives: an acknowledgement or a held outbox falls due.
    pub fn wake_due(&self) -> Option<Instant> {
        [self.ack_due(), self.resend_at.filter(|_| self.linked)].into_iter().flatten().min()
    }

    /// The user typed a message: check it, then queue it. It is sent at the
    /// end of the batch, after the outbox is saved.
    pub fn on_send(&mut self, to: Option<String>, text: String, actions: &mut Actions) {
        let checked = match &to {
            Some(nick) => validate_nick(nick).map_err(|why| format!("recipient: {why}")),
            None => Ok(()),
        };
        if let Err(why) = checked.and_then(|()| validate_text(&text, MAX_TEXT_LEN)) {
            actions.events.push(Event::Error { reason: format!("not sent: {why}") });
            return;
        }
        let client_id = self.outbox.push(to.clone().unwrap_or_default(), text.clone());
        actions.save_outbox = true;
        actions.events.push(Event::Queued { client_id, to, text });
    }

    /// The handshake of a new connection is done: log in [P-17], carrying
    /// our token's verifier when the nickname is still to be registered.
    pub fn on_linked(&mut self, register: Option<[u8; 32]>, actions: &mut Actions) {
        self.linked = true;
        // LOGIN's last_seen acknowledges everything received so far.
        (self.acked, self.unacked_since) = (self.last_seen, None);
        self.registering = register.is_some();
        self.outbox.reconnected();
        actions.send.push(ClientMsg::Login { last_seen: self.last_seen, register });
    }

    /// The current connection is gone; what was queued for it is dropped,
    /// and a held outbox waits for the next connection instead of its timer.
    pub fn on_unlinked(&mut self, actions: &mut Actions) {
        self.linked = false;
        self.welcome_time_ms = None;
        (self.hold_started, self.resend_at) = (false, None);
        self.users.clear();
        actions.send.clear();
    }

    /// A message from the server. `Err(reason)` means the login was refused
    /// for good (REJECT): the session must stop.
    pub fn on_server(&mut self, msg: ServerMsg, actions: &mut Actions) -> Result<(), Rejection> {
        match msg {
            ServerMsg::Welcome { nick, server_time_ms } => {
                actions.token_accepted = mem::take(&mut self.registering);
                self.welcome_time_ms = Some(server_time_ms);
                actions.events.push(Event::Connected { nick, server: self.server.clone() });
            }
            ServerMsg::Reject { reason } => return Err(Rejection::Server(reason)),
            ServerMsg::Users { last, nicks } => {
                self.users.extend(nicks);
                if last {
                    actions.events.push(Event::Users(mem::take(&mut self.users)));
                }
            }
            ServerMsg::Joined { nicks } => actions.events.extend(nicks.into_iter().map(Event::Joined)),
            ServerMsg::Left { nicks } => actions.events.extend(nicks.into_iter().map(Event::Left)),
            // Redelivered after a reconnect [P-24], or already seen in an earlier run.
            ServerMsg::Msg(msg) if msg.id <= self.last_seen => {}
            ServerMsg::Msg(msg) => {
                self.last_seen = msg.id;
                actions.save_last_seen = true;
                let missed = self.welcome_time_ms.is_some_and(|welcome| msg.time_ms < welcome);
                actions.events.push(Event::Message { msg, missed });
            }
            ServerMsg::Sent { client_id, id } => {
                if self.outbox.confirm(client_id).is_some() {
                    actions.save_outbox = true;
                    actions.events.push(Event::Sent { client_id, id });
                }
            }
            ServerMsg::Pong => {}
            // Refused for good: it leaves the outbox, and the UI says why.
            ServerMsg::Error { client_id, reason } => match self.outbox.confirm(client_id) {
                Some(_) => {
                    actions.save_outbox = true;
                    actions.events.push(Event::Failed { client_id, reason });
                }
                None => actions.events.push(Event::Error { reason }),
            },
            // [P-27] Not stored for now, nor anything after it: everything
            // from it on stays in the outbox and goes again, in order, when
            // the timer started at the end of this batch runs out.
            ServerMsg::Retry { client_id, reason } => {
                if self.outbox.hold(client_id) {
                    // Later SENDs of the same round come back as RETRY too;
                    // they must not push the timer further out.
                    self.hold_started |= self.resend_at.is_none();
                    actions.events.push(Event::Retry { client_id, reason, retry_in: self.retry });
                }
            }
            ServerMsg::Dropped { count, limit } => actions.events.push(Event::Dropped { count, limit }),
            ServerMsg::Unlisted { count } => actions.events.push(Event::Unlisted(count)),
        }
        Ok(())
    }

    /// After a batch of inputs (or at [`Session::ack_due`]): acknowledge
    /// what arrived if that is due, send what the outbox allows, report a
    /// changed outbox size. ACKs wait up to [`ACK_DELAY`] (or
    /// [`ACK_AFTER`] messages) so that one covers many: every ACK wakes a
    /// server thread. Waiting risks nothing, since what a drop leaves
    /// unacknowledged comes again and is dropped by id.
    pub fn finish_batch(&mut self, now: Instant, actions: &mut Actions) {
        if mem::take(&mut self.hold_started) {
            self.resend_at = Some(now + self.retry);
        }
        if self.resend_at.is_some_and(|resend_at| now >= resend_at) {
            self.resend_at = None;
            self.outbox.release();
        }
        if self.linked && self.welcome_time_ms.is_some() {
            if self.last_seen > self.acked {
                let since = *self.unacked_since.get_or_insert(now);
                if self.last_seen - self.acked >= ACK_AFTER || now >= since + ACK_DELAY {
                    actions.send.push(ClientMsg::Ack { up_to: self.last_seen });
                    (self.acked, self.unacked_since) = (self.last_seen, None);
                }
            }
            for entry in self.outbox.take_sendable() {
                actions.send.push(ClientMsg::Send { client_id: entry.client_id, to: entry.to, text: entry.text });
            }
        }
        if self.outbox.len() != self.reported_outbox {
            self.reported_outbox = self.outbox.len();
            actions.events.push(Event::Outbox(self.reported_outbox));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The retry interval of the sessions under test.
    const RETRY: Duration = Duration::from_secs(5);

    fn msg(id: u64, time_ms: u64) -> ServerMsg {
        ServerMsg::Msg(ChatMsg { id, time_ms, from: "bob".into(), to: String::new(), text: format!("m{id}") })
    }

    fn welcome() -> ServerMsg {
        ServerMsg::Welcome { nick: "alice".into(), server_time_ms: 1000 }
    }

    /// A session that has logged in on a new connection.
    fn logged_in(outbox: Outbox, last_seen: u64) -> (Session, Actions) {
        let mut session = Session::new("h:1".into(), outbox, last_seen, RETRY);
        let mut actions = Actions::default();
        session.on_linked(None, &mut actions);
        session.on_server(welcome(), &mut actions).unwrap();
        session.finish_batch(Instant::now(), &mut actions);
        (session, actions)
    }

    fn sends(actions: &Actions) -> Vec<u64> {
        let ids = actions.send.iter().filter_map(|m| match m {
            ClientMsg::Send { client_id, .. } => Some(*client_id),
            _ => None,
        });
        ids.collect()
    }

    #[test]
    fn registers_with_the_verifier_and_saves_the_acceptance_first() {
        let mut session = Session::new("h:1".into(), Outbox::default(), 41, RETRY);
        let mut actions = Actions::default();
        session.on_linked(Some([7; 32]), &mut actions);
        assert_eq!(actions.send, [ClientMsg::Login { last_seen: 41, register: Some([7; 32]) }]);
        session.on_server(welcome(), &mut actions).unwrap();
        assert!(actions.token_accepted);
        assert_eq!(actions.events, [Event::Connected { nick: "alice".into(), server: "h:1".into() }]);
        // Later logins of a registered nickname carry no verifier and accept nothing new.
        let mut actions = Actions::default();
        session.on_linked(None, &mut actions);
        session.on_server(welcome(), &mut actions).unwrap();
        assert!(!actions.token_accepted);
    }

    #[test]
    fn a_presence_frame_naming_several_users_is_one_event_each_in_order() {
        let (mut session, _) = logged_in(Outbox::default(), 0);
        let mut actions = Actions::default();
        session.on_server(ServerMsg::Joined { nicks: vec!["b".into(), "c".into()] }, &mut actions).unwrap();
        session.on_server(ServerMsg::Left { nicks: vec!["b".into()] }, &mut actions).unwrap();
        assert_eq!(actions.events, [Event::Joined("b".into()), Event::Joined("c".into()), Event::Left("b".into())]);
    }

    #[test]
    fn nothing_is_sent_before_welcome_and_the_outbox_goes_in_order_after() {
        let mut outbox = Outbox::default();
        outbox.push(String::new(), "one".into());
        let mut session = Session::new("h:1".into(), outbox, 0, RETRY);
        let mut actions = Actions::default();
        assert_eq!(session.queued_events(), [Event::Queued { client_id: 1, to: None, text: "one".into() }]);
        session.on_send(Some("bob".into()), "two".into(), &mut actions);
        assert!(actions.save_outbox);
        session.finish_batch(Instant::now(), &mut actions);
        assert!(actions.send.is_empty());
        let queued = Event::Queued { client_id: 2, to: Some("bob".into()), text: "two".into() };
        assert_eq!(actions.events, [queued, Event::Outbox(2)]);

        let mut actions = Actions::default();
        session.on_linked(None, &mut actions);
        session.on_server(welcome(), &mut actions).unwrap();
        session.finish_batch(Instant::now(), &mut actions);
        assert_eq!(actions.send[0], ClientMsg::Login { last_seen: 0, register: None });
        assert_eq!(sends(&actions), [1, 2]);
        assert_eq!(actions.send[2], ClientMsg::Send { client_id: 2, to: "bob".into(), text: "two".into() });
    }

    /// [P-24] Duplicates are dropped by id; one ACK, sent after
    /// [`ACK_DELAY`], covers the rest.
    #[test]
    fn duplicates_are_dropped_and_one_delayed_ack_covers_them() {
        let (mut session, _) = logged_in(Outbox::default(), 5);
        let mut actions = Actions::default();
        for id in [4, 5, 6, 7, 7] {
            session.on_server(msg(id, 2000), &mut actions).unwrap();
        }
        let now = Instant::now();
        session.finish_batch(now, &mut actions);
        assert!(actions.send.is_empty(), "the ACK waits");
        assert_eq!(session.ack_due(), Some(now + ACK_DELAY));
        session.finish_batch(now + ACK_DELAY, &mut actions);
        assert!(actions.save_last_seen);
        assert_eq!(session.last_seen, 7);
        let ids: Vec<u64> = actions
            .events
            .iter()
            .map(|e| match e {
                Event::Message { msg, .. } => msg.id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, [6, 7]);
        assert_eq!(actions.send, [ClientMsg::Ack { up_to: 7 }]);

        let mut actions = Actions::default();
        session.on_server(msg(7, 2000), &mut actions).unwrap();
        session.finish_batch(Instant::now(), &mut actions);
        assert!(!actions.save_last_seen);
        assert!(actions.events.is_empty() && actions.send.is_empty());
    }

    /// [P-24] The ACK does not wait once [`ACK_AFTER`] messages are waiting.
    #[test]
    fn many_unacknowledged_messages_are_acknowledged_at_once() {
        let (mut session, _) = logged_in(Outbox::default(), 0);
        let mut actions = Actions::default();
        for id in 1..ACK_AFTER {
            session.on_server(msg(id, 2000), &mut actions).unwrap();
        }
        session.finish_batch(Instant::now(), &mut actions);
        assert!(actions.send.is_empty());
        session.on_server(msg(ACK_AFTER, 2000), &mut actions).unwrap();
        session.finish_batch(Instant::now(), &mut actions);
        assert_eq!(actions.send, [ClientMsg::Ack { up_to: ACK_AFTER }]);
        assert_eq!(session.ack_due(), None);
    }

    #[test]
    fn messages_older_than_welcome_are_marked_missed() {
        let (mut session, _) = logged_in(Outbox::default(), 0);
        let mut actions = Actions::default();
        session.on_server(msg(1, 999), &mut actions).unwrap();
        session.on_server(msg(2, 1000), &mut actions).unwrap();
        let missed: Vec<bool> = actions
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Message { missed, .. } => Some(*missed),
                _ => None,
            })
            .collect();
        assert_eq!(missed, [true, false]);
    }

    #[test]
    fn unconfirmed_messages_are_sent_again_in_order_after_a_reconnect() {
        let mut outbox = Outbox::default();
        for text in ["a", "b", "c"] {
            outbox.push(String::new(), text.into());
        }
        let (mut session, first) = logged_in(outbox, 0);
        assert_eq!(sends(&first), [1, 2, 3]);
        let mut actions = Actions::default();
        session.on_server(ServerMsg::Sent { client_id: 1, id: 10 }, &mut actions).unwrap();
        session.on_server(ServerMsg::Sent { client_id: 1, id: 10 }, &mut actions).unwrap();
        session.finish_batch(Instant::now(), &mut actions);
        assert_eq!(actions.events, [Event::Sent { client_id: 1, id: 10 }, Event::Outbox(2)]);
        session.on_unlinked(&mut actions);

        let mut actions = Actions::default();
        session.on_linked(None, &mut actions);
        session.on_server(welcome(), &mut actions).unwrap();
        session.finish_batch(Instant::now(), &mut actions);
        assert_eq!(sends(&actions), [2, 3]);
    }

    #[test]
    fn a_drop_discards_frames_queued_for_the_old_connection() {
        let (mut session, _) = logged_in(Outbox::default(), 0);
        let mut actions = Actions::default();
        session.on_send(None, "hi".into(), &mut actions);
        session.on_server(msg(1, 5), &mut actions).unwrap();
        session.on_unlinked(&mut actions);
        session.finish_batch(Instant::now(), &mut actions);
        assert!(actions.send.is_empty());
        assert!(actions.save_outbox && actions.save_last_seen);
    }

    #[test]
    fn an_error_about_a_send_removes_it_and_says_so() {
        let mut outbox = Outbox::default();
        outbox.push("nobody".into(), "hi".into());
        let (mut session, _) = logged_in(outbox, 0);
        let mut actions = Actions::default();
        let error = ServerMsg::Error { client_id: 1, reason: "unknown recipient".into() };
        session.on_server(error, &mut actions).unwrap();
        let other = ServerMsg::Error { client_id: 0, reason: "3 messages dropped".into() };
        session.on_server(other, &mut actions).unwrap();
        session.finish_batch(Instant::now(), &mut actions);
        assert_eq!(
            actions.events,
            [
                Event::Failed { client_id: 1, reason: "unknown recipient".into() },
                Event::Error { reason: "3 messages dropped".into() },
                Event::Outbox(0),
            ]
        );
        assert!(session.outbox.is_empty() && actions.save_outbox);
    }

    /// [P-27] RETRY: the message and every later one stay in the outbox,
    /// nothing is sent until the retry interval has passed, then they all
    /// go again in order on the same connection; nothing is dropped.
    #[test]
    fn retry_holds_the_outbox_and_resends_from_that_message_after_the_interval() {
        let mut outbox = Outbox::default();
        for text in ["a", "b", "c"] {
            outbox.push(String::new(), text.into());
        }
        let (mut session, first) = logged_in(outbox, 0);
        assert_eq!(sends(&first), [1, 2, 3]);
        let mut actions = Actions::default();
        session.on_server(ServerMsg::Sent { client_id: 1, id: 10 }, &mut actions).unwrap();
        let full = || "server storage is full".to_owned();
        session.on_server(ServerMsg::Retry { client_id: 2, reason: full() }, &mut actions).unwrap();
        session.on_server(ServerMsg::Retry { client_id: 3, reason: full() }, &mut actions).unwrap();
        session.on_send(None, "d".into(), &mut actions);
        let start = Instant::now();
        session.finish_batch(start, &mut actions);
        assert!(sends(&actions).is_empty(), "nothing goes out while held: {:?}", actions.send);
        assert_eq!(
            actions.events[..3],
            [
                Event::Sent { client_id: 1, id: 10 },
                Event::Retry { client_id: 2, reason: full(), retry_in: RETRY },
                Event::Retry { client_id: 3, reason: full(), retry_in: RETRY },
            ]
        );
        assert_eq!(session.wake_due(), Some(start + RETRY));

        // A RETRY of the same round does not push the timer out.
        let mut actions = Actions::default();
        session.on_server(ServerMsg::Retry { client_id: 3, reason: full() }, &mut actions).unwrap();
        session.finish_batch(start + RETRY / 2, &mut actions);
        assert!(sends(&actions).is_empty());
        assert_eq!(session.wake_due(), Some(start + RETRY));

        let mut actions = Actions::default();
        session.finish_batch(start + RETRY, &mut actions);
        assert_eq!(sends(&actions), [2, 3, 4], "everything from the held message on, in order");
        assert_eq!(session.wake_due(), None);
        assert_eq!(session.outbox.len(), 3, "nothing acknowledged or typed is dropped");

        // Still full: held again; a reconnect meanwhile sends everything at once.
        let mut actions = Actions::default();
        session.on_server(ServerMsg::Retry { client_id: 2, reason: full() }, &mut actions).unwrap();
        session.finish_batch(start + RETRY, &mut actions);
        session.on_unlinked(&mut actions);
        assert_eq!(session.wake_due(), None, "the timer belongs to the old connection");
        let mut actions = Actions::default();
        session.on_linked(None, &mut actions);
        session.on_server(welcome(), &mut actions).unwrap();
        session.finish_batch(start + RETRY, &mut actions);
        assert_eq!(sends(&actions), [2, 3, 4]);
    }

    #[test]
    fn a_retry_about_a_message_no_longer_waiting_holds_nothing() {
        let (mut session, _) = logged_in(Outbox::default(), 0);
        let mut actions = Actions::default();
        session.on_server(ServerMsg::Retry { client_id: 9, reason: "full".into() }, &mut actions).unwrap();
        session.on_send(None, "typed after".into(), &mut actions);
        session.finish_batch(Instant::now(), &mut actions);
        assert_eq!(sends(&actions), [1]);
        assert_eq!(session.wake_due(), None);
    }

    #[test]
    fn dropped_and_unlisted_become_events_with_their_numbers() {
        let (mut session, _) = logged_in(Outbox::default(), 0);
        let mut actions = Actions::default();
        session.on_server(ServerMsg::Dropped { count: 3, limit: 10_000 }, &mut actions).unwrap();
        session.on_server(ServerMsg::Unlisted { count: 9_000 }, &mut actions).unwrap();
        assert_eq!(actions.events, [Event::Dropped { count: 3, limit: 10_000 }, Event::Unlisted(9_000)]);
    }

    #[test]
    fn invalid_messages_never_enter_the_outbox() {
        let mut session = Session::new("h:1".into(), Outbox::default(), 0, RETRY);
        let mut actions = Actions::default();
        session.on_send(None, "tab\there".into(), &mut actions);
        session.on_send(Some("no body".into()), "hi".into(), &mut actions);
        session.on_send(None, String::new(), &mut actions);
        assert!(session.outbox.is_empty() && !actions.save_outbox);
        assert_eq!(actions.events.len(), 3);
        assert!(
            actions.events.iter().all(|e| matches!(e, Event::Error { reason } if reason.starts_with("not sent: ")))
        );
    }

    #[test]
    fn users_chunks_are_gathered_and_reject_is_final() {
        let (mut session, _) = logged_in(Outbox::default(), 0);
        let mut actions = Actions::default();
        session.on_server(ServerMsg::Users { last: false, nicks: vec!["a".into()] }, &mut actions).unwrap();
        assert!(actions.events.is_empty());
        session.on_server(ServerMsg::Users { last: true, nicks: vec!["b".into()] }, &mut actions).unwrap();
        assert_eq!(actions.events, [Event::Users(vec!["a".into(), "b".into()])]);
        let reject = ServerMsg::Reject { reason: "nickname taken".into() };
        assert_eq!(session.on_server(reject, &mut actions), Err(Rejection::Server("nickname taken".into())));
    }
}
