//! What a line of the conversation is made of, decided without drawing:
//! a message as parts (time, names, text) with a stable colour per name,
//! our own messages while they wait for the server, notices; the order of
//! the users list and its label, and the dialog's `host:port` and remembered values.
//! Pure, so unit tests cover it without a display.

use chat_client::{ChatMsg, Event};
use chat_common::validate::nick_key;

use super::strings::{S, Texts};

/// How many name colours there are; `view.rs` holds the colours.
pub const PALETTE_LEN: usize = 8;

/// Whose line it is, which decides its background.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Someone else's public message, or a notice.
    Public,
    /// Our own public message.
    Own,
    /// A direct message, to us or from us.
    Direct,
    /// Our message, not yet stored by the server: greyed.
    Pending,
}

/// What a part of a line is, which decides its colour and font.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Time,
    Text,
    /// Joins, leaves, reconnections: quiet.
    Notice,
    /// Errors and lost connections: stands out.
    Problem,
    /// The "while you were away" separator.
    Separator,
    /// A nickname, in the palette colour with this index.
    Name(usize),
}

/// One line of the conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub tone: Tone,
    /// Left to right.
    pub parts: Vec<(Role, String)>,
    /// How many parts come before the text: a line too long for the window
    /// wraps with its later rows starting under the first part after these
    /// (a hanging indent), not under the time.
    pub indent: usize,
}

impl Line {
    /// The line as plain text, as the event log shows it.
    pub fn text(&self) -> String {
        self.parts.iter().map(|(_, part)| part.as_str()).collect()
    }
}

