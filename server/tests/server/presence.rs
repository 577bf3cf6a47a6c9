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

/// Reads until UNLISTED says `count` (the server may gather changes into
/// one count), noting the names that joined (`+`) and left (`-`) meanwhile.
fn until_unlisted(client: &mut TestClient, count: u64) -> Vec<String> {
    let mut heard = Vec::new();
    loop {
        let next = client.recv_until(|m| match m {
            ServerMsg::Joined { nicks } => Some(Err(nicks.iter().map(|nick| format!("+{nick}")).collect())),
            ServerMsg::Left { nicks } => Some(Err(nicks.iter().map(|nick| format!("-{nick}")).collect())),
            ServerMsg::Unlisted { count } => Some(Ok(*count)),
            _ => None,
        });
        match next {
            Ok(now) if now == count => return heard,
            Ok(_) => {}
            Err(names) => heard.extend::<Vec<String>>(names),
        }
    }
}

/// [P-28] The list names the first `--max-listed` online; UNLISTED counts
/// the rest, and the longest online of them moves up when a listed user goes.
#[test]
fn a_full_list_counts_the_rest_and_the_longest_online_moves_up() {
    let server = TestServer::start(&["--max-listed", "2"]);
    let (mut alice, _) = server.register("alice");
    let (bob, _) = server.register("bob");
    let (mut carol, _) = server.register("carol");
    assert_eq!(users(&mut carol), ["alice", "bob"], "carol comes third: counted, not named");
    assert!(until_unlisted(&mut carol, 1).is_empty());
    let (mut dave, _) = server.register("dave");
    assert_eq!(users(&mut dave), ["alice", "bob"]);
    assert!(until_unlisted(&mut dave, 2).is_empty());
    assert_eq!(until_unlisted(&mut alice, 2), ["+bob"], "carol and dave are a count");

    // bob leaves: carol, online longest of the unlisted, takes the place.
    drop(bob);
    assert_eq!(until_unlisted(&mut alice, 1), ["-bob", "+carol"]);
    drop(dave);
    assert!(until_unlisted(&mut alice, 0).is_empty(), "everyone fits again");
    assert_eq!(until_unlisted(&mut carol, 0), ["-bob", "+carol"], "carol hears of its own move like everyone");
}
