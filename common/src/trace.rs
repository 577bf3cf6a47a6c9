//! Frame traces: one line of text per frame, so that a student can watch
//! the protocol (`--trace` on stderr, the window's protocol pane).
//! docs/PROTOCOL.md, "Frame traces", documents the format.
//!
//! Display only. A line is made from a frame's bytes and the caller's
//! [`Verdict`] (the caller verified the frame, or sealed it itself), and
//! it is text, never a message value: nothing can act on a frame because
//! it was traced, so traces can show frames whose tags failed. The fields
//! come from message.rs's own decoders, so a line shows what a receiver
//! reads; a frame they refuse shows why instead (`[malformed: ...]`).
//!
//! A line holds only what crossed the wire, shortened: never the shared
//! key, an owner token or a derived key, which are not in a frame's bytes.

use std::fmt::{self, Write};

use crate::auth::{SEAL_OVERHEAD, TAG_LEN};
use crate::error::ProtocolError;
use crate::frame::LEN_PREFIX;
use crate::log::utc_timestamp;
use crate::message::{ClientMsg, Handshake, ServerMsg, kind};

/// Texts longer than this many characters are cut.
pub const TEXT_CHARS: usize = 32;
/// Lists of nicknames longer than this are cut.
pub const LIST_NAMES: usize = 8;
/// Nonces, verifiers and tags show this many leading bytes.
pub const SHORT_BYTES: usize = 4;

/// Which way a frame went, seen from the program that traces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We wrote it: `→`.
    Sent,
    /// We read it: `←`.
    Received,
}

/// What the tracing program knows about a frame's tag (or proof).
#[derive(Clone, Copy)]
pub enum Verdict<'a> {
    /// We made the tag ourselves: `✓`.
    Sealed,
    /// We checked it (and, for a sealed frame, its sequence number): `✓`.
    Verified,
    /// Nobody checked it: `?`.
    Unchecked,
    /// We checked it and refused the frame, for this reason: `✗ reason`.
    Failed(&'a dyn fmt::Display),
}

/// When and where a frame was seen.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    /// When, in Unix milliseconds (shown as UTC time of day).
    pub unix_ms: u64,
    /// Which way it went.
    pub direction: Direction,
    /// Who is at the other end: a nickname, or an address until the
    /// nickname is known.
    pub peer: &'a str,
}

/// What a program gives the handshake to watch its frames (`--trace`):
/// called once per frame sent or received, with its bytes (length prefix
/// included) and what the program concluded about it.
pub type Watch<'a> = &'a mut dyn FnMut(Direction, &[u8], Verdict<'_>);

/// The name of a kind byte, if the protocol defines it.
pub fn kind_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        kind::HELLO => "HELLO",
        kind::CHALLENGE => "CHALLENGE",
        kind::PROOF => "PROOF",
        kind::ACCEPT => "ACCEPT",
        kind::FAIL => "FAIL",
        kind::LOGIN => "LOGIN",
        kind::SEND => "SEND",
        kind::ACK => "ACK",
        kind::PING => "PING",
        kind::WELCOME => "WELCOME",
        kind::REJECT => "REJECT",
        kind::USERS => "USERS",
        kind::JOINED => "JOINED",
        kind::LEFT => "LEFT",
        kind::MSG => "MSG",
        kind::SENT => "SENT",
        kind::PONG => "PONG",
        kind::ERROR => "ERROR",
        kind::RETRY => "RETRY",
        kind::DROPPED => "DROPPED",
        kind::UNLISTED => "UNLISTED",
        _ => return None,
    })
}

/// One line for a handshake frame (`frame` includes its length prefix).
pub fn handshake_line(seen: &Seen<'_>, frame: &[u8], verdict: Verdict<'_>) -> String {
    let mut line = start(seen, "-");
    let body = frame.get(LEN_PREFIX..).unwrap_or_default();
    push_kind_and_len(&mut line, body.first().copied(), frame);
    // Handshake::decode refuses every kind but the handshake's [P-11].
    let tag = match Handshake::decode(body) {
        Ok(message) => write_handshake(&mut line, &message),
        Err(problem) => push_problem(&mut line, problem),
    };
    finish(line, tag.as_ref().map(|tag| &tag[..]), verdict)
}

