//! An attacker on the wire, or a hostile key holder: every tampered,
//! replayed, reflected, reordered or malformed frame closes that one
//! connection with a logged reason; legitimate users carry on; the honest
//! client's reconnect and re-send lose and double nothing.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use chat_common::message::{ClientMsg, ServerMsg};

use crate::support::{PATIENCE, TestClient, TestServer};

/// Alice's SEND, client id 1, as the attacker might handle it.
fn hello_frame(alice: &mut TestClient) -> Vec<u8> {
    alice.seal(&ClientMsg::Send { client_id: 1, to: String::new(), text: "hello".into() })
}

/// Writes what `attack` makes with alice's session, then checks that the
/// server closed her connection logging `reason`, that bob carries on, and
/// that alice's re-send after reconnecting reaches bob exactly once.
fn attack_is_detected(reason: &str, attack: impl FnOnce(&mut TestClient) -> Vec<u8>) {
    let server = TestServer::start(&[]);
    let (mut alice, alice_token) = server.register("alice");
    let (mut bob, _) = server.register("bob");
    let bytes = attack(&mut alice);
    alice.stream.write_all(&bytes).unwrap();
    assert!(alice.is_closed_by_server(), "connection not closed for: {reason}");
    server.wait_log(&["alice", reason]);

    let (mut alice, _) = TestClient::login(&server, "alice", Some(&alice_token), 0).unwrap();
    alice.say(1, "", "hello");
    alice.say(2, "", "bye");
    let texts: Vec<String> = (0..2).map(|_| bob.next_msg().text).collect();
    assert_eq!(texts, ["hello", "bye"], "lost or doubled after: {reason}");
}

fn flip(mut frame: Vec<u8>, index: usize) -> Vec<u8> {
    frame[index] ^= 0x01;
    frame
}

/// [P-13] A flipped bit anywhere in a frame fails the tag check.
#[test]
fn a_flipped_bit_in_the_sequence_kind_payload_or_tag_is_a_bad_tag() {
    // len 0..4, seq 4..12, kind 12, payload 13.., tag the last 32 bytes.
    for (part, index) in [("sequence", 11), ("kind", 12), ("payload", 20)] {
        eprintln!("flipping the {part}");
        attack_is_detected("frame rejected: bad tag", |alice| flip(hello_frame(alice), index));
    }
    attack_is_detected("frame rejected: bad tag", |alice| {
        let frame = hello_frame(alice);
        let last = frame.len() - 1;
        flip(frame, last)
    });
}

/// [P-1] [P-13] A flipped length bit shifts the framing; the tag catches it.
#[test]
fn a_flipped_bit_in_the_length_is_caught() {
    attack_is_detected("frame rejected: bad tag", |alice| {
        let mut bytes = flip(hello_frame(alice), 3);
        // Something must follow for the longer frame to be completed.
        bytes.extend(alice.seal(&ClientMsg::Ping));
        bytes
    });
}

/// [P-14] The same frame twice: the second has an old sequence number.
#[test]
fn a_frame_replayed_in_the_same_session_is_refused() {
    attack_is_detected("wrong sequence number (got 1, expected 2)", |alice| {
        let frame = hello_frame(alice);
        [frame.clone(), frame].concat()
    });
}

/// [P-14] Two frames swapped.
#[test]
fn two_frames_swapped_are_refused() {
    attack_is_detected("wrong sequence number (got 2, expected 1)", |alice| {
        let first = hello_frame(alice);
        let second = alice.seal(&ClientMsg::Ping);
        [second, first].concat()
    });
}

/// [P-14] A frame deleted on the way: the next one has the wrong number.
#[test]
fn a_deleted_frame_is_detected_by_the_next_one() {
    attack_is_detected("wrong sequence number (got 2, expected 1)", |alice| {
        let _deleted = hello_frame(alice);
        alice.seal(&ClientMsg::Ping)
    });
}

/// [P-16] A frame recorded in one session is worthless in another.
#[test]
fn a_frame_from_another_session_is_a_bad_tag() {
    let server = TestServer::start(&[]);
    let (mut alice, alice_token) = server.register("alice");
    let (mut bob, _) = server.register("bob");
    let recorded = hello_frame(&mut alice);
    drop(alice);
    let (mut alice, _) = TestClient::login(&server, "alice", Some(&alice_token), 0).unwrap();
    alice.stream.write_all(&recorded).unwrap();
    assert!(alice.is_closed_by_server());
    server.wait_log(&["alice", "frame rejected: bad tag"]);
    let (mut alice, _) = TestClient::login(&server, "alice", Some(&alice_token), 0).unwrap();
    alice.say(1, "", "hello");
    assert_eq!(bob.next_msg().text, "hello");
}

/// [P-16] A server frame sent back to the server fails: each direction has its key.
#[test]
fn a_server_frame_reflected_back_is_a_bad_tag() {
    attack_is_detected("frame rejected: bad tag", |alice| alice.recv_raw().unwrap().1);
}

/// [P-15] A valid tag on an unknown kind still closes the connection.
#[test]
fn an_unknown_kind_with_a_valid_tag_is_refused() {
    attack_is_detected("frame rejected: unknown frame kind 0x7f", |alice| {
        let mut frame = Vec::new();
        alice.sealer.seal(0x7f, b"", &mut frame);
        frame
    });
}

