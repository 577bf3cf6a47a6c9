//! The Wireshark dissector, `tools/wireshark/hmac-chat.lua`, run by the real
//! `tshark` as docs/WIRESHARK.md tells a student to run it:
//! - its SHA-256, HMAC and HKDF pass their self-test;
//! - a capture written here from PROTOCOL.md's test vectors decodes with
//!   every tag verified, and a replay, a flipped bit, malformed frames, an
//!   over-long frame, a reflected nonce and a refused HELLO are each
//!   reported;
//! - the verifier command of WIRESHARK.md prints PROTOCOL.md's verifier;
//! - a capture of real sessions on the loopback interface (a real server,
//!   real headless clients, the attack lab's proxy flipping one frame)
//!   decodes with every tag verified but the flipped one, a bad tag.
//!
//! Capturing needs privileges. CI runs as root. A user who may not capture
//! still gets every other test, which together exercise every part of the
//! dissector on a written capture; the loopback test then prints that it
//! skipped and why, straight to the terminal (a root user who cannot
//! capture fails instead). The choice: a student's `make test` must pass
//! without sudo, and a skip must be seen, not silent.
//!
//! They need `tshark` (and its `dumpcap`) and `python3`; `make deps`
//! installs them.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use chat_common::auth::{Sealer, token_verifier};
use chat_common::message::{ClientMsg, ServerMsg, kind};

// Shared with the end-to-end tests; not every helper there is used here.
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

use support::{PATIENCE, TestClient, TestServer, line_channel, temp_dir};

/// The file under test.
fn dissector() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/wireshark/hmac-chat.lua")
}

/// Runs tshark in a scratch HOME, so that the user's own preferences and
/// plugins (perhaps this very dissector, installed) cannot change the
/// outcome.
fn tshark(args: &[&str]) -> Output {
    let home = temp_dir("tshark-home");
    let output = Command::new("tshark")
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("WIRESHARK_CONFIG_DIR")
        .args(args)
        .output();
    match output {
        Ok(output) => output,
        Err(err) => panic!("cannot run tshark ({err}): these tests need it (make deps, or apt-get install tshark)"),
    }
}

fn lua_script() -> String {
    format!("lua_script:{}", dissector().display())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

mod live;
mod pdml;
mod written;

use pdml::{Pdu, decode, describe, sequences};
