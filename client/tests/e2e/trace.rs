//! `chat-client --trace`: one line per frame on stderr, in
//! docs/PROTOCOL.md's format ("Frame traces"), for a whole session, and
//! never the key, the owner token or a derived key.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::PING_INTERVAL;
use chat_common::auth::{SessionKeys, token_verifier, transcript_hash};
use chat_common::frame::LEN_PREFIX;
use chat_common::keyfile::load_key;
use chat_common::trace::{SHORT_BYTES, kind_name};

use crate::support::{PATIENCE, TestClient, TestServer, temp_dir};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trace lines a client wrote on stderr (its `client.log`): they start
/// with a time of day.
fn trace_lines(state_dir: &Path) -> Vec<String> {
    let log = fs::read_to_string(state_dir.join("client.log")).unwrap_or_default();
    log.lines().filter(|line| line.as_bytes().get(2) == Some(&b':')).map(str::to_owned).collect()
}

/// Waits until the client's trace has a line for which `wanted` holds.
fn wait_for_line(state_dir: &Path, within: Duration, wanted: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + within;
    while !trace_lines(state_dir).iter().any(|line| wanted(line)) {
        assert!(Instant::now() < deadline, "no such trace line; saw:\n{}", trace_lines(state_dir).join("\n"));
        thread::sleep(Duration::from_millis(20));
    }
}

/// `(arrow, kind)` of a line, after checking it against the format.
fn arrow_and_kind(line: &str, peer: &str) -> String {
    let columns: Vec<&str> = line.splitn(7, ' ').collect();
    let [time, arrow, shown_peer, seq, kind, len, ..] = columns[..] else { panic!("too few columns: {line}") };
    assert!(time.len() == 12 && time.as_bytes()[5] == b':' && time.as_bytes()[8] == b'.', "{line}");
    assert!(arrow == "→" || arrow == "←", "{line}");
    assert_eq!(shown_peer, peer, "{line}");
    assert!(seq == "-" || seq.strip_prefix('#').is_some_and(|n| n.parse::<u64>().is_ok()), "{line}");
    assert!((0..=u8::MAX).any(|k| kind_name(k) == Some(kind)), "{line}");
    assert!(len.strip_prefix("len=").is_some_and(|n| n.parse::<u32>().is_ok()), "{line}");
    if seq != "-" || kind == "PROOF" || kind == "ACCEPT" {
        assert!(line.contains(" tag=") && line.ends_with(" ✓"), "{line}");
    }
    format!("{arrow} {kind}")
}

#[test]
fn trace_shows_a_whole_session_on_stderr_in_the_documented_format() {
    let dir = temp_dir("trace");
    let server = TestServer::start();
    let (ana_dir, bob_dir) = (dir.join("ana"), dir.join("bob"));
    let mut ana = TestClient::start_with(server.port, &server.key_file(), "ana", &ana_dir, &["--trace"]);
    ana.expect("connected\tana");
    let mut bob = TestClient::start(server.port, &server.key_file(), "bob", &bob_dir);
    bob.expect("connected\tbob");
    bob.say("hola, ana");
    ana.expect_msg("hola, ana");
    ana.say("hello, bob");
    ana.expect("sent\t1\t");
    ana.expect_msg("hello, bob");
    // The client PINGs after PING_INTERVAL with nothing to send [P-26].
    wait_for_line(&ana_dir, PING_INTERVAL + PATIENCE, |line| line.contains(" PONG "));

    let peer = format!("127.0.0.1:{}", server.port);
    let lines = trace_lines(&ana_dir);
    let shown: Vec<String> = lines.iter().map(|line| arrow_and_kind(line, &peer)).collect();
    let at = |wanted: &str| shown.iter().position(|kind| kind == wanted);
    let handshake = ["→ HELLO", "← CHALLENGE", "→ PROOF", "← ACCEPT", "→ LOGIN", "← WELCOME", "← USERS"];
    assert_eq!(shown[..7], handshake, "{}", lines.join("\n"));
    for wanted in ["← JOINED", "← MSG", "→ ACK", "→ SEND", "← SENT", "→ PING", "← PONG"] {
        assert!(at(wanted).is_some(), "no {wanted}:\n{}", lines.join("\n"));
    }
    assert!(at("← SENT") > at("→ SEND") && at("← PONG") > at("→ PING"), "{}", lines.join("\n"));
    assert!(lines[0].ends_with(" nick=ana") && lines[4].contains(" #0 LOGIN len=82 last_seen=0 register=yes "));
    let send = &lines[at("→ SEND").unwrap()];
    assert!(send.contains(" SEND len=63 client_id=1 to=* text=\"hello, bob\" tag="), "{send}");
    // Each direction numbers its sealed frames 0, 1, 2, ... [P-12].
    for arrow in ["→", "←"] {
        let seqs: Vec<String> = lines
            .iter()
            .filter(|line| line.split(' ').nth(1) == Some(arrow))
            .filter_map(|line| line.split(' ').nth(3).and_then(|seq| seq.strip_prefix('#')).map(str::to_owned))
            .collect();
        let climbing: Vec<String> = (0..seqs.len()).map(|n| n.to_string()).collect();
        assert_eq!(seqs, climbing, "{arrow}: {}", lines.join("\n"));
    }
    let bobs = lines.iter().find(|line| line.contains(" MSG ") && line.contains(" from=bob ")).unwrap();
    assert!(bobs.contains(" to=* text=\"hola, ana\" tag="), "{bobs}");
    // Nothing but trace lines and events: no trace without --trace.
    assert!(trace_lines(&bob_dir).is_empty(), "bob did not ask for a trace");
    fs::remove_dir_all(&dir).unwrap();
}

