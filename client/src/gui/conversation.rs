//! The conversation as the window shows it, decided without drawing: every
//! line in order, and our own messages from the moment they are typed.
//!
//! A message we type appears at once, greyed, "sending…"; SENT turns it
//! into an ordinary line where it stands, and the server's echo of it
//! [P-23] is then not shown a second time. SENT and the echo may come in
//! either order [P-22], so an echo that comes first takes the place of the
//! greyed line instead (matched by recipient and text: two messages alike
//! look alike either way). RETRY marks the message and every later one
//! "not sent yet"; ERROR marks it failed with the server's reason, and the
//! window offers to send it again or discard it. Join and leave lines can
//! be hidden and shown again (`/quiet`).
//!
//! Every change is recorded as a [`Change`] for the view to redraw just
//! that line, and for the event log.

use std::collections::VecDeque;

use chat_client::ChatMsg;
use chat_common::validate::nick_key;

use super::format::{AwaySeparator, Line, Role, message_line, notice_line, pending_line, separator_line};
use super::strings::{S, Texts};

/// Most message ids remembered as "confirmed, echo still to come" (and
/// client ids as "echo came first"): as many as may be unconfirmed at once.
const MAX_REMEMBERED: usize = chat_common::MAX_UNCONFIRMED_SENDS;

/// What a line is, which decides whether it shows and what the log calls it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Message,
    /// A join or a leave: hidden by `/quiet`.
    Presence,
    Notice,
    Problem,
    Separator,
    /// Ours, typed and not yet stored.
    Pending(PendingState),
}

/// How a message of ours stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingState {
    Sending,
    /// The server could not store it yet (RETRY); it goes again by itself.
    Held {
        reason: String,
        secs: u64,
    },
    /// The server refused it for good (ERROR).
    Failed {
        reason: String,
    },
}

impl Kind {
    /// The name the event log gives it.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Presence => "presence",
            Kind::Notice => "notice",
            Kind::Problem => "problem",
            Kind::Separator => "separator",
            Kind::Pending(PendingState::Sending) => "sending",
            Kind::Pending(PendingState::Held { .. }) => "held",
            Kind::Pending(PendingState::Failed { .. }) => "failed",
        }
    }
}

/// One line and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub line: Line,
    pub kind: Kind,
    /// Discarded by the user: never shown again.
    pub discarded: bool,
}

/// What changed, for the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A line was added at the end.
    Added(usize),
    /// This line's text changed.
    Changed(usize),
    /// Lines appeared or disappeared: draw them all again.
    All,
}

/// A message of ours not yet stored.
#[derive(Clone, Debug)]
struct Ours {
    client_id: u64,
    /// Its line.
    index: usize,
    /// The recipient, or empty for everyone.
    to: String,
    text: String,
    /// When it was typed, for its line.
    time_ms: u64,
}

/// A failed message the window offers to send again or discard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    pub client_id: u64,
    /// The recipient, or `None` for everyone.
    pub to: Option<String>,
    pub text: String,
    pub reason: String,
}

/// The lines, our messages in flight, and what changed since last asked.
#[derive(Debug)]
pub struct Conversation {
    texts: Texts,
    /// Our nickname.
    me: String,
    /// Seconds east of UTC, for times.
    utc_offset: i64,
    entries: Vec<Entry>,
    /// Ours not yet stored, oldest first.
    ours: Vec<Ours>,
    /// Ids of ours confirmed by SENT whose echo has not come yet.
    echo_due: VecDeque<u64>,
    /// Client ids of ours whose echo came before SENT.
    echoed: VecDeque<u64>,
    away: AwaySeparator,
    /// Join and leave lines are hidden.
    pub quiet: bool,
    changes: Vec<Change>,
}

/// Adds to a bounded queue of remembered ids.
fn remember(queue: &mut VecDeque<u64>, id: u64) {
    if queue.len() == MAX_REMEMBERED {
        queue.pop_front();
    }
    queue.push_back(id);
}