/// [P-3] A well-tagged SEND whose text is not UTF-8 is malformed.
#[test]
fn invalid_utf8_in_a_tagged_frame_is_malformed() {
    attack_is_detected("malformed: invalid UTF-8 in text", |alice| {
        let mut payload = 1u64.to_be_bytes().to_vec();
        payload.extend([0, 0, 0, 2, 0xff, 0xfe]);
        let mut frame = Vec::new();
        alice.sealer.seal(0x11, &payload, &mut frame);
        frame
    });
}

/// [P-2] [P-13] Lengths 0, max+1 and 2^32−1: refused from the prefix
/// alone, without waiting for (or allocating) a body.
#[test]
fn impossible_lengths_are_refused_from_the_prefix_alone() {
    for (len, reason) in [
        (0u32, "frame too short (0 bytes, min 41)"),
        (65_537, "frame too long (65537 bytes, max 65536)"),
        (u32::MAX, "frame too long (4294967295 bytes, max 65536)"),
    ] {
        attack_is_detected(reason, |_| len.to_be_bytes().to_vec());
    }
}

/// A truncated frame followed by a close is logged as such.
#[test]
fn a_truncated_frame_then_close_is_logged() {
    let server = TestServer::start(&[]);
    let (mut alice, _) = server.register("alice");
    let frame = hello_frame(&mut alice);
    alice.stream.write_all(&frame[..frame.len() / 2]).unwrap();
    alice.stream.shutdown(Shutdown::Write).unwrap();
    server.wait_log(&["alice", "disconnected", "closed in the middle of a frame"]);
    server.register("bob");
}

/// [P-11] Nothing but the handshake is accepted before it completes.
#[test]
fn a_sealed_frame_before_the_handshake_is_refused() {
    let server = TestServer::start(&[]);
    let (mut alice, _) = server.register("alice");
    let frame = hello_frame(&mut alice);
    let mut raw = TcpStream::connect(server.addr).unwrap();
    raw.set_read_timeout(Some(PATIENCE)).unwrap();
    raw.write_all(&frame).unwrap();
    server.wait_log(&["handshake failed", "unknown frame kind"]);
    let mut rest = Vec::new();
    assert!(raw.read_to_end(&mut rest).is_ok(), "closed");
}

/// A burst past the limits: the server stays up, the limits hold, and a
/// legitimate user gets in once slots free up.
#[test]
fn a_burst_of_connections_past_the_limits_is_contained() {
    let server = TestServer::start(&["--max-conns", "6", "--max-handshakes", "3"]);
    let (mut alice, _) = server.register("alice");
    let burst: Vec<TcpStream> = (0..20).filter_map(|_| TcpStream::connect(server.addr).ok()).collect();
    server.wait_log(&["connection refused: limit of 3 connections mid-handshake reached"]);
    let log = server.log_text();
    let opened = log.matches("connection opened").count();
    assert!(opened <= 6 + 1, "{opened} connections opened past the limit:\n{log}");
    alice.say(1, "", "still here");
    assert_eq!(alice.next_msg().text, "still here");
    drop(burst);
    // The slots come back as the server notices the closed connections.
    let deadline = std::time::Instant::now() + PATIENCE;
    while TestClient::login(&server, "bob", None, 0).is_err() {
        assert!(std::time::Instant::now() < deadline, "slots never came back");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A client that never reads: its mailbox fills to the cap and drops the
/// oldest; everyone else gets every message, in order.
#[test]
fn a_client_that_never_reads_does_not_hold_up_others() {
    let server = TestServer::start(&["--mailbox", "50"]);
    let (_sleeper, _) = server.register("sleeper");
    let (mut alice, _) = server.register("alice");
    let (mut bob, _) = server.register("bob");
    let text = "z".repeat(1000);
    for n in 1..=2000 {
        alice.say(n, "", &text);
        if n % 50 == 0 {
            // Bob keeps reading and acknowledging, so his mailbox stays small.
            let last = (0..50).map(|_| bob.next_msg().id).last().unwrap();
            bob.send(&ClientMsg::Ack { up_to: last });
        }
    }
    server.wait_log(&["sleeper", "fell too far behind"]);
    alice.send(&ClientMsg::Ping);
    alice.recv_until(|m| (*m == ServerMsg::Pong).then_some(()));
}

/// A client that keeps asking (PING) but never reads the answers: its
/// replies pile up to `--max-control`, and it is closed, not buffered
/// without end.
#[test]
fn replies_piling_up_for_a_client_that_never_reads_close_it() {
    let server = TestServer::start(&["--max-control", "16"]);
    let (mut greedy, _) = server.register("greedy");
    let pings: Vec<u8> = (0..200_000).flat_map(|_| greedy.seal(&ClientMsg::Ping)).collect();
    // The server closes mid-way, so the write may fail: that is the point.
    let _ = greedy.stream.write_all(&pings);
    server.wait_log(&["greedy", "not reading: replies queued past 16 frames"]);
    server.register("polite");
}
