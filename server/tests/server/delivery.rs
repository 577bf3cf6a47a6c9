//! Public and direct delivery, the echo, acknowledgements, redelivery,
//! exactly-once SENDs and mailbox overflow.

use chat_common::message::{ClientMsg, ServerMsg};

use crate::support::{TestClient, TestServer};

fn sent(client: &mut TestClient) -> (u64, u64) {
    client.recv_until(|m| match m {
        ServerMsg::Sent { client_id, id } => Some((*client_id, *id)),
        _ => None,
    })
}

/// [P-23] Recipients: everyone, or the named user and the sender (the echo).
#[test]
fn public_messages_reach_everyone_and_direct_ones_only_the_two() {
    let server = TestServer::start(&[]);
    let (mut alice, _) = server.register("alice");
    let (mut bob, _) = server.register("bob");
    let (mut carol, _) = server.register("carol");

    alice.say(1, "", "hello all");
    let (client_id, id) = sent(&mut alice);
    assert_eq!(client_id, 1);
    for client in [&mut alice, &mut bob, &mut carol] {
        let msg = client.next_msg();
        assert_eq!((msg.id, msg.from.as_str(), msg.to.as_str(), msg.text.as_str()), (id, "alice", "", "hello all"));
    }

    alice.say(2, "BOB", "psst");
    let (_, direct) = sent(&mut alice);
    for client in [&mut alice, &mut bob] {
        let msg = client.next_msg();
        assert_eq!((msg.id, msg.to.as_str(), msg.text.as_str()), (direct, "bob", "psst"));
    }
    // Carol's next message is the one after the direct one: she never saw it.
    bob.say(1, "", "after");
    assert_eq!(carol.next_msg().text, "after");
    server.wait_log(&["alice", &format!("message {direct} to BOB (4 bytes, 2 recipients)")]);
}

/// [P-24] Only acknowledged messages leave a mailbox; the rest come again.
#[test]
fn unacknowledged_messages_come_again_and_acknowledged_ones_do_not() {
    let server = TestServer::start(&[]);
    let (mut alice, _) = server.register("alice");
    let (bob, bob_token) = server.register("bob");
    drop(bob);
    for n in 1..=5 {
        alice.say(n, "", &format!("m{n}"));
    }
    let (mut bob, _) = TestClient::login(&server, "bob", Some(&bob_token), 0).unwrap();
    let first: Vec<u64> = (0..5).map(|_| bob.next_msg().id).collect();
    // Dropped without ACK: all five come again.
    drop(bob);
    let (mut bob, _) = TestClient::login(&server, "bob", Some(&bob_token), 0).unwrap();
    let again: Vec<u64> = (0..5).map(|_| bob.next_msg().id).collect();
    assert_eq!(first, again);
    // ACK three: only the last two come again.
    bob.send(&ClientMsg::Ack { up_to: first[2] });
    bob.send(&ClientMsg::Ping);
    bob.recv_until(|m| (*m == ServerMsg::Pong).then_some(()));
    drop(bob);
    let (mut bob, _) = TestClient::login(&server, "bob", Some(&bob_token), 0).unwrap();
    assert_eq!(bob.next_msg().id, first[3]);
    assert_eq!(bob.next_msg().id, first[4]);
    // LOGIN's last_seen acknowledges too.
    drop(bob);
    let (mut bob, _) = TestClient::login(&server, "bob", Some(&bob_token), first[4]).unwrap();
    alice.say(6, "", "fresh");
    assert_eq!(bob.next_msg().text, "fresh");
}

/// [P-22] A re-sent client id is confirmed again and never stored twice.
#[test]
fn a_resent_client_id_is_confirmed_again_but_stored_once() {
    let server = TestServer::start(&[]);
    let (mut alice, alice_token) = server.register("alice");
    let (mut bob, _) = server.register("bob");
    alice.say(1, "", "once");
    let (_, id) = sent(&mut alice);
    drop(alice);
    let (mut alice, _) = TestClient::login(&server, "alice", Some(&alice_token), 0).unwrap();
    alice.say(1, "", "once");
    assert_eq!(sent(&mut alice), (1, id));
    alice.say(2, "", "twice");
    let (_, second) = sent(&mut alice);
    assert_eq!(bob.next_msg().id, id);
    assert_eq!(bob.next_msg().id, second);
}

