//! Handshake success and failures, and the nickname ownership rules.

use std::io::Write;
use std::net::TcpStream;

use chat_common::Error;
use chat_common::auth::Key;
use chat_common::message::ServerMsg;

use crate::support::{PATIENCE, TestClient, TestServer};

#[test]
fn first_login_registers_and_later_logins_need_the_token() {
    let server = TestServer::start(&[]);
    let (first, token) = server.register("alice");
    drop(first);
    // [P-19] The token registered the nickname; it logs in again.
    let (_, welcome) = TestClient::login(&server, "alice", Some(&token), 0).unwrap();
    assert!(matches!(welcome, ServerMsg::Welcome { ref nick, .. } if nick == "alice"));
    // P-6: without the token, and case-insensitively, the nickname is someone else's.
    for claim in ["alice", "ALICE"] {
        let result = TestClient::handshake(&server, &server.key, claim, None);
        assert!(matches!(result, Err(Error::NicknameOwned)), "{claim}");
    }
    // A made-up token fails the proofs; the server logs nickname and peer.
    let result = TestClient::handshake(&server, &server.key, "alice", Some(&[9; 32]));
    assert!(matches!(result, Err(Error::NicknameOwned)), "{:?}", result.err());
    server.wait_log(&["handshake failed as \"alice\"", "authentication failed"]);
}

#[test]
fn wrong_key_is_refused_and_logged() {
    let server = TestServer::start(&[]);
    let result = TestClient::handshake(&server, &Key([0x55; 32]), "mallory", None);
    assert!(matches!(result, Err(Error::Refused(ref r)) if r == "authentication failed"), "{:?}", result.err());
    server.wait_log(&["handshake failed as \"mallory\": authentication failed"]);
    // Legitimate users are unaffected.
    server.register("alice");
}

/// [P-18] A nickname outside the rules gets FAIL with the reason, in the
/// handshake, before the server looks it up.
#[test]
fn invalid_nickname_is_refused_in_the_handshake_with_the_reason() {
    let server = TestServer::start(&[]);
    let long = "n".repeat(33);
    let cases =
        [("has space", "may not contain ' '"), ("аlice", "may not contain"), ("", "empty"), (&long, "longer than 32")];
    for (nick, reason) in cases {
        let result = TestClient::login(&server, nick, None, 0);
        assert!(
            matches!(result, Err(Error::Refused(ref r)) if r.starts_with("invalid nickname: ") && r.contains(reason)),
            "{nick:?}: {:?}",
            result.err()
        );
    }
    server.wait_log(&["handshake failed", "invalid nickname: nickname is longer than 32 characters"]);
}

#[test]
fn silence_garbage_and_oversized_lengths_end_the_handshake() {
    let server = TestServer::start(&["--handshake-secs", "1"]);
    let silent = TcpStream::connect(server.addr).unwrap();
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    server.wait_log(&["handshake failed", "timed out"]);

    let mut garbage = TcpStream::connect(server.addr).unwrap();
    garbage.write_all(b"\x00\x00\x00\x05GET /").unwrap();
    server.wait_log(&["handshake failed", "unknown frame kind 0x47"]);

    let mut huge = TcpStream::connect(server.addr).unwrap();
    huge.write_all(&u32::MAX.to_be_bytes()).unwrap();
    server.wait_log(&["handshake failed", "frame too long (4294967295 bytes"]);
    drop((silent, garbage, huge));
    server.register("alice");
}

/// [P-20] The owner's new login takes over; the old connection is closed.
#[test]
fn a_second_login_by_the_owner_takes_over_the_first() {
    let server = TestServer::start(&[]);
    let (mut old, token) = server.register("alice");
    let (_new, welcome) = TestClient::login(&server, "alice", Some(&token), 0).unwrap();
    assert!(matches!(welcome, ServerMsg::Welcome { .. }));
    assert!(old.is_closed_by_server());
    server.wait_log(&["alice", "took over an older connection"]);
    server.wait_log(&["alice", "replaced by a newer login"]);
}

/// [P-19] A client that never saw its WELCOME logs in with the same token.
#[test]
fn a_registration_whose_welcome_was_lost_still_belongs_to_its_token() {
    let server = TestServer::start_durable(&[]);
    let token = [0x42; 32];
    let mut first = TestClient::handshake(&server, &server.key, "alice", Some(&token)).unwrap();
    assert!(!first.registered);
    let register = Some(chat_common::auth::token_verifier(&token));
    first.send(&chat_common::message::ClientMsg::Login { last_seen: 0, register });
    drop(first);
    server.wait_log(&["alice", "registered a new nickname"]);
    let (_, welcome) = TestClient::login(&server, "alice", Some(&token), 0).unwrap();
    assert!(matches!(welcome, ServerMsg::Welcome { .. }));
}

/// [P-17] LOGIN carries a verifier exactly when the nickname is unregistered.
#[test]
fn login_must_carry_a_verifier_exactly_when_registering() {
    use chat_common::message::ClientMsg;
    let server = TestServer::start(&[]);
    let mut bare = TestClient::handshake(&server, &server.key, "newbie", None).unwrap();
    bare.send(&ClientMsg::Login { last_seen: 0, register: None });
    assert!(matches!(bare.recv().unwrap(), ServerMsg::Reject { reason } if reason.contains("must carry a verifier")));
    let (_, token) = server.register("alice");
    let mut extra = TestClient::handshake(&server, &server.key, "alice", Some(&token)).unwrap();
    extra.send(&ClientMsg::Login { last_seen: 0, register: Some([1; 32]) });
    assert!(matches!(extra.recv().unwrap(), ServerMsg::Reject { reason } if reason.contains("registered nickname")));
}
