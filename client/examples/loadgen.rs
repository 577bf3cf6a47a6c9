//! The load generator behind `make bench`. It starts a fresh `chat-server`
//! for each scenario run (ephemeral port, temporary key and data
//! directory), drives it from 127.0.0.1 only, and prints one JSON line per
//! run and a short table at the end. `docs/PERFORMANCE.md` explains the
//! scenarios and the figures.
//!
//! ```text
//! cargo run --release -p chat-client --no-default-features --example loadgen -- \
//!     --server target/release/chat-server --work-dir /tmp/bench [--quick] [--only fanout,idle]
//! ```
//! It speaks the protocol with `chat-common` directly and is built to cost
//! far less than the server: one large read parses and verifies every
//! frame it brings in, one ACK answers a whole read, and buffers are
//! reused. Each message carries its send time (microseconds since one
//! `Instant` shared by every thread), its publisher and its sequence
//! number as text, so every recipient measures latency on one clock and
//! checks that it got every message exactly once. Idle clients are the
//! exception: a few threads keep thousands of them drained without
//! verifying what they skip.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::MAX_FRAME_LEN;
use chat_common::auth::{Key, Opener, SEAL_OVERHEAD, Sealer, TAG_LEN, token_verifier};
use chat_common::frame::{LEN_PREFIX, frame_len};
use chat_common::handshake::{OwnerToken, client_handshake};
use chat_common::keyfile::load_key;
use chat_common::message::{ClientMsg, Fields, kind, put_str, put_u64};
use chat_common::random::random_bytes;

const USAGE: &str = "usage: loadgen --server PATH --work-dir DIR [OPTIONS]
  --server PATH     the chat-server binary to start for each run
  --work-dir DIR    an empty directory for keys, journals and server logs
  --quick           about a tenth of the load, for a smoke test
  --only LIST       comma-separated scenarios: fanout,latency,idle,backlog,journal
  --deliveries N    deliveries per fanout run [default: 4000000]
  --fanout LIST     fanout shapes to run, e.g. 1000x4,100x1 [default: all six]
  --idle LIST       idle connection counts, e.g. 1000 [default: 1000,10000]
  --hold S          keep idle connections open S seconds after measuring,
                    to inspect the server (/proc/PID/smaps, perf)
  --pids            print each server's process id, to attach a profiler
  --trust           receivers skip the HMAC check (an experiment: make bench verifies)";

/// Every error ends the run with one line; the load generator is a tool.
type Res<T> = Result<T, String>;

/// Bytes of text in every benchmark message (the issue's 100-byte texts).
const TEXT_SIZE: usize = 100;
/// Unconfirmed SENDs per publisher: the protocol's own limit.
const WINDOW: usize = chat_common::MAX_UNCONFIRMED_SENDS;
/// Read buffer of a client that receives the message stream.
const BIG_INBOX: usize = 256 * 1024;
/// Read buffer of an idle client (grown if a frame needs more).
const SMALL_INBOX: usize = 4 * 1024;
/// Stack of each receiving thread: they hold little on it, and 1,000 of
/// them must fit.
const CLIENT_STACK: usize = 64 * 1024;
/// Threads that open connections in parallel (the listen backlog is 128).
const CONNECTORS: usize = 8;
/// Linux reports process CPU time in ticks of 1/100 s on every common
/// platform (`getconf CLK_TCK`); std offers no way to ask.
const TICKS_PER_S: f64 = 100.0;
/// A run that has not finished by then reports what it lost.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// `--trust`: receivers skip the HMAC check, to see how much of a run's
/// CPU the load generator's own verification takes.
static TRUST: AtomicBool = AtomicBool::new(false);

/// The one clock: microseconds since the first call, in every thread.
fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

// ---------------------------------------------------------------- options

struct Options {
    server: PathBuf,
    work_dir: PathBuf,
    only: Vec<String>,
    deliveries: u64,
    quick: bool,
    fanout: Vec<(usize, usize)>,
    idle: Vec<usize>,
    hold: Duration,
    pids: bool,
}

