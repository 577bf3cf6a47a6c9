//! What the window shows, decided without drawing anything: how a message
//! becomes a line of parts (time, names, text) and which colour each name
//! gets, when the "while you were away" separator goes in, what the status
//! bar and the title say, the order of the users list and the input
//! history. Pure functions and small structs, so unit tests cover the view
//! logic without a display; `view.rs` turns the results into pixels.

use std::time::{Duration, Instant};

use chat_client::ChatMsg;
use chat_common::validate::nick_key;

/// How many name colours there are; `view.rs` holds the colours themselves.
pub const PALETTE_LEN: usize = 8;

/// The text of the separator put before messages missed while away.
pub const AWAY_SEPARATOR: &str = "— while you were away —";

/// Whose line it is, which decides its background.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// A public message from someone else, or a notice.
    Public,
    /// A public message we sent.
    Own,
    /// A direct message, to us or from us.
    Direct,
}

/// What a part of a line is, which decides its colour and font.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The `HH:MM` in front.
    Time,
    /// Message text and punctuation.
    Text,
    /// Something that happened (joins, leaves): quiet.
    Info,
    /// Something that went wrong: stands out.
    Problem,
    /// The "while you were away" separator.
    Separator,
    /// A nickname, in the palette colour with this index.
    Name(usize),
}

/// One line of the conversation, in parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Its background.
    pub tone: Tone,
    /// The parts, left to right.
    pub parts: Vec<(Role, String)>,
}

impl Line {
    /// The line as plain text.
    pub fn text(&self) -> String {
        self.parts.iter().map(|(_, part)| part.as_str()).collect()
    }
}

/// `HH:MM` of a Unix time in milliseconds, shifted by `utc_offset` seconds.
pub fn clock(time_ms: u64, utc_offset: i64) -> String {
    let seconds = i64::try_from(time_ms / 1000).unwrap_or(i64::MAX - 86_400) + utc_offset;
    let of_day = seconds.rem_euclid(86_400);
    format!("{:02}:{:02}", of_day / 3600, of_day % 3600 / 60)
}

/// Reads `date +%z` output (`+0100`, `-0530`) as seconds east of UTC.
pub fn parse_utc_offset(text: &str) -> Option<i64> {
    let text = text.trim();
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    Some(sign * (hours * 3600 + minutes * 60))
}

/// The palette index of a nickname: the same for every run and every
/// client, and for every spelling in upper or lower case (FNV-1a, which
/// unlike std's hasher is specified and never changes).
pub fn name_colour(nick: &str) -> usize {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in nick_key(nick).bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    hash as usize % PALETTE_LEN
}

/// A name part of a line.
fn name(nick: &str) -> (Role, String) {
    (Role::Name(name_colour(nick)), nick.to_owned())
}

/// A message as a line: `HH:MM sender: text`, or `HH:MM sender → recipient:
/// text` for a direct one. `me` is our nickname.
pub fn message_line(msg: &ChatMsg, me: &str, utc_offset: i64) -> Line {
    let tone = match (msg.to.is_empty(), nick_key(&msg.from) == nick_key(me)) {
        (false, _) => Tone::Direct,
        (true, true) => Tone::Own,
        (true, false) => Tone::Public,
    };
    let mut parts = vec![(Role::Time, format!("{} ", clock(msg.time_ms, utc_offset))), name(&msg.from)];
    if !msg.to.is_empty() {
        parts.push((Role::Text, " → ".to_owned()));
        parts.push(name(&msg.to));
    }
    parts.push((Role::Text, format!(": {}", msg.text)));
    Line { tone, parts }
}

/// A notice (`role` [`Role::Info`] or [`Role::Problem`]) at `time_ms`.
pub fn notice_line(time_ms: u64, utc_offset: i64, role: Role, text: &str) -> Line {
    Line { tone: Tone::Public, parts: vec![(Role::Time, format!("{} ", clock(time_ms, utc_offset))), (role, text.into())] }
}

/// The separator before missed messages.
pub fn separator_line() -> Line {
    Line { tone: Tone::Public, parts: vec![(Role::Separator, AWAY_SEPARATOR.to_owned())] }
}

/// Decides where the "while you were away" separator goes: before the
/// first of a run of missed messages, so each connection's backlog is
/// marked once and live messages after it are not.
#[derive(Debug, Default)]
pub struct AwaySeparator {
    /// The last message shown was a missed one.
    in_missed_run: bool,
}

impl AwaySeparator {
    /// A message is about to be shown: whether the separator goes first.
    pub fn before_message(&mut self, missed: bool) -> bool {
        let separator = missed && !self.in_missed_run;
        self.in_missed_run = missed;
        separator
    }

    /// A new connection: what it delivers as missed is a new run.
    pub fn reconnected(&mut self) {
        self.in_missed_run = false;
    }
}

/// The state of the connection, as the status bar and the title tell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Logging in for the first time.
    Connecting,
    /// Logged in.
    Connected,
    /// The connection dropped or failed; the next try is at `at`.
    Retrying { reason: String, at: Instant },
    /// The window was closed; sending what is left, then exiting.
    Closing,
}