/// One line for a sealed frame (`frame` includes its length prefix).
pub fn sealed_line(seen: &Seen<'_>, frame: &[u8], verdict: Verdict<'_>) -> String {
    if frame.len() < SEAL_OVERHEAD {
        let mut line = start(seen, "-");
        push_kind_and_len(&mut line, None, frame);
        let min = SEAL_OVERHEAD - LEN_PREFIX;
        let _ = write!(line, " [frame too short ({} bytes, min {min})]", frame.len().saturating_sub(LEN_PREFIX));
        return finish(line, None, verdict);
    }
    let (signed, tag) = frame.split_at(frame.len() - TAG_LEN);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&signed[LEN_PREFIX..LEN_PREFIX + 8]);
    let kind = signed[LEN_PREFIX + 8];
    let payload = &signed[LEN_PREFIX + 9..];
    let mut line = start(seen, &format!("#{}", u64::from_be_bytes(seq)));
    push_kind_and_len(&mut line, Some(kind), frame);
    // The decoders the programs use: a line shows what a receiver would read.
    let written = if kind < kind::WELCOME {
        ClientMsg::read(kind, payload).map(|message| write_client(&mut line, &message))
    } else {
        ServerMsg::read(kind, payload).map(|message| write_server(&mut line, &message))
    };
    if let Err(problem) = written {
        push_problem(&mut line, problem);
    }
    finish(line, Some(tag), verdict)
}

/// Appends ` [malformed: ...]`, for a frame the receiver would close on.
fn push_problem(line: &mut String, problem: ProtocolError) -> Option<[u8; TAG_LEN]> {
    let _ = write!(line, " [malformed: {}]", problem.to_string().trim_start_matches("malformed: "));
    None
}

/// Time, arrow, peer and sequence column.
fn start(seen: &Seen<'_>, seq: &str) -> String {
    let ms = seen.unix_ms % 86_400_000;
    let arrow = match seen.direction {
        Direction::Sent => '→',
        Direction::Received => '←',
    };
    let (hours, minutes, seconds) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    format!("{hours:02}:{minutes:02}:{seconds:02}.{:03} {arrow} {} {seq}", ms % 1000, bare(seen.peer))
}

fn push_kind_and_len(line: &mut String, kind: Option<u8>, frame: &[u8]) {
    let _ = match kind.map(|kind| (kind, kind_name(kind))) {
        Some((_, Some(name))) => write!(line, " {name}"),
        Some((kind, None)) => write!(line, " 0x{kind:02x}"),
        None => write!(line, " ?"),
    };
    match frame.get(..LEN_PREFIX) {
        Some(prefix) => {
            let _ = write!(line, " len={}", u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]));
        }
        None => line.push_str(" len=?"),
    }
}

/// The tag column and the verdict.
fn finish(mut line: String, tag: Option<&[u8]>, verdict: Verdict<'_>) -> String {
    if let Some(tag) = tag {
        let _ = write!(line, " tag={}", short_hex(tag));
        match verdict {
            Verdict::Sealed | Verdict::Verified => line.push_str(" ✓"),
            Verdict::Unchecked => line.push_str(" ?"),
            Verdict::Failed(_) => {}
        }
    }
    if let Verdict::Failed(reason) = verdict {
        // Reasons are ours, but keep the line one line whatever they say.
        let _ = write!(line, " ✗ {}", reason.to_string().replace(['\n', '\r'], " "));
    }
    line
}

