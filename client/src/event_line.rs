//! The event-line format both front ends share: one line per [`Event`],
//! fields separated by a tab, with `\`, tab and newline inside a field
//! written as `\\`, `\t`, `\n`, so a field never splits a line or a field.
//! The headless mode prints these lines; the window's `--event-log`
//! writes them for tests.

use crate::session::Event;

/// Writes `\`, tab and newline as `\\`, `\t`, `\n`.
pub fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out
}

/// The line for an event, or `None` for events with no line.
pub fn event_line(event: &Event) -> Option<String> {
    let fields: Vec<String> = match event {
        Event::Connected { nick, .. } => vec!["connected".into(), nick.clone()],
        Event::Users(nicks) => vec!["users".into(), nicks.join(",")],
        Event::Joined(nick) => vec!["joined".into(), nick.clone()],
        Event::Left(nick) => vec!["left".into(), nick.clone()],
        Event::Message { msg, .. } => {
            let to = if msg.to.is_empty() { "*" } else { &msg.to };
            let numbers = [msg.id.to_string(), msg.time_ms.to_string()];
            ["msg".into()].into_iter().chain(numbers).chain([msg.from.clone(), to.into(), msg.text.clone()]).collect()
        }
        Event::Queued { client_id, to, text } => {
            vec!["queued".into(), client_id.to_string(), to.as_deref().unwrap_or("*").into(), text.clone()]
        }
        Event::Sent { client_id, id } => vec!["sent".into(), client_id.to_string(), id.to_string()],
        Event::Retry { client_id, reason, retry_in } => {
            vec!["retry".into(), client_id.to_string(), reason.clone(), retry_in.as_secs_f64().to_string()]
        }
        Event::Failed { client_id, reason } => vec!["failed".into(), client_id.to_string(), reason.clone()],
        Event::Dropped { count, limit } => vec!["dropped".into(), count.to_string(), limit.to_string()],
        Event::Disconnected { reason, retry_in } => {
            vec!["disconnected".into(), reason.to_string(), retry_in.as_secs_f64().to_string()]
        }
        Event::Rejected { reason } => vec!["rejected".into(), reason.to_string()],
        Event::Error { reason } => vec!["error".into(), reason.clone()],
        Event::Outbox(_) | Event::Frame(_) | Event::Stopped => return None,
    };
    Some(fields.iter().map(|field| escape(field)).collect::<Vec<_>>().join("\t"))
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
