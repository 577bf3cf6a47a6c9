//! Decoding never panics: random bytes and every truncation of valid
//! frames come back as error values.

use chat_common::ProtocolError;
use chat_common::auth::{Opener, Sealer};
use chat_common::frame::frame_len;
use chat_common::message::{ChatMsg, ClientMsg, Handshake, ServerMsg, describe_unverified};

/// A small deterministic generator (xorshift64*), so failures replay.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = (self.next() as usize) % (max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Seals `payload` as a frame of `kind` and opens it again: the only way
/// to reach the message decoders, which take verified frames.
fn sealed(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    Sealer::new(&[5; 32]).seal(kind, payload, &mut frame);
    frame
}

fn client_decode(kind: u8, payload: &[u8]) -> Result<ClientMsg, ProtocolError> {
    ClientMsg::decode(&Opener::new(&[5; 32]).open(&sealed(kind, payload)).expect("sealed just now"))
}

fn server_decode(kind: u8, payload: &[u8]) -> Result<ServerMsg, ProtocolError> {
    ServerMsg::decode(&Opener::new(&[5; 32]).open(&sealed(kind, payload)).expect("sealed just now"))
}

fn client_samples() -> Vec<ClientMsg> {
    vec![
        ClientMsg::Login { last_seen: 7, register: None },
        ClientMsg::Login { last_seen: 0, register: Some([6; 32]) },
        ClientMsg::Send { client_id: 3, to: "bob".into(), text: "hi ñ".into() },
        ClientMsg::Send { client_id: 4, to: String::new(), text: "all".into() },
        ClientMsg::Ack { up_to: 9 },
        ClientMsg::Ping,
    ]
}

fn server_samples() -> Vec<ServerMsg> {
    vec![
        ServerMsg::Welcome { nick: "alice".into(), server_time_ms: 2 },
        ServerMsg::Reject { reason: "taken".into() },
        ServerMsg::Users { last: true, nicks: vec!["a".into(), "b".into()] },
        ServerMsg::Joined { nicks: vec!["c".into(), "d".into()] },
        ServerMsg::Left { nicks: vec!["c".into()] },
        ServerMsg::Msg(ChatMsg { id: 1, time_ms: 2, from: "a".into(), to: "".into(), text: "t".into() }),
        ServerMsg::Sent { client_id: 1, id: 2 },
        ServerMsg::Pong,
        ServerMsg::Error { client_id: 0, reason: "r".into() },
        ServerMsg::Retry { client_id: 5, reason: "full".into() },
        ServerMsg::Dropped { count: 3, limit: 10 },
    ]
}

fn handshake_samples() -> Vec<Handshake> {
    vec![
        Handshake::Hello { version: 1, nonce: [1; 32], nick: "alice".into() },
        Handshake::Challenge { nonce: [2; 32], registered: false },
        Handshake::Proof { tag: [3; 32] },
        Handshake::Accept { tag: [4; 32] },
        Handshake::Fail { reason: "no".into() },
    ]
}

#[test]
fn every_message_round_trips() {
    for msg in client_samples() {
        let mut payload = Vec::new();
        msg.encode_payload(&mut payload);
        assert_eq!(client_decode(msg.kind(), &payload), Ok(msg));
    }
    for msg in server_samples() {
        let mut payload = Vec::new();
        msg.encode_payload(&mut payload);
        assert_eq!(server_decode(msg.kind(), &payload), Ok(msg));
    }
    for msg in handshake_samples() {
        let mut frame = Vec::new();
        msg.encode(&mut frame);
        assert_eq!(Handshake::decode(&frame[4..]), Ok(msg));
    }
}

#[test]
fn every_truncation_and_any_trailing_byte_is_an_error() {
    for msg in client_samples() {
        let mut payload = Vec::new();
        msg.encode_payload(&mut payload);
        for cut in 0..payload.len() {
            assert!(client_decode(msg.kind(), &payload[..cut]).is_err(), "{msg:?} cut {cut}");
        }
        payload.push(0);
        assert_eq!(client_decode(msg.kind(), &payload), Err(ProtocolError::TrailingBytes { count: 1 }));
    }
    for msg in server_samples() {
        let mut payload = Vec::new();
        msg.encode_payload(&mut payload);
        for cut in 0..payload.len() {
            assert!(server_decode(msg.kind(), &payload[..cut]).is_err(), "{msg:?} cut {cut}");
        }
    }
    for msg in handshake_samples() {
        let mut frame = Vec::new();
        msg.encode(&mut frame);
        for cut in 4..frame.len() {
            assert!(Handshake::decode(&frame[4..cut]).is_err(), "{msg:?} cut {cut}");
        }
    }
    let mut sealed = Vec::new();
    Sealer::new(&[9; 32]).seal(0x13, b"", &mut sealed);
    for cut in 0..sealed.len() {
        assert!(Opener::new(&[9; 32]).open(&sealed[..cut]).is_err());
    }
}

#[test]
fn random_bytes_never_panic_any_decoder() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let bytes = rng.bytes(80);
        let kind = rng.next() as u8;
        let _ = Handshake::decode(&bytes);
        let _ = client_decode(kind, &bytes);
        let _ = server_decode(kind, &bytes);
        let _ = describe_unverified(kind, &bytes);
        let _ = frame_len(&bytes, 64);
        assert!(Opener::new(&[0; 32]).open(&bytes).is_err(), "a random frame passed the tag check");
    }
}

#[test]
fn unknown_kinds_are_named() {
    assert_eq!(client_decode(0x20, &[]), Err(ProtocolError::UnknownKind(0x20)));
    assert_eq!(server_decode(0x10, &[0; 8]), Err(ProtocolError::UnknownKind(0x10)));
    assert_eq!(describe_unverified(0x13, &[]), "Ping");
    assert_eq!(describe_unverified(0x10, &[]), "kind 0x10, 0 bytes: malformed: truncated in last_seen");
    assert_eq!(Handshake::decode(&[0x10]), Err(ProtocolError::UnknownKind(0x10)));
}
