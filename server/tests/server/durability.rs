//! The journal: what SENT confirmed survives kill -9; a torn tail is cut
//! off, and only a torn tail; a damaged record stops the start until
//! `--repair`, which keeps a copy; compaction keeps the journal small
//! without losing anything.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::Error;
use chat_common::auth::{Key, Sealer, journal_key};
use chat_common::message::{ChatMsg, ClientMsg, ServerMsg, put_u64};
use chat_server::journal::record_kind;

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
fn a_last_record_the_file_ends_inside_is_cut_off_as_a_torn_write() {
    let mut server = TestServer::start_durable(&[]);
    let (mut alice, _) = server.register("alice");
    alice.say(1, "", "kept");
    sent_id(&mut alice);
    server.kill();
    let mut journal = OpenOptions::new().append(true).open(server.journal()).unwrap();
    // A record that says it is 60 bytes long, of which 5 reached the disk.
    journal.write_all(&[0, 0, 0, 60, 1, 2, 3, 4, 5]).unwrap();
    drop(journal);
    let size = fs::metadata(server.journal()).unwrap().len();
    server.restart();
    server.wait_log(&["cut off a torn last record of 9 bytes"]);
    server.wait_log(&["restored 1 users, 1 undelivered messages from"]);
    assert_eq!(fs::metadata(server.journal()).unwrap().len(), size - 9);
}

/// A student holds the shared key, so can compute the key HKDF derives for
/// the journal, and could put a record sealed under it, at any sequence
/// number, into a text: if the server crashed while writing that message,
/// the text would sit in a torn tail. (A real text cannot hold the length
/// prefix's zero bytes, a control character, but the journal does not rely
/// on that.) Records are tagged under a key that also mixes in the
/// header's random salt, which no client ever sees, so the torn tail is
/// still only a torn tail.
#[test]
fn a_record_hidden_in_a_text_in_a_torn_tail_does_not_pass_for_a_record() {
    let mut server = TestServer::start_durable(&[]);
    let (mut alice, _) = server.register("alice");
    alice.say(1, "", "kept");
    sent_id(&mut alice);
    server.kill();
    let student_key = journal_key(&server.key);
    let mut hidden = Vec::new();
    for seq in 0..16 {
        let mut next_id = Vec::new();
        put_u64(&mut next_id, 1000);
        Sealer::starting_at(&student_key, seq).seal(record_kind::NEXT_ID, &next_id, &mut hidden);
    }
    // The MESSAGE record the server would write for that text; the crash
    // leaves all but its last 10 bytes.
    let msg = ChatMsg { id: 2, time_ms: 0, from: "alice".into(), to: String::new(), text: "x".repeat(hidden.len()) };
    let mut payload = Vec::new();
    put_u64(&mut payload, 2);
    ServerMsg::Msg(msg).encode_payload(&mut payload);
    let text_at = payload.len() - hidden.len();
    payload[text_at..].copy_from_slice(&hidden);
    let mut record = Vec::new();
    Sealer::starting_at(&[0; 32], 2).seal(record_kind::MESSAGE, &payload, &mut record);
    record.truncate(record.len() - 10);
    OpenOptions::new().append(true).open(server.journal()).unwrap().write_all(&record).unwrap();

    server.restart();
    server.wait_log(&[&format!("cut off a torn last record of {} bytes", record.len())]);
    server.wait_log(&["restored 1 users, 1 undelivered messages"]);
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
    assert!(stderr.contains("is damaged (") && stderr.contains("which a torn write cannot do"), "{stderr}");
    assert!(stderr.contains("Restore the journal from a backup, or start once with --repair"), "{stderr}");
    assert_eq!(fs::read(server.journal()).unwrap(), bytes, "a refused start changes nothing");
}

#[test]
fn repair_cuts_a_damaged_record_after_keeping_a_copy_of_the_journal() {
    let mut server = TestServer::start_durable(&[]);
    let (mut alice, _) = server.register("alice");
    alice.say(1, "", "before");
    sent_id(&mut alice);
    let intact = fs::metadata(server.journal()).unwrap().len() as usize;
    alice.say(2, "", "damaged");
    sent_id(&mut alice);
    server.kill();
    let mut bytes = fs::read(server.journal()).unwrap();
    bytes[intact + 20] ^= 0x80;
    fs::write(server.journal(), &bytes).unwrap();
    assert_eq!(server.start_failing().0, 1, "refused without --repair");

    let data = server.dir.join("data");
    let flags = ["--data-dir", data.to_str().unwrap(), "--repair"];
    let repaired = TestServer::start_in(server.dir.clone(), server.key.clone(), &flags);
    let line = repaired.wait_log(&["--repair: cut", "bytes off the journal; the file as it was is in"]);
    assert!(line.contains(&format!("cut {} bytes", bytes.len() - intact)), "{line}");
    repaired.wait_log(&["restored 1 users, 1 undelivered messages"]);
    let copy = line.rsplit(" is in ").next().unwrap();
    assert_eq!(fs::read(copy).unwrap(), bytes, "the copy is the journal as it was");
    assert_eq!(fs::read(server.journal()).unwrap(), bytes[..intact], "cut at the damaged record");
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

/// Alice sends carol (offline) numbered messages until the log holds
/// `line` `times`; `sent` counts them all.
fn say_until(alice: &mut TestClient, server: &TestServer, sent: &mut u64, line: &str, times: usize) {
    while server.log_text().matches(line).count() < times {
        assert!(*sent < 300, "no {line:?} after {sent} messages; log:\n{}", server.log_text());
        *sent += 1;
        alice.say(*sent, "carol", &format!("{sent} {}", "c".repeat(300)));
        sent_id(alice);
    }
}

#[test]
fn a_compaction_that_fails_is_tried_again_later_and_loses_nothing() {
    let mut server = TestServer::start_durable(&["--compact-bytes", "1024"]);
    let (mut alice, alice_token) = server.register("alice");
    let (carol, carol_token) = server.register("carol");
    drop(carol);
    let carol_gets_all = |server: &TestServer, total: u64| {
        let (mut carol, _) = TestClient::login(server, "carol", Some(&carol_token), 0).unwrap();
        let got: Vec<String> = (0..total).map(|_| carol.next_msg().text).collect();
        let expected: Vec<String> = (1..=total).map(|n| format!("{n} {}", "c".repeat(300))).collect();
        assert_eq!(got, expected, "every message once, in order");
    };
    // Compaction writes journal.new; a directory in its way makes it fail.
    let blocker = server.dir.join("data").join("journal.new");
    fs::create_dir(&blocker).unwrap();
    let mut sent = 0;
    say_until(&mut alice, &server, &mut sent, "journal compaction failed", 3);
    // What each failed compaction took went to the old journal.
    server.restart();
    carol_gets_all(&server, sent);

    fs::remove_dir(&blocker).unwrap();
    let (mut alice, _) = TestClient::login(&server, "alice", Some(&alice_token), 0).unwrap();
    say_until(&mut alice, &server, &mut sent, "journal compacted", 1);
    server.restart();
    carol_gets_all(&server, sent);
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
