//! `--trace NICK` and `--trace all`: every frame of the chosen connections
//! on stderr, one line each, in the format of docs/PROTOCOL.md ("Frame
//! traces"; `chat_common::trace` makes the lines). Handshake frames show
//! the peer's address, sealed frames its nickname.
//!
//! Off (no `--trace`), there is no [`Tracer`] at all: the reader pays one
//! branch per frame, a writer one per round. On, only the chosen
//! connections are formatted. The lines hold only what crossed the wire,
//! shortened: never the key, a token or a derived key.

use std::io::Write;
use std::net::SocketAddr;

use chat_common::frame::LEN_PREFIX;
use chat_common::log::unix_ms;
use chat_common::message::Handshake;
use chat_common::trace::{Direction, Seen, Verdict, handshake_line, sealed_line};
use chat_common::validate::nick_key;

/// Whose frames to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracer {
    /// The nickname (compared case-insensitively), or `None` for everyone.
    nick: Option<String>,
}

impl Tracer {
    /// The tracer `--trace` asks for: `all`, or a nickname; none without it.
    pub fn new(flag: Option<&str>) -> Option<Tracer> {
        flag.map(|who| Tracer { nick: (who != "all").then(|| nick_key(who)) })
    }

    /// Whether this nickname's frames are shown.
    pub fn wants(&self, nick: &str) -> bool {
        self.nick.as_ref().is_none_or(|wanted| *wanted == nick_key(nick))
    }

    /// A watch for the handshake of a connection from `peer`: with
    /// `--trace NICK`, the HELLO decides (by the nickname it claims)
    /// whether this connection is shown.
    pub fn handshake(&self, peer: SocketAddr) -> impl FnMut(Direction, &[u8], Verdict<'_>) + '_ {
        let (peer, mut wanted) = (peer.to_string(), None);
        move |direction, frame: &[u8], verdict: Verdict<'_>| {
            let wanted =
                *wanted.get_or_insert_with(|| match Handshake::decode(frame.get(LEN_PREFIX..).unwrap_or(&[])) {
                    Ok(Handshake::Hello { nick, .. }) => self.wants(&nick),
                    _ => self.nick.is_none(),
                });
            if wanted {
                let seen = Seen { unix_ms: unix_ms(), direction, peer: &peer };
                print(handshake_line(&seen, frame, verdict));
            }
        }
    }

    /// A sealed frame `nick` sent us, with what checking it found.
    pub fn received(&self, nick: &str, frame: &[u8], verdict: Verdict<'_>) {
        if self.wants(nick) {
            print(sealed_line(
                &Seen { unix_ms: unix_ms(), direction: Direction::Received, peer: nick },
                frame,
                verdict,
            ));
        }
    }

    /// Sealed frames for `nick`, one after the other in `frames`, as a
    /// round writes them: one line each, written together.
    pub fn sent(&self, nick: &str, frames: &[u8]) {
        if !self.wants(nick) || frames.is_empty() {
            return;
        }
        let seen = Seen { unix_ms: unix_ms(), direction: Direction::Sent, peer: nick };
        let mut lines = String::new();
        let mut rest = frames;
        while let Some(prefix) = rest.get(..LEN_PREFIX) {
            let len = LEN_PREFIX + u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
            let (frame, after) = rest.split_at(len.min(rest.len()));
            lines.push_str(&sealed_line(&seen, frame, Verdict::Sealed));
            lines.push('\n');
            rest = after;
        }
        let _ = std::io::stderr().write_all(lines.as_bytes());
    }
}

/// One line, written whole (stderr is unbuffered).
fn print(mut line: String) {
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_means_everyone_and_a_nickname_only_that_one_in_any_case() {
        assert_eq!(Tracer::new(None), None);
        let all = Tracer::new(Some("all")).unwrap();
        assert!(all.wants("alice") && all.wants("bob"));
        let alice = Tracer::new(Some("Alice")).unwrap();
        assert!(alice.wants("alice") && alice.wants("ALICE") && !alice.wants("bob"));
    }
}