fn parse_options() -> Res<Options> {
    let mut options = Options {
        server: PathBuf::new(),
        work_dir: PathBuf::new(),
        only: Vec::new(),
        deliveries: 4_000_000,
        quick: false,
        fanout: vec![(10, 1), (10, 4), (100, 1), (100, 4), (1000, 1), (1000, 4)],
        idle: vec![1_000, 10_000],
        hold: Duration::ZERO,
        pids: false,
    };
    let number = |flag: &str, text: &str| text.parse::<usize>().map_err(|_| format!("{flag}: not a number: {text:?}"));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if let "--quick" | "--pids" | "--trust" = flag.as_str() {
            options.quick |= flag == "--quick";
            options.pids |= flag == "--pids";
            TRUST.store(TRUST.load(Ordering::Relaxed) || flag == "--trust", Ordering::Relaxed);
            continue;
        }
        let value = args.next().ok_or(format!("{flag}: missing value"))?;
        match flag.as_str() {
            "--server" => options.server = value.into(),
            "--work-dir" => options.work_dir = value.into(),
            "--only" => options.only = value.split(',').map(str::to_string).collect(),
            "--deliveries" => options.deliveries = number(&flag, &value)? as u64,
            "--fanout" => {
                options.fanout = Vec::new();
                for shape in value.split(',') {
                    let (subs, pubs) = shape.split_once('x').ok_or(format!("--fanout: expected SxP, got {shape:?}"))?;
                    options.fanout.push((number(&flag, subs)?, number(&flag, pubs)?));
                }
            }
            "--hold" => options.hold = Duration::from_secs(number(&flag, &value)? as u64),
            "--idle" => options.idle = value.split(',').map(|n| number(&flag, n)).collect::<Res<_>>()?,
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    if options.server.as_os_str().is_empty() || options.work_dir.as_os_str().is_empty() {
        return Err("--server and --work-dir are required".into());
    }
    if options.quick {
        options.deliveries /= 10;
        options.idle.iter_mut().for_each(|conns| *conns /= 10);
    }
    Ok(options)
}

impl Options {
    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

// ---------------------------------------------------------------- server

/// One `chat-server` process, killed when dropped.
struct Server {
    bin: PathBuf,
    dir: PathBuf,
    args: Vec<String>,
    child: Child,
    /// Kept open: the server may print more to stdout.
    _stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
    key: Key,
}

impl Server {
    /// Starts a server in a new directory `name` under the work directory;
    /// `memory` runs it without a journal.
    fn start(options: &Options, name: &str, memory: bool, extra: &[&str]) -> Res<Server> {
        let dir = options.work_dir.join(name);
        fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let mut args: Vec<String> = vec!["--port".into(), "0".into(), "--key-file".into(), path_arg(&dir.join("key"))];
        if memory {
            args.push("--memory".into());
        } else {
            args.extend(["--data-dir".into(), path_arg(&dir.join("data"))]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let (child, stdout, addr) = spawn_server(&options.server, &dir, &args)?;
        if options.pids {
            // For a profiler: `perf record -g -p PID`.
            eprintln!("loadgen: {name}: server pid {} on {addr}", child.id());
        }
        let key = load_key(&dir.join("key")).map_err(|err| err.to_string())?;
        Ok(Server { bin: options.server.clone(), dir, args, child, _stdout: stdout, addr, key })
    }

    /// Kills the server (like a crash: nothing acknowledged may be lost)
    /// and starts it again on the same data; returns how long the new one
    /// took to replay its journal and listen.
    fn restart(&mut self) -> Res<Duration> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let started = Instant::now();
        let (child, stdout, addr) = spawn_server(&self.bin, &self.dir, &self.args)?;
        (self.child, self._stdout, self.addr) = (child, stdout, addr);
        Ok(started.elapsed())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU seconds the server has used so far.
    fn cpu_s(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }

    /// A `/proc/<pid>/status` field in kB (VmRSS) or a count (Threads).
    fn status(&self, field: &str) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Starts the binary with its log in `dir/server.log` and waits for its
/// `listening on ADDR` line.
fn spawn_server(bin: &Path, dir: &Path, args: &[String]) -> Res<(Child, BufReader<ChildStdout>, SocketAddr)> {
    let log_path = dir.join("server.log");
    let log = File::options().create(true).append(true).open(&log_path);
    let log = log.map_err(|err| format!("{}: {err}", log_path.display()))?;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|err| format!("{}: {err}", bin.display()))?;
    let Some(stdout) = child.stdout.take() else { return Err("the server's stdout is not a pipe".into()) };
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).map_err(|err| err.to_string())? == 0 {
            let _ = child.wait();
            return Err(format!("the server exited before listening; see {}", log_path.display()));
        }
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            let addr = addr.parse().map_err(|_| format!("cannot parse the server's address {addr:?}"))?;
            return Ok((child, stdout, addr));
        }
    }
}

/// utime + stime of a `/proc/.../stat` file, in seconds.
fn cpu_seconds(path: &str) -> f64 {
    let stat = fs::read_to_string(path).unwrap_or_default();
    // The command name is in parentheses and may hold spaces: count fields
    // after the last ')'; utime and stime are fields 14 and 15 of the line.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / TICKS_PER_S
}

fn own_cpu_s() -> f64 {
    cpu_seconds("/proc/self/stat")
}

// ---------------------------------------------------------------- client

/// One logged-in connection with its read buffer and outgoing buffer.
struct Client {
    stream: TcpStream,
    sealer: Sealer,
    opener: Opener,
    /// Bytes read but not yet parsed live in `inbox[start..end]`.
    inbox: Vec<u8>,
    start: usize,
    end: usize,
    /// Sealed frames waiting for [`Client::flush`].
    out: Vec<u8>,
    payload: Vec<u8>,
    /// The owner token this client registered its nickname with.
    token: [u8; 32],
    /// Highest message id seen, and the highest acknowledged.
    max_id: u64,
    acked: u64,
}

impl Client {
    /// Connects, runs the handshake, logs in (registering the nickname with
    /// a new token if `token` is `None`) and reads up to WELCOME.
    fn connect(server: &Server, nick: &str, token: Option<[u8; 32]>, inbox: usize) -> Res<Client> {
        let fail = |what: &str, err: &dyn std::fmt::Display| format!("{nick}: {what}: {err}");
        let mut stream = TcpStream::connect(server.addr).map_err(|e| fail("connect", &e))?;
        let _ = stream.set_nodelay(true);
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| fail("socket", &e))?;
        stream.set_write_timeout(Some(Duration::from_secs(30))).map_err(|e| fail("socket", &e))?;
        let owned = match token {
            Some(token) => OwnerToken { token, accepted: true },
            None => OwnerToken { token: random_bytes().map_err(|e| fail("token", &e))?, accepted: false },
        };
        let token = owned.token;
        let side = client_handshake(&mut stream, &server.key, nick, Some(&owned)).map_err(|e| fail("handshake", &e))?;
        let register = (!side.registered).then(|| token_verifier(&token));
        let mut client = Client {
            stream,
            sealer: side.sealer,
            opener: side.opener,
            inbox: vec![0; inbox],
            start: 0,
            end: 0,
            out: Vec::new(),
            payload: Vec::new(),
            token,
            max_id: 0,
            acked: 0,
        };
        client.queue(&ClientMsg::Login { last_seen: 0, register });
        client.flush()?;
        loop {
            while let Some((kind_byte, _)) = client.next_frame()? {
                match kind_byte {
                    kind::WELCOME => return Ok(client),
                    kind::REJECT => return Err(format!("{nick}: login rejected")),
                    _ => {}
                }
            }
            if client.fill()? == 0 {
                return Err(format!("{nick}: no WELCOME within 30 s"));
            }
        }
    }

    /// Seals a client message into the outgoing buffer.
    fn queue(&mut self, msg: &ClientMsg) {
        self.payload.clear();
        msg.encode_payload(&mut self.payload);
        self.sealer.seal(msg.kind(), &self.payload, &mut self.out);
    }

    /// Seals a public SEND without building a `ClientMsg` (no allocation).
    fn queue_send(&mut self, client_id: u64, text: &str) {
        self.payload.clear();
        put_u64(&mut self.payload, client_id);
        put_str(&mut self.payload, "");
        put_str(&mut self.payload, text);
        self.sealer.seal(kind::SEND, &self.payload, &mut self.out);
    }

    /// Queues one ACK for everything seen, if that is news.
    fn queue_ack(&mut self) {
        if self.max_id > self.acked {
            self.acked = self.max_id;
            self.queue(&ClientMsg::Ack { up_to: self.max_id });
        }
    }

    /// Writes everything queued with one call.
    fn flush(&mut self) -> Res<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.out).map_err(|err| format!("write: {err}"))?;
        self.out.clear();
        Ok(())
    }

    /// One read into the inbox. Returns the bytes read: 0 when the read
    /// timed out or would block; the server closing is an error.
    fn fill(&mut self) -> Res<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        // Make room: slide what is left to the front, and grow for a frame
        // larger than the buffer (a long USERS list).
        let needed = match self.inbox[self.start..self.end].get(..LEN_PREFIX) {
            Some(prefix) => LEN_PREFIX + u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize,
            None => LEN_PREFIX,
        };
        if self.start > 0 && (self.inbox.len() - self.end < 4096 || self.start + needed > self.inbox.len()) {
            self.inbox.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if needed > self.inbox.len() && needed <= LEN_PREFIX + MAX_FRAME_LEN {
            self.inbox.resize(needed, 0);
        }
        if self.end == self.inbox.len() {
            // Full of whole frames nobody has taken yet: make room to read.
            self.inbox.resize(self.inbox.len() * 2, 0);
        }
        match self.stream.read(&mut self.inbox[self.end..]) {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(n) => {
                self.end += n;
                Ok(n)
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(err) => Err(format!("read: {err}")),
        }
    }

    /// Verifies the next whole frame in the inbox, if there is one, and
    /// returns its kind and where its payload is in `inbox`.
    fn next_frame(&mut self) -> Res<Option<(u8, Range<usize>)>> {
        let buffered = &self.inbox[self.start..self.end];
        let Some(len) = frame_len(buffered, MAX_FRAME_LEN).map_err(|err| err.to_string())? else { return Ok(None) };
        let kind_byte = if TRUST.load(Ordering::Relaxed) && len >= SEAL_OVERHEAD {
            buffered[LEN_PREFIX + 8]
        } else {
            self.opener.open(&buffered[..len]).map_err(|err| format!("server frame: {err}"))?.0
        };
        let payload = self.start + SEAL_OVERHEAD - TAG_LEN..self.start + len - TAG_LEN;
        self.start += len;
        Ok(Some((kind_byte, payload)))
    }
}

