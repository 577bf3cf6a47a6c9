//! `--trace`: the server shows every frame of the chosen connections on
//! stderr, one line each, in docs/PROTOCOL.md's format ("Frame traces"),
//! handshake frames too, and never a secret.

use chat_common::auth::{SessionKeys, token_verifier};
use chat_common::message::{ClientMsg, ServerMsg};
use chat_common::trace::{SHORT_BYTES, kind_name};

use crate::support::{TestClient, TestServer};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trace lines of the log: they start with a time of day, not a date.
fn trace_lines(server: &TestServer) -> Vec<String> {
    let log = server.log_text();
    log.lines().filter(|line| line.as_bytes().get(2) == Some(&b':')).map(str::to_owned).collect()
}

/// Checks one line against the format: `TIME DIR PEER SEQ KIND len=N ...`,
/// and that a sealed frame ends with its tag and a verdict. Returns
/// (direction, peer, seq, kind).
fn columns(line: &str) -> (String, String, String, String) {
    let columns: Vec<&str> = line.splitn(7, ' ').collect();
    let [time, arrow, peer, seq, kind, len, ..] = columns[..] else { panic!("too few columns: {line}") };
    assert!(time.len() == 12 && time.as_bytes()[5] == b':' && time.as_bytes()[8] == b'.', "{line}");
    assert!(arrow == "→" || arrow == "←", "{line}");
    assert!(seq == "-" || seq.strip_prefix('#').is_some_and(|n| n.parse::<u64>().is_ok()), "{line}");
    assert!((0..=u8::MAX).any(|k| kind_name(k) == Some(kind)), "{line}");
    assert!(len.strip_prefix("len=").is_some_and(|n| n.parse::<u32>().is_ok()), "{line}");
    if seq != "-" || kind == "PROOF" || kind == "ACCEPT" {
        assert!(line.contains(" tag=") && line.ends_with(" ✓"), "{line}");
    }
    (arrow.into(), peer.into(), seq.into(), kind.into())
}

