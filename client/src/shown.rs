//! What the front ends do with text that breaks the rules anyway. Our
//! server refuses the characters of [P-21] in texts and anything but
//! [P-18]'s in nicknames, but an older, buggy or malicious server may
//! still send them. Both front ends show each such character as an escape
//! (`\u{202e}`; `\t`, `\n`, `\r` for those three), so none reaches a
//! terminal or the window as itself: no control character or terminal
//! sequence, no line break, no bidirectional reordering, nothing
//! invisible, and no run of combining marks longer than [P-21] allows
//! (those past the limit are escaped, the first ones kept).
//!
//! The headless mode escapes while it writes its fields, backslashes
//! doubled, so its lines stay exact ([`crate::event_line`]); the window
//! shows [`shown_event`]'s copy of each event, with the text as typed
//! otherwise.

use std::borrow::Cow;
use std::fmt::Write;

use chat_common::validate::{MAX_COMBINING_RUN, is_combining_mark, is_forbidden_in_text, is_nick_char};

use crate::session::Event;
use crate::trouble::{Rejection, Trouble};

/// The rules a value is shown by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// A message text, a reason: [P-21].
    Text,
    /// A nickname: [P-18], so a look-alike letter from another script
    /// shows as an escape, not as the letter it imitates.
    Nick,
}

/// Appends `value` to `out` with every character `rules` forbid escaped,
/// and, when `backslashes`, each `\` doubled (so escapes stay unambiguous).
pub fn push_shown(out: &mut String, value: &str, rules: Rules, backslashes: bool) {
    let mut run = 0;
    for c in value.chars() {
        run = if is_combining_mark(c) { run + 1 } else { 0 };
        let odd = match rules {
            Rules::Text => is_forbidden_in_text(c) || run > MAX_COMBINING_RUN,
            Rules::Nick => !is_nick_char(c),
        };
        match c {
            '\\' if backslashes => out.push_str("\\\\"),
            '\t' if odd => out.push_str("\\t"),
            '\n' if odd => out.push_str("\\n"),
            '\r' if odd => out.push_str("\\r"),
            _ if odd => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            _ => out.push(c),
        }
    }
}

/// `value` as the window shows it (backslashes as they are).
pub fn shown(value: &str, rules: Rules) -> Cow<'_, str> {
    let mut out = String::new();
    push_shown(&mut out, value, rules, false);
    if out == value { Cow::Borrowed(value) } else { Cow::Owned(out) }
}

fn text(value: &mut String) {
    *value = shown(value, Rules::Text).into_owned();
}

fn nick(value: &mut String) {
    *value = shown(value, Rules::Nick).into_owned();
}

