//! Operator mistakes and resource faults, tried as a teacher would: the
//! wrong key, a missing key, a key file others can read or a patterned
//! key, a second server on the same data directory, key rotation, too few
//! file descriptors, a full disk. Each is refused with one clear line, or
//! survived, and none loses anything acknowledged.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chat_common::auth::Key;
use chat_common::keyfile::{create_key, load_key};
use chat_common::message::ServerMsg;
use chat_common::random::random_bytes;

use chat_server::journal::Journal;

use crate::support::{PATIENCE, TestClient, TestServer, temp_dir};

fn sent_id(client: &mut TestClient) -> u64 {
    client.recv_until(|m| match m {
        ServerMsg::Sent { id, .. } => Some(*id),
        _ => None,
    })
}

/// Runs `chat-server` to completion with `args` (for `--rekey`).
fn run_server(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chat-server")).args(args).stdin(Stdio::null()).output().unwrap()
}

/// Writes `text` as a key file with `mode`.
fn write_key_file(path: &Path, text: &str, mode: u32) {
    let _ = fs::remove_file(path);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_wrong_key_is_refused_changes_nothing_and_the_right_key_brings_everything_back() {
    let mut server = TestServer::start_durable(&[]);
    let (mut alice, alice_token) = server.register("alice");
    alice.say(1, "", "kept");
    sent_id(&mut alice);
    server.kill();
    let (key_file, right_file) = (server.dir.join("chat.key"), server.dir.join("right.key"));
    fs::rename(&key_file, &right_file).unwrap();
    let wrong = create_key(&key_file).unwrap();
    let journal = fs::read(server.journal()).unwrap();

    let (code, stderr) = server.start_failing();
    assert_eq!(code, 1, "{stderr}");
    let right = server.key.fingerprint();
    let expected = format!(
        "written under the key with fingerprint {right}, but this key's fingerprint is {}; nothing was changed",
        wrong.fingerprint()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("--key-file") && stderr.contains("--rekey"), "says what to do: {stderr}");
    assert_eq!(fs::read(server.journal()).unwrap(), journal, "the journal is untouched");

    fs::rename(&right_file, &key_file).unwrap();
    server.restart();
    server.wait_log(&["restored 1 users, 1 undelivered messages"]);
    let (mut alice, _) = TestClient::login(&server, "alice", Some(&alice_token), 0).unwrap();
    assert_eq!(alice.next_msg().text, "kept");
}

#[test]
fn no_new_key_is_made_where_a_journal_needs_the_old_one() {
    let mut server = TestServer::start_durable(&[]);
    server.register("alice");
    server.kill();
    let key_file = server.dir.join("chat.key");
    fs::remove_file(&key_file).unwrap();
    let (code, stderr) = server.start_failing();
    assert_eq!(code, 2, "{stderr}");
    let fingerprint = server.key.fingerprint();
    assert!(stderr.contains(&format!("written under the key with fingerprint {fingerprint}")), "{stderr}");
    assert!(stderr.contains("not making a new key") && stderr.contains("--key-file"), "{stderr}");
    assert!(!key_file.exists(), "no key was made");
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused_naming_the_first_port() {
    let mut server = TestServer::start_durable(&[]);
    let (mut alice, _) = server.register("alice");
    let (code, stderr) = server.start_failing();
    assert_eq!(code, 1, "{stderr}");
    let port = server.addr.port();
    assert!(stderr.contains(&format!("in use by another chat-server, listening on port {port}")), "{stderr}");
    // The first one never noticed.
    alice.say(1, "", "still here");
    sent_id(&mut alice);
    server.restart();
    server.wait_log(&["restored 1 users, 1 undelivered messages"]);
}

#[test]
fn a_key_file_others_can_read_and_a_patterned_key_are_refused() {
    let mut server = TestServer::start(&[]);
    server.kill();
    let key_file = server.dir.join("chat.key");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stderr) = server.start_failing();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("mode 0644"), "{stderr}");
    assert!(stderr.trim_end().ends_with(&format!("chmod 600 {}", key_file.display())), "{stderr}");

    write_key_file(&key_file, &format!("{}\n", "00".repeat(32)), 0o600);
    let (code, stderr) = server.start_failing();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a random key"), "{stderr}");
}

