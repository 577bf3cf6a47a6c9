//! A class of key holders: every student holds the shared key, so each
//! attack here is what a curious classmate can do with it and a short
//! script. Each test asserts that the effect is bounded (memory, log bytes,
//! slots) and that everyone else's logins and messages carry on. The
//! server listens on `::` so that a test can be two addresses at once:
//! the classmate on 127.0.0.1, everyone else on ::1.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use chat_common::message::{ClientMsg, Handshake, ServerMsg};

use crate::support::{PATIENCE, TestClient, TestServer};

/// The server's port at `ip`.
fn at(server: &TestServer, ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), server.addr.port())
}

/// Logs `nick` in from `ip`; returns the client or the refusal.
fn login_from(server: &TestServer, ip: &str, nick: &str) -> Result<TestClient, String> {
    match TestClient::login_at(at(server, ip), &server.key, nick, None, 0) {
        Ok((client, ServerMsg::Welcome { .. })) => Ok(client),
        Ok((_, other)) => Err(format!("{other:?}")),
        Err(err) => Err(err.to_string()),
    }
}

/// Two users on ::1 still chat: the test's "everyone else carries on".
fn others_carry_on(server: &TestServer, tag: &str) {
    let mut ana = login_from(server, "::1", &format!("ana{tag}")).expect("ana logs in");
    let mut ben = login_from(server, "::1", &format!("ben{tag}")).expect("ben logs in");
    ana.say(1, &format!("ben{tag}"), "still here?");
    assert_eq!(ben.next_msg().text, "still here?");
}

fn longest_log_line(server: &TestServer) -> usize {
    server.log_text().lines().map(str::len).max().unwrap_or(0)
}

