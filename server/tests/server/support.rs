//! Test support: a real `chat-server` process on an ephemeral port with a
//! temporary key, and a minimal protocol client built on `chat-common`.
//! Every socket has a read timeout, so a bug fails a test instead of
//! hanging it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::auth::{Key, Opener, Sealer, token_verifier, transcript_hash};
use chat_common::frame::read_frame;
use chat_common::handshake::{OwnerToken, client_handshake};
use chat_common::keyfile::create_key;
use chat_common::message::{ChatMsg, ClientMsg, ServerMsg};
use chat_common::random::random_bytes;
use chat_common::trace::Verdict;
use chat_common::{Error, MAX_FRAME_LEN};

/// How long any single wait in a test may take before it counts as a bug.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A scratch directory unique to this test process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("hmac-chat-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `chat-server`, killed when dropped.
pub struct TestServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The shared key it uses.
    pub key: Key,
    /// Its scratch directory (key file, data directory).
    pub dir: PathBuf,
    /// The program: `chat-server`, or the textbook example.
    program: PathBuf,
    flags: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts a server keeping everything in memory, with extra flags.
    pub fn start(flags: &[&str]) -> TestServer {
        let dir = temp_dir("server");
        let key = create_key(&dir.join("chat.key")).unwrap();
        let mut args = vec!["--memory"];
        args.extend_from_slice(flags);
        TestServer::start_in(dir, key, &args)
    }

    /// Starts a server with its journal in its scratch directory.
    pub fn start_durable(flags: &[&str]) -> TestServer {
        let dir = temp_dir("server");
        let key = create_key(&dir.join("chat.key")).unwrap();
        let data = dir.join("data");
        let mut args = vec!["--data-dir", data.to_str().unwrap()];
        args.extend_from_slice(flags);
        TestServer::start_in(dir, key, &args)
    }

    /// The journal file of a server started with [`TestServer::start_durable`].
    pub fn journal(&self) -> PathBuf {
        self.dir.join("data").join("journal")
    }

    /// Starts a server in `dir` (whose `chat.key` holds `key`) with `flags`.
    pub fn start_in(dir: PathBuf, key: Key, flags: &[&str]) -> TestServer {
        TestServer::start_program(env!("CARGO_BIN_EXE_chat-server").into(), dir, key, flags)
    }

    /// Starts the textbook server (`server/examples/textbook.rs`), built
    /// once per run next to the test binaries.
    pub fn start_textbook() -> TestServer {
        static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let program = BINARY.get_or_init(|| {
            // <target>/<profile>/deps/server-<hash>
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(std::path::Path::parent).unwrap().to_path_buf();
            let mut cargo = Command::new(env!("CARGO"));
            cargo.args(["build", "-q", "-p", "chat-server", "--example", "textbook"]);
            cargo.arg("--manifest-path").arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"));
            cargo.arg("--target-dir").arg(profile_dir.parent().unwrap());
            let output = cargo.output().unwrap();
            assert!(output.status.success(), "cannot build the textbook: {}", String::from_utf8_lossy(&output.stderr));
            profile_dir.join("examples").join("textbook")
        });
        let dir = temp_dir("textbook");
        let key = create_key(&dir.join("chat.key")).unwrap();
        TestServer::start_program(program.clone(), dir, key, &[])
    }

    /// Starts `program` (the server, or a script that `exec`s it) in `dir`
    /// (whose `chat.key` holds `key`) with `flags`.
    pub fn start_program(program: PathBuf, dir: PathBuf, key: Key, flags: &[&str]) -> TestServer {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let (child, addr, log) =
            spawn(&program, &dir, &flags).unwrap_or_else(|err| panic!("server did not start: {err}"));
        TestServer { child, addr, key, dir, program, flags, log }
    }

    /// Kills the server (SIGKILL) and starts it again on the same port with
    /// the same key, flags and data.
    pub fn restart(&mut self) {
        self.kill();
        let mut flags = self.flags.clone();
        flags.extend(["--port".to_string(), self.addr.port().to_string()]);
        let (child, addr, log) =
            spawn(&self.program, &self.dir, &flags).unwrap_or_else(|err| panic!("no restart: {err}"));
        (self.child, self.addr, self.log) = (child, addr, log);
    }

    /// Starts the server expecting it to refuse; returns its exit code and stderr.
    pub fn start_failing(&self) -> (i32, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--port", "0", "--key-file"])
            .arg(self.dir.join("chat.key"))
            .args(&self.flags)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
    }

    /// Waits until a log line contains every one of `parts`; returns it.
    pub fn wait_log(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no log line with {parts:?}; log:\n{}", self.log_text());
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// A client logged in as `nick`, registering it; returns it and its token.
    pub fn register(&self, nick: &str) -> (TestClient, [u8; 32]) {
        let token = random_bytes::<32>().unwrap();
        let (client, welcome) = TestClient::login(self, nick, Some(&token), 0).unwrap();
        assert!(matches!(welcome, ServerMsg::Welcome { .. }), "expected WELCOME, got {welcome:?}");
        (client, token)
    }

    /// The server's resident memory, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Types a command into the server's console (its standard input);
    /// answers show in the log as lines starting `console: `.
    pub fn console(&mut self, command: &str) {
        let stdin = self.child.stdin.as_mut().expect("the console is piped");
        writeln!(stdin, "{command}").unwrap();
    }

    /// Kills the process (like a crash or Ctrl+C).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// Starts the binary; returns it, its address, and its growing log.
fn spawn(
    program: &std::path::Path,
    dir: &std::path::Path,
    flags: &[String],
) -> Result<(Child, SocketAddr, Log), String> {
    let mut child = Command::new(program)
        .args(["--port", "0", "--key-file"])
        .arg(dir.join("chat.key"))
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("got {line:?}")).parse().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let stderr = child.stderr.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    // The console's answers join the log, marked.
    let sink = log.clone();
    thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(format!("console: {line}"));
        }
    });
    Ok((child, addr, log))
}