impl Client {
    /// Drops every whole frame in the inbox unverified: idle clients only
    /// keep their sockets drained, and n logins send them n²/2 JOINED
    /// frames, which would cost the load generator as much as the server.
    fn skip_frames(&mut self) -> Res<()> {
        while let Some(len) = frame_len(&self.inbox[self.start..self.end], MAX_FRAME_LEN).map_err(|e| e.to_string())? {
            self.start += len;
        }
        Ok(())
    }
}

/// Connects `count` clients named `prefix0`, `prefix1`, ... on
/// [`CONNECTORS`] threads and hands each to `each` with its index.
fn connect_many(
    server: &Server,
    prefix: &str,
    count: usize,
    inbox: usize,
    each: &(dyn Fn(usize, Client) + Sync),
) -> Res<()> {
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(None);
    thread::scope(|scope| {
        for _ in 0..CONNECTORS.min(count) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        return;
                    }
                    match Client::connect(server, &format!("{prefix}{index}"), None, inbox) {
                        Ok(client) => each(index, client),
                        Err(err) => {
                            next.store(count, Ordering::Relaxed);
                            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                            return;
                        }
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------- tallies

/// Latencies in microseconds: exact below 1,024, then 64 buckets per
/// power of two (about 1.5 % resolution), so merging is adding.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    max: u64,
}

impl Histogram {
    const LINEAR: u64 = 1024;
    const SUB_BITS: u32 = 6;

    fn new() -> Self {
        Histogram { counts: vec![0; 1024 + 54 * 64], max: 0 }
    }

    fn index(value: u64) -> usize {
        if value < Self::LINEAR {
            return value as usize;
        }
        let power = 63 - value.leading_zeros();
        let sub = (value >> (power - Self::SUB_BITS)) & 63;
        (Self::LINEAR + u64::from(power - 10) * 64 + sub) as usize
    }

    /// The middle of bucket `index`.
    fn value(index: usize) -> u64 {
        let index = index as u64;
        if index < Self::LINEAR {
            return index;
        }
        let (power, sub) = ((index - Self::LINEAR) / 64 + 10, (index - Self::LINEAR) % 64);
        let width = 1 << (power - u64::from(Self::SUB_BITS));
        (1 << power) + sub * width + width / 2
    }

    fn record(&mut self, value: u64) {
        let index = Self::index(value).min(self.counts.len() - 1);
        self.counts[index] += 1;
        self.max = self.max.max(value);
    }

    fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.max = self.max.max(other.max);
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The value below which `fraction` of the samples fall.
    fn percentile(&self, fraction: f64) -> u64 {
        let rank = ((self.total() as f64) * fraction).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(index).min(self.max);
            }
        }
        self.max
    }
}