/// SENDs to a made-up 60 KB recipient, never reading the answers: each
/// ERROR is short (the name is not echoed), each log line too, so the
/// server's memory barely moves.
#[test]
fn sends_to_a_huge_made_up_recipient_cost_little_memory_and_log() {
    let server = TestServer::start(&["--host", "::"]);
    let (mut mallory, _) = server.register("mallory");
    let before = server.rss_kib();
    let name = "x".repeat(60_000);
    let frame = mallory.seal(&ClientMsg::Send { client_id: 1, to: name.clone(), text: "hi".into() });
    let burst: Vec<u8> = (0..2000)
        .flat_map(|n| mallory.seal(&ClientMsg::Send { client_id: n + 2, to: name.clone(), text: "hi".into() }))
        .collect();
    let _ = mallory.stream.write_all(&frame);
    let _ = mallory.stream.write_all(&burst);
    server.wait_log(&["mallory", "message 2001 refused"]);
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 16 * 1024, "120 MB of SENDs grew the server by {grown} KiB");
    assert!(longest_log_line(&server) < 400, "a log line of {} bytes", longest_log_line(&server));
    let (mut reader, _) = server.register("reader");
    reader.say(1, &name, "x");
    let reason = reader.recv_until(|m| match m {
        ServerMsg::Error { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason, "no such user: not a nickname (60000 bytes)");
    others_carry_on(&server, "");
}

/// A HELLO with a 64 KiB nickname is refused from its length prefix, and
/// its log line is the usual size.
#[test]
fn a_huge_hello_nickname_is_refused_from_its_length_prefix() {
    let server = TestServer::start(&[]);
    let mut raw = TcpStream::connect(server.addr).unwrap();
    raw.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut frame = Vec::new();
    Handshake::Hello { version: 1, nonce: [7; 32], nick: "n".repeat(65_000) }.encode(&mut frame);
    let _ = raw.write_all(&frame);
    server.wait_log(&["handshake failed", "frame too long"]);
    assert!(longest_log_line(&server) < 300);
    server.register("alice");
}

/// Silent sockets from one address fill only that address's share of the
/// handshake slots: everyone else still gets in.
#[test]
fn silent_sockets_from_one_address_cannot_keep_others_out() {
    let flags = ["--host", "::", "--max-handshakes", "8", "--max-handshakes-per-ip", "4", "--handshake-secs", "30"];
    let server = TestServer::start(&flags);
    let silent: Vec<TcpStream> = (0..40).filter_map(|_| TcpStream::connect(at(&server, "127.0.0.1")).ok()).collect();
    server.wait_log(&["connection refused: limit of 4 connections mid-handshake from one address reached"]);
    others_carry_on(&server, "");
    drop(silent);
}

/// Open connections are capped per address too.
#[test]
fn one_address_cannot_hold_every_connection() {
    let server = TestServer::start(&["--host", "::", "--max-conns-per-ip", "3"]);
    let held: Vec<TestClient> = (0..3).map(|n| login_from(&server, "127.0.0.1", &format!("m{n}")).unwrap()).collect();
    assert!(login_from(&server, "127.0.0.1", "m3").is_err());
    server.wait_log(&["connection refused: limit of 3 connections from one address reached"]);
    others_carry_on(&server, "");
    drop(held);
}

/// A classmate who finishes the handshake and then says nothing holds its
/// slot no longer than the handshake deadline.
#[test]
fn a_connection_that_never_sends_login_is_closed_at_the_handshake_deadline() {
    let server = TestServer::start(&["--handshake-secs", "1"]);
    let start = Instant::now();
    let mut idle = TestClient::handshake(&server, &server.key, "lurker", None).unwrap();
    server.wait_log(&["no LOGIN", "handshake timed out"]);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(idle.is_closed_by_server());
    server.register("alice");
}

/// Registration is capped per address per hour and in all; the refusal
/// says why and when to try again.
#[test]
fn registrations_are_capped_per_address_and_in_all() {
    let server = TestServer::start(&["--host", "::", "--new-users-per-hour", "3", "--max-users", "5"]);
    for n in 0..3 {
        login_from(&server, "127.0.0.1", &format!("squat{n}")).unwrap();
    }
    let refused = login_from(&server, "127.0.0.1", "squat3").unwrap_err();
    assert!(refused.contains("too many new nicknames from your address; try again in 20 minutes"), "{refused}");
    login_from(&server, "::1", "ana").unwrap();
    login_from(&server, "::1", "ben").unwrap();
    let full = login_from(&server, "::1", "cat").unwrap_err();
    assert!(full.contains("limit of 5 nicknames; ask the teacher"), "{full}");
    assert!(login_from(&server, "::1", "ana").is_err(), "ana's token was not kept by this test client");
}

/// [P-27] With the store full, a SEND gets RETRY and so does every later
/// SEND of the session until it comes again; nothing is stored out of
/// order, and once there is room it is stored.
#[test]
fn a_full_store_answers_retry_and_takes_the_message_again_once_there_is_room() {
    let server = TestServer::start(&["--store-bytes", "4000", "--mailbox-bytes", "100000"]);
    let (sink, _) = server.register("sink");
    drop(sink);
    let (mut alice, _) = server.register("alice");
    let text = "d".repeat(1000);
    let mut n = 0;
    let refused = loop {
        n += 1;
        alice.say(n, "sink", &text);
        match alice.recv_until(|m| match m {
            ServerMsg::Sent { client_id, .. } => Some(Ok(*client_id)),
            ServerMsg::Retry { client_id, reason } => Some(Err((*client_id, reason.clone()))),
            _ => None,
        }) {
            Ok(_) => assert!(n < 10, "the store never filled"),
            Err(refusal) => break refusal,
        }
    };
    assert_eq!(refused, (n, "server storage is full".to_string()));
    alice.say(n + 1, "", "later one");
    let later = alice.recv_until(|m| match m {
        ServerMsg::Retry { client_id, .. } => Some(*client_id),
        ServerMsg::Sent { client_id, .. } => panic!("{client_id} stored past a refused one"),
        _ => None,
    });
    assert_eq!(later, n + 1);
    server.wait_log(&["alice", &format!("message {n} not stored: server storage is full")]);
    let mut teacher = server;
    teacher.console("/forget sink");
    teacher.wait_log(&["console: forgot sink and its mail"]);
    alice.say(n, "", "the refused one, again");
    alice.say(n + 1, "", "and the next");
    let stored: Vec<u64> = (0..2)
        .map(|_| {
            alice.recv_until(|m| match m {
                ServerMsg::Sent { client_id, .. } => Some(*client_id),
                _ => None,
            })
        })
        .collect();
    assert_eq!(stored, [n, n + 1]);
}

/// [P-21] The text rules hold at the server too, whatever a client skips.
#[test]
fn texts_that_hide_or_disguise_themselves_are_refused() {
    let server = TestServer::start(&[]);
    let (mut mallory, _) = server.register("mallory");
    let bad = [
        "\u{202E}txt.exe",
        "a\u{200F}b",
        "line\u{2028}break",
        "tag\u{E0041}",
        "z\u{301}\u{302}\u{303}\u{304}\u{305}",
        " \t ",
    ];
    for (n, text) in bad.iter().enumerate() {
        mallory.say(n as u64 + 1, "", text);
        let refused = mallory.recv_until(|m| match m {
            ServerMsg::Error { client_id, reason } => Some((*client_id, reason.clone())),
            ServerMsg::Sent { .. } => panic!("{text:?} was stored"),
            _ => None,
        });
        assert_eq!(refused.0, n as u64 + 1, "{text:?}: {}", refused.1);
    }
}

/// The teacher's console lists users and numbers, kicks, bans (kept across
/// a restart) and forgets.
#[test]
fn the_teachers_console_kicks_bans_and_forgets() {
    let mut server = TestServer::start_durable(&[]);
    let (mut mallory, token) = server.register("mallory");
    let (_ana, _) = server.register("ana");
    server.console("/users");
    server.wait_log(&["console: 2 registered, 2 online"]);
    server.console("/stats");
    server.wait_log(&["console: connections: 2 open, 0 in the handshake"]);
    server.console("/kick mallory");
    server.wait_log(&["teacher", "kicked mallory"]);
    assert!(mallory.is_closed_by_server());
    server.console("/ban Mallory");
    server.wait_log(&["teacher", "banned Mallory"]);
    server.restart();
    let refused = TestClient::login(&server, "mallory", Some(&token), 0).unwrap().1;
    assert!(matches!(refused, ServerMsg::Reject { ref reason } if reason.contains("banned")), "{refused:?}");
    server.console("/unban mallory");
    server.wait_log(&["teacher", "unbanned mallory"]);
    let (_, welcome) = TestClient::login(&server, "mallory", Some(&token), 0).unwrap();
    assert!(matches!(welcome, ServerMsg::Welcome { .. }));
    server.console("/forget mallory");
    server.wait_log(&["teacher", "forgot mallory and its mail"]);
    server.restart();
    let result = TestClient::login(&server, "mallory", Some(&token), 0);
    assert!(
        matches!(result, Ok((_, ServerMsg::Welcome { .. }))),
        "a forgotten nickname is free again: {:?}",
        result.err()
    );
    server.console("/nonsense");
    server.wait_log(&["console: unknown command \"/nonsense\"; /help lists them"]);
}

/// Replies a classmate never reads are capped in bytes as well as frames:
/// past the cap the connection is closed, not buffered.
#[test]
fn replies_never_read_are_capped_in_bytes() {
    let server = TestServer::start(&["--host", "::", "--max-control", "1000000", "--max-control-bytes", "16384"]);
    let (mut mallory, _) = server.register("mallory");
    let bad: Vec<u8> = (1..=100_000)
        .flat_map(|n| mallory.seal(&ClientMsg::Send { client_id: n, to: String::new(), text: "\u{7}".into() }))
        .collect();
    let _ = mallory.stream.write_all(&bad);
    server.wait_log(&["mallory", "not reading: replies queued past 1000000 frames or 16384 bytes"]);
    others_carry_on(&server, "");
}

/// A user far behind is bounded in bytes too: the oldest public messages
/// go, and DROPPED says how many.
#[test]
fn falling_behind_is_bounded_in_bytes() {
    let server = TestServer::start(&["--mailbox-bytes", "10000"]);
    let (away, token) = server.register("away");
    drop(away);
    server.wait_log(&["away", "disconnected"]);
    let (mut alice, _) = server.register("alice");
    for n in 1..=30 {
        alice.say(n, "", &"b".repeat(1000));
        alice.recv_until(|m| matches!(m, ServerMsg::Sent { .. }).then_some(()));
    }
    let (mut away, _) = TestClient::login(&server, "away", Some(&token), 0).unwrap();
    let count = away.recv_until(|m| match m {
        ServerMsg::Dropped { count, .. } => Some(*count),
        _ => None,
    });
    assert!(count >= 20, "only {count} dropped");
    let kept = 30 - count;
    for _ in 0..kept {
        assert_eq!(away.next_msg().text.len(), 1000);
    }
}

/// Logging in dozens of nicknames so that every newcomer is sent all of
/// them: the list names at most `--max-listed`, the rest are a count, so a
/// login costs a bounded list however many the classmate brings.
#[test]
fn a_crowd_of_logins_costs_each_newcomer_a_bounded_list() {
    let server = TestServer::start(&["--host", "::", "--max-listed", "5"]);
    let crowd: Vec<TestClient> =
        (0..40).map(|n| login_from(&server, "127.0.0.1", &format!("bot{n}")).expect("a bot logs in")).collect();
    let mut ana = login_from(&server, "::1", "ana").expect("ana logs in");
    let listed = ana.recv_until(|m| match m {
        ServerMsg::Users { last: true, nicks } => Some(nicks.clone()),
        _ => None,
    });
    assert_eq!(listed, ["bot0", "bot1", "bot2", "bot3", "bot4"], "the first five to come, no more");
    let unlisted = ana.recv_until(|m| if let ServerMsg::Unlisted { count } = m { Some(*count) } else { None });
    assert_eq!(unlisted, 36, "the other 35 bots and ana herself are a count");
    others_carry_on(&server, "1");
    drop(crowd);
}
