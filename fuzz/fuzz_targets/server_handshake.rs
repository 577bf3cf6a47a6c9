//! The server's side of the handshake against a client made of fuzz bytes.
//!
//! `server_handshake` runs over an in-memory stream: reads come from the
//! input, writes go to a Vec, and the end of the input is the peer closing.
//! The server holds a fixed key and knows one registered nickname. It must
//! return, never panic or spin. The first input byte steers the stream:
//! bit 0 makes the target act as an honest client that holds the key and
//! `alice`'s token, splicing a correct PROOF in right after the CHALLENGE
//! (a fuzzer cannot find an HMAC by itself, and without this the code after
//! the proof check would never run); bit 1 hands out one byte per read;
//! bit 2 makes every other read fail with `Interrupted`. Checked: without
//! that help the handshake never succeeds (else PROOF could be forged);
//! the server sends ACCEPT only when it returns success (P-9), and FAIL
//! "authentication failed" exactly on a wrong proof (P-8); on success the
//! nickname and registration are HELLO's, and the session keys match the
//! honest client's in both directions.
#![no_main]

use std::io::{self, Read, Write};

use chat_common::auth::{self, Key, Opener, Sealer, SessionKeys};
use chat_common::frame::{LEN_PREFIX, read_frame};
use chat_common::handshake::server_handshake;
use chat_common::message::Handshake;
use chat_common::{Error, MAX_FRAME_LEN};
use libfuzzer_sys::fuzz_target;

const KEY: Key = Key([7; 32]);
const ALICE_TOKEN: [u8; 32] = [0x33; 32];

fn lookup(nick: &str) -> Option<[u8; 32]> {
    nick.eq_ignore_ascii_case("alice").then(|| auth::token_verifier(&ALICE_TOKEN))
}

/// The client's end of the connection, as the server sees it.
struct Wire<'a> {
    /// Bytes not yet read: the fuzz input after the flags byte.
    input: &'a [u8],
    /// A PROOF to deliver before the rest of `input`, once it is made.
    spliced: Vec<u8>,
    /// Everything the server has read, which starts with the HELLO frame.
    read: Vec<u8>,
    /// Everything the server has written.
    written: Vec<u8>,
    /// Act as an honest client: splice in a correct PROOF.
    honest: bool,
    /// Hand out at most one byte per read.
    trickle: bool,
    /// Fail every other read with `Interrupted`.
    interrupt: bool,
    /// Whether the last read was interrupted.
    interrupted_last: bool,
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupt {
            self.interrupted_last = !self.interrupted_last;
            if self.interrupted_last {
                return Err(io::ErrorKind::Interrupted.into());
            }
        }
        let source: &mut dyn Read =
            if self.spliced.is_empty() { &mut self.input } else { &mut SplicedReader(&mut self.spliced) };
        let limit = if self.trickle { buf.len().min(1) } else { buf.len() };
        let n = source.read(&mut buf[..limit])?;
        self.read.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Reads from the front of a Vec, removing what it hands out.
struct SplicedReader<'a>(&'a mut Vec<u8>);

impl Read for SplicedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0.drain(..n);
        Ok(n)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let first_write = self.written.is_empty();
        self.written.extend_from_slice(buf);
        // The first write is CHALLENGE (or FAIL), and what has been read by
        // then is exactly the HELLO frame: together, the transcript.
        if first_write
            && self.honest
            && let Some(keys) = honest_keys(&self.read, &self.written)
        {
            let transcript = auth::transcript_hash(&self.read, &self.written);
            Handshake::Proof { tag: auth::proof(&keys.client_proof, &transcript) }.encode(&mut self.spliced);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The keys an honest client holding the key and alice's token derives from
/// this HELLO and CHALLENGE, if they are what their names say.
fn honest_keys(hello: &[u8], challenge: &[u8]) -> Option<SessionKeys> {
    let Handshake::Hello { nick, .. } = Handshake::decode(hello.get(LEN_PREFIX..)?).ok()? else {
        return None;
    };
    let Handshake::Challenge { registered, .. } = Handshake::decode(challenge.get(LEN_PREFIX..)?).ok()? else {
        return None;
    };
    let verifier = lookup(&nick);
    assert_eq!(registered, verifier.is_some(), "CHALLENGE misreports whether {nick:?} is registered");
    let transcript = auth::transcript_hash(hello, challenge);
    Some(SessionKeys::derive(&KEY, verifier.as_ref(), &transcript))
}

/// Every handshake frame the server wrote, decoded.
fn frames_written(mut written: &[u8]) -> Vec<Handshake> {
    let mut frames = Vec::new();
    let mut frame = Vec::new();
    while read_frame(&mut written, MAX_FRAME_LEN, &mut frame).expect("the server wrote a broken frame") {
        frames.push(Handshake::decode(&frame[LEN_PREFIX..]).expect("the server wrote an undecodable frame"));
    }
    frames
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let mut wire = Wire {
        input,
        spliced: Vec::new(),
        read: Vec::new(),
        written: Vec::new(),
        honest: flags & 1 != 0,
        trickle: flags & 2 != 0,
        interrupt: flags & 4 != 0,
        interrupted_last: false,
    };
    let result = server_handshake(&mut wire, &KEY, lookup, None);

    let sent = frames_written(&wire.written);
    let accepted = sent.iter().any(|frame| matches!(frame, Handshake::Accept { .. }));
    assert_eq!(accepted, result.is_ok(), "ACCEPT sent {accepted} but the handshake returned {result:?}");
    let said_auth_failed =
        sent.iter().any(|frame| matches!(frame, Handshake::Fail { reason } if reason == "authentication failed"));
    assert_eq!(said_auth_failed, matches!(result, Err(Error::AuthFailed)));

    let Ok(mut server) = result else {
        return;
    };
    assert!(wire.honest, "the handshake succeeded without a correct PROOF");
    let hello_len = LEN_PREFIX + u32::from_be_bytes(wire.read[..LEN_PREFIX].try_into().unwrap()) as usize;
    let Ok(Handshake::Hello { nick, .. }) = Handshake::decode(&wire.read[LEN_PREFIX..hello_len]) else {
        panic!("success without a HELLO");
    };
    assert_eq!(server.nick, nick);
    assert_eq!(server.registered, lookup(&nick).is_some());

    let challenge_len = LEN_PREFIX + u32::from_be_bytes(wire.written[..LEN_PREFIX].try_into().unwrap()) as usize;
    let keys = honest_keys(&wire.read[..hello_len], &wire.written[..challenge_len]).unwrap();
    let mut frame = Vec::new();
    Sealer::new(&keys.client_to_server).seal(0x13, b"", &mut frame);
    assert_eq!(server.opener.open(&frame).map(|f| (f.kind(), f.payload())), Ok((0x13, &b""[..])));
    frame.clear();
    server.sealer.seal(0x27, b"", &mut frame);
    assert_eq!(Opener::new(&keys.server_to_client).open(&frame).map(|f| (f.kind(), f.payload())), Ok((0x27, &b""[..])));
});