/// What one recipient saw of the benchmark messages.
struct Tally {
    /// One bit per (publisher, sequence number) received.
    seen: Vec<Vec<u64>>,
    distinct: u64,
    duplicates: u64,
    /// Message ids that did not increase (the server delivers in order).
    out_of_order: u64,
    /// MSG frames that were not benchmark messages, and ERROR frames.
    unexpected: u64,
    last_id: u64,
    latency: Histogram,
    /// When the last new message arrived.
    last_new: Option<Instant>,
}

impl Tally {
    fn new(publishers: usize, per_publisher: u64) -> Self {
        let words = per_publisher.div_ceil(64) as usize;
        Tally {
            seen: vec![vec![0; words]; publishers],
            distinct: 0,
            duplicates: 0,
            out_of_order: 0,
            unexpected: 0,
            last_id: 0,
            latency: Histogram::new(),
            last_new: None,
        }
    }

    /// Counts one MSG payload; returns its id.
    fn record(&mut self, payload: &[u8], now_us: u64) -> u64 {
        let Some((id, text)) = msg_text(payload) else {
            self.unexpected += 1;
            return 0;
        };
        if id <= self.last_id {
            self.out_of_order += 1;
        }
        self.last_id = self.last_id.max(id);
        let Some((sent_us, publisher, seq)) = parse_text(text) else {
            self.unexpected += 1;
            return id;
        };
        let Some(word) = self.seen.get_mut(publisher).and_then(|bits| bits.get_mut(seq as usize / 64)) else {
            self.unexpected += 1;
            return id;
        };
        let bit = 1u64 << (seq % 64);
        if *word & bit != 0 {
            self.duplicates += 1;
            return id;
        }
        *word |= bit;
        self.distinct += 1;
        self.latency.record(now_us.saturating_sub(sent_us));
        self.last_new = Some(Instant::now());
        id
    }
}

/// The id and text of a MSG payload, without allocating.
fn msg_text(payload: &[u8]) -> Option<(u64, &[u8])> {
    let mut fields = Fields::new(payload);
    let id = fields.u64("id").ok()?;
    fields.u64("time_ms").ok()?;
    for field in ["from", "to"] {
        let len = fields.u16(field).ok()?;
        fields.bytes(len as usize, field).ok()?;
    }
    let len = fields.u16("text").ok()?;
    let text = fields.bytes(len as usize, "text").ok()?;
    fields.finish().ok()?;
    Some((id, text))
}

