//! Issue 16, item 4: what the server cannot store yet is never dropped
//! [P-27]. A RETRY keeps that message and every later one in the outbox;
//! after the retry interval they go again, in order, on the same
//! connection, and each is stored once. DROPPED becomes a line of its own
//! [P-25]. The server is the scripted one: the real one says RETRY only
//! when its storage is full.

use std::time::Duration;

use crate::scripted_server::{FULL, Outcome, Script, ScriptedServer};
use crate::support::{RETRY_SECS, TestClient, temp_dir};

#[test]
fn sends_the_server_cannot_store_yet_go_again_in_order_after_the_retry_interval() {
    let dir = temp_dir("retry");
    let server = ScriptedServer::start(&dir.join("server"), Script { refuse: 2, dropped: Some((3, 2)) });
    let mut ana = TestClient::start(server.port, &server.key_file, "ana", &dir.join("ana"));
    ana.expect("connected\tana");
    assert_eq!(ana.expect("dropped\t"), "dropped\t3\t2");
    let texts = ["one", "two", "three"].map(String::from);
    ana.say_all(&texts);
    for text in &texts {
        ana.expect_msg(text);
    }
    assert_eq!(ana.expect("retry\t"), format!("retry\t1\t{FULL}\t{RETRY_SECS}"));
    let got: Vec<String> = ana.msgs().into_iter().map(|msg| msg.text).collect();
    assert_eq!(got, texts, "each once, in the order typed");
    for client_id in 1..=3 {
        ana.expect(&format!("sent\t{client_id}\t"));
    }

    let received = server.received();
    let stored: Vec<(u64, &str)> = received
        .iter()
        .filter(|send| matches!(send.outcome, Outcome::Stored(_)))
        .map(|send| (send.client_id, send.text.as_str()))
        .collect();
    assert_eq!(stored, [(1, "one"), (2, "two"), (3, "three")], "{received:#?}");
    assert!(received.iter().all(|send| send.connection == 0), "no reconnect was needed: {received:#?}");
    // Each round after a RETRY starts again from the refused message, no sooner than the interval.
    let retry = Duration::from_secs_f64(RETRY_SECS.parse().unwrap());
    for pair in received.windows(2) {
        if pair[0].outcome == Outcome::Retry && pair[1].client_id <= pair[0].client_id {
            assert_eq!(pair[1].client_id, 1, "{received:#?}");
            assert!(pair[1].at - pair[0].at >= retry, "sent again too soon: {received:#?}");
        }
    }
    assert_eq!(received.iter().filter(|send| send.outcome == Outcome::Retry && send.client_id == 1).count(), 2);
    assert!(ana.quit().success());
}
