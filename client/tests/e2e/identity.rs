//! Issue 16, item 1: a nickname belongs to the chat (the shared key), not
//! to the address typed, so another address of the same server keeps it;
//! and `--export-identity` / `--import-identity` move it to another
//! computer (here: another state directory), refusing what would lose or
//! mix up an identity.

use std::ffi::OsStr;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chat_common::keyfile::create_key;

use crate::support::{TestClient, TestServer, run_client, temp_dir};

/// The one state subdirectory `state_dir` holds for a nickname.
fn nick_dir(state_dir: &Path, nick: &str) -> std::path::PathBuf {
    let dirs: Vec<_> = fs::read_dir(state_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir() && path.to_string_lossy().ends_with(&format!("_{nick}")))
        .collect();
    assert_eq!(dirs.len(), 1, "one directory for {nick} in {}: {dirs:?}", state_dir.display());
    dirs[0].clone()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_nickname_registered_through_127_0_0_1_is_kept_through_localhost() {
    let server = TestServer::start();
    let state = temp_dir("addresses").join("ana");
    let mut ana = TestClient::start(server.port, &server.key_file(), "ana", &state);
    ana.expect("connected\tana");
    ana.say("through 127.0.0.1");
    ana.expect_msg("through 127.0.0.1");
    assert!(ana.quit().success());

    let mut ana = TestClient::start_with(server.port, &server.key_file(), "ana", &state, &["--host", "localhost"]);
    ana.expect("connected\tana");
    ana.say("through localhost");
    ana.expect_msg("through localhost");
    assert!(ana.quit().success());
    assert!(ana.seen.iter().all(|line| !line.starts_with("rejected")), "{:?}", ana.seen);
    // Only the new message: the last id seen followed the nickname too.
    let texts: Vec<String> = ana.msgs().into_iter().map(|msg| msg.text).collect();
    assert_eq!(texts, ["through localhost"]);
    nick_dir(&state, "ana");
}

#[test]
fn export_then_import_moves_a_nickname_to_a_fresh_state_directory() {
    let server = TestServer::start();
    let dir = temp_dir("move");
    let (laptop, desktop, file) = (dir.join("laptop"), dir.join("desktop"), dir.join("ana.identity"));
    let key = server.key_file();
    let flag = |text: &'static str| OsStr::new(text);

    let mut ana = TestClient::start(server.port, &key, "ana", &laptop);
    ana.expect("connected\tana");
    assert!(ana.quit().success());
    let mut bob = TestClient::start(server.port, &key, "bob", &dir.join("bob"));
    bob.expect("connected\tbob");
    bob.say("/msg ana while you were moving");

    let export = [flag("--export-identity"), file.as_os_str(), flag("--nick"), flag("ana")];
    let places = [flag("--key-file"), key.as_os_str(), flag("--state-dir"), laptop.as_os_str()];
    let (code, stderr) = run_client(&[&export[..], &places[..]].concat());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("moved ana's identity to"), "{stderr}");
    assert_eq!(mode(&file), 0o600, "the file holds the owner token");
    assert!(fs::read_to_string(&file).unwrap().starts_with("hmac-chat identity 1\n"));

    // Moved away: the laptop can no longer use it, and the file is never overwritten.
    let mut stale = TestClient::start(server.port, &key, "ana", &laptop);
    assert_eq!(stale.wait_exit().code(), Some(2));
    let log = fs::read_to_string(laptop.join("client.log")).unwrap();
    assert!(log.contains("ana's identity was moved to another computer"), "{log}");
    let (code, stderr) = run_client(&[&export[..], &places[..]].concat());
    assert_eq!(code, Some(2), "{stderr}");

    // A state directory of another chat refuses it: the key differs.
    let other_key = dir.join("other.key");
    create_key(&other_key).unwrap();
    let import = [flag("--import-identity"), file.as_os_str(), flag("--state-dir"), desktop.as_os_str()];
    let (code, stderr) = run_client(&[&import[..], &[flag("--key-file"), other_key.as_os_str()][..]].concat());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("belongs to the chat whose key has fingerprint"), "{stderr}");

    let (code, stderr) = run_client(&[&import[..], &[flag("--key-file"), key.as_os_str()][..]].concat());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("imported ana's identity into"), "{stderr}");
    let token = nick_dir(&desktop, "ana").join("token");
    assert_eq!(mode(&token), 0o600);

    let mut ana = TestClient::start_with(server.port, &key, "ana", &desktop, &["--host", "localhost"]);
    ana.expect("connected\tana");
    ana.expect_msg("while you were moving");
    ana.say("from the desktop");
    bob.expect_msg("from the desktop");
    assert!(ana.quit().success());
    assert!(bob.quit().success());
}

#[test]
fn import_refuses_to_replace_a_different_identity() {
    let server = TestServer::start();
    let dir = temp_dir("refuse");
    let (first, second, file) = (dir.join("first"), dir.join("second"), dir.join("ana.identity"));
    let key = server.key_file();
    let flag = |text: &'static str| OsStr::new(text);

    let mut ana = TestClient::start(server.port, &key, "ana", &first);
    ana.expect("connected\tana");
    assert!(ana.quit().success());
    let export = [flag("--export-identity"), file.as_os_str(), flag("--nick"), flag("ana")];
    let (code, stderr) = run_client(
        &[&export[..], &[flag("--key-file"), key.as_os_str()][..], &[flag("--state-dir"), first.as_os_str()][..]]
            .concat(),
    );
    assert_eq!(code, Some(0), "{stderr}");

    // Another "ana" here, never accepted by the server, with a message waiting.
    let nowhere = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut other = TestClient::start(nowhere, &key, "ana", &second);
    other.expect("disconnected\t");
    other.say("typed by the other ana");
    other.expect("queued\t");
    assert!(other.quit().success());
    let before = fs::read_to_string(nick_dir(&second, "ana").join("token")).unwrap();

    let import = [flag("--import-identity"), file.as_os_str(), flag("--key-file"), key.as_os_str()];
    let (code, stderr) = run_client(&[&import[..], &[flag("--state-dir"), second.as_os_str()][..]].concat());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("already holds another identity for ana in this chat; nothing was changed"), "{stderr}");
    assert_eq!(fs::read_to_string(nick_dir(&second, "ana").join("token")).unwrap(), before);
}
