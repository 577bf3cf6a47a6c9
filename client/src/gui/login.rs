//! The start dialog's values: reading `host:port`, and remembering the
//! last nickname and server that connected, in `last-login` in the state
//! directory, so the next start offers them. The file holds no secret (the
//! owner token lives in the per-nickname directory); losing it only means
//! an empty dialog, so it is written plainly rather than atomically.

use std::fs;
use std::io;
use std::path::Path;

use chat_common::DEFAULT_PORT;

/// The file in the state directory. Per-nickname directories are named
/// `host_port_nick`, so this name cannot collide with one.
const LAST_LOGIN_FILE: &str = "last-login";

/// `host:port` as the dialog shows it, with brackets around an IPv6 address.
pub fn server_text(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Reads `host:port`, `[v6 address]:port`, or a bare host (default port).
pub fn parse_server(text: &str) -> Result<(String, u16), String> {
    let text = text.trim();
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => (host, Some(port.strip_prefix(':').unwrap_or(port))),
            None => return Err(format!("server {text:?}: missing ']'")),
        },
        None => match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    if host.is_empty() {
        return Err("server: the host is empty (e.g. 127.0.0.1:5555)".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse()
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(|| format!("server: {port:?} is not a port number (1 to 65535)"))?,
    };
    Ok((host.to_owned(), port))
}

/// The last nickname and server (`host:port`) that connected, if any.
pub fn load_last(state_dir: &Path) -> Option<(String, String)> {
    let text = fs::read_to_string(state_dir.join(LAST_LOGIN_FILE)).ok()?;
    let mut lines = text.lines();
    let nick = lines.next()?.trim();
    let server = lines.next()?.trim();
    (!nick.is_empty() && !server.is_empty()).then(|| (nick.to_owned(), server.to_owned()))
}

/// Remembers the nickname and server that connected.
pub fn save_last(state_dir: &Path, nick: &str, server: &str) -> io::Result<()> {
    fs::create_dir_all(state_dir)?;
    fs::write(state_dir.join(LAST_LOGIN_FILE), format!("{nick}\n{server}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_read_with_or_without_a_port() {
        assert_eq!(parse_server("127.0.0.1:5555"), Ok(("127.0.0.1".into(), 5555)));
        assert_eq!(parse_server(" chat.example.org:6000 "), Ok(("chat.example.org".into(), 6000)));
        assert_eq!(parse_server("localhost"), Ok(("localhost".into(), DEFAULT_PORT)));
        assert_eq!(parse_server("[::1]:7000"), Ok(("::1".into(), 7000)));
        assert_eq!(parse_server("[::1]"), Ok(("::1".into(), DEFAULT_PORT)));
        assert_eq!(server_text("::1", 7000), "[::1]:7000");
        assert_eq!(server_text("localhost", 5555), "localhost:5555");
    }

    #[test]
    fn bad_servers_say_what_is_wrong() {
        assert_eq!(parse_server(":5555"), Err("server: the host is empty (e.g. 127.0.0.1:5555)".into()));
        assert_eq!(parse_server("host:0"), Err("server: \"0\" is not a port number (1 to 65535)".into()));
        assert_eq!(parse_server("host:http"), Err("server: \"http\" is not a port number (1 to 65535)".into()));
        assert_eq!(parse_server("[::1"), Err("server \"[::1\": missing ']'".into()));
    }

    #[test]
    fn the_last_login_is_remembered() {
        let dir = std::env::temp_dir().join(format!("hmac-chat-login-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(load_last(&dir), None);
        save_last(&dir, "ana", "10.0.0.2:5555").unwrap();
        assert_eq!(load_last(&dir), Some(("ana".into(), "10.0.0.2:5555".into())));
        fs::write(dir.join(LAST_LOGIN_FILE), "ana\n").unwrap();
        assert_eq!(load_last(&dir), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
