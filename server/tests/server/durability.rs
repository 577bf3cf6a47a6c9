//! The journal: what SENT confirmed survives kill -9; a torn tail is cut
//! off; a record damaged in the middle stops the start; compaction keeps
//! the journal small without losing anything.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::Error;
use chat_common::auth::Key;
use chat_common::message::{ClientMsg, ServerMsg};

use crate::support::{TestClient, TestServer};

/// A small deterministic generator (xorshift64), so a failing run replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn sent_id(client: &mut TestClient) -> u64 {
    client.recv_until(|m| match m {
        ServerMsg::Sent { id, .. } => Some(*id),
        _ => None,
    })
}

#[test]
fn users_mail_and_exactly_once_survive_kill_9() {
    let mut server = TestServer::start_durable(&[]);
    let (mut alice, alice_token) = server.register("alice");
    let (bob, bob_token) = server.register("bob");
    drop(bob);
    let mut ids = Vec::new();
    for n in 1..=3 {
        alice.say(n, "", &format!("m{n}"));
        ids.push(sent_id(&mut alice));
    }
    server.restart();
    server.wait_log(&["restored 2 users, 3 undelivered messages"]);
    let (mut bob, welcome) = TestClient::login(&server, "bob", Some(&bob_token), 0).unwrap();
    assert!(matches!(welcome, ServerMsg::Welcome { .. }));
    let got: Vec<u64> = (0..3).map(|_| bob.next_msg().id).collect();
    assert_eq!(got, ids);
    // The exactly-once bookkeeping came back too: a re-sent SEND is not stored again.
    let (mut alice, _) = TestClient::login(&server, "alice", Some(&alice_token), 0).unwrap();
    alice.say(3, "", "m3");
    assert_eq!(sent_id(&mut alice), ids[2]);
    alice.say(4, "", "m4");
    let fourth = sent_id(&mut alice);
    assert!(fourth > ids[2], "ids keep increasing across restarts");
    assert_eq!(bob.next_msg().id, fourth);
}

#[test]
fn garbage_after_the_last_record_is_cut_off() {
    let mut server = TestServer::start_durable(&[]);
    let (mut alice, _) = server.register("alice");
    alice.say(1, "", "kept");
    sent_id(&mut alice);
    server.kill();
    let mut journal = OpenOptions::new().append(true).open(server.journal()).unwrap();
    journal.write_all(&[0, 0, 0, 60, 1, 2, 3, 4, 5]).unwrap();
    drop(journal);
    let size = fs::metadata(server.journal()).unwrap().len();
    server.restart();
    server.wait_log(&["cut off a torn or garbled tail of 9 bytes"]);
    server.wait_log(&["restored 1 users, 1 undelivered messages"]);
    assert_eq!(fs::metadata(server.journal()).unwrap().len(), size - 9);
}