/// Removes `id` from a queue of remembered ids; whether it was there.
fn forget(queue: &mut VecDeque<u64>, id: u64) -> bool {
    let found = queue.iter().position(|&known| known == id);
    found.map(|at| queue.remove(at)).is_some()
}

impl Conversation {
    /// An empty conversation for `me`.
    pub fn new(texts: Texts, me: &str, utc_offset: i64) -> Conversation {
        Conversation {
            texts,
            me: me.to_owned(),
            utc_offset,
            entries: Vec::new(),
            ours: Vec::new(),
            echo_due: VecDeque::new(),
            echoed: VecDeque::new(),
            away: AwaySeparator::default(),
            quiet: false,
            changes: Vec::new(),
        }
    }

    /// Every line, shown or not.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether the line at `index` shows.
    pub fn shows(&self, index: usize) -> bool {
        let entry = &self.entries[index];
        let hidden_presence = self.quiet && entry.kind == Kind::Presence;
        !entry.discarded && !hidden_presence
    }

    /// What changed since the last call.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    fn add(&mut self, line: Line, kind: Kind) {
        self.entries.push(Entry { line, kind, discarded: false });
        self.changes.push(Change::Added(self.entries.len() - 1));
    }

    /// A notice (or a problem, or a join or leave) at `now_ms`.
    pub fn notice(&mut self, kind: Kind, text: &str, now_ms: u64) {
        let role = if kind == Kind::Problem { Role::Problem } else { Role::Notice };
        self.add(notice_line(now_ms, self.utc_offset, role, text), kind);
    }

    /// A new connection: what it delivers as missed is a new run.
    pub fn reconnected(&mut self) {
        self.away.reconnected();
    }

    /// A message from the server. Our own echo completes our line if it
    /// is still greyed, and is not shown twice if SENT came first.
    pub fn message(&mut self, msg: &ChatMsg, missed: bool) {
        if nick_key(&msg.from) == nick_key(&self.me) {
            if forget(&mut self.echo_due, msg.id) {
                return;
            }
            let entries = &self.entries;
            let sending = |ours: &&Ours| {
                nick_key(&ours.to) == nick_key(&msg.to)
                    && ours.text == msg.text
                    && matches!(entries[ours.index].kind, Kind::Pending(PendingState::Sending))
            };
            if let Some(at) = self.ours.iter().position(|ours| sending(&ours)) {
                let ours = self.ours.remove(at);
                remember(&mut self.echoed, ours.client_id);
                self.entries[ours.index] =
                    Entry { line: message_line(msg, &self.me, self.utc_offset), kind: Kind::Message, discarded: false };
                self.changes.push(Change::Changed(ours.index));
                return;
            }
        }
        if self.away.before_message(missed) {
            self.add(separator_line(self.texts.get(S::Away)), Kind::Separator);
        }
        self.add(message_line(msg, &self.me, self.utc_offset), Kind::Message);
    }

    /// A message of ours entered the outbox (typed at `now_ms`, or left
    /// from an earlier run).
    pub fn queued(&mut self, client_id: u64, to: Option<&str>, text: &str, now_ms: u64) {
        let ours = Ours {
            client_id,
            index: self.entries.len(),
            to: to.unwrap_or("").into(),
            text: text.into(),
            time_ms: now_ms,
        };
        self.ours.push(ours);
        self.set_state(self.entries.len(), PendingState::Sending);
    }

    /// SENT: our message is stored as `id` (0 if stored long ago).
    pub fn sent(&mut self, client_id: u64, id: u64) {
        if forget(&mut self.echoed, client_id) {
            return;
        }
        let Some(at) = self.ours.iter().position(|ours| ours.client_id == client_id) else { return };
        let ours = self.ours.remove(at);
        let to = (!ours.to.is_empty()).then_some(ours.to.as_str());
        let msg =
            ChatMsg { id, time_ms: ours.time_ms, from: self.me.clone(), to: to.unwrap_or("").into(), text: ours.text };
        self.entries[ours.index] =
            Entry { line: message_line(&msg, &self.me, self.utc_offset), kind: Kind::Message, discarded: false };
        self.changes.push(Change::Changed(ours.index));
        if id != 0 {
            remember(&mut self.echo_due, id);
        }
    }

    /// RETRY: `client_id` and every later message of ours are not stored yet.
    pub fn held(&mut self, client_id: u64, reason: &str, secs: u64) {
        let later: Vec<usize> =
            self.ours.iter().filter(|ours| ours.client_id >= client_id).map(|ours| ours.index).collect();
        for index in later {
            if !matches!(self.entries[index].kind, Kind::Pending(PendingState::Failed { .. })) {
                self.set_state(index, PendingState::Held { reason: reason.into(), secs });
            }
        }
    }

    /// ERROR about `client_id`: refused for good.
    pub fn failed(&mut self, client_id: u64, reason: &str) {
        if let Some(index) = self.ours.iter().find(|ours| ours.client_id == client_id).map(|ours| ours.index) {
            self.set_state(index, PendingState::Failed { reason: reason.into() });
        }
    }

    /// The oldest failed message not yet sent again or discarded.
    pub fn first_failed(&self) -> Option<Failed> {
        self.ours.iter().find_map(|ours| match &self.entries[ours.index].kind {
            Kind::Pending(PendingState::Failed { reason }) => Some(Failed {
                client_id: ours.client_id,
                to: (!ours.to.is_empty()).then(|| ours.to.clone()),
                text: ours.text.clone(),
                reason: reason.clone(),
            }),
            _ => None,
        })
    }

    /// Removes a failed message's line (to discard it, or before sending
    /// it again, when it comes back as a new line).
    pub fn discard(&mut self, client_id: u64) {
        if let Some(at) = self.ours.iter().position(|ours| ours.client_id == client_id) {
            let ours = self.ours.remove(at);
            self.entries[ours.index].discarded = true;
            self.changes.push(Change::All);
        }
    }

    /// Hides or shows join and leave lines.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
        self.changes.push(Change::All);
    }

    /// (Re)draws our message at `index` as `state`, adding it if new.
    fn set_state(&mut self, index: usize, state: PendingState) {
        let Some(ours) = self.ours.iter().find(|ours| ours.index == index) else { return };
        let texts = self.texts;
        let secs;
        let (role, words) = match &state {
            PendingState::Sending => (Role::Notice, texts.get(S::Sending).to_owned()),
            PendingState::Held { reason, secs: held } => {
                secs = held.to_string();
                (Role::Notice, texts.fill(S::Held, &[("reason", reason), ("secs", &secs)]))
            }
            PendingState::Failed { reason } => (Role::Problem, texts.fill(S::Failed, &[("reason", reason)])),
        };
        let line = pending_line(ours.time_ms, self.utc_offset, &self.me, &ours.to, &ours.text, (role, &words));
        let entry = Entry { line, kind: Kind::Pending(state), discarded: false };
        if index == self.entries.len() {
            self.entries.push(entry);
            self.changes.push(Change::Added(index));
        } else {
            self.entries[index] = entry;
            self.changes.push(Change::Changed(index));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_client::Language;

    const EN: Texts = Texts { language: Language::English };
    const TIME: u64 = 1_795_856_742_000;

    fn echo(id: u64, to: &str, text: &str) -> ChatMsg {
        ChatMsg { id, time_ms: TIME + 500, from: "ana".into(), to: to.into(), text: text.into() }
    }

    fn shown(conversation: &Conversation) -> Vec<String> {
        let entries = conversation.entries().iter().enumerate();
        entries.filter(|(index, _)| conversation.shows(*index)).map(|(_, entry)| entry.line.text()).collect()
    }

    #[test]
    fn a_typed_message_shows_at_once_then_sent_confirms_it_and_the_echo_is_not_shown_twice() {
        let mut conversation = Conversation::new(EN, "ana", 0);
        conversation.queued(1, None, "hola", TIME);
        assert_eq!(shown(&conversation), ["09:05 ana: hola  · sending…"]);
        assert_eq!(conversation.entries()[0].kind.name(), "sending");
        assert_eq!(conversation.take_changes(), [Change::Added(0)]);
        conversation.sent(1, 40);
        assert_eq!(shown(&conversation), ["09:05 ana: hola"]);
        assert_eq!(conversation.entries()[0].kind, Kind::Message);
        conversation.message(&echo(40, "", "hola"), false);
        assert_eq!(shown(&conversation), ["09:05 ana: hola"]);
        assert_eq!(conversation.take_changes(), [Change::Changed(0)]);
    }

    #[test]
    fn an_echo_before_sent_takes_the_place_of_the_greyed_line() {
        let mut conversation = Conversation::new(EN, "ana", 0);
        conversation.queued(1, Some("Bob"), "psst", TIME);
        conversation.queued(2, None, "psst", TIME);
        conversation.message(
            &ChatMsg { id: 7, time_ms: TIME, from: "bob".into(), to: String::new(), text: "hi".into() },
            false,
        );
        conversation.message(&echo(8, "bob", "psst"), false);
        conversation.sent(1, 8);
        assert_eq!(shown(&conversation), ["09:05 ana → bob: psst", "09:05 ana: psst  · sending…", "09:05 bob: hi"]);
        conversation.sent(2, 9);
        conversation.message(&echo(9, "", "psst"), false);
        assert_eq!(shown(&conversation), ["09:05 ana → bob: psst", "09:05 ana: psst", "09:05 bob: hi"]);
    }

    #[test]
    fn retry_marks_that_message_and_every_later_one_until_sent() {
        let mut conversation = Conversation::new(EN, "ana", 0);
        for (client_id, text) in [(1, "a"), (2, "b"), (3, "c")] {
            conversation.queued(client_id, None, text, TIME);
        }
        conversation.held(2, "server storage is full", 5);
        assert_eq!(
            shown(&conversation),
            [
                "09:05 ana: a  · sending…",
                "09:05 ana: b  · not sent yet: server storage is full; will try again in 5 s",
                "09:05 ana: c  · not sent yet: server storage is full; will try again in 5 s",
            ]
        );
        conversation.sent(2, 11);
        assert_eq!(shown(&conversation)[1], "09:05 ana: b");
    }

    #[test]
    fn a_failed_message_says_why_and_can_be_discarded() {
        let mut conversation = Conversation::new(EN, "ana", 0);
        conversation.queued(3, Some("dave"), "hi", TIME);
        conversation.failed(3, "no such user: dave");
        assert_eq!(shown(&conversation), ["09:05 ana → dave: hi  · not sent: no such user: dave"]);
        let failed = conversation.first_failed().unwrap();
        assert_eq!((failed.client_id, failed.to.as_deref(), failed.text.as_str()), (3, Some("dave"), "hi"));
        conversation.held(1, "full", 5);
        assert_eq!(conversation.entries()[0].kind.name(), "failed", "a failed message stays failed");
        conversation.discard(3);
        assert!(shown(&conversation).is_empty());
        assert_eq!(conversation.first_failed(), None);
        assert_eq!(conversation.take_changes().last(), Some(&Change::All));
    }

    #[test]
    fn quiet_hides_join_and_leave_lines_and_shows_them_again() {
        let mut conversation = Conversation::new(EN, "ana", 0);
        conversation.notice(Kind::Presence, "bob joined", TIME);
        conversation.notice(Kind::Problem, "connection lost", TIME);
        conversation.set_quiet(true);
        assert_eq!(shown(&conversation), ["09:05 connection lost"]);
        conversation.set_quiet(false);
        assert_eq!(shown(&conversation).len(), 2);
    }

    #[test]
    fn missed_messages_get_the_separator_in_the_users_language() {
        let spanish = Texts { language: Language::Spanish };
        let mut conversation = Conversation::new(spanish, "ana", 0);
        let missed = ChatMsg { id: 1, time_ms: TIME, from: "bob".into(), to: String::new(), text: "hola".into() };
        conversation.message(&missed, true);
        assert_eq!(shown(&conversation), ["— mientras no estabas —", "09:05 bob: hola"]);
        assert_eq!(conversation.entries()[0].kind.name(), "separator");
    }
}
