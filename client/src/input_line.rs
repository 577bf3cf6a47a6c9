//! The input grammar both front ends share: what one typed line asks for.
//! A plain line is a public message, `/msg NICK TEXT` a direct one,
//! `//text` a public message starting with `/`; `/help` lists the
//! commands, `/quiet` hides or shows join and leave lines (the window's),
//! `/quit` ends the client; a blank line asks for nothing. Pure, so unit
//! tests cover every case.

use std::fmt;

use crate::session::Command;

/// What a typed line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Something for the network thread: a message, or quit.
    Command(Command),
    /// `/help`: list the commands.
    Help,
    /// `/quiet`: hide join and leave lines, or show them again.
    Quiet,
}

/// Why a line asks for nothing we know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// `/msg` without a nickname or a text.
    MsgUsage,
    /// A command we do not know, as typed (e.g. `/mgs`).
    Unknown(String),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::MsgUsage => write!(f, "usage: /msg NICK TEXT"),
            InputError::Unknown(name) => write!(
                f,
                "unknown command {name:?}; the commands are /msg NICK TEXT, /help and /quit (// starts a line with /)"
            ),
        }
    }
}

/// What one input line asks for; `None` for a blank line.
pub fn parse_line(line: &str) -> Result<Option<Input>, InputError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let send =
        |to: Option<&str>, text: String| Ok(Some(Input::Command(Command::Send { to: to.map(str::to_owned), text })));
    if line.trim().is_empty() {
        return Ok(None);
    }
    if let Some(text) = line.strip_prefix("//") {
        return send(None, format!("/{text}"));
    }
    if !line.starts_with('/') {
        return send(None, line.to_owned());
    }
    let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
    let alone = rest.trim().is_empty();
    match name {
        "/quit" if alone => Ok(Some(Input::Command(Command::Quit))),
        "/help" if alone => Ok(Some(Input::Help)),
        "/quiet" if alone => Ok(Some(Input::Quiet)),
        "/msg" => match rest.split_once(' ') {
            Some((nick, text)) if !nick.is_empty() && !text.trim().is_empty() => send(Some(nick), text.to_owned()),
            _ => Err(InputError::MsgUsage),
        },
        _ => Err(InputError::Unknown(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(to: Option<&str>, text: &str) -> Result<Option<Input>, InputError> {
        Ok(Some(Input::Command(Command::Send { to: to.map(str::to_owned), text: text.into() })))
    }

    #[test]
    fn input_lines_become_commands() {
        assert_eq!(parse_line("hola a todos\n"), send(None, "hola a todos"));
        assert_eq!(parse_line("windows line\r\n"), send(None, "windows line"));
        assert_eq!(parse_line("/msg bob hi there\n"), send(Some("bob"), "hi there"));
        assert_eq!(parse_line("//slash first"), send(None, "/slash first"));
        assert_eq!(parse_line("/quit\n"), Ok(Some(Input::Command(Command::Quit))));
        assert_eq!(parse_line("/help"), Ok(Some(Input::Help)));
        assert_eq!(parse_line("/quiet "), Ok(Some(Input::Quiet)));
        assert_eq!(parse_line("\n"), Ok(None));
        assert_eq!(parse_line("   \n"), Ok(None));
    }

    #[test]
    fn malformed_commands_are_errors_not_public_messages() {
        for line in ["/msg", "/msg bob", "/msg bob  ", "/msg  text"] {
            assert_eq!(parse_line(line), Err(InputError::MsgUsage), "{line:?}");
        }
        assert_eq!(InputError::MsgUsage.to_string(), "usage: /msg NICK TEXT");
        let unknown = parse_line("/mgs bob secret").unwrap_err();
        assert_eq!(unknown, InputError::Unknown("/mgs".into()));
        assert!(unknown.to_string().starts_with("unknown command \"/mgs\"; the commands are"));
        assert!(parse_line("/quit now").is_err());
        assert!(parse_line("/help me").is_err());
    }
}