#[test]
fn rekey_moves_users_and_mail_to_a_new_key_and_owner_tokens_stay_valid() {
    let mut server = TestServer::start_durable(&[]);
    let (mut alice, _) = server.register("alice");
    let (bob, bob_token) = server.register("bob");
    drop(bob);
    alice.say(1, "bob", "for bob");
    sent_id(&mut alice);
    server.kill();
    let (key_file, new_file, data) = (server.dir.join("chat.key"), server.dir.join("new.key"), server.dir.join("data"));

    let flag = |name: &'static str| Path::new(name);
    let output = run_server(&[flag("--key-file"), &key_file, flag("--data-dir"), &data, flag("--rekey"), &new_file]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let new = load_key(&new_file).unwrap();
    assert_eq!(fs::metadata(&new_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(stdout.contains(&format!("records rewritten under the key in {}", new_file.display())), "{stdout}");
    assert!(stdout.contains(&new.fingerprint()) && stdout.contains("give every client a copy"), "{stdout}");

    let (code, stderr) = server.start_failing();
    assert_eq!(code, 1, "the old key no longer opens the journal: {stderr}");
    assert!(stderr.contains(&format!("fingerprint {}", new.fingerprint())), "{stderr}");

    fs::rename(&new_file, &key_file).unwrap();
    server.key = new;
    server.restart();
    server.wait_log(&["restored 2 users,"]);
    let (mut bob, welcome) = TestClient::login(&server, "bob", Some(&bob_token), 0).unwrap();
    assert!(matches!(welcome, ServerMsg::Welcome { .. }), "bob's token still works: {welcome:?}");
    assert_eq!(bob.next_msg().text, "for bob");
}

/// A journal written under a patterned key before such keys were refused:
/// the server refuses to start with it, and says how to leave it.
#[test]
fn a_journal_under_a_patterned_key_can_be_moved_to_a_random_one() {
    let dir = temp_dir("patterned");
    let (old_file, new_file, data) = (dir.join("zero.key"), dir.join("new.key"), dir.join("data"));
    write_key_file(&old_file, &format!("{}\n", "00".repeat(32)), 0o600);
    drop(Journal::open(&data, &Key([0; 32]), 1024, false, |_| {}).unwrap());

    let flag = |name: &'static str| Path::new(name);
    let refused = run_server(&[flag("--key-file"), &old_file, flag("--data-dir"), &data, flag("--port"), flag("0")]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a random key") && stderr.contains("--rekey new.key"), "{stderr}");

    let output = run_server(&[flag("--key-file"), &old_file, flag("--data-dir"), &data, flag("--rekey"), &new_file]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let new = load_key(&new_file).unwrap();
    assert!(Journal::open(&data, &new, 1024, false, |_| {}).is_ok());
    let _ = fs::remove_dir_all(&dir);
}

/// A script that lowers the descriptor limit to `limit`, then runs the server.
fn limited_server(dir: &Path, limit: u32) -> PathBuf {
    let script = dir.join("limited.sh");
    let body = format!("#!/bin/sh\nulimit -n {limit} || exit 3\nexec '{}' \"$@\"\n", env!("CARGO_BIN_EXE_chat-server"));
    fs::write(&script, body).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn under_a_low_descriptor_limit_the_server_lowers_its_cap_and_keeps_serving_through_compaction() {
    let dir = temp_dir("ulimit");
    let key = create_key(&dir.join("chat.key")).unwrap();
    let data = dir.join("data");
    let flags = ["--data-dir", data.to_str().unwrap(), "--compact-bytes", "1024"];
    let server = TestServer::start_program(limited_server(&dir, 64), dir.clone(), key, &flags);
    let cap = 64 - chat_server::RESERVED_DESCRIPTORS;
    server.wait_log(&["open-file limit is 64", &format!("serving at most {cap} connections"), "ulimit -n"]);

    let mut clients: Vec<TestClient> = (0..cap).map(|n| server.register(&format!("user{n}")).0).collect();
    let mut refused = TcpStream::connect(server.addr).unwrap();
    refused.set_read_timeout(Some(PATIENCE)).unwrap();
    server.wait_log(&[&format!("limit of {cap} connections reached")]);
    assert_eq!(std::io::Read::read(&mut refused, &mut [0u8; 1]).unwrap_or(0), 0);

    // Every connection held, and the journal still compacts (it needs a
    // descriptor for its new file) while messages flow.
    let compactions = |server: &TestServer| server.log_text().matches("journal compacted").count();
    let before = compactions(&server);
    let text = "y".repeat(1000);
    let mut sent = 0;
    while compactions(&server) == before {
        assert!(sent < 200, "no compaction after {sent} messages; log:\n{}", server.log_text());
        sent += 1;
        clients[0].say(sent, "", &text);
        sent_id(&mut clients[0]);
    }
    let last = clients.last_mut().unwrap();
    let got = (0..sent).map(|_| last.next_msg().text).filter(|got| *got == text).count();
    assert_eq!(got as u64, sent);
    let log = server.log_text();
    assert!(!log.contains("Too many open files") && !log.contains("failed"), "{log}");
}

/// A small tmpfs, unmounted when dropped; `None` if this process may not
/// mount one (not root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = temp_dir("tmpfs");
        let options = format!("size={size},mode=0700");
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", &options, "tmpfs"]).arg(&dir).output();
        if !mounted.is_ok_and(|output| output.status.success()) {
            let _ = fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }

    /// Fills the file system with a file at `path`.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut file = fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(28) || err.kind() == ErrorKind::StorageFull => return path,
                Err(err) => panic!("filling the tmpfs: {err}"),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A server whose data directory is on a 1 MiB tmpfs, with alice and bob
/// online and carol registered; `None` if no tmpfs can be mounted.
struct FullDisk {
    // Dropped in this order: the server, then the file system.
    server: TestServer,
    alice: TestClient,
    bob: TestClient,
    carol_token: [u8; 32],
    tmpfs: Tmpfs,
}

impl FullDisk {
    fn start() -> Option<FullDisk> {
        let Some(tmpfs) = Tmpfs::mount("1m") else {
            eprintln!("skipped: cannot mount a tmpfs here (needs root); CI runs this test as root");
            return None;
        };
        let dir = temp_dir("full");
        let key = create_key(&dir.join("chat.key")).unwrap();
        let data = tmpfs.0.join("data");
        let server = TestServer::start_in(dir, key, &["--data-dir", data.to_str().unwrap()]);
        let (mut alice, _) = server.register("alice");
        let (mut bob, _) = server.register("bob");
        let (carol, carol_token) = server.register("carol");
        drop(carol);
        alice.say(1, "", "before");
        sent_id(&mut alice);
        assert_eq!(bob.next_msg().text, "before");
        Some(FullDisk { server, alice, bob, carol_token, tmpfs })
    }

    /// Whether bob receives nothing for a second.
    fn bob_hears_nothing(&mut self) -> bool {
        self.bob.stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let heard = loop {
            match self.bob.recv() {
                Ok(ServerMsg::Msg(_)) => break true,
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        self.bob.stream.set_read_timeout(Some(PATIENCE)).unwrap();
        !heard
    }
}

#[test]
fn a_full_disk_holds_messages_until_space_returns_and_loses_nothing() {
    let Some(mut disk) = FullDisk::start() else { return };
    let filler = disk.tmpfs.fill();
    // A text too big for what is left of the journal's last page.
    let long = "z".repeat(4000);
    disk.alice.say(2, "", &long);
    disk.server.wait_log(&["storage full: cannot write the journal", "new messages wait until it can"]);
    assert!(disk.bob_hears_nothing(), "nothing is published while it is not on disk");

    fs::remove_file(filler).unwrap();
    disk.server.wait_log(&["storage available again"]);
    sent_id(&mut disk.alice);
    assert_eq!(disk.bob.next_msg().text, long);
    disk.alice.say(3, "", "after");
    sent_id(&mut disk.alice);

    disk.server.restart();
    let (mut carol, _) = TestClient::login(&disk.server, "carol", Some(&disk.carol_token), 0).unwrap();
    let texts: Vec<String> = (0..3).map(|_| carol.next_msg().text).collect();
    assert_eq!(texts, ["before", long.as_str(), "after"]);
}

/// The session's part: a SEND that arrives while the journal cannot be
/// written is answered with RETRY (`Shared::storage_full`), and a login
/// whose registration is not on disk gets no WELCOME (`Shared::commit`
/// returns false); the client keeps both and tries again.
#[test]
fn while_the_disk_is_full_sends_get_retry_and_registrations_wait_for_space() {
    let Some(mut disk) = FullDisk::start() else { return };
    let filler = disk.tmpfs.fill();
    disk.alice.say(2, "", &"z".repeat(4000));
    disk.server.wait_log(&["storage full: cannot write the journal"]);
    disk.alice.say(3, "", "later");
    let retry = disk.alice.recv_until(|m| match m {
        ServerMsg::Retry { client_id, reason } => Some((*client_id, reason.clone())),
        _ => None,
    });
    assert_eq!(retry, (3, "server storage is full".to_string()));
    let dave_token = random_bytes::<32>().unwrap();
    if let Ok((_, ServerMsg::Welcome { .. })) = TestClient::login(&disk.server, "dave", Some(&dave_token), 0) {
        panic!("WELCOME for a registration that is not on disk");
    }

    fs::remove_file(filler).unwrap();
    disk.server.wait_log(&["storage available again"]);
    sent_id(&mut disk.alice);
    disk.alice.say(3, "", "later");
    sent_id(&mut disk.alice);
    let (_, welcome) = TestClient::login(&disk.server, "dave", Some(&dave_token), 0).unwrap();
    assert!(matches!(welcome, ServerMsg::Welcome { .. }), "{welcome:?}");
}
