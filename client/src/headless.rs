//! The headless mode, an exact interface for tests, scripts and classrooms
//! without a display.
//!
//! Standard input, one line at a time: a plain line is a public message,
//! `/msg NICK TEXT` a direct one, `//text` a public message starting with
//! `/`; blank lines are skipped; `/quit` or the end of input sends what is
//! still in the outbox (for at most 5 s) and exits.
//!
//! Standard output, one line per event, fields separated by a tab, with
//! `\`, tab and newline inside a field written as `\\`, `\t`, `\n`:
//! `connected nick`, `users a,b`, `joined nick`, `left nick`,
//! `msg id unix_ms from to|* text`, `sent client_id id`,
//! `disconnected reason seconds`, `rejected reason`, `error reason`.
//! Diagnostics go to standard error. Exit codes: 0 normal end, 1 login
//! rejected, 2 bad arguments or key file.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;

use chat_client::{Command, Config, Event, Key, start};

/// Exit code when the server refused the nickname.
const EXIT_REJECTED: u8 = 1;

/// Runs until `/quit`, the end of input, or a final rejection.
pub fn run(config: Config, key: Key) -> ExitCode {
    let (event_sender, events) = mpsc::channel();
    let handle = match start(config, key, move |event| drop(event_sender.send(event))) {
        Ok(handle) => handle,
        Err(err) => {
            eprintln!("chat-client: {err}");
            return ExitCode::from(2);
        }
    };
    let commands = handle.sender();
    let send = move |command| commands.send(command);
    let reader = thread::Builder::new().name("stdin".into()).spawn(move || read_commands(io::stdin().lock(), send));
    if let Err(err) = reader {
        eprintln!("chat-client: cannot read standard input: {err}");
        handle.send(Command::Quit);
    }
    let (mut rejected, mut unsent, mut stdout_open) = (false, 0, true);
    let mut stdout = io::stdout().lock();
    // Ends when the network thread ends and drops the sink.
    for event in events {
        match event {
            Event::Rejected { .. } => rejected = true,
            Event::Outbox(count) => unsent = count,
            _ => {}
        }
        let Some(line) = event_line(&event) else { continue };
        // Flushed per line: readers of a pipe must see each event as it happens.
        if stdout_open && writeln!(stdout, "{line}").and_then(|()| stdout.flush()).is_err() {
            // Nobody reads our events any more; finish as if told to quit.
            stdout_open = false;
            handle.send(Command::Quit);
        }
    }
    handle.wait();
    if unsent > 0 {
        eprintln!("chat-client: {unsent} messages not sent yet; they are kept for the next run");
    }
    if rejected { ExitCode::from(EXIT_REJECTED) } else { ExitCode::SUCCESS }
}

/// Turns input lines into commands until `/quit` or the end of input, then quits.
fn read_commands(mut input: impl BufRead, send: impl Fn(Command)) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => {
                eprintln!("chat-client: standard input: {err}");
                break;
            }
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            eprintln!("chat-client: skipped a line that is not UTF-8");
            continue;
        };
        match parse_line(text) {
            Ok(Some(Command::Quit)) => break,
            Ok(Some(command)) => send(command),
            Ok(None) => {}
            Err(why) => eprintln!("chat-client: {why}"),
        }
    }
    send(Command::Quit);
}

/// What one input line asks for; `None` for a blank line. The window
/// reads its input line with this too.
pub fn parse_line(line: &str) -> Result<Option<Command>, String> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(None);
    }
    if let Some(text) = line.strip_prefix("//") {
        return Ok(Some(Command::Send { to: None, text: format!("/{text}") }));
    }
    if !line.starts_with('/') {
        return Ok(Some(Command::Send { to: None, text: line.to_owned() }));
    }
    let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
    match name {
        "/quit" if rest.trim().is_empty() => Ok(Some(Command::Quit)),
        "/msg" => match rest.split_once(' ') {
            Some((nick, text)) if !nick.is_empty() && !text.trim().is_empty() => {
                Ok(Some(Command::Send { to: Some(nick.to_owned()), text: text.to_owned() }))
            }
            _ => Err("usage: /msg NICK TEXT".into()),
        },
        _ => Err(format!(
            "unknown command {name:?}; the commands are /msg NICK TEXT and /quit (// starts a line with /)"
        )),
    }
}