/// A relay between one client and the server that records each
/// connection's bytes, both ways: (client → server, server → client).
type Recorded = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

fn recording_relay(server_port: u16) -> (u16, Recorded) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorded: Recorded = Arc::default();
    let connections = recorded.clone();
    thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else { return };
            let index = {
                let mut all = connections.lock().unwrap();
                all.push((Vec::new(), Vec::new()));
                all.len() - 1
            };
            for (mut from, mut to, upstream) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap(), true),
                (server.try_clone().unwrap(), client.try_clone().unwrap(), false),
            ] {
                let connections = connections.clone();
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        let mut all = connections.lock().unwrap();
                        let way = if upstream { &mut all[index].0 } else { &mut all[index].1 };
                        way.extend_from_slice(&buf[..n]);
                        drop(all);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    (port, recorded)
}

/// The first frame of a byte stream (length prefix included).
fn first_frame(bytes: &[u8]) -> &[u8] {
    let len = u32::from_be_bytes(bytes[..LEN_PREFIX].try_into().unwrap()) as usize;
    &bytes[..LEN_PREFIX + len]
}

/// The file named `token` somewhere under `dir`.
fn find_token(dir: &Path) -> PathBuf {
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for path in fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.ends_with("token") {
                return path;
            }
        }
    }
    panic!("no token file under {}", dir.display());
}

#[test]
fn no_client_trace_line_contains_the_key_the_token_or_a_derived_key() {
    let dir = temp_dir("trace-secrets");
    let server = TestServer::start();
    let (port, recorded) = recording_relay(server.port);
    let state = dir.join("cleo");
    // The session that registers, then, after a restart, one keyed with the verifier [P-19].
    for text in ["first run", "second run"] {
        let mut cleo = TestClient::start_with(port, &server.key_file(), "cleo", &state, &["--trace"]);
        cleo.expect("connected\tcleo");
        cleo.say(text);
        cleo.expect_msg(text);
        assert!(cleo.quit().success());
    }
    let key = load_key(&server.key_file()).unwrap();
    let token_text = fs::read_to_string(find_token(&state)).unwrap();
    let token: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&token_text[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .try_into()
        .unwrap();
    let verifier = token_verifier(&token);
    let mut secrets = vec![("key".to_string(), key.0), ("token".to_string(), token)];
    for (n, (up, down)) in recorded.lock().unwrap().iter().enumerate() {
        let transcript = transcript_hash(first_frame(up), first_frame(down));
        // The first connection registered: its keys come from the key alone.
        let keys = SessionKeys::derive(&key, (n > 0).then_some(&verifier), &transcript);
        for (name, secret) in [
            ("client-to-server key", keys.client_to_server),
            ("server-to-client key", keys.server_to_client),
            ("client proof key", keys.client_proof),
            ("server proof key", keys.server_proof),
        ] {
            secrets.push((format!("{name} of connection {}", n + 1), secret));
        }
    }
    assert_eq!(secrets.len(), 2 + 2 * 4, "two connections recorded");
    let lines = trace_lines(&state);
    assert!(lines.len() >= 2 * 9, "{}", lines.join("\n"));
    assert!(lines.iter().any(|line| line.contains(&format!("verifier={}…", &hex(&verifier)[..8]))));
    for line in &lines {
        for (name, secret) in &secrets {
            for window in secret.windows(SHORT_BYTES) {
                assert!(!line.contains(&hex(window)), "a trace line shows part of the {name}: {line}");
            }
        }
        assert!(!line.contains(&hex(&verifier)), "a trace line shows the whole verifier: {line}");
    }
    fs::remove_dir_all(&dir).unwrap();
}