/// `SSSSSSSSSSSS PPP NNNNNNNNN ....`: send time in µs, publisher, sequence.
fn bench_text(sent_us: u64, publisher: usize, seq: u64, size: usize) -> String {
    let mut text = format!("{sent_us:012} {publisher:03} {seq:09} ");
    while text.len() < size {
        text.push('.');
    }
    text
}

fn parse_text(text: &[u8]) -> Option<(u64, usize, u64)> {
    let digits = |range: Range<usize>| -> Option<u64> {
        let bytes = text.get(range)?;
        bytes.iter().try_fold(0u64, |n, b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
    };
    Some((digits(0..12)?, digits(13..16)? as usize, digits(17..26)?))
}

/// Reads once, counts every MSG, hands other frames to `other`, and
/// answers the whole read with one ACK.
fn receive(client: &mut Client, tally: &mut Tally, mut other: impl FnMut(u8, &[u8])) -> Res<()> {
    if client.fill()? == 0 {
        return Ok(());
    }
    let now = now_us();
    while let Some((kind_byte, range)) = client.next_frame()? {
        let payload = &client.inbox[range];
        match kind_byte {
            kind::MSG => {
                let id = tally.record(payload, now);
                client.max_id = client.max_id.max(id);
            }
            kind::ERROR => {
                tally.unexpected += 1;
                other(kind_byte, payload);
            }
            _ => other(kind_byte, payload),
        }
    }
    client.queue_ack();
    client.flush()
}

// ---------------------------------------------------------------- fanout

/// How a publisher sends: as fast as SENTs come back (a window), or at a
/// steady rate.
#[derive(Clone, Copy)]
enum Pace {
    Window(usize),
    Every(Duration),
}

struct FanoutRun {
    subs: usize,
    pubs: usize,
    messages: u64,
    recipients: usize,
    deliveries: u64,
    seconds: f64,
    latency: Histogram,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    unexpected: u64,
    server_cpu_s: f64,
    loadgen_cpu_s: f64,
}

/// `subs` subscribers and `pubs` publishers in the public chat; each
/// publisher sends `per_pub` messages; everyone (publishers too: they get
/// the echo) must receive every message exactly once.
fn fanout(server: &Server, subs: usize, pubs: usize, per_pub: u64, pace: Pace) -> Res<FanoutRun> {
    let total = pubs as u64 * per_pub;
    let clients = Mutex::new(Vec::new());
    connect_many(server, "s", subs, BIG_INBOX, &|_, client| {
        clients.lock().unwrap_or_else(|p| p.into_inner()).push(client)
    })?;
    let subscribers = clients.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut publishers = Vec::new();
    for index in 0..pubs {
        publishers.push(Client::connect(server, &format!("p{index}"), None, BIG_INBOX)?);
    }
    let deadline = Instant::now() + RUN_LIMIT;
    // Publishers start together when the write lock is released.
    let gate = RwLock::new(());
    let results = Mutex::new(Vec::new());
    let failure = Mutex::new(None::<String>);
    let keep = |result: Res<Tally>| match result {
        Ok(tally) => results.lock().unwrap_or_else(|p| p.into_inner()).push(tally),
        Err(err) => *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(err),
    };
    let (cpu_before, own_before, started) = thread::scope(|scope| -> Res<(f64, f64, Instant)> {
        let closed = gate.write().unwrap_or_else(|p| p.into_inner());
        let builder = |name: String| thread::Builder::new().name(name).stack_size(CLIENT_STACK);
        let cannot = |err: io::Error| format!("cannot start a thread: {err}");
        for (index, mut client) in subscribers.into_iter().enumerate() {
            let keep = &keep;
            let body = move || keep(subscribe(&mut client, pubs, per_pub, deadline));
            builder(format!("sub-{index}")).spawn_scoped(scope, body).map_err(cannot)?;
        }
        for (index, mut client) in publishers.into_iter().enumerate() {
            let (keep, gate) = (&keep, &gate);
            let body = move || {
                drop(gate.read().unwrap_or_else(|p| p.into_inner()));
                keep(publish(&mut client, index, pubs, per_pub, pace, deadline))
            };
            builder(format!("pub-{index}")).spawn_scoped(scope, body).map_err(cannot)?;
        }
        let (cpu, own) = (server.cpu_s(), own_cpu_s());
        drop(closed);
        Ok((cpu, own, Instant::now()))
    })?;
    let (server_cpu_s, loadgen_cpu_s) = (server.cpu_s() - cpu_before, own_cpu_s() - own_before);
    if let Some(err) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(err);
    }
    let tallies = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut latency = Histogram::new();
    let mut run = FanoutRun {
        subs,
        pubs,
        messages: total,
        recipients: subs + pubs,
        deliveries: 0,
        seconds: 0.0,
        latency: Histogram::new(),
        lost: 0,
        duplicates: 0,
        out_of_order: 0,
        unexpected: 0,
        server_cpu_s,
        loadgen_cpu_s,
    };
    let mut finished = started;
    for tally in &tallies {
        latency.merge(&tally.latency);
        run.deliveries += tally.distinct;
        run.duplicates += tally.duplicates;
        run.out_of_order += tally.out_of_order;
        run.unexpected += tally.unexpected;
        finished = finished.max(tally.last_new.unwrap_or(started));
    }
    run.lost = total * run.recipients as u64 - run.deliveries;
    run.seconds = finished.duration_since(started).as_secs_f64().max(1e-6);
    run.latency = latency;
    Ok(run)
}

