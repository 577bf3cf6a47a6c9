//! Test support: a real `chat-server` process and real `chat-client
//! --headless` processes, each in scratch directories unique to the test,
//! killed when dropped so a failing test leaves nothing running. Every wait
//! has a deadline, so a bug fails a test instead of hanging it. The GUI
//! and Python tests include this file too (`#[path]`), so it is the one
//! place that finds the server binary.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::keyfile::create_key;

/// How long any single wait may take before it counts as a bug. Generous:
/// the tests assert behaviour, not speed.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The clients' reconnect interval in tests.
pub const RETRY_SECS: &str = "0.2";

/// A scratch directory unique to this test process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("hmac-chat-e2e-{}-{tag}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `chat-server` binary of this workspace, built once per test run
/// (a no-op when it is up to date) into the target directory we run from.
pub fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // <target>/<profile>/deps/e2e-<hash>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let binary = profile_dir.join("chat-server");
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "-q", "-p", "chat-server", "--manifest-path"]);
        cargo.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"));
        cargo.arg("--target-dir").arg(target_dir);
        match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") | None => {}
            Some(profile) => drop(cargo.args(["--profile", profile])),
        }
        let output = cargo.output().unwrap();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(binary.exists(), "cannot build chat-server:\n{stderr}");
            eprintln!("warning: building chat-server failed, using the existing binary:\n{stderr}");
        }
        binary
    })
}

