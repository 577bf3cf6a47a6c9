//! Issue 4, test 3: the server is stopped and started again while clients
//! run; they reconnect by themselves, and what was typed meanwhile arrives
//! exactly once.

use crate::support::{TestClient, TestServer, temp_dir};

#[test]
fn clients_reconnect_after_a_server_restart_and_nothing_typed_is_lost_or_doubled() {
    let server = TestServer::start();
    let (port, key_file) = (server.port, server.key_file());
    let states = temp_dir("restart");
    let start = |nick: &str| TestClient::start(port, &key_file, nick, &states.join(nick));

    let mut alice = start("alice");
    alice.expect("connected");
    let mut bob = start("bob");
    bob.expect("connected");
    alice.say("before the restart");
    bob.expect_msg("before the restart");

    let server_dir = server.kill();
    alice.expect("disconnected\t");
    bob.expect("disconnected\t");
    let typed: Vec<String> = (1..=5).map(|i| format!("typed while the server was down {i}")).collect();
    alice.say_all(&typed);
    bob.say("/msg alice bob typed this while the server was down");

    let _server = TestServer::start_in(server_dir, port);
    alice.expect("connected");
    bob.expect("connected");
    for text in &typed {
        bob.expect_msg(text);
    }
    alice.expect_msg("bob typed this while the server was down");
    alice.say("after the restart");
    bob.expect_msg("after the restart");
    alice.expect_msg("after the restart");

    for client in [&mut alice, &mut bob] {
        assert!(!client.seen.iter().any(|line| line.starts_with("rejected")), "{:?}", client.seen);
        let texts: Vec<String> = client.msgs().into_iter().map(|msg| msg.text).collect();
        let others = ["before the restart", "after the restart", "bob typed this while the server was down"];
        for text in typed.iter().map(String::as_str).chain(others) {
            let count = texts.iter().filter(|t| *t == text).count();
            assert_eq!(count, 1, "{} saw {text:?} {count} times: {texts:?}", client.nick);
        }
    }
    assert!(alice.quit().success());
    assert!(bob.quit().success());
}
