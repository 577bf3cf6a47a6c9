//! The Python reference client, `examples/python/chat_client.py`, against a
//! real `chat-server` and a real `chat-client --headless`: it was written
//! from docs/PROTOCOL.md alone, so these tests show that the specification
//! is enough to interoperate. Its `--self-test` recomputes PROTOCOL.md's
//! test vectors; then one message goes each way and both are checked.
//! RETRY and DROPPED, which the real server sends only under pressure,
//! are checked against the scripted server of `tests/e2e/scripted_server.rs`.
//!
//! The server and scratch directories come from `tests/e2e/support.rs`. Every
//! child is killed when its guard drops, and every wait has a deadline, so
//! a bug fails these tests instead of hanging them. They need `python3`
//! (standard library only), which CI has; without it they fail and say so.
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

// Shared with the end-to-end tests; not every helper there is used here.
#[allow(dead_code)]
#[path = "e2e/support.rs"]
mod support;

#[path = "e2e/scripted_server.rs"]
mod scripted_server;

use scripted_server::{FULL, Outcome, Script, ScriptedServer};
use support::{PATIENCE, TestServer, temp_dir};

/// The client under test.
fn python_client() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/chat_client.py")
}

/// `python3 chat_client.py`, or a clear failure when there is no `python3`.
fn python3() -> Command {
    if Command::new("python3").arg("--version").output().is_err() {
        panic!("python3 is not installed: these tests run examples/python/chat_client.py (apt-get install python3)");
    }
    let mut command = Command::new("python3");
    command.arg(python_client());
    command
}

/// A running child with its stdout read line by line; killed when dropped.
struct Running {
    child: Child,
    /// `None` once closed: the end of input tells a client to finish.
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line so far, for waits and for failure messages.
    seen: Vec<String>,
    /// Where its stderr goes, to quote when a wait fails.
    log: PathBuf,
}

impl Running {
    /// Spawns `command` with piped stdin and stdout, and stderr in `log`.
    fn spawn(mut command: Command, log: PathBuf) -> Running {
        let stderr = File::create(&log).unwrap();
        let mut child =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(stderr).spawn().expect("cannot start a child");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running { stdin: child.stdin.take(), child, lines, seen: Vec::new(), log }
    }

