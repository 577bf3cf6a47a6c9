//! Issue 4, test 5: a second client claiming a registered nickname without
//! its owner token is refused for good, and the owner's mailbox is intact.

use std::path::Path;

use crate::support::{TestClient, TestServer, temp_dir};

#[test]
fn impostor_without_the_token_is_rejected_and_the_mailbox_is_untouched() {
    let server = TestServer::start();
    let states = temp_dir("impostor");
    let start = |nick: &str, state: &Path| TestClient::start(server.port, &server.key_file(), nick, state);

    let mut bob = start("bob", &states.join("bob"));
    bob.expect("connected");
    assert!(bob.quit().success());
    let mut alice = start("alice", &states.join("alice"));
    alice.expect("connected");
    alice.say("/msg bob for bob only");
    alice.say("for everyone");
    alice.expect_msg("for everyone");

    // Another state directory: no owner token for bob. Case does not matter.
    let mut impostor = start("BOB", &states.join("impostor"));
    let status = impostor.wait_exit();
    assert_eq!(status.code(), Some(1), "impostor saw: {:?}", impostor.seen);
    assert!(impostor.seen.iter().any(|line| line.starts_with("rejected\t")), "{:?}", impostor.seen);
    assert!(impostor.seen.iter().all(|line| !line.starts_with("connected") && !line.starts_with("msg")));

    let mut bob = start("bob", &states.join("bob"));
    bob.expect("connected");
    bob.expect_msg("for everyone");
    let texts: Vec<String> = bob.msgs().into_iter().map(|msg| msg.text).collect();
    assert_eq!(texts, ["for bob only", "for everyone"]);
    assert!(bob.quit().success());
    assert!(alice.quit().success());
}
