//! The textbook server (`server/examples/textbook.rs`) speaks the same
//! protocol: the basic cases run against it and against the real server.

use chat_common::message::{ClientMsg, ServerMsg};

use crate::support::{TestClient, TestServer};

/// Public and direct delivery, the echo, SENT, a re-sent SEND stored once,
/// presence, and redelivery of what was not acknowledged.
fn basic_chat(server: &TestServer) {
    let (mut alice, _) = server.register("alice");
    let (mut bob, bob_token) = server.register("bob");
    let joined = alice.recv_until(|m| match m {
        ServerMsg::Joined { nicks } => Some(nicks.clone()),
        _ => None,
    });
    assert_eq!(joined, ["bob"]);

    alice.say(1, "", "hola");
    let sent = alice.recv_until(|m| match m {
        ServerMsg::Sent { client_id: 1, id } => Some(*id),
        _ => None,
    });
    for client in [&mut alice, &mut bob] {
        let msg = client.next_msg();
        assert_eq!((msg.id, msg.from.as_str(), msg.to.as_str(), msg.text.as_str()), (sent, "alice", "", "hola"));
    }
    alice.say(1, "", "hola");
    alice.recv_until(|m| matches!(m, ServerMsg::Sent { client_id: 1, .. }).then_some(()));
    alice.say(2, "Bob", "psst");
    assert_eq!(bob.next_msg().text, "psst", "the re-sent SEND was not stored again");

    // Bob leaves without acknowledging "psst": it comes again; "hola" was acknowledged.
    bob.send(&ClientMsg::Ack { up_to: sent });
    bob.send(&ClientMsg::Ping);
    bob.recv_until(|m| (*m == ServerMsg::Pong).then_some(()));
    drop(bob);
    let left = alice.recv_until(|m| match m {
        ServerMsg::Left { nicks } => Some(nicks.clone()),
        _ => None,
    });
    assert_eq!(left, ["bob"]);
    let (mut bob, _) = TestClient::login(server, "bob", Some(&bob_token), 0).unwrap();
    assert_eq!(bob.next_msg().text, "psst");
}

#[test]
fn the_real_server_passes_the_basic_chat() {
    basic_chat(&TestServer::start(&[]));
}

#[test]
fn the_textbook_server_passes_the_basic_chat() {
    basic_chat(&TestServer::start_textbook());
}