/// Writes a handshake message's fields; returns the proof PROOF and
/// ACCEPT carry, which the tag column shows.
fn write_handshake(line: &mut String, message: &Handshake) -> Option<[u8; TAG_LEN]> {
    let _ = match message {
        Handshake::Hello { version, nonce, nick } => {
            write!(line, " version={version} nonce={} nick={}", short_hex(nonce), bare(nick))
        }
        Handshake::Challenge { nonce, registered } => {
            write!(line, " nonce={} registered={}", short_hex(nonce), flag(*registered))
        }
        Handshake::Proof { tag } | Handshake::Accept { tag } => return Some(*tag),
        Handshake::Fail { reason } => write!(line, " reason={}", text(reason)),
    };
    None
}

fn write_client(line: &mut String, message: &ClientMsg) {
    let _ = match message {
        ClientMsg::Login { last_seen, register: None } => write!(line, " last_seen={last_seen} register=no"),
        ClientMsg::Login { last_seen, register: Some(verifier) } => {
            write!(line, " last_seen={last_seen} register=yes verifier={}", short_hex(verifier))
        }
        ClientMsg::Send { client_id, to, text: said } => {
            write!(line, " client_id={client_id} to={} text={}", recipient(to), text(said))
        }
        ClientMsg::Ack { up_to } => write!(line, " up_to={up_to}"),
        ClientMsg::Ping => Ok(()),
    };
}

fn write_server(line: &mut String, message: &ServerMsg) {
    let _ = match message {
        ServerMsg::Welcome { nick, server_time_ms } => {
            write!(line, " nick={} time={}", bare(nick), time(*server_time_ms))
        }
        ServerMsg::Reject { reason } => write!(line, " reason={}", text(reason)),
        ServerMsg::Users { last, nicks: names } => write!(line, " last={} nicks={}", flag(*last), nicks(names)),
        ServerMsg::Joined { nicks: names } | ServerMsg::Left { nicks: names } => {
            write!(line, " nicks={}", nicks(names))
        }
        ServerMsg::Msg(msg) => write!(
            line,
            " id={} time={} from={} to={} text={}",
            msg.id,
            time(msg.time_ms),
            bare(&msg.from),
            recipient(&msg.to),
            text(&msg.text)
        ),
        ServerMsg::Sent { client_id, id } => write!(line, " client_id={client_id} id={id}"),
        ServerMsg::Pong => Ok(()),
        ServerMsg::Error { client_id, reason } | ServerMsg::Retry { client_id, reason } => {
            write!(line, " client_id={client_id} reason={}", text(reason))
        }
        ServerMsg::Dropped { count, limit } => write!(line, " count={count} limit={limit}"),
        ServerMsg::Unlisted { count } => write!(line, " count={count}"),
    };
}

/// A quoted text, escaped as Rust's `{:?}` does (control characters and
/// bidirectional overrides come out as `\n`, `\u{202e}`), cut after
/// [`TEXT_CHARS`] characters with its length in bytes.
fn text(value: &str) -> String {
    let mut chars = value.char_indices();
    match chars.nth(TEXT_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// A name shown without quotes when it is short, plain printable ASCII
/// (as every valid nickname and address is), else as a [`text`].
fn bare(value: &str) -> String {
    let plain = value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b',');
    if plain && !value.is_empty() && value.len() <= TEXT_CHARS { value.to_string() } else { text(value) }
}

fn recipient(to: &str) -> String {
    if to.is_empty() { "*".to_string() } else { bare(to) }
}

fn nicks(names: &[String]) -> String {
    let mut shown: Vec<String> = names.iter().take(LIST_NAMES).map(|nick| bare(nick)).collect();
    if names.len() > LIST_NAMES {
        shown.push(format!("… ({} names)", names.len()));
    }
    format!("[{}]", shown.join(","))
}

fn flag(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn time(unix_ms: u64) -> String {
    utc_timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms))
}

fn short_hex(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(SHORT_BYTES).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > SHORT_BYTES { format!("{shown}…") } else { shown }
}