/// What the status bar and the title are made from.
#[derive(Clone, Debug)]
pub struct Status {
    /// Our nickname.
    pub nick: String,
    /// `host:port`.
    pub server: String,
    /// The connection.
    pub link: Link,
    /// Messages typed and not yet confirmed by the server.
    pub outbox: usize,
}

/// "1 message" or "N messages".
fn messages(count: usize) -> String {
    if count == 1 { "1 message".into() } else { format!("{count} messages") }
}

impl Status {
    /// The status bar's text at `now`.
    pub fn line(&self, now: Instant) -> String {
        let Status { nick, server, outbox, .. } = self;
        let link = match &self.link {
            Link::Connecting => format!("connecting to {server} as {nick}…"),
            Link::Connected => format!("connected to {server} as {nick}"),
            Link::Retrying { reason, at } => {
                // Rounded up, so the count never shows 0 while still waiting.
                let left = at.saturating_duration_since(now) + Duration::from_millis(999);
                match left.as_secs() {
                    0 => format!("reconnecting to {server}… ({reason})"),
                    seconds => format!("reconnecting in {seconds} s… ({reason})"),
                }
            }
            Link::Closing if *outbox > 0 => return format!("closing: sending {} first…", messages(*outbox)),
            Link::Closing => "closing…".into(),
        };
        match outbox {
            0 => link,
            count => format!("{link}   ·   {} waiting to be sent", messages(*count)),
        }
    }

    /// The window title: the nickname and the state.
    pub fn title(&self) -> String {
        let state = match self.link {
            Link::Connecting => "connecting",
            Link::Connected => "connected",
            Link::Retrying { .. } => "reconnecting",
            Link::Closing => "closing",
        };
        format!("{} — {state} — hmac-chat", self.nick)
    }
}

/// FLTK draws `@x` in a label as a symbol; `@@` is a plain `@`.
pub fn label_text(text: &str) -> String {
    text.replace('@', "@@")
}

/// The users list in display order: case-insensitive, no duplicates.
pub fn sort_users(users: &mut Vec<String>) {
    users.sort_by_key(|nick| nick_key(nick));
    users.dedup_by_key(|nick| nick_key(nick));
}

/// Adds a user who came online, keeping the order.
pub fn user_joined(users: &mut Vec<String>, nick: &str) {
    if let Err(index) = users.binary_search_by_key(&nick_key(nick), |user| nick_key(user)) {
        users.insert(index, nick.to_owned());
    }
}

/// Removes a user who went offline.
pub fn user_left(users: &mut Vec<String>, nick: &str) {
    users.retain(|user| nick_key(user) != nick_key(nick));
}

/// Most lines the input history keeps.
const HISTORY_LEN: usize = 100;

/// Lines sent from the input, for Up and Down.
#[derive(Debug, Default)]
pub struct History {
    /// Oldest first.
    lines: Vec<String>,
    /// The line Up/Down is showing; `lines.len()` when not browsing.
    cursor: usize,
    /// What was in the input before the first Up, given back past the newest.
    draft: String,
}

impl History {
    /// A line was sent; browsing starts again from the newest.
    pub fn push(&mut self, line: String) {
        if self.lines.last() != Some(&line) {
            self.lines.push(line);
        }
        if self.lines.len() > HISTORY_LEN {
            self.lines.remove(0);
        }
        self.cursor = self.lines.len();
        self.draft.clear();
    }

    /// Up: the line before the one shown; `current` is the input's text.
    pub fn older(&mut self, current: &str) -> Option<&str> {
        if self.cursor == 0 {
            return None;
        }
        if self.cursor == self.lines.len() {
            self.draft = current.to_owned();
        }
        self.cursor -= 1;
        Some(&self.lines[self.cursor])
    }

    /// Down: the line after the one shown, then the draft.
    pub fn newer(&mut self) -> Option<&str> {
        if self.cursor >= self.lines.len() {
            return None;
        }
        self.cursor += 1;
        Some(self.lines.get(self.cursor).unwrap_or(&self.draft))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: &str, to: &str, text: &str) -> ChatMsg {
        // 2026-11-28 09:05:42 UTC.
        ChatMsg { id: 1, time_ms: 1_795_856_742_000, from: from.into(), to: to.into(), text: text.into() }
    }

    #[test]
    fn a_public_message_is_time_sender_text() {
        let line = message_line(&msg("bob", "", "hola"), "ana", 0);
        assert_eq!(line.text(), "09:05 bob: hola");
        assert_eq!(line.tone, Tone::Public);
        assert_eq!(line.parts[1], (Role::Name(name_colour("bob")), "bob".into()));
    }

    #[test]
    fn own_and_direct_messages_have_their_own_tone() {
        assert_eq!(message_line(&msg("Ana", "", "hi"), "ana", 0).tone, Tone::Own);
        let direct = message_line(&msg("bob", "ana", "psst"), "ana", 0);
        assert_eq!((direct.tone, direct.text().as_str()), (Tone::Direct, "09:05 bob → ana: psst"));
        let sent = message_line(&msg("ana", "bob", "psst"), "ana", 0);
        assert_eq!((sent.tone, sent.text().as_str()), (Tone::Direct, "09:05 ana → bob: psst"));
        assert_eq!(sent.parts[3], (Role::Name(name_colour("bob")), "bob".into()));
    }