/// Waits until the trace has a line for which `wanted` holds.
fn wait_for_line(server: &TestServer, wanted: impl Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    while !trace_lines(server).iter().any(|line| wanted(line)) {
        assert!(std::time::Instant::now() < deadline, "no such trace line; log:\n{}", server.log_text());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn trace_all_shows_a_whole_session_frame_by_frame_in_the_documented_format() {
    let server = TestServer::start(&["--trace", "all"]);
    let (mut alice, _) = server.register("alice");
    alice.recv_until(|msg| matches!(msg, ServerMsg::Users { last: true, .. }).then_some(()));
    alice.say(1, "", "hello, trace");
    alice.recv_until(|msg| matches!(msg, ServerMsg::Sent { .. }).then_some(()));
    let id = alice.next_msg().id;
    alice.send(&ClientMsg::Ack { up_to: id });
    alice.send(&ClientMsg::Ping);
    alice.recv_until(|msg| matches!(msg, ServerMsg::Pong).then_some(()));
    wait_for_line(&server, |line| line.contains(" ← alice #3 PING "));
    wait_for_line(&server, |line| line.contains(" PONG "));

    let lines = trace_lines(&server);
    let shown: Vec<(String, String, String, String)> = lines.iter().map(|line| columns(line)).collect();
    let arrows_and_kinds: Vec<String> = shown.iter().map(|(arrow, _, _, kind)| format!("{arrow} {kind}")).collect();
    let mut expected = vec!["← HELLO", "→ CHALLENGE", "← PROOF", "→ ACCEPT", "← LOGIN", "→ WELCOME", "→ USERS"];
    expected.extend(["← SEND", "→ MSG", "→ SENT", "← ACK", "← PING", "→ PONG"]);
    // SENT and the echo may come in one round or two, in either order [P-22].
    let mut sorted = arrows_and_kinds.clone();
    sorted[8..10].sort();
    assert_eq!(sorted, expected, "{}", lines.join("\n"));
    // The handshake shows the address; sealed frames the nickname, numbered per direction.
    assert!(shown[..4].iter().all(|(_, peer, seq, _)| peer.starts_with("127.0.0.1:") && seq == "-"));
    let sealed: Vec<String> = shown[4..].iter().map(|(arrow, peer, seq, _)| format!("{arrow}{peer}{seq}")).collect();
    assert_eq!(sealed[..3], ["←alice#0", "→alice#0", "→alice#1"]);
    assert!(lines[0].ends_with(" nick=alice") && lines[1].ends_with(" registered=no"), "{}", lines[1]);
    assert!(lines[4].contains(" LOGIN len=82 last_seen=0 register=yes verifier="), "{}", lines[4]);
    let send = lines.iter().find(|line| line.contains(" SEND ")).unwrap();
    assert!(send.contains(" ← alice #1 SEND len=65 client_id=1 to=* text=\"hello, trace\" tag="), "{send}");
    let sent = lines.iter().find(|line| line.contains(" SENT ")).unwrap();
    assert!(sent.contains(&format!(" SENT len=57 client_id=1 id={id} tag=")), "{sent}");
    assert!(lines.iter().any(|line| line.contains(&format!(" ← alice #2 ACK len=49 up_to={id} tag="))));
}

#[test]
fn trace_nick_shows_that_users_connections_only_and_failures_with_their_reason() {
    let server = TestServer::start(&["--trace", "Bob"]);
    let (mut alice, _) = server.register("alice");
    let (mut bob, _) = server.register("bob");
    alice.say(1, "", "for everyone");
    bob.recv_until(|msg| matches!(msg, ServerMsg::Msg(_)).then_some(()));
    // A SEND replayed: the server refuses it for its sequence number [P-14].
    let frame = bob.seal(&ClientMsg::Send { client_id: 1, to: String::new(), text: "once".into() });
    std::io::Write::write_all(&mut bob.stream, &[frame.clone(), frame].concat()).unwrap();
    wait_for_line(&server, |line| line.ends_with(" ✗ wrong sequence number (got 1, expected 2)"));
    let lines = trace_lines(&server);
    let peers: Vec<String> = lines.iter().map(|line| columns_or_failed(line)).collect();
    assert!(peers.iter().all(|peer| peer == "bob" || peer.starts_with("127.0.0.1:")), "{}", lines.join("\n"));
    assert_eq!(lines.iter().filter(|line| line.contains(" HELLO ")).count(), 1, "only bob's handshake");
    assert!(
        lines.iter().any(|line| line.contains(" → bob ") && line.contains(" MSG ") && line.contains(" from=alice "))
    );
    assert!(!lines.iter().any(|line| line.contains(" ← alice ")), "{}", lines.join("\n"));
}

/// The peer column of any trace line, refused ones included.
fn columns_or_failed(line: &str) -> String {
    line.split(' ').nth(2).unwrap_or_default().to_string()
}

#[test]
fn no_trace_line_contains_the_key_the_token_or_a_derived_key() {
    let server = TestServer::start(&["--trace", "all"]);
    let token = [0x5a; 32];
    // The session that registers, then one keyed with the verifier [P-19].
    let (mut first, _) = TestClient::login(&server, "carol", Some(&token), 0).unwrap();
    first.say(1, "", "secret-free");
    first.recv_until(|msg| matches!(msg, ServerMsg::Sent { .. }).then_some(()));
    drop(first);
    let (mut second, _) = TestClient::login(&server, "carol", Some(&token), 0).unwrap();
    second.send(&ClientMsg::Ping);
    second.recv_until(|msg| matches!(msg, ServerMsg::Pong).then_some(()));
    wait_for_line(&server, |line| line.contains(" → carol ") && line.contains(" PONG "));

    let verifier = token_verifier(&token);
    let keys = SessionKeys::derive(&server.key, Some(&verifier), &second.transcript);
    let secrets = [
        ("key", server.key.0),
        ("token", token),
        ("client-to-server key", keys.client_to_server),
        ("server-to-client key", keys.server_to_client),
        ("client proof key", keys.client_proof),
        ("server proof key", keys.server_proof),
    ];
    let lines = trace_lines(&server);
    assert!(lines.len() >= 14, "{}", lines.join("\n"));
    assert!(lines.iter().any(|line| line.contains(&format!("verifier={}…", &hex(&verifier)[..8]))));
    for line in &lines {
        for (name, secret) in &secrets {
            for window in secret.windows(SHORT_BYTES) {
                assert!(!line.contains(&hex(window)), "a trace line shows part of the {name}: {line}");
            }
        }
        assert!(!line.contains(&hex(&verifier)), "a trace line shows the whole verifier: {line}");
    }
}

#[test]
fn without_trace_the_log_has_no_frame_lines() {
    let server = TestServer::start(&[]);
    let (mut alice, _) = server.register("alice");
    alice.send(&ClientMsg::Ping);
    alice.recv_until(|msg| matches!(msg, ServerMsg::Pong).then_some(()));
    server.wait_log(&["alice", "logged in"]);
    assert_eq!(trace_lines(&server), Vec::<String>::new());
}