/// Writes `\`, tab and newline as `\\`, `\t`, `\n`, so a field never
/// splits a line or a field.
fn escape(field: &str) -> String {
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

/// The output line for an event, or `None` for events with no line. The
/// window's `--event-log` uses it too.
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
        Event::Sent { client_id, id } => vec!["sent".into(), client_id.to_string(), id.to_string()],
        Event::Disconnected { reason, retry_in } => {
            vec!["disconnected".into(), reason.clone(), retry_in.as_secs_f64().to_string()]
        }
        Event::Rejected { reason } => vec!["rejected".into(), reason.clone()],
        Event::Error { reason } => vec!["error".into(), reason.clone()],
        Event::Outbox(_) | Event::Stopped => return None,
    };
    Some(fields.iter().map(|field| escape(field)).collect::<Vec<_>>().join("\t"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_client::ChatMsg;
    use std::time::Duration;

    fn send(to: Option<&str>, text: &str) -> Result<Option<Command>, String> {
        Ok(Some(Command::Send { to: to.map(str::to_owned), text: text.into() }))
    }

    #[test]
    fn input_lines_become_commands() {
        assert_eq!(parse_line("hola a todos\n"), send(None, "hola a todos"));
        assert_eq!(parse_line("windows line\r\n"), send(None, "windows line"));
        assert_eq!(parse_line("/msg bob hi there\n"), send(Some("bob"), "hi there"));
        assert_eq!(parse_line("//slash first"), send(None, "/slash first"));
        assert_eq!(parse_line("/quit\n"), Ok(Some(Command::Quit)));
        assert_eq!(parse_line("\n"), Ok(None));
        assert_eq!(parse_line("   \n"), Ok(None));
    }

    #[test]
    fn malformed_commands_are_errors_not_public_messages() {
        for line in ["/msg", "/msg bob", "/msg bob  ", "/msg  text"] {
            assert_eq!(parse_line(line), Err("usage: /msg NICK TEXT".into()), "{line:?}");
        }
        assert!(parse_line("/mgs bob secret").unwrap_err().starts_with("unknown command \"/mgs\""));
        assert!(parse_line("/quit now").is_err());
    }

    #[test]
    fn end_of_input_and_quit_both_end_with_quit() {
        let got = std::cell::RefCell::new(Vec::new());
        read_commands(&b"one\n/msg bob two\n/quit\nnever sent\n"[..], |command| got.borrow_mut().push(command));
        read_commands(&b"last line without newline"[..], |command| got.borrow_mut().push(command));
        assert_eq!(
            got.into_inner(),
            [
                Command::Send { to: None, text: "one".into() },
                Command::Send { to: Some("bob".into()), text: "two".into() },
                Command::Quit,
                Command::Send { to: None, text: "last line without newline".into() },
                Command::Quit,
            ]
        );
    }

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
        let cases = [
            (Event::Connected { nick: "ana".into(), server: "h:1".into() }, Some("connected\tana")),
            (Event::Users(vec!["ana".into(), "bob".into()]), Some("users\tana,bob")),
            (Event::Joined("bob".into()), Some("joined\tbob")),
            (Event::Left("bob".into()), Some("left\tbob")),
            (Event::Sent { client_id: 7, id: 43 }, Some("sent\t7\t43")),
            (Event::Disconnected { reason: "gone".into(), retry_in: retry(5.0) }, Some("disconnected\tgone\t5")),
            (Event::Disconnected { reason: "a\nb".into(), retry_in: retry(0.2) }, Some("disconnected\ta\\nb\t0.2")),
            (Event::Rejected { reason: "nickname taken".into() }, Some("rejected\tnickname taken")),
            (Event::Error { reason: "oops".into() }, Some("error\toops")),
            (Event::Outbox(3), None),
            (Event::Stopped, None),
        ];
        for (event, want) in cases {
            assert_eq!(event_line(&event).as_deref(), want, "{event:?}");
        }
    }
}