/// `HH:MM` of a Unix time in milliseconds, `utc_offset` seconds east of UTC.
pub fn clock(time_ms: u64, utc_offset: i64) -> String {
    let minutes = (i64::try_from(time_ms / 1000).unwrap_or(0) + utc_offset).rem_euclid(86_400) / 60;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Reads `date +%z` output (`+0100`, `-0530`) as seconds east of UTC.
pub fn parse_utc_offset(text: &str) -> Option<i64> {
    let text = text.trim();
    let sign = match text.get(..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let digits = text.get(1..).filter(|digits| digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()))?;
    Some(sign * (digits[..2].parse::<i64>().ok()? * 3600 + digits[2..].parse::<i64>().ok()? * 60))
}

/// A nickname's palette index: the same in every run, client and letter
/// case (FNV-1a, which unlike std's hasher is specified and never changes).
pub fn name_colour(nick: &str) -> usize {
    let hash =
        nick_key(nick).bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    hash as usize % PALETTE_LEN
}

fn name(nick: &str) -> (Role, String) {
    (Role::Name(name_colour(nick)), nick.to_owned())
}

/// The time, the sender, the recipient if direct, and `": "`: the parts
/// before a message's text.
fn head(time_ms: u64, utc_offset: i64, from: &str, to: &str) -> Vec<(Role, String)> {
    let mut parts = vec![(Role::Time, format!("{} ", clock(time_ms, utc_offset))), name(from)];
    if !to.is_empty() {
        parts.extend([(Role::Text, " → ".to_owned()), name(to)]);
    }
    parts.push((Role::Text, ": ".to_owned()));
    parts
}

/// `HH:MM sender: text`, or `HH:MM sender → recipient: text` when direct.
pub fn message_line(msg: &ChatMsg, me: &str, utc_offset: i64) -> Line {
    let tone = match (msg.to.is_empty(), nick_key(&msg.from) == nick_key(me)) {
        (false, _) => Tone::Direct,
        (true, true) => Tone::Own,
        (true, false) => Tone::Public,
    };
    let mut parts = head(msg.time_ms, utc_offset, &msg.from, &msg.to);
    let indent = parts.len();
    parts.push((Role::Text, msg.text.clone()));
    Line { tone, parts, indent }
}

/// Our message as typed at `time_ms`, greyed, followed by how it stands
/// (`"sending…"`, or why it is not sent, as `role`).
pub fn pending_line(time_ms: u64, utc_offset: i64, me: &str, to: &str, text: &str, state: (Role, &str)) -> Line {
    let mut parts = head(time_ms, utc_offset, me, to);
    let indent = parts.len();
    parts.extend([(Role::Text, text.to_owned()), (state.0, format!("  · {}", state.1))]);
    Line { tone: Tone::Pending, parts, indent }
}

/// `HH:MM text`, for a [`Role::Notice`] or a [`Role::Problem`].
pub fn notice_line(time_ms: u64, utc_offset: i64, role: Role, text: &str) -> Line {
    Line {
        tone: Tone::Public,
        parts: vec![(Role::Time, format!("{} ", clock(time_ms, utc_offset))), (role, text.into())],
        indent: 1,
    }
}

/// The line before messages missed while away.
pub fn separator_line(text: &str) -> Line {
    Line { tone: Tone::Public, parts: vec![(Role::Separator, text.into())], indent: 0 }
}

/// Puts the separator before the first of each run of missed messages, so
/// a connection's backlog is marked once and live messages after it are not.
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

/// FLTK draws `@x` in a label as a symbol; `@@` is a plain `@`.
pub fn label_text(text: &str) -> String {
    text.replace('@', "@@")
}

/// The users list in display order: case-insensitive, no duplicates.
pub fn sort_users(users: &mut Vec<String>) {
    users.sort_by_key(|nick| nick_key(nick));
    users.dedup_by_key(|nick| nick_key(nick));
}

/// Who the users list shows: the names the server listed, in display
/// order, and how many more are online but not listed (UNLISTED).
#[derive(Default)]
pub struct Online {
    pub names: Vec<String>,
    pub unlisted: u64,
}

impl Online {
    /// Follows a presence event (a lost connection empties the list).
    /// Returns whether the conversation should tell of it: a join or a
    /// leave, unless people are left out of the list. Then the room is
    /// large, arrivals would flood the conversation, and a name moving
    /// into the list did not just come.
    pub fn follow(&mut self, event: &Event) -> bool {
        match event {
            Event::Users(names) => self.names = names.clone(),
            Event::Joined(nick) => self.names.push(nick.clone()),
            Event::Left(nick) => self.names.retain(|name| nick_key(name) != nick_key(nick)),
            Event::Unlisted(count) => self.unlisted = *count,
            Event::Disconnected { .. } => *self = Online::default(),
            _ => return false,
        }
        sort_users(&mut self.names);
        self.unlisted == 0 && matches!(event, Event::Joined(_) | Event::Left(_))
    }

    /// The list's label: "Online", with the count of the others if any.
    pub fn label(&self, texts: Texts) -> String {
        match self.unlisted {
            0 => texts.get(S::Online).to_string(),
            count => texts.fill(S::OnlineMore, &[("count", &count.to_string())]),
        }
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn server_text(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Reads `host:port` or `[v6 address]:port`; `None` for anything else.
pub fn parse_server(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|host| host.strip_suffix(']')).unwrap_or(host);
    match port.parse() {
        Ok(port) if port != 0 && !host.is_empty() => Some((host.to_owned(), port)),
        _ => None,
    }
}

/// Reads the `last-login` file: the nickname, then the server, one a line.
pub fn parse_last_login(text: &str) -> Option<(String, String)> {
    let (nick, server) = text.split_once('\n')?;
    let (nick, server) = (nick.trim(), server.trim());
    (!nick.is_empty() && !server.is_empty()).then(|| (nick.to_owned(), server.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: &str, to: &str, text: &str) -> ChatMsg {
        // 2026-11-28 09:05:42 UTC.
        ChatMsg { id: 1, time_ms: 1_795_856_742_000, from: from.into(), to: to.into(), text: text.into() }
    }

    fn text(line: &Line) -> String {
        line.text()
    }

    #[test]
    fn a_public_message_is_time_sender_text() {
        let line = message_line(&msg("bob", "", "hola"), "ana", 0);
        assert_eq!(text(&line), "09:05 bob: hola");
        assert_eq!(line.tone, Tone::Public);
        assert_eq!(line.parts[1], (Role::Name(name_colour("bob")), "bob".into()));
        assert_eq!(line.parts[line.indent], (Role::Text, "hola".into()), "wrapped rows hang under the text");
    }

    #[test]
    fn a_pending_message_is_greyed_and_says_how_it_stands() {
        let line = pending_line(1_795_856_742_000, 0, "ana", "bob", "psst", (Role::Notice, "sending…"));
        assert_eq!((line.tone, text(&line).as_str()), (Tone::Pending, "09:05 ana → bob: psst  · sending…"));
        assert_eq!(line.parts[line.indent], (Role::Text, "psst".into()));
        assert_eq!(line.parts.last().unwrap().0, Role::Notice);
    }

    #[test]
    fn own_and_direct_messages_have_their_own_tone() {
        assert_eq!(message_line(&msg("Ana", "", "hi"), "ana", 0).tone, Tone::Own);
        let direct = message_line(&msg("bob", "ana", "psst"), "ana", 0);
        assert_eq!((direct.tone, text(&direct).as_str()), (Tone::Direct, "09:05 bob → ana: psst"));
        let sent = message_line(&msg("ana", "bob", "psst"), "ana", 0);
        assert_eq!((sent.tone, text(&sent).as_str()), (Tone::Direct, "09:05 ana → bob: psst"));
        assert_eq!(sent.parts[3], (Role::Name(name_colour("bob")), "bob".into()));
        let notice = notice_line(1_795_856_742_000, 0, Role::Problem, "not sent: too long");
        assert_eq!((notice.tone, text(&notice).as_str()), (Tone::Public, "09:05 not sent: too long"));
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
    fn past_the_list_limit_the_others_are_counted_and_no_one_is_announced() {
        let (mut online, texts) = (Online::default(), Texts { language: chat_client::Language::English });
        assert!(!online.follow(&Event::Users(vec!["bob".into(), "Ana".into()])));
        assert!(online.follow(&Event::Joined("carol".into())), "a room that fits announces arrivals");
        assert_eq!((online.names.join(","), online.label(texts)), ("Ana,bob,carol".into(), "Online".into()));
        assert!(!online.follow(&Event::Unlisted(2)));
        assert!(!online.follow(&Event::Left("bob".into())), "past the limit, no one is announced");
        assert!(!online.follow(&Event::Joined("dave".into())), "dave moved into the list");
        assert_eq!(
            (online.names.join(","), online.label(texts)),
            ("Ana,carol,dave".into(), "Online, and 2 more".into())
        );
        online
            .follow(&Event::Disconnected { reason: chat_client::Trouble::Closed, retry_in: std::time::Duration::ZERO });
        assert!(online.names.is_empty() && online.unlisted == 0);
    }

    #[test]
    fn utc_offsets_are_read_from_date_output() {
        assert_eq!(parse_utc_offset("+0100\n"), Some(3600));
        assert_eq!(parse_utc_offset("-0530"), Some(-(5 * 3600 + 30 * 60)));
        assert_eq!(parse_utc_offset("+0000"), Some(0));
        for bad in ["", "0100", "+01", "+01:00", "+ab00", "+é00"] {
            assert_eq!(parse_utc_offset(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn name_colours_are_stable_case_insensitive_and_spread() {
        assert_eq!(name_colour("Alice"), name_colour("alice"));
        // FNV-1a of "alice", pinned so colours never change between releases.
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
        assert!(!AwaySeparator::default().before_message(false));
        assert_eq!(text(&separator_line("— away —")), "— away —");
    }

    #[test]
    fn labels_show_at_signs_as_typed() {
        assert_eq!(label_text("a@b"), "a@@b");
    }

    #[test]
    fn users_are_sorted_case_insensitively_once_each() {
        let mut users = vec!["carol".to_owned(), "Bob".to_owned(), "ana".to_owned(), "bob".to_owned()];
        sort_users(&mut users);
        assert_eq!(users, ["ana", "Bob", "carol"]);
    }

    #[test]
    fn servers_are_host_colon_port() {
        assert_eq!(parse_server("127.0.0.1:5555"), Some(("127.0.0.1".into(), 5555)));
        assert_eq!(parse_server(" chat.example.org:6000 "), Some(("chat.example.org".into(), 6000)));
        assert_eq!(parse_server("[::1]:7000"), Some(("::1".into(), 7000)));
        assert_eq!(server_text("::1", 7000), "[::1]:7000");
        assert_eq!(server_text("localhost", 5555), "localhost:5555");
        for bad in ["localhost", ":5555", "host:0", "host:http", "host:", "[::1]:99999"] {
            assert_eq!(parse_server(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_last_login_file_is_nickname_then_server() {
        assert_eq!(parse_last_login("ana\n10.0.0.2:5555\n"), Some(("ana".into(), "10.0.0.2:5555".into())));
        assert_eq!(parse_last_login("ana\n"), None);
        assert_eq!(parse_last_login(""), None);
    }
}