/// The event with every string the server chose (nicknames, texts,
/// reasons) as [`shown`] makes it, for a front end that draws them.
pub fn shown_event(mut event: Event) -> Event {
    match &mut event {
        Event::Connected { nick: name, .. } | Event::Joined(name) | Event::Left(name) => nick(name),
        Event::Users(names) => names.iter_mut().for_each(nick),
        Event::Message { msg, .. } => {
            nick(&mut msg.from);
            nick(&mut msg.to);
            text(&mut msg.text);
        }
        Event::Retry { reason, .. } | Event::Failed { reason, .. } | Event::Error { reason } => text(reason),
        Event::Disconnected { reason: Trouble::Refused(reason), .. } => text(reason),
        Event::Rejected { reason: Rejection::Server(reason) } => text(reason),
        // Ours, or checked before they were queued; frames are escaped lines.
        Event::Queued { .. }
        | Event::Sent { .. }
        | Event::Dropped { .. }
        | Event::Unlisted(_)
        | Event::Outbox(_)
        | Event::Disconnected { .. }
        | Event::Rejected { .. }
        | Event::Frame(_)
        | Event::Stopped => {}
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_common::MAX_TEXT_LEN;
    use chat_common::message::ChatMsg;
    use chat_common::validate::{validate_nick, validate_text};

    /// Texts [P-21] forbids, as a malicious server might send them.
    const ODD_TEXTS: [&str; 11] = [
        "bell\u{7}ring",
        "esc\u{1b}[31mred",
        "cr\roverwrite",
        "new\nline\ttab",
        "del\u{7f} c1\u{85}",
        "evil\u{202e}txt.exe",
        "iso\u{2066}late\u{2069} lrm\u{200e} rlm\u{200f} alm\u{61c}",
        "line\u{2028}para\u{2029}",
        "tag\u{e0041}\u{e0042}",
        "zalgo a\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}",
        "embed\u{202a}\u{202b}\u{202c}\u{202d}",
    ];

    #[test]
    fn every_forbidden_character_is_escaped_and_what_is_left_passes_the_rules() {
        for odd in ODD_TEXTS {
            let shown = shown(odd, Rules::Text);
            assert_eq!(validate_text(&shown, MAX_TEXT_LEN), Ok(()), "{odd:?} → {shown:?}");
            assert!(shown.is_ascii() || shown.contains('\u{301}'), "{shown:?}");
        }
        assert_eq!(shown("evil\u{202e}txt.exe", Rules::Text), "evil\\u{202e}txt.exe");
        assert_eq!(shown("new\nline\ttab\rcr", Rules::Text), "new\\nline\\ttab\\rcr");
        // The first four combining marks stay: accents are fine.
        let zalgo = shown("a\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}", Rules::Text);
        assert_eq!(zalgo, "a\u{301}\u{302}\u{303}\u{304}\\u{305}\\u{306}");
        assert!(matches!(shown("hola, ¿qué tal? tiê\u{323}\u{302}ng 👋", Rules::Text), Cow::Borrowed(_)));
    }

    #[test]
    fn a_nickname_outside_the_rules_shows_every_odd_character_escaped() {
        assert!(matches!(shown("Ana_2.b-c", Rules::Nick), Cow::Borrowed(_)));
        // A Cyrillic "а" cannot pass for a Latin "a".
        assert_eq!(shown("\u{430}lice", Rules::Nick), "\\u{430}lice");
        assert_eq!(shown("bob\u{202e}, eve", Rules::Nick), "bob\\u{202e}\\u{2c}\\u{20}eve");
        for odd in ["\u{430}lice", "bob\u{202e}", "a,b", "new\nline", "x y"] {
            let shown = shown(odd, Rules::Nick);
            assert!(shown.chars().all(|c| is_nick_char(c) || "\\{}".contains(c)), "{shown}");
            assert!(validate_nick(odd).is_err());
        }
    }

    #[test]
    fn the_window_gets_every_server_string_escaped() {
        let msg =
            ChatMsg { id: 1, time_ms: 0, from: "m\u{430}llory".into(), to: "b\nb".into(), text: "hi\u{202e}".into() };
        let Event::Message { msg, .. } = shown_event(Event::Message { msg, missed: false }) else { panic!() };
        assert_eq!((msg.from.as_str(), msg.to.as_str(), msg.text.as_str()), ("m\\u{430}llory", "b\\nb", "hi\\u{202e}"));
        let users = shown_event(Event::Users(vec!["ok".into(), "a b".into()]));
        assert_eq!(users, Event::Users(vec!["ok".into(), "a\\u{20}b".into()]));
        let refused = shown_event(Event::Disconnected {
            reason: Trouble::Refused("x\u{1b}[2J".into()),
            retry_in: std::time::Duration::ZERO,
        });
        assert!(matches!(refused, Event::Disconnected { reason: Trouble::Refused(r), .. } if r == "x\\u{1b}[2J"));
        let mut backslash = String::new();
        push_shown(&mut backslash, "a\\u{202e}\u{202e}", Rules::Text, true);
        assert_eq!(backslash, "a\\\\u{202e}\\u{202e}", "typed escapes stay apart from ours");
    }
}
