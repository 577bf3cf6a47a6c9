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

use chat_common::auth::{Key, Opener, SEAL_OVERHEAD, Sealer, TAG_LEN, token_verifier};
use chat_common::frame::{LEN_PREFIX, frame_len};
use chat_common::handshake::{OwnerToken, client_handshake};
use chat_common::keyfile::load_key;
use chat_common::message::{ClientMsg, Fields, kind, put_str, put_u64};
use chat_common::random::random_bytes;
use chat_common::{ACK_AFTER, ACK_DELAY, MAX_FRAME_LEN};

mod client;
mod floor;
mod scenarios;
mod server;
mod stats;

use client::*;
use floor::{FLOOR_SERVER, floor};
use scenarios::*;
use server::*;
use stats::*;

const USAGE: &str = "usage: loadgen --server PATH --work-dir DIR [OPTIONS]
  --server PATH     the chat-server binary to start for each run
  --work-dir DIR    an empty directory for keys, journals and server logs
  --quick           about a tenth of the load, for a smoke test
  --only LIST       comma-separated scenarios: fanout,latency,floor,idle,backlog,registered,journal
  --deliveries N    deliveries per fanout run [default: 4000000]
  --fanout LIST     fanout shapes to run, e.g. 1000x4,100x1 [default: all six]
  --latency LIST    latency runs, SUBS:MODE with MODE journal or memory
                    [default: 100:journal,100:memory,10:memory,1000:memory];
                    floor runs the SUBS of the memory runs
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
/// How often idle clients are drained (presence comes every 250 ms).
const DRAIN_PERIOD: Duration = Duration::from_millis(25);
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
    /// Subscribers, and whether the server runs with `--memory`.
    latency: Vec<(usize, bool)>,
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
        latency: vec![(100, false), (100, true), (10, true), (1000, true)],
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
            "--latency" => {
                options.latency = Vec::new();
                for run in value.split(',') {
                    let memory = match run.split_once(':') {
                        Some((_, "memory")) => true,
                        Some((_, "journal")) => false,
                        _ => return Err(format!("--latency: expected SUBS:journal or SUBS:memory, got {run:?}")),
                    };
                    let subs = run.split(':').next().unwrap_or_default();
                    options.latency.push((number(&flag, subs)?, memory));
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
        let paced = scenario == "latency" || scenario == "floor";
        let figure = if paced {
            format!("{} msg/s", (run.messages as f64 / run.seconds).round())
        } else {
            format!("{:.0} deliveries/s", rate)
        };
        let checks = format!("lost {} dup {}", run.lost, run.duplicates);
        let latency = format!("p50 {p50} p99 {p99} max {} µs", run.latency.max);
        let (server_cpu, own_cpu) = (run.server_cpu_s, run.loadgen_cpu_s);
        let cpu = if paced {
            // Paced runs use little CPU: per delivery, the floor and the
            // real server compare.
            let per = |seconds: f64| seconds * 1e6 / run.deliveries.max(1) as f64;
            format!(
                "server {server_cpu:.2} s, loadgen {own_cpu:.2} s ({:.1}, {:.1} µs per delivery)",
                per(server_cpu),
                per(own_cpu)
            )
        } else {
            format!("server {server_cpu:.1} s, loadgen {own_cpu:.1} s")
        };
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
        // With the journal, each message waits for its own sync_data. 100
        // subscribers both ways; 10 and 1,000 in memory, to see how the
        // fan-out's size shapes the latency.
        for &(subs, memory) in &options.latency {
            let mode = if memory { "memory" } else { "journal" };
            let server = Server::start(options, &format!("latency-{subs}-{mode}"), memory, &[])?;
            let messages = if options.quick { 100 } else { 1000 };
            let run = fanout(&server, subs, 1, messages, Pace::Every(Duration::from_millis(10)))?;
            report.fanout("latency", Some(mode), &run);
        }
    }
    if options.wants("floor") {
        // The same receiver counts as the latency runs in memory, to set
        // the two side by side.
        let mut sizes: Vec<usize> = Vec::new();
        for &(subs, memory) in &options.latency {
            if memory && !sizes.contains(&subs) {
                sizes.push(subs);
            }
        }
        for receivers in sizes {
            let run = floor(receivers, if options.quick { 100 } else { 1000 })?;
            report.fanout("floor", None, &run);
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
                 \"settle_s\":{:.2},\"rss_kib\":{},\"rss_base_kib\":{},\"server_threads\":{},\"server_cpu_s\":{:.2},\"loadgen_cpu_s\":{:.2}",
                run.conns,
                run.connect_s,
                run.settle_s,
                run.rss_kib,
                run.rss_base_kib,
                run.threads,
                run.server_cpu_s,
                run.loadgen_cpu_s
            );
            let row = [
                format!("idle {conns}"),
                format!("{per_conn:.1} KiB/conn"),
                format!("connected in {:.2} s", run.connect_s),
                format!("quiet after {:.2} s more", run.settle_s),
                format!("server {:.1} s, loadgen {:.1} s", run.server_cpu_s, run.loadgen_cpu_s),
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
    if options.wants("registered") {
        for registered in [10, 10_000] {
            let registered = if options.quick { registered / 10 } else { registered };
            let server = Server::start(options, &format!("registered-{registered}"), true, &["--mailbox", "200000"])?;
            let messages = if options.quick { 2_000 } else { 20_000 };
            let run = registered_run(&server, registered, messages)?;
            let bytes = run.rss_growth_kib as f64 * 1024.0 / messages as f64;
            let cpu_us = run.server_cpu_s * 1e6 / messages as f64;
            let json = format!(
                "\"scenario\":\"registered\",\"registered\":{registered},\"online\":11,\"messages\":{messages},\
                 \"bytes_per_message\":{bytes:.0},\"server_cpu_us_per_message\":{cpu_us:.1},\"lost\":{},\"duplicates\":{}",
                run.lost, run.duplicates
            );
            let row = [
                format!("registered {registered}"),
                format!("{bytes:.0} bytes per stored message"),
                format!("server CPU {cpu_us:.1} µs per message"),
                format!("lost {} dup {}", run.lost, run.duplicates),
                String::new(),
            ];
            report.line(json, row);
        }
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
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(FLOOR_SERVER) {
        return match floor::serve(args.get(2..).unwrap_or_default()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("loadgen {FLOOR_SERVER}: {message}");
                ExitCode::FAILURE
            }
        };
    }
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
