//! Issue 4, test 2: messages sent while a user is away arrive when they
//! come back, all of them, in order, once, and never again after that.

use crate::support::{Msg, TestClient, TestServer, temp_dir};

#[test]
fn offline_messages_arrive_once_in_order_after_a_restart() {
    let server = TestServer::start();
    let states = temp_dir("offline");
    let start = |nick: &str| TestClient::start(server.port, &server.key_file(), nick, &states.join(nick));

    let mut alice = start("alice");
    alice.expect("connected");
    let mut bob = start("bob");
    bob.expect("connected");
    alice.say("before bob leaves");
    bob.expect_msg("before bob leaves");
    assert!(bob.quit().success());
    alice.expect("left\tbob");

    let texts: Vec<String> = (1..=100).map(|i| format!("while you were away {i}")).collect();
    alice.say_all(&texts);
    alice.expect_msg("while you were away 100");

    let mut bob = start("bob");
    bob.expect("connected");
    bob.expect_msg("while you were away 100");
    // A message sent after bob is back marks the end of the mailbox.
    alice.say("welcome back");
    bob.expect_msg("welcome back");
    let got: Vec<Msg> = bob.msgs();
    let got_texts: Vec<&str> = got.iter().map(|msg| msg.text.as_str()).collect();
    let mut want: Vec<&str> = texts.iter().map(String::as_str).collect();
    want.push("welcome back");
    assert_eq!(got_texts, want, "exactly the 100, in order, once, and nothing seen before");
    assert!(got.windows(2).all(|pair| pair[0].id < pair[1].id), "ids increase: {got:?}");
    assert!(bob.quit().success());

    // Nothing is printed twice across runs with the same state directory.
    let mut bob = start("bob");
    bob.expect("connected");
    alice.say("third visit");
    bob.expect_msg("third visit");
    assert_eq!(bob.msgs().len(), 1, "only the new message: {:?}", bob.msgs());
    assert!(bob.quit().success());
    assert!(alice.quit().success());
}