fn subscribe(client: &mut Client, pubs: usize, per_pub: u64, deadline: Instant) -> Res<Tally> {
    client.stream.set_read_timeout(Some(Duration::from_millis(100))).map_err(|err| err.to_string())?;
    let mut tally = Tally::new(pubs, per_pub);
    while tally.distinct < pubs as u64 * per_pub && Instant::now() < deadline {
        receive(client, &mut tally, |_, _| {})?;
    }
    Ok(tally)
}

fn publish(client: &mut Client, index: usize, pubs: usize, per_pub: u64, pace: Pace, deadline: Instant) -> Res<Tally> {
    let mut tally = Tally::new(pubs, per_pub);
    let (mut sent, mut confirmed) = (0u64, 0u64);
    let began = Instant::now();
    let total = pubs as u64 * per_pub;
    while (confirmed < per_pub || tally.distinct < total) && Instant::now() < deadline {
        let mut wait = Duration::from_millis(100);
        match pace {
            Pace::Window(window) => {
                while sent < per_pub && sent - confirmed < window as u64 {
                    sent += 1;
                    client.queue_send(sent, &bench_text(now_us(), index, sent - 1, TEXT_SIZE));
                }
            }
            Pace::Every(interval) => {
                let due = began + interval * sent as u32;
                let now = Instant::now();
                if sent < per_pub && now >= due {
                    sent += 1;
                    client.queue_send(sent, &bench_text(now_us(), index, sent - 1, TEXT_SIZE));
                    wait = interval.min(wait);
                } else if sent < per_pub {
                    wait = (due - now).max(Duration::from_micros(50));
                }
            }
        }
        client.flush()?;
        client.stream.set_read_timeout(Some(wait)).map_err(|err| err.to_string())?;
        let mut failure = None;
        receive(client, &mut tally, |kind_byte, payload| match kind_byte {
            kind::SENT => confirmed += 1,
            kind::ERROR => failure = Some(String::from_utf8_lossy(payload.get(10..).unwrap_or_default()).into_owned()),
            _ => {}
        })?;
        if let Some(reason) = failure {
            return Err(format!("publisher {index}: server error: {reason}"));
        }
    }
    Ok(tally)
}

// ---------------------------------------------------------------- idle

struct IdleRun {
    conns: usize,
    connect_s: f64,
    settle_s: f64,
    rss_base_kib: u64,
    rss_kib: u64,
    threads: u64,
    server_cpu_s: f64,
}

/// Opens `conns` logged-in connections that then only read (and PING, as
/// real clients do), waits for the server to go quiet, and measures it.
fn idle(server: &Server, conns: usize, hold: Duration) -> Res<IdleRun> {
    let rss_base_kib = server.status("VmRSS");
    let cpu_before = server.cpu_s();
    let stop = AtomicBool::new(false);
    let drainers = 2;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..drainers).map(|_| mpsc::channel::<Client>()).unzip();
    let failure = Mutex::new(None::<String>);
    let (connect_s, settle_s, rss_kib, threads) = thread::scope(|scope| -> Res<(f64, f64, u64, u64)> {
        for receiver in receivers {
            let (stop, failure) = (&stop, &failure);
            scope.spawn(move || {
                if let Err(err) = drain(receiver, stop) {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                }
            });
        }
        let started = Instant::now();
        let senders = senders.into_iter().map(Mutex::new).collect::<Vec<_>>();
        let handed = connect_many(server, "i", conns, SMALL_INBOX, &|index, client| {
            let _ = client.stream.set_nonblocking(true);
            let sender = senders[index % drainers].lock().unwrap_or_else(|p| p.into_inner());
            let _ = sender.send(client);
        });
        let connect_s = started.elapsed().as_secs_f64();
        drop(senders);
        let settled = handed.and_then(|()| settle(server));
        // Measured while every connection is still open.
        let (rss_kib, threads) = (server.status("VmRSS"), server.status("Threads"));
        if !hold.is_zero() {
            eprintln!("loadgen: holding {conns} connections for {hold:?}");
            thread::sleep(hold);
        }
        stop.store(true, Ordering::Relaxed);
        Ok((connect_s, settled?.as_secs_f64(), rss_kib, threads))
    })?;
    if let Some(err) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(err);
    }
    Ok(IdleRun {
        conns,
        connect_s,
        settle_s,
        rss_base_kib,
        rss_kib,
        threads,
        server_cpu_s: server.cpu_s() - cpu_before,
    })
}