#[test]
fn a_flipped_byte_in_the_middle_stops_the_start_with_advice() {
    let mut server = TestServer::start_durable(&[]);
    let (mut alice, _) = server.register("alice");
    for n in 1..=3 {
        alice.say(n, "", "some text");
        sent_id(&mut alice);
    }
    server.kill();
    let mut bytes = fs::read(server.journal()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(server.journal(), &bytes).unwrap();
    let (code, stderr) = server.start_failing();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is damaged (bad tag) and valid records follow it"), "{stderr}");
    assert!(stderr.contains("Restore it from a backup"), "{stderr}");
    assert_eq!(fs::read(server.journal()).unwrap(), bytes, "a refused start changes nothing");
}

#[test]
fn compaction_shrinks_the_journal_and_keeps_what_is_undelivered() {
    let mut server = TestServer::start_durable(&["--compact-bytes", "20000"]);
    let (mut alice, alice_token) = server.register("alice");
    let (carol, carol_token) = server.register("carol");
    drop(carol);
    let text = "x".repeat(200);
    for n in 1..=150 {
        alice.say(n, "alice", &text);
        let id = sent_id(&mut alice);
        alice.send(&ClientMsg::Ack { up_to: id });
    }
    alice.say(151, "carol", "for carol");
    sent_id(&mut alice);
    server.wait_log(&["journal compacted"]);
    assert!(fs::metadata(server.journal()).unwrap().len() < 20000);
    server.restart();
    let (mut carol, _) = TestClient::login(&server, "carol", Some(&carol_token), 0).unwrap();
    assert_eq!(carol.next_msg().text, "for carol");
    // Acknowledged history did not come back (only the unacknowledged
    // echo of the direct message did); new ids follow the old ones.
    let (mut alice, _) = TestClient::login(&server, "alice", Some(&alice_token), 0).unwrap();
    assert_eq!(alice.next_msg().text, "for carol");
    alice.say(152, "", "after");
    let msg = alice.next_msg();
    assert_eq!(msg.text, "after");
    assert!(msg.id > 151);
}

/// Handshake and LOGIN as `nick`, or an error if the server is down.
fn connect(at: &(SocketAddr, Key), nick: &str, token: &[u8; 32], last_seen: u64) -> Result<TestClient, Error> {
    let (client, _) = TestClient::login_at(at.0, &at.1, nick, Some(token), last_seen)?;
    Ok(client)
}

#[test]
fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    const TOTAL: u64 = 300;
    let mut server = TestServer::start_durable(&[]);
    let (alice, alice_token) = server.register("alice");
    let (bob, bob_token) = server.register("bob");
    let (carol, carol_token) = server.register("carol");
    drop((alice, bob, carol));
    // Restarts keep the port, so the threads can keep the address.
    let view = Arc::new((server.addr, server.key.clone()));
    let done = Arc::new(AtomicBool::new(false));

    // Alice sends as fast as SENT allows, re-sending what was unconfirmed
    // after every reconnect; bob stays online, dropping duplicates by id.
    let publisher = {
        let view = view.clone();
        thread::spawn(move || {
            let mut confirmed = 0u64;
            while confirmed < TOTAL {
                let Ok(mut client) = connect(&view, "alice", &alice_token, 0) else {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let mut next = confirmed + 1;
                let _ = (|| -> Result<(), Error> {
                    while confirmed < TOTAL {
                        while next <= TOTAL && next - confirmed <= 32 {
                            let text = format!("m{next}");
                            client.try_send(&ClientMsg::Send { client_id: next, to: String::new(), text })?;
                            next += 1;
                        }
                        match client.recv()? {
                            ServerMsg::Sent { client_id, .. } => confirmed = confirmed.max(client_id),
                            ServerMsg::Msg(msg) => client.try_send(&ClientMsg::Ack { up_to: msg.id })?,
                            _ => {}
                        }
                    }
                    Ok(())
                })();
            }
        })
    };
    let receiver = {
        let (view, done) = (view.clone(), done.clone());
        thread::spawn(move || {
            let (mut texts, mut last_seen) = (Vec::new(), 0);
            while texts.len() < TOTAL as usize && !done.load(Ordering::Relaxed) {
                let Ok(mut client) = connect(&view, "bob", &bob_token, last_seen) else {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                };
                while texts.len() < TOTAL as usize {
                    match client.recv() {
                        Ok(ServerMsg::Msg(msg)) if msg.id > last_seen => {
                            last_seen = msg.id;
                            texts.push(msg.text);
                            let _ = client.try_send(&ClientMsg::Ack { up_to: msg.id });
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
            texts
        })
    };

    let mut rng = Rng(0x5eed_cafe);
    for _ in 0..6 {
        thread::sleep(Duration::from_millis(30 + rng.below(200)));
        server.restart();
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while !publisher.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(publisher.is_finished(), "publisher did not finish; log:\n{}", server.log_text());
    publisher.join().unwrap();
    while !receiver.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::Relaxed);
    let bob_texts = receiver.join().unwrap();
    let expected: Vec<String> = (1..=TOTAL).map(|n| format!("m{n}")).collect();
    assert_eq!(bob_texts, expected, "bob, online through the crashes");

    server.restart();
    let mut carol = connect(&view, "carol", &carol_token, 0).unwrap();
    let carol_texts: Vec<String> = (0..TOTAL).map(|_| carol.next_msg().text).collect();
    assert_eq!(carol_texts, expected, "carol, offline through the crashes");
}
