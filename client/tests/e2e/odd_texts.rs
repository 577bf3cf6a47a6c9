//! What the headless client does with what a server should not send
//! ([P-21] texts, [P-18] nicknames): each forbidden character is written
//! as an escape, so every event stays one line, and no control character,
//! terminal sequence, override or invisible mark reaches the terminal.

use std::net::TcpListener;

use chat_common::keyfile::create_key;
use chat_common::validate::{MAX_COMBINING_RUN, is_combining_mark, is_forbidden_in_text};

use crate::odd_server::{ODD_TEXTS, serve_odd};
use crate::support::{PATIENCE, TestClient, temp_dir};

#[test]
fn the_headless_client_writes_what_a_server_should_not_send_escaped_one_line_per_event() {
    let dir = temp_dir("odd");
    let key_file = dir.join("chat.key");
    let key = create_key(&key_file).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve_odd(listener, key);
    let mut ana = TestClient::start(port, &key_file, "ana", &dir.join("ana"));
    ana.wait_until(PATIENCE, "the odd reason", |seen| seen.iter().any(|line| line.starts_with("error\tnine: ")));

    assert_eq!(ana.msgs().len(), ODD_TEXTS.len(), "one line per message:\n{}", ana.seen.join("\n"));
    for line in &ana.seen {
        let mut run = 0;
        for c in line.chars() {
            assert!(c == '\t' || !is_forbidden_in_text(c), "{c:?} in {line:?}");
            run = if is_combining_mark(c) { run + 1 } else { 0 };
            assert!(run <= MAX_COMBINING_RUN, "{line:?}");
        }
    }
    let line = |start: &str| ana.seen.iter().find(|line| line.starts_with(start)).cloned().unwrap_or_default();
    assert_eq!(line("users\t"), "users\tana,m\\u{430}llory,eve\\u{202e}lin,x\\u{2c}y\\u{20}z");
    assert_eq!(line("joined\t"), "joined\tnew\\nline");
    let text = |tag: &str| ana.msgs().into_iter().find(|msg| msg.text.starts_with(tag)).map(|msg| msg.text);
    assert_eq!(text("one:").unwrap(), "one: bell\\u{7} esc\\u{1b}[2J\\u{1b}[31mred del\\u{7f} c1\\u{85}");
    assert_eq!(text("two:").unwrap(), "two: cr\\roverwritten");
    assert_eq!(text("three:").unwrap(), "three: new\\nline\\ttab");
    assert_eq!(text("four:").unwrap(), "four: evil\\u{202e}gpj.exe");
    assert_eq!(text("six:").unwrap(), "six: line\\u{2028}para\\u{2029}");
    assert_eq!(text("seven:").unwrap(), "seven: tag\\u{e0041}\\u{e0042}chars");
    // Four combining marks are accents; the rest are escaped.
    let zalgo = "eight: zalgo a\u{301}\u{302}\u{303}\u{304}\\u{305}\\u{306}\\u{307}\\u{308}";
    assert_eq!(text("eight:").unwrap(), zalgo);
    let from: Vec<String> = ana.msgs().into_iter().map(|msg| msg.from).collect();
    assert_eq!(from[..3], ["m\\u{430}llory", "eve\\u{202e}lin", "x\\u{2c}y\\u{20}z"]);
    assert_eq!(line("error\t"), "error\tnine: bad\\u{1b}[0m\\u{202e}reason");
    std::fs::remove_dir_all(&dir).unwrap();
}
