//! The input grammar both front ends share: what one typed line asks for.
//! A plain line is a public message, `/msg NICK TEXT` a direct one,
//! `//text` a public message starting with `/`, `/quit` ends the client;
//! a blank line asks for nothing. Pure, so unit tests cover every case.

use crate::session::Command;

/// What one input line asks for; `None` for a blank line. The error is
/// one line for the user, e.g. the usage of a mistyped command.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
