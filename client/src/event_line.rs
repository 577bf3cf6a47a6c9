//! The event-line format both front ends share: one line per [`Event`],
//! fields separated by a tab, with `\`, tab and newline inside a field
//! written as `\\`, `\t`, `\n`, so a field never splits a line or a field.
//! Any other character the rules forbid ([P-21] in a text, [P-18] in a
//! nickname), which a server may send anyway, is written `\u{XXXX}`
//! (`shown.rs`), so nothing reaches a terminal as a control character,
//! a bidirectional override or an invisible mark. The headless mode prints
//! these lines; the window's `--event-log` writes them for tests.

use crate::session::Event;
use crate::shown::{Rules, push_shown};

/// A text field: `\` doubled, and `\t`, `\n`, `\u{XXXX}` for what [P-21] forbids.
pub fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    push_shown(&mut out, field, Rules::Text, true);
    out
}

/// A nickname field: `\u{XXXX}` for anything [P-18] does not allow.
fn nick(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    push_shown(&mut out, name, Rules::Nick, true);
    out
}

/// A recipient: a nickname, or `*` for everyone.
fn to(name: &str) -> String {
    if name.is_empty() { "*".into() } else { nick(name) }
}

/// The line for an event, or `None` for events with no line.
pub fn event_line(event: &Event) -> Option<String> {
    let fields: Vec<String> = match event {
        Event::Connected { nick: name, .. } => vec!["connected".into(), nick(name)],
        Event::Users(names) => vec!["users".into(), names.iter().map(|name| nick(name)).collect::<Vec<_>>().join(",")],
        Event::Joined(name) => vec!["joined".into(), nick(name)],
        Event::Left(name) => vec!["left".into(), nick(name)],
        Event::Unlisted(count) => vec!["unlisted".into(), count.to_string()],
        Event::Message { msg, .. } => {
            let numbers = [msg.id.to_string(), msg.time_ms.to_string()];
            ["msg".into()].into_iter().chain(numbers).chain([nick(&msg.from), to(&msg.to), escape(&msg.text)]).collect()
        }
        Event::Queued { client_id, to: name, text } => {
            vec!["queued".into(), client_id.to_string(), to(name.as_deref().unwrap_or("")), escape(text)]
        }
        Event::Sent { client_id, id } => vec!["sent".into(), client_id.to_string(), id.to_string()],
        Event::Retry { client_id, reason, retry_in } => {
            vec!["retry".into(), client_id.to_string(), escape(reason), retry_in.as_secs_f64().to_string()]
        }
        Event::Failed { client_id, reason } => vec!["failed".into(), client_id.to_string(), escape(reason)],
        Event::Dropped { count, limit } => vec!["dropped".into(), count.to_string(), limit.to_string()],
        Event::Disconnected { reason, retry_in } => {
            vec!["disconnected".into(), escape(&reason.to_string()), retry_in.as_secs_f64().to_string()]
        }
        Event::Rejected { reason } => vec!["rejected".into(), escape(&reason.to_string())],
        Event::Error { reason } => vec!["error".into(), escape(reason)],
        Event::Outbox(_) | Event::Frame(_) | Event::Stopped => return None,
    };
    Some(fields.join("\t"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trouble::{Rejection, Trouble};
    use chat_common::message::ChatMsg;
    use std::time::Duration;

    #[test]
    fn fields_are_escaped_so_each_event_is_one_line() {
        assert_eq!(escape("a\\b\tc\nd"), "a\\\\b\\tc\\nd");
        let msg =
            ChatMsg { id: 42, time_ms: 1_795_830_283_007, from: "bob".into(), to: String::new(), text: "hola".into() };
        let line = event_line(&Event::Message { msg: msg.clone(), missed: true }).unwrap();
        assert_eq!(line, "msg\t42\t1795830283007\tbob\t*\thola");
        let direct = ChatMsg { to: "ana".into(), text: "tab\there".into(), ..msg };
        assert_eq!(
            event_line(&Event::Message { msg: direct, missed: false }).unwrap(),
            "msg\t42\t1795830283007\tbob\tana\ttab\\there"
        );
    }

    #[test]
    fn what_a_server_should_not_send_is_escaped_so_it_cannot_reach_a_terminal() {
        let msg = ChatMsg {
            id: 7,
            time_ms: 1,
            from: "\u{430}lice".into(),
            to: "b,o b".into(),
            text: "esc\u{1b}[2J\rcr evil\u{202e}gpj.exe \u{2028}\u{e0041} a\u{301}\u{302}\u{303}\u{304}\u{305}".into(),
        };
        let line = event_line(&Event::Message { msg, missed: false }).unwrap();
        assert_eq!(
            line,
            "msg\t7\t1\t\\u{430}lice\tb\\u{2c}o\\u{20}b\tesc\\u{1b}[2J\\rcr evil\\u{202e}gpj.exe \\u{2028}\\u{e0041} \
             a\u{301}\u{302}\u{303}\u{304}\\u{305}"
        );
        assert!(line.chars().all(|c| c == '\t' || !chat_common::validate::is_forbidden_in_text(c)), "{line:?}");
        let users = event_line(&Event::Users(vec!["ana".into(), "x,y".into()])).unwrap();
        assert_eq!(users, "users\tana,x\\u{2c}y", "a comma in a name cannot split the list");
    }

    #[test]
    fn every_event_has_its_documented_line() {
        let retry = |secs: f64| Duration::from_secs_f64(secs);
        let closed = "disconnected\tthe server closed the connection\t5".to_owned();
        let cases = [
            (Event::Connected { nick: "ana".into(), server: "h:1".into() }, Some("connected\tana")),
            (Event::Users(vec!["ana".into(), "bob".into()]), Some("users\tana,bob")),
            (Event::Joined("bob".into()), Some("joined\tbob")),
            (Event::Left("bob".into()), Some("left\tbob")),
            (Event::Queued { client_id: 7, to: None, text: "hi".into() }, Some("queued\t7\t*\thi")),
            (Event::Queued { client_id: 8, to: Some("bob".into()), text: "yo".into() }, Some("queued\t8\tbob\tyo")),
            (Event::Sent { client_id: 7, id: 43 }, Some("sent\t7\t43")),
            (
                Event::Retry { client_id: 8, reason: "storage full".into(), retry_in: retry(5.0) },
                Some("retry\t8\tstorage full\t5"),
            ),
            (Event::Failed { client_id: 9, reason: "no such user".into() }, Some("failed\t9\tno such user")),
            (Event::Dropped { count: 3, limit: 10_000 }, Some("dropped\t3\t10000")),
            (Event::Unlisted(9000), Some("unlisted\t9000")),
            (Event::Disconnected { reason: Trouble::Closed, retry_in: retry(5.0) }, Some(closed.as_str())),
            (
                Event::Disconnected { reason: Trouble::Lost("a\nb".into()), retry_in: retry(0.2) },
                Some("disconnected\tconnection lost: a\\nb\t0.2"),
            ),
            (Event::Rejected { reason: Rejection::Server("nickname taken".into()) }, Some("rejected\tnickname taken")),
            (Event::Error { reason: "oops".into() }, Some("error\toops")),
            (Event::Outbox(3), None),
            (Event::Stopped, None),
        ];
        for (event, want) in cases {
            assert_eq!(event_line(&event).as_deref(), want, "{event:?}");
        }
    }
}