/// A protocol client with nothing but the protocol: no retries, no dedup.
#[derive(Debug)]
pub struct TestClient {
    /// The socket.
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// Tags what we send.
    pub sealer: Sealer,
    /// Checks what we receive.
    pub opener: Opener,
    buf: Vec<u8>,
    /// What the CHALLENGE said.
    pub registered: bool,
    /// SHA-256 of HELLO and CHALLENGE, from which the session keys come.
    pub transcript: [u8; 32],
    /// Messages read while looking for another kind, in arrival order.
    skipped: VecDeque<ServerMsg>,
}

impl TestClient {
    /// Connects and runs the handshake, stopping before LOGIN.
    pub fn handshake(
        server: &TestServer,
        key: &Key,
        nick: &str,
        token: Option<&[u8; 32]>,
    ) -> Result<TestClient, Error> {
        TestClient::handshake_at(server.addr, key, nick, token)
    }

    /// [`TestClient::handshake`] with an address instead of a server.
    pub fn handshake_at(
        addr: SocketAddr,
        key: &Key,
        nick: &str,
        token: Option<&[u8; 32]>,
    ) -> Result<TestClient, Error> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        // Tests pass tokens as not yet accepted, so one call can register.
        let owned = token.map(|token| OwnerToken { token: *token, accepted: false });
        // HELLO and CHALLENGE, for tests that derive this session's keys.
        let mut plain = Vec::new();
        let mut watch = |_, frame: &[u8], _: Verdict<'_>| plain.push(frame.to_vec());
        let side = client_handshake(&mut stream, key, nick, owned.as_ref(), Some(&mut watch))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(TestClient {
            stream,
            reader,
            sealer: side.sealer,
            opener: side.opener,
            buf: Vec::new(),
            registered: side.registered,
            transcript: transcript_hash(&plain[0], &plain[1]),
            skipped: VecDeque::new(),
        })
    }

    /// Handshake and LOGIN; returns the client and the server's first answer.
    pub fn login(
        server: &TestServer,
        nick: &str,
        token: Option<&[u8; 32]>,
        last_seen: u64,
    ) -> Result<(TestClient, ServerMsg), Error> {
        TestClient::login_at(server.addr, &server.key, nick, token, last_seen)
    }

    /// [`TestClient::login`] with an address and key instead of a server.
    pub fn login_at(
        addr: SocketAddr,
        key: &Key,
        nick: &str,
        token: Option<&[u8; 32]>,
        last_seen: u64,
    ) -> Result<(TestClient, ServerMsg), Error> {
        let mut client = TestClient::handshake_at(addr, key, nick, token)?;
        // [P-19] Register with our token, or a fresh one, if the server asks.
        let register = match (client.registered, token) {
            (true, _) => None,
            (false, Some(token)) => Some(token_verifier(token)),
            (false, None) => Some(token_verifier(&random_bytes::<32>()?)),
        };
        client.try_send(&ClientMsg::Login { last_seen, register })?;
        let first = client.recv()?;
        Ok((client, first))
    }

    /// Seals and writes one message.
    pub fn send(&mut self, msg: &ClientMsg) {
        self.try_send(msg).unwrap();
    }

    /// Seals and writes one message, reporting a failed write.
    pub fn try_send(&mut self, msg: &ClientMsg) -> std::io::Result<()> {
        let bytes = self.seal(msg);
        self.stream.write_all(&bytes)
    }

    /// Seals one message without sending it (for tampering tests).
    pub fn seal(&mut self, msg: &ClientMsg) -> Vec<u8> {
        let mut payload = Vec::new();
        msg.encode_payload(&mut payload);
        let mut frame = Vec::new();
        self.sealer.seal(msg.kind(), &payload, &mut frame);
        frame
    }

    /// Sends a public (`to` empty) or direct message.
    pub fn say(&mut self, client_id: u64, to: &str, text: &str) {
        self.send(&ClientMsg::Send { client_id, to: to.into(), text: text.into() });
    }

    /// Reads and verifies the next message.
    pub fn recv(&mut self) -> Result<ServerMsg, Error> {
        self.recv_raw().map(|(msg, _)| msg)
    }

    /// Reads and verifies the next message; also returns its frame's bytes.
    pub fn recv_raw(&mut self) -> Result<(ServerMsg, Vec<u8>), Error> {
        if !read_frame(&mut self.reader, MAX_FRAME_LEN, &mut self.buf)? {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        let frame = self.opener.open(&self.buf)?;
        Ok((ServerMsg::decode(&frame)?, self.buf.clone()))
    }

    /// The first message, already skipped or new, that `pick` accepts.
    /// Others are kept for later calls, since the server does not order
    /// SENT against the echo, nor presence against mail.
    pub fn recv_until<T>(&mut self, mut pick: impl FnMut(&ServerMsg) -> Option<T>) -> T {
        if let Some(index) = self.skipped.iter().position(|m| pick(m).is_some()) {
            let msg = self.skipped.remove(index).unwrap();
            return pick(&msg).unwrap();
        }
        loop {
            let msg = self.recv().unwrap();
            match pick(&msg) {
                Some(found) => return found,
                None => self.skipped.push_back(msg),
            }
        }
    }

    /// The next chat message.
    pub fn next_msg(&mut self) -> ChatMsg {
        self.recv_until(|m| match m {
            ServerMsg::Msg(msg) => Some(msg.clone()),
            _ => None,
        })
    }

    /// Whether the server closes the connection (EOF or reset) in time.
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut rest = [0u8; 4096];
        loop {
            match self.reader.read(&mut rest) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}
