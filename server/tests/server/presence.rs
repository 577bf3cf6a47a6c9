//! USERS at login, then JOINED and LEFT as people come and go.

use chat_common::message::ServerMsg;

use crate::support::{TestClient, TestServer};

fn users(client: &mut TestClient) -> Vec<String> {
    let mut all = client.recv_until(|m| match m {
        ServerMsg::Users { last: true, nicks } => Some(nicks.clone()),
        ServerMsg::Users { last: false, .. } => panic!("one chunk expected for few users"),
        _ => None,
    });
    all.sort();
    all
}

#[test]
fn login_lists_who_is_online_and_others_hear_joined_and_left() {
    let server = TestServer::start(&[]);
    let (mut alice, _) = server.register("alice");
    assert_eq!(users(&mut alice), ["alice"]);
    let (mut bob, _) = server.register("Bob");
    assert_eq!(users(&mut bob), ["Bob", "alice"]);
    let joined = alice.recv_until(|m| match m {
        ServerMsg::Joined { nicks } => Some(nicks.join(",")),
        _ => None,
    });
    assert_eq!(joined, "Bob");
    drop(bob);
    let left = alice.recv_until(|m| match m {
        ServerMsg::Left { nicks } => Some(nicks.join(",")),
        _ => None,
    });
    assert_eq!(left, "Bob");
    server.wait_log(&["Bob", "disconnected", "closed by the client"]);
}