    #[test]
    fn clock_applies_the_offset_and_wraps_around_midnight() {
        let time_ms = 1_795_856_742_000;
        assert_eq!(clock(time_ms, 3600), "10:05");
        assert_eq!(clock(time_ms, -10 * 3600), "23:05");
        assert_eq!(clock(time_ms, 15 * 3600), "00:05");
        assert_eq!(clock(0, 0), "00:00");
        assert_eq!(clock(u64::MAX, 0).len(), 5);
    }

    #[test]
    fn utc_offsets_are_read_from_date_output() {
        assert_eq!(parse_utc_offset("+0100\n"), Some(3600));
        assert_eq!(parse_utc_offset("-0530"), Some(-(5 * 3600 + 30 * 60)));
        assert_eq!(parse_utc_offset("+0000"), Some(0));
        for bad in ["", "0100", "+01", "+01:00", "+ab00"] {
            assert_eq!(parse_utc_offset(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn name_colours_are_stable_case_insensitive_and_spread() {
        assert_eq!(name_colour("Alice"), name_colour("alice"));
        // FNV-1a of "alice", pinned so the colours never change between releases.
        assert_eq!(name_colour("alice"), 0x8722_13e7 % PALETTE_LEN);
        let nicks = ["ana", "bob", "carol", "dave", "eve", "frank", "grace", "heidi", "ivan", "judy"];
        let mut used: Vec<usize> = nicks.iter().map(|nick| name_colour(nick)).collect();
        used.sort();
        used.dedup();
        assert!(used.len() >= 5, "ten names share only {} colours", used.len());
    }

    #[test]
    fn the_separator_goes_before_each_run_of_missed_messages_only() {
        let mut away = AwaySeparator::default();
        let shown: Vec<bool> = [true, true, false, true].iter().map(|&missed| away.before_message(missed)).collect();
        assert_eq!(shown, [true, false, false, true]);
        assert!(!away.before_message(true));
        away.reconnected();
        assert!(away.before_message(true));
        let mut live = AwaySeparator::default();
        assert!(!live.before_message(false));
        assert_eq!(separator_line().text(), "— while you were away —");
    }

    #[test]
    fn the_status_bar_says_the_state_and_the_outbox() {
        let now = Instant::now();
        let mut status = Status { nick: "ana".into(), server: "h:1".into(), link: Link::Connected, outbox: 0 };
        assert_eq!(status.line(now), "connected to h:1 as ana");
        assert_eq!(status.title(), "ana — connected — hmac-chat");
        status.outbox = 2;
        assert_eq!(status.line(now), "connected to h:1 as ana   ·   2 messages waiting to be sent");
        status.link = Link::Retrying { reason: "refused".into(), at: now + Duration::from_millis(4200) };
        status.outbox = 1;
        assert_eq!(status.line(now), "reconnecting in 5 s… (refused)   ·   1 message waiting to be sent");
        assert_eq!(status.line(now + Duration::from_secs(5)), "reconnecting to h:1… (refused)   ·   1 message waiting to be sent");
        assert_eq!(status.title(), "ana — reconnecting — hmac-chat");
        status.link = Link::Closing;
        assert_eq!(status.line(now), "closing: sending 1 message first…");
        status.link = Link::Connecting;
        status.outbox = 0;
        assert_eq!(status.line(now), "connecting to h:1 as ana…");
    }

    #[test]
    fn labels_show_at_signs_literally() {
        assert_eq!(label_text("a@b @@c"), "a@@b @@@@c");
    }

    #[test]
    fn users_are_sorted_case_insensitively_and_kept_sorted() {
        let mut users = vec!["carol".to_owned(), "Bob".to_owned(), "ana".to_owned(), "bob".to_owned()];
        sort_users(&mut users);
        assert_eq!(users, ["ana", "Bob", "carol"]);
        user_joined(&mut users, "bea");
        user_joined(&mut users, "ANA");
        assert_eq!(users, ["ana", "bea", "Bob", "carol"]);
        user_left(&mut users, "BOB");
        user_left(&mut users, "nobody");
        assert_eq!(users, ["ana", "bea", "carol"]);
    }

    #[test]
    fn up_recalls_older_lines_and_down_returns_to_the_draft() {
        let mut history = History::default();
        assert_eq!(history.older("draft"), None);
        history.push("one".into());
        history.push("two".into());
        history.push("two".into());
        assert_eq!(history.older("half typed"), Some("two"));
        assert_eq!(history.older("two"), Some("one"));
        assert_eq!(history.older("one"), None);
        assert_eq!(history.newer(), Some("two"));
        assert_eq!(history.newer(), Some("half typed"));
        assert_eq!(history.newer(), None);
        history.push("three".into());
        assert_eq!(history.older(""), Some("three"));
        for n in 0..HISTORY_LEN + 10 {
            history.push(n.to_string());
        }
        assert_eq!(history.lines.len(), HISTORY_LEN);
    }
}
