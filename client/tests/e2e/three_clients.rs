//! Issue 4, test 1: public and direct messages reach exactly the right
//! people, and everyone sees the right users, joined and left events.

use crate::support::{Msg, TestClient, TestServer, temp_dir};

/// The nicknames a `users` line lists, sorted.
fn users(line: &str) -> Vec<String> {
    let mut nicks: Vec<String> = line.strip_prefix("users\t").unwrap().split(',').map(str::to_owned).collect();
    nicks.sort();
    nicks
}

#[test]
fn public_and_direct_messages_reach_exactly_the_right_people() {
    let server = TestServer::start();
    let states = temp_dir("three");
    let start = |nick: &str| TestClient::start(server.port, &server.key_file(), nick, &states.join(nick));

    let mut alice = start("alice");
    assert_eq!(alice.expect("connected"), "connected\talice");
    assert_eq!(users(&alice.expect("users")), ["alice"]);
    let mut bob = start("bob");
    bob.expect("connected");
    assert_eq!(users(&bob.expect("users")), ["alice", "bob"]);
    assert_eq!(alice.expect("joined"), "joined\tbob");
    let mut carol = start("carol");
    carol.expect("connected");
    assert_eq!(users(&carol.expect("users")), ["alice", "bob", "carol"]);
    assert_eq!(alice.expect("joined"), "joined\tcarol");
    assert_eq!(bob.expect("joined"), "joined\tcarol");

    alice.say("hello, everyone");
    let public = Msg { id: 0, from: "alice".into(), to: "*".into(), text: "hello, everyone".into() };
    let ids: Vec<u64> = [&mut alice, &mut bob, &mut carol]
        .into_iter()
        .map(|client| {
            let got = client.expect_msg("hello, everyone");
            assert_eq!(Msg { id: 0, ..got.clone() }, public, "as {} saw it", client.nick);
            got.id
        })
        .collect();
    assert!(ids.iter().all(|&id| id == ids[0]), "one id for everyone: {ids:?}");
    alice.expect("sent\t1\t");

    bob.say("/msg carol only for carol");
    let direct = bob.expect_msg("only for carol");
    assert_eq!((direct.from.as_str(), direct.to.as_str()), ("bob", "carol"));
    assert_eq!(carol.expect_msg("only for carol"), direct);

    // Mailboxes deliver in id order, so once alice has a later message she
    // would already have had the direct one if it had been hers.
    carol.say("a later public message");
    for client in [&mut alice, &mut bob, &mut carol] {
        client.expect_msg("a later public message");
    }
    assert!(alice.msgs().iter().all(|msg| msg.text != "only for carol"), "alice saw: {:?}", alice.msgs());

    assert!(carol.quit().success());
    assert_eq!(alice.expect("left"), "left\tcarol");
    assert_eq!(bob.expect("left"), "left\tcarol");
    assert!(bob.quit().success());
    assert_eq!(alice.expect("left"), "left\tbob");
    assert!(alice.quit().success());
    for client in [&alice, &bob, &carol] {
        let mut ids: Vec<u64> = client.msgs().iter().map(|msg| msg.id).collect();
        let count = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), count, "{} printed a message twice", client.nick);
    }
}
