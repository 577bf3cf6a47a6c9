//! The attack lab does what the README's "See the HMAC at work" says:
//! through the `mitm` example, a flipped, replayed, dropped or reflected
//! frame is caught, logged, and the clients recover with nothing lost or
//! doubled.

use std::io::{BufRead, BufReader};

use std::process::{Child, Command, Stdio};

use crate::support::{self, TestClient, TestServer, temp_dir};

/// A running proxy, killed when dropped.
struct Mitm(Child, u16);

impl Mitm {
    fn start(server_port: u16, attack: &str, frame: u32) -> Mitm {
        let mut child = Command::new(support::mitm_binary())
            .args(["--listen", "127.0.0.1:0", "--to", &format!("127.0.0.1:{server_port}"), "--show"])
            .args([attack, &frame.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // Keep reading what it shows, so it never blocks on a full pipe.
        std::thread::spawn(move || stdout.lines().map_while(Result::ok).for_each(drop));
        let port =
            line.split_whitespace().nth(3).and_then(|a| a.trim_end_matches(',').rsplit(':').next()?.parse().ok());
        Mitm(child, port.unwrap_or_else(|| panic!("unexpected first line {line:?}")))
    }
}

impl Drop for Mitm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Frame 8 is alice's first SEND: 1–4 handshake, 5 LOGIN, 6 WELCOME, 7 USERS.
const FIRST_SEND: u32 = 8;

#[test]
fn every_attack_of_the_lab_is_caught_and_nothing_is_lost_or_doubled() {
    for (attack, logged) in [
        ("--flip", "alice frame rejected: bad tag"),
        ("--replay", "alice frame rejected: wrong sequence number (got 1, expected 2)"),
        ("--drop", "alice frame rejected: wrong sequence number (got 2, expected 1)"),
        ("--reflect", "alice disconnected"),
    ] {
        let server = TestServer::start();
        let states = temp_dir("lab");
        let mut bob = TestClient::start(server.port, &server.key_file(), "bob", &states.join("bob"));
        bob.expect("users");
        let mitm = Mitm::start(server.port, attack, FIRST_SEND);
        let mut alice = TestClient::start(mitm.1, &server.key_file(), "alice", &states.join("alice"));
        alice.expect("users");
        alice.say("hello");
        alice.say("again");
        bob.expect_msg("again");
        alice.expect_msg("again");
        for client in [&mut alice, &mut bob] {
            let texts: Vec<String> = client.msgs().into_iter().map(|m| m.text).collect();
            assert_eq!(texts, ["hello", "again"], "{attack}: {} saw {:?}", client.nick, client.seen);
        }
        let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap();
        assert!(log.contains(logged), "{attack}: the server log lacks {logged:?}:\n{log}");
        if attack == "--reflect" {
            let caught =
                alice.seen.iter().any(|line| line.starts_with("disconnected\tbad frame from the server: bad tag"));
            assert!(caught, "alice did not catch her own frame sent back: {:?}", alice.seen);
        }
        assert!(alice.quit().success() && bob.quit().success());
    }
}