    /// Types one line.
    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).unwrap();
    }

    /// Waits until a stdout line satisfies `wanted`, at most `PATIENCE`, and returns it.
    fn expect(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.seen.iter().find(|line| wanted(line)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no {what} within {PATIENCE:?}; stdout:\n{}\n{}", self.seen.join("\n"), self.stderr()),
            }
        }
    }

    /// Closes stdin and waits, at most `PATIENCE`, for the child to exit.
    fn finish(&mut self, what: &str) -> ExitStatus {
        self.stdin = None;
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("{what} did not exit within {PATIENCE:?} after the end of its input\n{}", self.stderr());
    }

    /// Its stderr so far, labelled, for failure messages; the other
    /// children's logs are in the same directory.
    fn stderr(&self) -> String {
        format!("stderr ({}):\n{}", self.log.display(), fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the Python client as `nick`, its stderr in `dir/<log>`; its
/// token file lands in `dir`, beside the key.
fn start_python(dir: &Path, port: u16, nick: &str, log: &str) -> Running {
    let mut command = python3();
    command.args(["--nick", nick, "--host", "127.0.0.1", "--port", &port.to_string(), "--key-file"]);
    command.arg(dir.join("chat.key"));
    Running::spawn(command, dir.join(log))
}

#[test]
fn python_client_self_test_matches_the_protocol_test_vectors() {
    let output = python3().arg("--self-test").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "--self-test failed: {}\n{stdout}{stderr}", output.status);
    assert!(stdout.contains("test vectors match"), "unexpected --self-test output: {stdout}");
}

#[test]
fn python_client_and_rust_client_exchange_one_message_each_way() {
    let server = TestServer::start();
    let (dir, port) = (server.dir.clone(), server.port);

    let mut rust = Command::new(env!("CARGO_BIN_EXE_chat-client"));
    rust.args(["--headless", "--nick", "rusty", "--host", "127.0.0.1", "--port", &port.to_string()]);
    rust.arg("--key-file").arg(dir.join("chat.key")).arg("--state-dir").arg(dir.join("rusty"));
    rust.args(["--retry-secs", "0.2"]);
    let mut rust = Running::spawn(rust, dir.join("rusty.log"));
    rust.expect("`connected` line", |line| line == "connected\trusty");

    let mut python = start_python(&dir, port, "snake", "snake.log");
    // JOINED reaches rusty after snake's WELCOME, so snake now reads its input.
    rust.expect("`joined snake` line", |line| line == "joined\tsnake");

    python.say("hello from python");
    let got =
        rust.expect("message from snake", |line| line.starts_with("msg\t") && line.ends_with("\thello from python"));
    let fields: Vec<&str> = got.split('\t').collect();
    assert_eq!(fields[3..], ["snake", "*", "hello from python"], "as rusty saw it: {got:?}");

    rust.say("hola desde rust");
    python.expect("message from rusty", |line| line == "rusty: hola desde rust");
    python.expect("its own echo", |line| line == "snake: hello from python");

    let status = python.finish("the Python client");
    assert!(status.success(), "the Python client exited with {status}\n{}", python.stderr());
    let token_file = fs::read_to_string(dir.join("snake.token")).expect("snake.token beside the key");
    assert!(token_file.contains("accepted=1\n"), "the token file does not record WELCOME: {token_file:?}");

    // A second run logs in with the saved token instead of registering again.
    let mut again = start_python(&dir, port, "snake", "snake-again.log");
    again.say("second run");
    rust.expect("message from the second run", |line| line.ends_with("\tsnake\t*\tsecond run"));
    let status = again.finish("the Python client's second run");
    assert!(status.success(), "the second run exited with {status}\n{}", again.stderr());

    // Only a passing test cleans up: a failing one leaves its logs.
    drop((again, python, rust, server));
    let _ = fs::remove_dir_all(&dir);
}

/// [P-27] The Python client keeps what the server could not store yet and
/// sends it again, in order, after its retry interval; [P-25] it reports
/// messages dropped from its full mailbox.
#[test]
fn python_client_sends_again_after_retry_and_reports_dropped_messages() {
    let dir = temp_dir("python-retry");
    let server = ScriptedServer::start(&dir, Script { refuse: 1, dropped: Some((4, 2)) });
    let mut command = python3();
    command.args(["--nick", "snake", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--key-file"]);
    command.arg(&server.key_file).args(["--retry-secs", "0.3"]);
    let mut python = Running::spawn(command, dir.join("snake.log"));
    python.say("one");
    python.say("two");
    python.expect("the echo of one", |line| line == "snake: one");
    python.expect("the echo of two", |line| line == "snake: two");
    let status = python.finish("the Python client");
    assert!(status.success(), "the Python client exited with {status}\n{}", python.stderr());

    let stderr = python.stderr();
    assert!(stderr.contains(&format!("not stored yet: {FULL}; trying again in 0.3 s")), "{stderr}");
    assert!(stderr.contains("4 messages to you were dropped unread"), "{stderr}");
    let received = server.received();
    let stored: Vec<(u64, &str)> = received
        .iter()
        .filter(|send| matches!(send.outcome, Outcome::Stored(_)))
        .map(|send| (send.client_id, send.text.as_str()))
        .collect();
    assert_eq!(stored, [(1, "one"), (2, "two")], "{received:#?}");
    assert_eq!(received[0].outcome, Outcome::Retry, "{received:#?}");
    assert!(received.iter().all(|send| send.connection == 0), "{received:#?}");
    let again = received.iter().find(|send| matches!(send.outcome, Outcome::Stored(_))).unwrap();
    assert!(again.at - received[0].at >= Duration::from_millis(300), "sent again too soon: {received:#?}");
    drop((python, server));
    let _ = fs::remove_dir_all(&dir);
}

/// [P-27] Against the real server, full while a reader is away: the Python
/// client keeps what it could not store, sends it again every retry
/// interval, and finishes once the reader has made room.
#[test]
fn python_client_waits_out_a_full_real_server() {
    let server = TestServer::start_with(&["--store-bytes", "1024"]);
    let (dir, port) = (server.dir.clone(), server.port);
    let rusty = |log: &str| {
        let mut rust = Command::new(env!("CARGO_BIN_EXE_chat-client"));
        rust.args(["--headless", "--nick", "rusty", "--host", "127.0.0.1", "--port", &port.to_string()]);
        rust.arg("--key-file").arg(dir.join("chat.key")).arg("--state-dir").arg(dir.join("rusty"));
        Running::spawn(rust, dir.join(log))
    };
    let mut away = rusty("rusty.log");
    away.expect("`connected` line", |line| line == "connected\trusty");
    assert!(away.finish("rusty").success());

    let mut command = python3();
    command.args(["--nick", "snake", "--host", "127.0.0.1", "--port", &port.to_string(), "--key-file"]);
    command.arg(dir.join("chat.key")).args(["--retry-secs", "0.3"]);
    let mut python = Running::spawn(command, dir.join("snake.log"));
    // About 300 bytes each: the fourth does not fit while rusty is away.
    let texts: Vec<String> = (1..=5).map(|n| format!("line {n} {}", "y".repeat(290))).collect();
    for text in &texts {
        python.say(text);
    }
    let deadline = Instant::now() + PATIENCE;
    while !python.stderr().contains("not stored yet: server storage is full") {
        assert!(Instant::now() < deadline, "no RETRY reported\n{}", python.stderr());
        thread::sleep(Duration::from_millis(20));
    }
    let mut back = rusty("rusty-back.log");
    for text in &texts {
        back.expect("a message from snake", |line| line.ends_with(&format!("\tsnake\t*\t{text}")));
    }
    for text in &texts {
        python.expect("its own echo", |line| line == format!("snake: {text}"));
    }
    let status = python.finish("the Python client");
    assert!(status.success(), "the Python client exited with {status}\n{}", python.stderr());
    let echoes: Vec<&String> = python.seen.iter().filter(|line| line.starts_with("snake: ")).collect();
    assert_eq!(echoes.len(), texts.len(), "each stored once: {echoes:?}");
    let got: Vec<&String> = back.seen.iter().filter(|line| line.contains("\tsnake\t")).collect();
    assert_eq!(got.len(), texts.len(), "rusty got each once: {got:?}");
    drop((back, python, server));
    let _ = fs::remove_dir_all(&dir);
}
