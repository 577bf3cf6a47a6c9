//! A server that sends what PROTOCOL.md forbids: texts with control
//! characters, terminal sequences, line breaks, bidirectional overrides,
//! invisible tag characters and Zalgo runs [P-21], and nicknames outside
//! [P-18]. It holds the key and seals every frame properly, as an older
//! or malicious server would; the GUI test includes it too (`#[path]`).

use std::io::Write;
use std::net::TcpListener;
use std::thread;

use chat_common::MAX_FRAME_LEN;
use chat_common::auth::Key;
use chat_common::frame::read_frame;
use chat_common::handshake::server_handshake;
use chat_common::message::{ChatMsg, ServerMsg};

/// Nicknames [P-18] forbids: a Cyrillic look-alike, an override, a comma.
pub const ODD_NICKS: [&str; 3] = ["m\u{430}llory", "eve\u{202e}lin", "x,y z"];

/// Texts [P-21] forbids, each with a tag word to find its line by.
pub const ODD_TEXTS: [&str; 8] = [
    "one: bell\u{7} esc\u{1b}[2J\u{1b}[31mred del\u{7f} c1\u{85}",
    "two: cr\roverwritten",
    "three: new\nline\ttab",
    "four: evil\u{202e}gpj.exe",
    "five: iso\u{2066}late\u{2069} lrm\u{200e} rlm\u{200f} alm\u{61c} embed\u{202a}\u{202c}",
    "six: line\u{2028}para\u{2029}",
    "seven: tag\u{e0041}\u{e0042}chars",
    "eight: zalgo a\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}\u{307}\u{308}",
];

/// Serves any number of connections on `listener` with `key`: after
/// LOGIN, WELCOME, USERS and JOINED with odd nicknames, then one MSG per
/// odd text (from odd senders), then an ERROR with an odd reason.
pub fn serve_odd(listener: TcpListener, key: Key) {
    thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let key = key.clone();
            thread::spawn(move || {
                let mut stream = stream;
                let Ok(side) = server_handshake(&mut stream, &key, |_| None, None) else { return };
                let (nick, mut sealer, mut opener) = (side.nick, side.sealer, side.opener);
                let mut frame = Vec::new();
                if !matches!(read_frame(&mut stream, MAX_FRAME_LEN, &mut frame), Ok(true))
                    || opener.open(&frame).is_err()
                {
                    return;
                }
                let mut users = vec![nick.clone()];
                users.extend(ODD_NICKS.iter().map(|odd| odd.to_string()));
                let mut messages = vec![
                    ServerMsg::Welcome { nick, server_time_ms: 0 },
                    ServerMsg::Users { last: true, nicks: users },
                    ServerMsg::Joined { nicks: vec!["new\nline".into()] },
                ];
                for (n, text) in ODD_TEXTS.iter().enumerate() {
                    let from = ODD_NICKS[n % ODD_NICKS.len()].to_string();
                    let msg = ChatMsg {
                        id: n as u64 + 1,
                        time_ms: 1_795_830_283_007,
                        from,
                        to: String::new(),
                        text: text.to_string(),
                    };
                    messages.push(ServerMsg::Msg(msg));
                }
                messages.push(ServerMsg::Error { client_id: 0, reason: "nine: bad\u{1b}[0m\u{202e}reason".into() });
                let (mut frames, mut payload) = (Vec::new(), Vec::new());
                for message in &messages {
                    payload.clear();
                    message.encode_payload(&mut payload);
                    sealer.seal(message.kind(), &payload, &mut frames);
                }
                if stream.write_all(&frames).is_err() {
                    return;
                }
                // Hold the connection until the client leaves.
                while matches!(read_frame(&mut stream, MAX_FRAME_LEN, &mut frame), Ok(true)) {}
            });
        }
    });
}
