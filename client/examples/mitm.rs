//! The attack lab: a man-in-the-middle proxy for class. It sits between
//! clients and the server, prints every frame that passes, and can tamper
//! with the Nth one, so students can watch the HMAC catch each attack.
//!
//! ```text
//! cargo run -p chat-client --example mitm -- --listen 127.0.0.1:6666 --to 127.0.0.1:5555 --show --flip 7
//! ```
//! Frames are numbered from 1 in the order they pass, both directions and
//! all connections together, so each attack happens exactly once.
//! It holds no key: it can read everything (there is no encryption) but
//! cannot make a tag, which is the whole point.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use chat_common::frame::read_frame;
use chat_common::message::{Handshake, describe_unverified};

/// Prints a line, ignoring a closed stdout: the relay must go on.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

const USAGE: &str = "usage: mitm --listen ADDR --to ADDR [--show] [--flip N] [--replay N] [--drop N] [--reflect N]
  --show      print every frame: number, direction, length, sequence, kind, text, tag
  --flip N    flip one bit in frame N's payload before passing it on
  --replay N  pass frame N on twice
  --drop N    do not pass frame N on
  --reflect N send frame N back to whoever sent it, instead of passing it on";

#[derive(Clone, Copy, Default)]
struct Options {
    show: bool,
    flip: u64,
    replay: u64,
    drop: u64,
    reflect: u64,
}

fn parse() -> Result<(String, String, Options), String> {
    let (mut listen, mut to, mut options) = (None, None, Options::default());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--show" {
            options.show = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag}: missing value"))?;
        let number = || value.parse::<u64>().map_err(|_| format!("{flag}: expected a frame number, got {value:?}"));
        match flag.as_str() {
            "--listen" => listen = Some(value.clone()),
            "--to" => to = Some(value.clone()),
            "--flip" => options.flip = number()?,
            "--replay" => options.replay = number()?,
            "--drop" => options.drop = number()?,
            "--reflect" => options.reflect = number()?,
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok((listen.ok_or("--listen is required")?, to.ok_or("--to is required")?, options))
}

fn main() -> ExitCode {
    let (listen, to, options) = match parse() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("mitm: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("mitm: cannot listen on {listen}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listening = listener.local_addr().map_or(listen, |addr| addr.to_string());
    say!("mitm: listening on {listening}, forwarding to {to}");
    let counter = Arc::new(AtomicU64::new(0));
    for client in listener.incoming().flatten() {
        match TcpStream::connect(&to) {
            Ok(server) => relay(client, server, &counter, options),
            Err(err) => eprintln!("mitm: cannot reach {to}: {err}"),
        }
    }
    ExitCode::SUCCESS
}

/// Starts one pump thread per direction for a client/server pair.
fn relay(client: TcpStream, server: TcpStream, counter: &Arc<AtomicU64>, options: Options) {
    let (Ok(client_out), Ok(server_out)) = (client.try_clone(), server.try_clone()) else { return };
    let client_out = Arc::new(Mutex::new(client_out));
    let server_out = Arc::new(Mutex::new(server_out));
    let up = (client, server_out.clone(), client_out.clone(), true);
    let down = (server, client_out, server_out, false);
    for (source, forward, back, upstream) in [up, down] {
        let counter = counter.clone();
        thread::spawn(move || pump(source, &forward, &back, upstream, &counter, options));
    }
}

/// Reads frames from `source` and passes them to `forward`, tampering as asked.
fn pump(
    mut source: TcpStream,
    forward: &Mutex<TcpStream>,
    back: &Mutex<TcpStream>,
    upstream: bool,
    counter: &AtomicU64,
    options: Options,
) {
    let arrow = if upstream { "C→S" } else { "S→C" };
    let mut frame = Vec::new();
    // The first two frames each way are the plain handshake; then sealed.
    let mut index_this_way = 0;
    while let Ok(true) = read_frame(&mut source, 16 << 20, &mut frame) {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let sealed = index_this_way >= 2;
        index_this_way += 1;
        if options.show {
            say!("#{n} {arrow} {}", describe(&frame, sealed));
        }
        let write = |to: &Mutex<TcpStream>, bytes: &[u8]| {
            // A poisoned lock only means another pump died; the socket is fine.
            let mut stream = to.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = stream.write_all(bytes);
        };
        if n == options.drop {
            say!("#{n} {arrow} DROPPED");
        } else if n == options.reflect {
            say!("#{n} {arrow} REFLECTED back to its sender");
            write(back, &frame);
        } else if n == options.flip {
            let at = if sealed { frame.len() - 33 } else { frame.len() - 1 };
            frame[at] ^= 0x01;
            say!("#{n} {arrow} FLIPPED one bit of byte {at}");
            write(forward, &frame);
        } else {
            write(forward, &frame);
            if n == options.replay {
                say!("#{n} {arrow} REPLAYED");
                write(forward, &frame);
            }
        }
    }
    for side in [forward, back] {
        let stream = side.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// One line on a frame: what anyone on the network can read.
fn describe(frame: &[u8], sealed: bool) -> String {
    let len = frame.len() - 4;
    if !sealed || frame.len() < 45 {
        let text = match Handshake::decode(&frame[4..]) {
            Ok(Handshake::Hello { version, nick, .. }) => format!("HELLO version {version} nick {nick:?} (+ nonce)"),
            Ok(Handshake::Challenge { registered, .. }) => format!("CHALLENGE registered={registered} (+ nonce)"),
            Ok(Handshake::Proof { tag }) => format!("PROOF {}", hex(&tag)),
            Ok(Handshake::Accept { tag }) => format!("ACCEPT {}", hex(&tag)),
            Ok(Handshake::Fail { reason }) => format!("FAIL {reason:?}"),
            Err(err) => format!("unreadable ({err})"),
        };
        return format!("len {len} plain {text}");
    }
    let seq = u64::from_be_bytes(frame[4..12].try_into().unwrap_or_default());
    let (kind, payload, tag) = (frame[12], &frame[13..frame.len() - 32], &frame[frame.len() - 32..]);
    // The proxy holds no session keys: it shows what it cannot verify.
    let text = describe_unverified(kind, payload);
    format!("len {len} seq {seq} {text} tag {}", hex(tag))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
