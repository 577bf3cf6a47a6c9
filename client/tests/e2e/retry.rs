//! Issue 16, item 4: what the server cannot store yet is never dropped
//! [P-27]. A RETRY keeps that message and every later one in the outbox;
//! after the retry interval they go again, in order, on the same
//! connection, and each is stored once. DROPPED becomes a line of its own
//! [P-25]. Against the scripted server, which refuses on cue and records
//! the order of every SEND, and against the real one with tiny limits.

use std::time::Duration;

use crate::scripted_server::{FULL, Outcome, Script, ScriptedServer};
use crate::support::{RETRY_SECS, TestClient, TestServer, temp_dir};

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
    // Message 1 held the outbox each time: it goes again no sooner than the
    // interval after its RETRY, and every round starts with it.
    let retry = Duration::from_secs_f64(RETRY_SECS.parse().unwrap());
    let ones: Vec<_> = received.iter().filter(|send| send.client_id == 1).collect();
    for pair in ones.windows(2) {
        assert_eq!(pair[0].outcome, Outcome::Retry, "{received:#?}");
        assert!(pair[1].at - pair[0].at >= retry, "sent again too soon: {received:#?}");
    }
    for pair in received.windows(2) {
        if pair[1].client_id < pair[0].client_id {
            assert_eq!(pair[1].client_id, 1, "a round starts with the held message: {received:#?}");
        }
    }
    assert_eq!(received.iter().filter(|send| send.outcome == Outcome::Retry && send.client_id == 1).count(), 2);
    assert!(ana.quit().success());
}

/// [P-27] The real server with room for three messages (its smallest
/// store): what does not fit waits in the client, which keeps trying, and
/// goes once the away reader has taken the others; everyone sees
/// everything once, in order.
#[test]
fn a_full_real_server_makes_the_client_wait_and_nothing_typed_is_lost() {
    let server = TestServer::start_with(&["--store-bytes", "1024"]);
    let states = temp_dir("full");
    let start = |nick: &str| TestClient::start(server.port, &server.key_file(), nick, &states.join(nick));
    let mut bob = start("bob");
    bob.expect("connected\tbob");
    assert!(bob.quit().success());

    let mut ana = start("ana");
    ana.expect("connected\tana");
    // About 300 bytes each, so the fourth does not fit while bob is away.
    let texts: Vec<String> = (1..=5).map(|n| format!("message {n} {}", "x".repeat(290))).collect();
    ana.say_all(&texts);
    let retry = ana.expect("retry\t");
    assert!(retry.contains("\tserver storage is full\t"), "{retry}");

    // Bob reads what is stored, which makes room for the rest.
    let mut bob = start("bob");
    for text in &texts {
        bob.expect_msg(text);
    }
    ana.expect_msg(&texts[4]);
    for client in [&ana, &bob] {
        let got: Vec<String> = client.msgs().into_iter().map(|msg| msg.text).collect();
        assert_eq!(got, texts, "{} saw each once, in the order typed", client.nick);
    }
    assert!(ana.quit().success() && bob.quit().success());
}

/// [P-25] The real server keeps two messages for an away reader: the
/// reader is told how many were dropped, then gets the two newest.
#[test]
fn a_reader_whose_mailbox_overflowed_is_told_how_many_were_dropped() {
    let server = TestServer::start_with(&["--mailbox", "2"]);
    let states = temp_dir("dropped");
    let start = |nick: &str| TestClient::start(server.port, &server.key_file(), nick, &states.join(nick));
    let mut bob = start("bob");
    bob.expect("connected\tbob");
    assert!(bob.quit().success());
    let mut ana = start("ana");
    ana.expect("connected\tana");
    let texts: Vec<String> = (1..=5).map(|n| format!("while bob was away {n}")).collect();
    ana.say_all(&texts);
    ana.expect_msg("while bob was away 5");

    let mut bob = start("bob");
    assert_eq!(bob.expect("dropped\t"), "dropped\t3\t2");
    bob.expect_msg("while bob was away 5");
    let got: Vec<String> = bob.msgs().into_iter().map(|msg| msg.text).collect();
    assert_eq!(got, texts[3..], "the two newest");
    assert!(ana.quit().success() && bob.quit().success());
}