/// Kills a child process and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for a child to exit by itself, at most `PATIENCE`.
fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            kill(child);
            panic!("{what} did not exit within {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends the lines of a child's stdout to a channel, from a thread.
pub fn line_channel(stdout: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A running `chat-server` with a journal, killed when dropped.
pub struct TestServer {
    child: Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Holds `chat.key`, `data/` and `server.log`.
    pub dir: PathBuf,
}

impl TestServer {
    /// Starts a server with a new key on an ephemeral port.
    pub fn start() -> TestServer {
        let dir = temp_dir("server");
        create_key(&dir.join("chat.key")).unwrap();
        TestServer::start_in(dir, 0)
    }

    /// Starts a server with a new key and these flags (limits, say).
    pub fn start_with(flags: &[&str]) -> TestServer {
        let dir = temp_dir("server");
        create_key(&dir.join("chat.key")).unwrap();
        TestServer::spawn(dir, 0, flags)
    }

    /// (Re)starts the server of `dir` on `port` (0: any free one).
    pub fn start_in(dir: PathBuf, port: u16) -> TestServer {
        TestServer::spawn(dir, port, &[])
    }

    fn spawn(dir: PathBuf, port: u16, flags: &[&str]) -> TestServer {
        let log = File::options().create(true).append(true).open(dir.join("server.log")).unwrap();
        let mut child = Command::new(server_binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--key-file"])
            .arg(dir.join("chat.key"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let lines = line_channel(child.stdout.take().unwrap());
        let Ok(line) = lines.recv_timeout(PATIENCE) else {
            kill(&mut child);
            panic!("the server did not say where it listens; see {}", dir.join("server.log").display());
        };
        let port = line.rsplit_once(':').and_then(|(_, port)| port.parse().ok());
        let port = port.unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"));
        TestServer { child, port, dir }
    }

    /// The shared key file, for clients.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("chat.key")
    }

    /// Kills the server (as a crash would) and returns its directory.
    pub fn kill(mut self) -> PathBuf {
        kill(&mut self.child);
        self.dir.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A `msg` line, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub id: u64,
    pub from: String,
    /// `*` for everyone.
    pub to: String,
    pub text: String,
}

impl Msg {
    /// Parses `msg id unix_ms from to text`; `None` for other lines.
    pub fn parse(line: &str) -> Option<Msg> {
        let fields: Vec<&str> = line.splitn(6, '\t').collect();
        match fields[..] {
            ["msg", id, _time, from, to, text] => {
                Some(Msg { id: id.parse().ok()?, from: from.into(), to: to.into(), text: text.into() })
            }
            _ => None,
        }
    }
}

/// Runs `chat-client` with `args` to its end (it must not wait for
/// input), and returns its exit code and its standard error.
pub fn run_client(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-client"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, "chat-client");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

/// A running `chat-client --headless`, killed when dropped.
pub struct TestClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line so far.
    pub seen: Vec<String>,
    /// How far [`TestClient::expect`] has looked.
    cursor: usize,
    /// For messages.
    pub nick: String,
}

impl TestClient {
    /// Starts `nick` against `port` with `key_file`, keeping its state in
    /// `state_dir`.
    pub fn start(port: u16, key_file: &Path, nick: &str, state_dir: &Path) -> TestClient {
        TestClient::start_with(port, key_file, nick, state_dir, &[])
    }

    /// [`TestClient::start`] with more flags, which win over the usual
    /// ones (e.g. `--host localhost`).
    pub fn start_with(port: u16, key_file: &Path, nick: &str, state_dir: &Path, more: &[&str]) -> TestClient {
        fs::create_dir_all(state_dir).unwrap();
        let log = File::options().create(true).append(true).open(state_dir.join("client.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-client"))
            .args(["--headless", "--nick", nick, "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--key-file")
            .arg(key_file)
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--retry-secs", RETRY_SECS])
            .args(more)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let lines = line_channel(child.stdout.take().unwrap());
        let stdin = child.stdin.take();
        TestClient { child, stdin, lines, seen: Vec::new(), cursor: 0, nick: nick.into() }
    }

    /// Types a line.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
    }

    /// Types many lines in one write, as fast as a pipe takes them.
    pub fn say_all(&mut self, lines: &[String]) {
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        self.stdin.as_mut().expect("stdin is open").write_all(text.as_bytes()).unwrap();
    }

    /// Reads whatever lines have arrived, without waiting.
    pub fn poll(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Waits until `done` holds for all lines seen, at most `within`.
    pub fn wait_until(&mut self, within: Duration, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + within;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("{}: no {what} within {within:?}; saw:\n{}", self.nick, self.seen.join("\n")),
            }
        }
    }

    /// Waits for the next line (after the last one expected) that starts
    /// with `prefix`, and returns it.
    pub fn expect(&mut self, prefix: &str) -> String {
        let start = self.cursor;
        let found = |seen: &[String]| seen[start..].iter().any(|line| line.starts_with(prefix));
        self.wait_until(PATIENCE, &format!("line starting {prefix:?}"), found);
        let index = start + self.seen[start..].iter().position(|line| line.starts_with(prefix)).unwrap();
        self.cursor = index + 1;
        self.seen[index].clone()
    }

    /// The `msg` lines seen so far, in order.
    pub fn msgs(&self) -> Vec<Msg> {
        self.seen.iter().filter_map(|line| Msg::parse(line)).collect()
    }

    /// Waits until a message with `text` has arrived and returns it.
    pub fn expect_msg(&mut self, text: &str) -> Msg {
        let has = |seen: &[String]| seen.iter().filter_map(|line| Msg::parse(line)).any(|msg| msg.text == text);
        self.wait_until(PATIENCE, &format!("message {text:?}"), has);
        self.msgs().into_iter().find(|msg| msg.text == text).unwrap()
    }

    /// Closes stdin (the end of input means quit), waits for the exit and
    /// for the last lines, and returns the exit status.
    pub fn quit(&mut self) -> ExitStatus {
        self.stdin = None;
        let status = wait_exit(&mut self.child, &self.nick);
        // The process has exited, so its stdout ends soon.
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.seen.push(line);
        }
        status
    }

    /// Waits for the process to exit by itself (stdin stays open).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = wait_exit(&mut self.child, &self.nick);
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.seen.push(line);
        }
        status
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// The `mitm` example, built once per run next to the test binaries.
pub fn mitm_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // <target>/<profile>/deps/<test binary>-<hash>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "-q", "-p", "chat-client", "--no-default-features", "--example", "mitm"]);
        cargo.arg("--manifest-path").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"));
        cargo.arg("--target-dir").arg(profile_dir.parent().unwrap());
        let output = cargo.output().unwrap();
        assert!(output.status.success(), "cannot build the mitm example:\n{}", String::from_utf8_lossy(&output.stderr));
        profile_dir.join("examples").join("mitm")
    })
}