/// Waits until the server has used under 1 % CPU for half a second.
fn settle(server: &Server) -> Res<Duration> {
    let started = Instant::now();
    let mut quiet = 0;
    let mut cpu = server.cpu_s();
    while quiet < 2 {
        if started.elapsed() > RUN_LIMIT {
            return Err("the server did not go quiet".into());
        }
        thread::sleep(Duration::from_millis(250));
        let now = server.cpu_s();
        quiet = if now - cpu <= 0.01 { quiet + 1 } else { 0 };
        cpu = now;
    }
    Ok(started.elapsed())
}

/// Reads every client handed over on `clients` without blocking, one pass
/// after another, until `stop`; sleeps when a pass found nothing.
fn drain(clients: mpsc::Receiver<Client>, stop: &AtomicBool) -> Res<()> {
    let mut owned: Vec<Client> = Vec::new();
    let mut last_ping = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        owned.extend(clients.try_iter());
        let ping = last_ping.elapsed() > chat_common::PING_INTERVAL;
        let mut read = 0;
        for client in &mut owned {
            loop {
                let n = client.fill()?;
                client.skip_frames()?;
                read += n;
                if n == 0 {
                    break;
                }
            }
            if ping {
                client.queue(&ClientMsg::Ping);
                client.flush()?;
            }
        }
        if ping {
            last_ping = Instant::now();
        }
        if read == 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- backlog

struct BacklogRun {
    messages: u64,
    fill_s: f64,
    replay_s: f64,
    drain_s: f64,
    lost: u64,
    duplicates: u64,
}

/// One user registers and goes offline; a publisher sends `messages`; the
/// server is restarted (replaying its journal); the user comes back.
fn backlog(server: &mut Server, messages: u64) -> Res<BacklogRun> {
    let token = Client::connect(server, "late", None, SMALL_INBOX)?.token;
    let fill_started = Instant::now();
    let filled = fanout(server, 0, 1, messages, Pace::Window(WINDOW))?;
    if filled.lost + filled.duplicates > 0 {
        return Err(format!("backlog: the publisher lost {} and saw {} twice", filled.lost, filled.duplicates));
    }
    let fill_s = fill_started.elapsed().as_secs_f64();
    let replay_s = server.restart()?.as_secs_f64();
    let started = Instant::now();
    let mut client = Client::connect(server, "late", Some(token), BIG_INBOX)?;
    let mut tally = Tally::new(1, messages);
    client.stream.set_read_timeout(Some(Duration::from_millis(100))).map_err(|err| err.to_string())?;
    while tally.distinct < messages && started.elapsed() < RUN_LIMIT {
        receive(&mut client, &mut tally, |_, _| {})?;
    }
    let drain_s = tally.last_new.map_or(0.0, |at| at.duration_since(started).as_secs_f64());
    Ok(BacklogRun {
        messages,
        fill_s,
        replay_s,
        drain_s,
        lost: messages - tally.distinct,
        duplicates: tally.duplicates,
    })
}

// ---------------------------------------------------------------- output

/// Prints a JSON line now and keeps a row for the closing table.
struct Report {
    rows: Vec<[String; 5]>,
}

impl Report {
    fn line(&mut self, json: String, row: [String; 5]) {
        println!("{{{json}}}");
        let _ = io::stdout().flush();
        self.rows.push(row);
    }

    fn fanout(&mut self, scenario: &str, mode: Option<&str>, run: &FanoutRun) {
        let rate = run.deliveries as f64 / run.seconds;
        let (p50, p99) = (run.latency.percentile(0.50), run.latency.percentile(0.99));
        let mut json = format!(
            "\"scenario\":\"{scenario}\",\"subs\":{},\"pubs\":{},\"size\":{TEXT_SIZE},\"messages\":{},\
             \"recipients\":{},\"deliveries\":{},\"seconds\":{:.3},\"deliveries_per_s\":{:.0},\"msgs_per_s\":{:.0},\
             \"p50_us\":{p50},\"p99_us\":{p99},\"max_us\":{},\"lost\":{},\"duplicates\":{},\"out_of_order\":{},\
             \"unexpected\":{},\"server_cpu_s\":{:.2},\"loadgen_cpu_s\":{:.2}",
            run.subs,
            run.pubs,
            run.messages,
            run.recipients,
            run.deliveries,
            run.seconds,
            rate,
            run.messages as f64 / run.seconds,
            run.latency.max,
            run.lost,
            run.duplicates,
            run.out_of_order,
            run.unexpected,
            run.server_cpu_s,
            run.loadgen_cpu_s,
        );
        if let Some(mode) = mode {
            let _ = write!(json, ",\"mode\":\"{mode}\"");
        }
        let what = match mode {
            Some(mode) => format!("{}x{} {mode}", run.subs, run.pubs),
            None => format!("{}x{}", run.subs, run.pubs),
        };
        let figure = if scenario == "latency" {
            format!("{} msg/s", (run.messages as f64 / run.seconds).round())
        } else {
            format!("{:.0} deliveries/s", rate)
        };
        let checks = format!("lost {} dup {}", run.lost, run.duplicates);
        let latency = format!("p50 {p50} p99 {p99} max {} µs", run.latency.max);
        let cpu = format!("server {:.1} s, loadgen {:.1} s", run.server_cpu_s, run.loadgen_cpu_s);
        self.line(json, [format!("{scenario} {what}"), figure, latency, checks, cpu]);
    }

    fn table(&self) {
        let widths: Vec<usize> =
            (0..5).map(|c| self.rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        println!();
        for row in &self.rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                let _ = write!(line, "{cell:<width$}  ");
            }
            println!("{}", line.trim_end());
        }
    }
}

