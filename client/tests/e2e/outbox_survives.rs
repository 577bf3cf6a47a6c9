//! The outbox outlives the client: messages typed while no server answers
//! are kept when the client exits, and sent exactly once by the next run.

use std::fs;
use std::net::TcpListener;

use chat_common::keyfile::create_key;

use crate::support::{TestClient, TestServer, temp_dir};

#[test]
fn messages_typed_with_no_server_are_kept_and_sent_once_by_the_next_run() {
    // A port nothing listens on (yet).
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server_dir = temp_dir("no-server");
    let key_file = server_dir.join("chat.key");
    create_key(&key_file).unwrap();
    let state = temp_dir("outbox").join("ana");

    let mut ana = TestClient::start(port, &key_file, "ana", &state);
    let down = ana.expect("disconnected\t");
    assert!(down.starts_with("disconnected\tserver not reachable at 127.0.0.1:"), "{down}");
    assert!(down.contains("nothing answers on that port") && !down.contains("os error"), "plain words: {down}");
    ana.say("typed with no server");
    ana.say("/msg ana a note to myself");
    assert!(ana.quit().success(), "the end of input is a normal end even with unsent messages");
    let log = fs::read_to_string(state.join("client.log")).unwrap();
    assert!(log.contains("2 messages not sent yet; they are kept for the next run"), "{log}");

    let _server = TestServer::start_in(server_dir, port);
    let mut ana = TestClient::start(port, &key_file, "ana", &state);
    // What the last run left is reported first, as not yet confirmed.
    assert_eq!(ana.expect("queued\t"), "queued\t1\t*\ttyped with no server");
    assert_eq!(ana.expect("queued\t"), "queued\t2\tana\ta note to myself");
    ana.expect("connected");
    ana.expect_msg("a note to myself");
    ana.say("typed after the restart");
    ana.expect_msg("typed after the restart");
    let texts: Vec<String> = ana.msgs().into_iter().map(|msg| msg.text).collect();
    assert_eq!(texts, ["typed with no server", "a note to myself", "typed after the restart"]);
    // The SENT may come after the echo; the ids go on from the saved next id.
    ana.expect("sent\t1\t");
    ana.expect("sent\t3\t");
    assert!(ana.quit().success());
}
