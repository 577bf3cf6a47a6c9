//! Every decoder of network input, fed arbitrary bytes.
//!
//! The input goes through the sans-IO `frame_len`, through `read_frame` over
//! a byte-slice reader until it stops, through the three message decoders
//! (the first byte as the kind) and through `Opener::verify`/`open` with a
//! fixed key. None may panic or allocate past the frame maximum, and
//! `frame_len` and `read_frame` must agree on where a frame ends. Then two
//! properties: whatever decodes re-encodes to exactly the same bytes (one
//! encoding per message, so nothing malleable slips through), and a payload
//! sealed with the fixed key opens to exactly itself, once, in order, while
//! one flipped byte anywhere makes it a bad tag. A random input that passes
//! the tag check would be a forgery, so that is an assertion too.
#![no_main]

use chat_common::auth::{Opener, Sealer};
use chat_common::frame::{LEN_PREFIX, frame_len, read_frame};
use chat_common::message::{ClientMsg, Handshake, ServerMsg};
use chat_common::{Error, MAX_FRAME_LEN, ProtocolError};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [0x42; 32];

fuzz_target!(|data: &[u8]| {
    // A small maximum as well as the real one, so FrameTooLong is reachable
    // with inputs shorter than 64 KiB.
    for max in [64, MAX_FRAME_LEN] {
        check_framing_agrees(data, max);
    }

    let mut reader = data;
    let mut frame = Vec::new();
    while let Ok(true) = read_frame(&mut reader, MAX_FRAME_LEN, &mut frame) {
        assert!(frame.len() <= LEN_PREFIX + MAX_FRAME_LEN);
        decode_all(&frame[LEN_PREFIX..]);
        assert!(Opener::new(&KEY).open(&frame).is_err(), "an unsealed frame passed the tag check");
    }
    decode_all(data);
    assert!(Opener::new(&KEY).verify(data).is_err(), "random bytes passed the tag check");

    check_seal_round_trip(data);
});

/// `frame_len` (sans-IO) and the first `read_frame` call see the same frame.
fn check_framing_agrees(data: &[u8], max: usize) {
    let mut reader = data;
    let mut frame = Vec::new();
    match (frame_len(data, max), read_frame(&mut reader, max, &mut frame)) {
        (Ok(Some(n)), Ok(true)) => assert_eq!(frame, data[..n]),
        (Ok(None), Ok(false)) => assert!(data.is_empty()),
        (Ok(None), Err(Error::Io(err))) => assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof),
        (Err(want), Err(Error::Protocol(got))) => {
            assert_eq!(want, got);
            assert!(matches!(got, ProtocolError::FrameTooLong { .. }));
        }
        (sans_io, reader) => panic!("frame_len said {sans_io:?} but read_frame said {reader:?}"),
    }
}

/// Runs a body through every message decoder; what decodes must re-encode
/// to the very same bytes.
fn decode_all(body: &[u8]) {
    if let Ok(message) = Handshake::decode(body) {
        let mut frame = Vec::new();
        message.encode(&mut frame);
        assert_eq!(&frame[LEN_PREFIX..], body, "{message:?} has a second encoding");
    }
    let Some((&kind, payload)) = body.split_first() else {
        return;
    };
    // The decoders take only verified frames: seal the body, then open it.
    let mut sealed = Vec::new();
    Sealer::new(&KEY).seal(kind, payload, &mut sealed);
    let Ok(frame) = Opener::new(&KEY).open(&sealed) else { panic!("a frame sealed just now did not open") };
    if let Ok(message) = ClientMsg::decode(&frame) {
        let mut again = Vec::new();
        message.encode_payload(&mut again);
        assert_eq!((message.kind(), &again[..]), (kind, payload), "{message:?} has a second encoding");
    }
    if let Ok(message) = ServerMsg::decode(&frame) {
        let mut again = Vec::new();
        message.encode_payload(&mut again);
        assert_eq!((message.kind(), &again[..]), (kind, payload), "{message:?} has a second encoding");
    }
}

/// Seal (first byte as the kind, the rest as the payload), then open.
fn check_seal_round_trip(data: &[u8]) {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    let mut sealer = Sealer::new(&KEY);
    let mut frames = Vec::new();
    sealer.seal(kind, payload, &mut frames);
    let first_len = frames.len();
    sealer.seal(kind, payload, &mut frames);
    let (first, second) = frames.split_at(first_len);

    assert_eq!(frame_len(first, usize::MAX), Ok(Some(first.len())));
    let mut opener = Opener::new(&KEY);
    assert_eq!(opener.clone().open(second), Err(ProtocolError::UnexpectedSequence { got: 1, want: 0 }));
    let parts = |frame: chat_common::auth::Verified<'_>| (frame.seq(), frame.kind(), frame.payload().to_vec());
    assert_eq!(opener.open(first).map(parts), Ok((0, kind, payload.to_vec())));
    assert_eq!(opener.open(first), Err(ProtocolError::UnexpectedSequence { got: 0, want: 1 }));
    assert_eq!(opener.open(second).map(parts), Ok((1, kind, payload.to_vec())));

    let mut bent = first.to_vec();
    let at = usize::from(kind) * 7919 % bent.len();
    bent[at] ^= payload.first().copied().unwrap_or(1).max(1);
    assert_eq!(Opener::new(&KEY).open(&bent), Err(ProtocolError::BadTag), "flipped byte {at} went unnoticed");
}