fn run(options: &Options) -> Res<()> {
    let mut report = Report { rows: Vec::new() };
    let per_run = options.deliveries;
    // Mailboxes must hold a whole run: publishers may run ahead of delivery.
    let big_mailbox = ["--mailbox", "2000000"];
    if options.wants("fanout") {
        for &(subs, pubs) in &options.fanout {
            let server = Server::start(options, &format!("fanout-{subs}x{pubs}"), false, &big_mailbox)?;
            let per_pub = (per_run / (subs + pubs) as u64 / pubs as u64).max(100);
            let run = fanout(&server, subs, pubs, per_pub, Pace::Window(WINDOW))?;
            report.fanout("fanout", None, &run);
        }
    }
    if options.wants("latency") {
        // With the journal, each message waits for its own sync_data.
        for (mode, memory) in [("journal", false), ("memory", true)] {
            let server = Server::start(options, &format!("latency-{mode}"), memory, &[])?;
            let messages = if options.quick { 100 } else { 1000 };
            let run = fanout(&server, 100, 1, messages, Pace::Every(Duration::from_millis(10)))?;
            report.fanout("latency", Some(mode), &run);
        }
    }
    if options.wants("idle") {
        for &conns in &options.idle {
            let max = (conns + 100).to_string();
            let server = Server::start(options, &format!("idle-{conns}"), false, &["--max-conns", &max])?;
            let run = match idle(&server, conns, options.hold) {
                Ok(run) => run,
                // Usually a system limit (descriptors, threads, mappings):
                // reported, and the other scenarios still run.
                Err(err) => {
                    let json = format!("\"scenario\":\"idle\",\"conns\":{conns},\"error\":{err:?}");
                    let row = [
                        format!("idle {conns}"),
                        format!("failed: {err}"),
                        String::new(),
                        String::new(),
                        String::new(),
                    ];
                    report.line(json, row);
                    continue;
                }
            };
            let per_conn = (run.rss_kib.saturating_sub(run.rss_base_kib)) as f64 / conns as f64;
            let json = format!(
                "\"scenario\":\"idle\",\"conns\":{},\"rss_per_conn_kib\":{per_conn:.1},\"connect_s\":{:.2},\
                 \"settle_s\":{:.2},\"rss_kib\":{},\"rss_base_kib\":{},\"server_threads\":{},\"server_cpu_s\":{:.2}",
                run.conns, run.connect_s, run.settle_s, run.rss_kib, run.rss_base_kib, run.threads, run.server_cpu_s
            );
            let row = [
                format!("idle {conns}"),
                format!("{per_conn:.1} KiB/conn"),
                format!("connected in {:.2} s", run.connect_s),
                format!("quiet after {:.2} s more", run.settle_s),
                format!("server {:.1} s", run.server_cpu_s),
            ];
            report.line(json, row);
        }
    }
    if options.wants("backlog") {
        let messages = if options.quick { 10_000 } else { 100_000 };
        let mut server = Server::start(options, "backlog", false, &["--mailbox", "200000"])?;
        let run = backlog(&mut server, messages)?;
        let json = format!(
            "\"scenario\":\"backlog\",\"messages\":{},\"drain_s\":{:.3},\"fill_s\":{:.2},\"replay_s\":{:.3},\
             \"lost\":{},\"duplicates\":{}",
            run.messages, run.drain_s, run.fill_s, run.replay_s, run.lost, run.duplicates
        );
        let row = [
            format!("backlog {}", run.messages),
            format!("drained in {:.3} s", run.drain_s),
            format!("sent in {:.2} s, replayed in {:.3} s", run.fill_s, run.replay_s),
            format!("lost {} dup {}", run.lost, run.duplicates),
            String::new(),
        ];
        report.line(json, row);
    }
    if options.wants("journal") {
        for (mode, memory) in [("journal", false), ("memory", true)] {
            let server = Server::start(options, &format!("journal-{mode}"), memory, &big_mailbox)?;
            let per_pub = (per_run / 101).max(100);
            let run = fanout(&server, 100, 1, per_pub, Pace::Window(WINDOW))?;
            report.fanout("journal", Some(mode), &run);
        }
    }
    report.table();
    Ok(())
}

fn main() -> ExitCode {
    now_us();
    if std::env::args().any(|arg| arg == "-h" || arg == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("loadgen: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}