/// [P-21] Bad texts and unknown recipients: ERROR with the client id, nothing stored.
#[test]
fn unknown_recipients_and_bad_texts_get_an_error_and_nothing_is_stored() {
    let server = TestServer::start(&["--max-text", "10"]);
    let (mut alice, _) = server.register("alice");
    alice.say(1, "nobody", "hi");
    let error = alice.recv_until(|m| match m {
        ServerMsg::Error { client_id, reason } => Some((*client_id, reason.clone())),
        _ => None,
    });
    assert_eq!(error, (1, "no such user: nobody".to_string()));
    for (client_id, text) in [(2, "bell\u{7}"), (3, "right\u{202E}left"), (4, "eleven char")] {
        alice.say(client_id, "", text);
        let got = alice.recv_until(|m| match m {
            ServerMsg::Error { client_id, .. } => Some(*client_id),
            ServerMsg::Msg(msg) => panic!("stored {msg:?}"),
            _ => None,
        });
        assert_eq!(got, client_id);
    }
    alice.say(5, "", "ok");
    assert_eq!(alice.next_msg().text, "ok");
}

/// [P-25] A user who falls too far behind loses the oldest, and DROPPED
/// says how many before the rest arrives.
#[test]
fn a_full_mailbox_drops_the_oldest_and_says_how_many() {
    let server = TestServer::start(&["--mailbox", "5"]);
    let (mut alice, _) = server.register("alice");
    let (bob, bob_token) = server.register("bob");
    drop(bob);
    // Gone for the server too: a round for a connection still open would
    // take the notice with it.
    server.wait_log(&["bob", "disconnected"]);
    for n in 1..=8 {
        alice.say(n, "", &format!("m{n}"));
        sent(&mut alice);
    }
    let (mut bob, _) = TestClient::login(&server, "bob", Some(&bob_token), 0).unwrap();
    let notice = bob.recv_until(|m| match m {
        ServerMsg::Dropped { count, limit } => Some((*count, *limit)),
        ServerMsg::Msg(msg) => panic!("message {msg:?} came before the notice"),
        _ => None,
    });
    assert_eq!(notice, (3, 5));
    let texts: Vec<String> = (0..5).map(|_| bob.next_msg().text).collect();
    assert_eq!(texts, ["m4", "m5", "m6", "m7", "m8"]);
    server.wait_log(&["bob", "fell too far behind: 3 messages dropped unread"]);
}

/// A reader that falls behind gets a writer thread of its own (the pool's
/// write to it times out); meanwhile the others are served, and once it
/// reads again it gets every message, in order, once.
#[test]
fn a_slow_reader_catches_up_without_holding_up_others() {
    let server = TestServer::start(&["--mailbox", "20000", "--mailbox-bytes", "33554432"]);
    let (mut slow, _) = server.register("slow");
    let (mut alice, _) = server.register("alice");
    let (mut bob, _) = server.register("bob");
    // 12 MB: more than the socket buffers between the server and `slow`.
    let (count, text) = (12_000, "s".repeat(1000));
    for n in 1..=count {
        alice.say(n, "", &text);
        if n % 50 == 0 {
            assert_eq!(sent(&mut alice).0, n - 49);
            let last = (0..50).map(|_| bob.next_msg().id).last().unwrap();
            bob.send(&ClientMsg::Ack { up_to: last });
            for _ in 0..49 {
                sent(&mut alice);
            }
        }
    }
    server.wait_log(&["slow", "reads slowly"]);
    let ids: Vec<u64> = (0..count).map(|_| slow.next_msg().id).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "out of order");
    assert!(!server.log_text().contains("fell too far behind"));
}
