//! A client that cannot use its key file says where it looked and what to
//! do: copy the server's `chat.key` (or pass `--key-file`), or `chmod 600`
//! one that others can read. It never suggests making a key, which could
//! only be a different one (issue 14). Exit code 2, one line on stderr.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use chat_common::keyfile::create_key;

use crate::support::temp_dir;

/// Runs `chat-client --headless` in `dir` with `args`; its exit code and stderr.
fn headless_in(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-client"))
        .args(["--headless", "--nick", "ana", "--state-dir"])
        .arg(dir.join("state"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn never_suggests_a_new_key(stderr: &str) {
    for wrong in ["make key", "new key", "create", "generate"] {
        assert!(!stderr.contains(wrong), "{stderr}");
    }
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn a_missing_key_file_says_where_it_looked_and_to_copy_the_servers() {
    let dir = temp_dir("no-key");
    let (code, stderr) = headless_in(&dir, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    let looked = dir.join("chat.key");
    assert!(
        stderr.starts_with(&format!("chat-client: no key file at {}; copy the server's chat.key", looked.display()))
    );
    assert!(stderr.contains("or give its place with --key-file FILE"), "{stderr}");
    never_suggests_a_new_key(&stderr);

    let (code, stderr) = headless_in(&dir, &["--key-file", "keys/class.key"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.starts_with(&format!("chat-client: no key file at {}", dir.join("keys/class.key").display())));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_key_file_others_can_read_is_refused_with_the_chmod_and_a_patterned_one_sends_to_the_servers() {
    let dir = temp_dir("open-key");
    let key = dir.join("class key");
    create_key(&key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let (code, stderr) = headless_in(&dir, &["--key-file", key.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("mode 0640 lets other users of this computer read the key"), "{stderr}");
    assert!(stderr.trim_end().ends_with(&format!("fix it with: chmod 600 '{}'", key.display())), "{stderr}");
    never_suggests_a_new_key(&stderr);

    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&key, format!("{}\n", "00".repeat(32))).unwrap();
    let (code, stderr) = headless_in(&dir, &["--key-file", key.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a random key, so not the server's"), "{stderr}");
    assert!(stderr.contains("copy the server's chat.key"), "{stderr}");
    never_suggests_a_new_key(&stderr);

    fs::write(&key, "abcd\n").unwrap();
    let (code, stderr) = headless_in(&dir, &["--key-file", key.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("holds 4 characters, not the 64 hex characters of a key; copy the server's chat.key"));
    fs::remove_dir_all(&dir).unwrap();
}
