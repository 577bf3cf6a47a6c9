//! The headless mode, an exact interface for tests, scripts and classrooms
//! without a display.
//!
//! Standard input, one line at a time, in the grammar of
//! [`chat_client::parse_line`]: blank lines are skipped; `/help` lists the
//! commands on standard error; `/quit` or the end of input sends what is
//! still in the outbox (for at most 5 s) and exits.
//!
//! Standard output, one line per event, in the format of
//! [`chat_client::event_line`]; `--help` and docs/HEADLESS.md list every
//! line. Diagnostics go to standard error, and so do `--trace`'s lines
//! (one per frame, docs/PROTOCOL.md's "Frame traces"). Exit codes: 0 normal end, 1
//! login rejected, 2 bad arguments or key file.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;

use chat_client::{Command, Config, Event, Input, Key, event_line, parse_line, start};

/// Exit code when the server refused the nickname.
const EXIT_REJECTED: u8 = 1;

/// What `/help` prints on standard error.
const HELP: &str = "\
chat-client: the commands, one a line:
  TEXT            a message to everyone
  /msg NICK TEXT  a direct message to NICK
  //TEXT          a message to everyone that starts with /
  /help           this list
  /quit           send what is waiting (for at most 5 s), then exit";

/// Runs until `/quit`, the end of input, or a final rejection.
pub fn run(config: Config, key: Key) -> ExitCode {
    let (event_sender, events) = mpsc::channel();
    let trace = config.trace;
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
            // Trace lines are diagnostics: standard error, one write each.
            Event::Frame(ref frame) if trace => drop(io::stderr().write_all(format!("{}\n", frame.line).as_bytes())),
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
            Ok(Some(Input::Command(Command::Quit))) => break,
            Ok(Some(Input::Command(command))) => send(command),
            Ok(Some(Input::Help)) => eprintln!("{HELP}"),
            Ok(Some(Input::Quiet)) => {
                eprintln!("chat-client: /quiet is for the window; here, skip the joined and left lines instead")
            }
            Ok(None) => {}
            Err(why) => eprintln!("chat-client: {why}"),
        }
    }
    send(Command::Quit);
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
