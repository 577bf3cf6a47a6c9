//! The handshake over real loopback sockets: both sides agree only when
//! both hold the key (and the owner token), and a silent or trickling peer
//! runs into the one deadline.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use chat_common::auth::{self, Key, Opener, Sealer};
use chat_common::frame::{Deadline, read_frame};
use chat_common::handshake::{OwnerToken, ServerSide, client_handshake, server_handshake};
use chat_common::message::Handshake;
use chat_common::trace::{Seen, Verdict, handshake_line};
use chat_common::{Error, ProtocolError};

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    (client, server)
}

/// Runs both sides; the server holds `server_key` and knows `verifier`.
fn run(
    client_key: Key,
    server_key: Key,
    token: Option<OwnerToken>,
    verifier: Option<[u8; 32]>,
) -> (Result<(Sealer, Opener), Error>, Result<ServerSide, Error>) {
    let (mut client, mut server) = pair();
    let server_thread = thread::spawn(move || server_handshake(&mut server, &server_key, |_| verifier, None));
    let client_result = client_handshake(&mut client, &client_key, "alice", token.as_ref(), None)
        .map(|side| (side.sealer, side.opener));
    drop(client);
    (client_result, server_thread.join().unwrap())
}

/// [P-12] After ACCEPT each direction numbers its sealed frames from 0.
#[test]
fn both_sides_derive_matching_keys() {
    let key = Key([1; 32]);
    let (client, server) = run(key.clone(), key, None, None);
    let (mut client_sealer, mut client_opener) = client.unwrap();
    let mut server = server.unwrap();
    assert_eq!(server.nick, "alice");
    assert!(!server.registered);

    let mut frame = Vec::new();
    client_sealer.seal(0x13, b"", &mut frame);
    assert_eq!(server.opener.open(&frame).map(|f| (f.seq(), f.kind(), f.payload())), Ok((0, 0x13, &b""[..])));
    frame.clear();
    server.sealer.seal(0x27, b"", &mut frame);
    assert_eq!(client_opener.open(&frame).map(|f| (f.seq(), f.kind(), f.payload())), Ok((0, 0x27, &b""[..])));
}

/// [P-6] [P-19]
#[test]
fn owner_token_is_required_and_sufficient() {
    let key = Key([1; 32]);
    let token = OwnerToken { token: [7; 32], accepted: true };
    let fresh = OwnerToken { token: [7; 32], accepted: false };
    let other = OwnerToken { token: [8; 32], accepted: true };
    let verifier = Some(auth::token_verifier(&token.token));
    for ours in [token, fresh] {
        let (client, server) = run(key.clone(), key.clone(), Some(ours), verifier);
        assert!(client.is_ok() && server.unwrap().registered, "{ours:?}");
    }

    let (client, _) = run(key.clone(), key.clone(), None, verifier);
    assert!(matches!(client, Err(Error::NicknameOwned)));

    let (client, server) = run(key.clone(), key.clone(), Some(other), verifier);
    assert!(matches!(client, Err(Error::Refused(reason)) if reason == "authentication failed"));
    assert!(matches!(server, Err(Error::AuthFailed)));

    // A token we made but never got accepted, refused: someone else's nickname.
    let (client, _) = run(key.clone(), key.clone(), Some(OwnerToken { accepted: false, ..other }), verifier);
    assert!(matches!(client, Err(Error::NicknameOwned)));

    // The server forgot a token it accepted: stop rather than re-register.
    let (client, _) = run(key.clone(), key.clone(), Some(token), None);
    assert!(matches!(client, Err(Error::TokenUnknown)));

    // A token not yet accepted, unregistered on the server: go on and register.
    let (client, server) = run(key.clone(), key, Some(fresh), None);
    assert!(client.is_ok() && !server.unwrap().registered);
}

/// [P-8]
#[test]
fn wrong_key_fails_on_the_server_and_the_client_learns_only_that() {
    let (client, server) = run(Key([1; 32]), Key([2; 32]), None, None);
    assert!(matches!(server, Err(Error::AuthFailed)));
    assert!(matches!(client, Err(Error::Refused(reason)) if reason == "authentication failed"));
}

/// [P-9]
#[test]
fn client_detects_a_fake_server_that_lacks_the_key() {
    let (mut client, mut server) = pair();
    let fake = thread::spawn(move || {
        let mut frame = Vec::new();
        read_frame(&mut server, 65536, &mut frame).unwrap();
        let mut out = Vec::new();
        Handshake::Challenge { nonce: [9; 32], registered: false }.encode(&mut out);
        read_frame(&mut (&out[..]), 65536, &mut Vec::new()).unwrap();
        server.write_all(&out).unwrap();
        read_frame(&mut server, 65536, &mut frame).unwrap();
        // The fake server cannot compute the proof; it sends the client's back.
        let tag: [u8; 32] = frame[5..37].try_into().unwrap();
        out.clear();
        Handshake::Accept { tag }.encode(&mut out);
        server.write_all(&out).unwrap();
    });
    let result = client_handshake(&mut client, &Key([1; 32]), "alice", None, None);
    assert!(matches!(result, Err(Error::ServerProofFailed)), "{result:?}");
    fake.join().unwrap();
}

/// [P-11] A CHALLENGE sent back where a PROOF belongs is refused.
#[test]
fn server_refuses_a_challenge_reflected_as_proof() {
    let (mut client, mut server) = pair();
    let server_thread = thread::spawn(move || server_handshake(&mut server, &Key([1; 32]), |_| None, None));
    let mut hello = Vec::new();
    Handshake::Hello { version: 1, nonce: [4; 32], nick: "x".into() }.encode(&mut hello);
    client.write_all(&hello).unwrap();
    let mut challenge = Vec::new();
    read_frame(&mut client, 65536, &mut challenge).unwrap();
    // Reflect the CHALLENGE back where a PROOF belongs.
    client.write_all(&challenge).unwrap();
    assert!(matches!(server_thread.join().unwrap(), Err(Error::Protocol(ProtocolError::UnknownKind(0x02)))));
}

/// [P-10]
#[test]
fn trickling_bytes_does_not_extend_the_deadline() {
    let (mut client, server) = pair();
    let started = Instant::now();
    let server_thread = thread::spawn(move || {
        let mut stream = Deadline { stream: &server, deadline: Instant::now() + Duration::from_millis(600) };
        server_handshake(&mut stream, &Key([1; 32]), |_| None, None)
    });
    // A 200-byte HELLO announced, then one byte every 100 ms.
    client.write_all(&200u32.to_be_bytes()).unwrap();
    for _ in 0..20 {
        if client.write_all(&[1]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(matches!(server_thread.join().unwrap(), Err(Error::HandshakeTimeout)));
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
}

/// [P-4]
#[test]
fn unsupported_version_is_refused_with_a_reason() {
    let (mut client, mut server) = pair();
    let server_thread = thread::spawn(move || server_handshake(&mut server, &Key([1; 32]), |_| None, None));
    let mut hello = Vec::new();
    Handshake::Hello { version: 9, nonce: [4; 32], nick: "x".into() }.encode(&mut hello);
    client.write_all(&hello).unwrap();
    let mut frame = Vec::new();
    read_frame(&mut client, 65536, &mut frame).unwrap();
    assert!(matches!(Handshake::decode(&frame[4..]), Ok(Handshake::Fail { reason }) if reason.contains("version 9")));
    assert!(matches!(
        server_thread.join().unwrap(),
        Err(Error::Protocol(ProtocolError::UnsupportedVersion { got: 9 }))
    ));
}

/// [P-5] A "server" that echoes the client's nonce is reflecting its HELLO.
#[test]
fn client_refuses_its_own_nonce_echoed() {
    let (mut client, mut server) = pair();
    let echo = thread::spawn(move || {
        let mut frame = Vec::new();
        read_frame(&mut server, 65536, &mut frame).unwrap();
        let Ok(Handshake::Hello { nonce, .. }) = Handshake::decode(&frame[4..]) else { panic!("no HELLO") };
        let mut out = Vec::new();
        Handshake::Challenge { nonce, registered: false }.encode(&mut out);
        server.write_all(&out).unwrap();
    });
    let result = client_handshake(&mut client, &Key([1; 32]), "alice", None, None);
    assert!(matches!(result, Err(Error::Protocol(ProtocolError::EqualNonces))), "{result:?}");
    echo.join().unwrap();
}

/// Records every byte written through it.
struct Recorder {
    stream: TcpStream,
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Read for Recorder {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sent.lock().unwrap().extend_from_slice(buf);
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// [P-7] Neither the shared key nor the owner token (nor any derived key)
/// appears in the bytes either side sends.
#[test]
fn the_key_and_the_token_never_cross_the_wire() {
    let key = Key([0xa7; 32]);
    let token = [0x5c; 32];
    let (client, server) = pair();
    let wire = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut client = Recorder { stream: client, sent: wire.clone() };
    let mut server = Recorder { stream: server, sent: wire.clone() };
    let server_key = key.clone();
    let server_thread = thread::spawn(move || {
        let side = server_handshake(&mut server, &server_key, |_| Some(auth::token_verifier(&token)), None).unwrap();
        let mut frame = Vec::new();
        let mut sealer = side.sealer;
        sealer.seal(0x27, b"", &mut frame);
        server.write_all(&frame).unwrap();
    });
    let owned = OwnerToken { token, accepted: true };
    let mut side = client_handshake(&mut client, &key, "alice", Some(&owned), None).unwrap();
    let mut frame = Vec::new();
    side.sealer.seal(0x13, b"", &mut frame);
    client.write_all(&frame).unwrap();
    server_thread.join().unwrap();
    let wire = wire.lock().unwrap();
    assert!(wire.len() > 200, "the handshake and two frames were recorded");
    let verifier = auth::token_verifier(&token);
    for secret in [&key.0[..], &token[..], &verifier[..]] {
        for window in secret.windows(8) {
            assert!(!wire.windows(8).any(|w| w == window), "8 bytes of a secret crossed the wire");
        }
    }
}

/// Both sides' traces of a handshake: (direction arrow, kind and verdict).
fn traced(client_key: Key, server_key: Key) -> (Vec<String>, Vec<String>) {
    let (mut client, mut server) = pair();
    let server_thread = thread::spawn(move || {
        let mut lines = Vec::new();
        let mut watch = |direction, frame: &[u8], verdict: Verdict<'_>| {
            let seen = Seen { unix_ms: 0, direction, peer: "127.0.0.1:50000" };
            lines.push(handshake_line(&seen, frame, verdict));
        };
        let _ = server_handshake(&mut server, &server_key, |_| None, Some(&mut watch));
        lines
    });
    let mut lines = Vec::new();
    let mut watch = |direction, frame: &[u8], verdict: Verdict<'_>| {
        let seen = Seen { unix_ms: 0, direction, peer: "127.0.0.1:5555" };
        lines.push(handshake_line(&seen, frame, verdict));
    };
    let _ = client_handshake(&mut client, &client_key, "alice", None, Some(&mut watch));
    drop(client);
    // "00:00:00.000 → PEER - " before the kind.
    let short = |lines: Vec<String>| {
        lines.iter().map(|line| line.splitn(5, ' ').skip(1).collect::<Vec<_>>().join(" ")).collect()
    };
    (short(lines), short(server_thread.join().unwrap()))
}

#[test]
fn the_watch_sees_every_handshake_frame_with_its_verdict() {
    let key = Key([1; 32]);
    let (client, server) = traced(key.clone(), key);
    let kinds = |lines: &[String]| {
        lines.iter().map(|line| line.split(' ').nth(3).unwrap_or("").to_string()).collect::<Vec<_>>()
    };
    assert_eq!(kinds(&client), ["HELLO", "CHALLENGE", "PROOF", "ACCEPT"], "{client:?}");
    assert_eq!(kinds(&server), ["HELLO", "CHALLENGE", "PROOF", "ACCEPT"], "{server:?}");
    assert!(
        client[0].starts_with("→ 127.0.0.1:5555 - HELLO len=41 version=1 nonce=") && client[0].ends_with(" nick=alice")
    );
    assert!(client[1].starts_with("← ") && client[1].ends_with(" registered=no"), "{client:?}");
    assert!(
        client[2].starts_with("→ ")
            && client[2].ends_with(" ✓")
            && client[3].starts_with("← ")
            && client[3].ends_with(" ✓")
    );
    assert!(
        server[0].starts_with("← 127.0.0.1:50000 - HELLO") && server[2].starts_with("← ") && server[2].ends_with(" ✓")
    );

    let (client, server) = traced(Key([1; 32]), Key([2; 32]));
    assert!(server[2].starts_with("← 127.0.0.1:50000 - PROOF len=33 tag="), "{server:?}");
    assert!(server[2].ends_with(" ✗ authentication failed (wrong key or owner token)"), "{server:?}");
    assert_eq!(server[3], "→ 127.0.0.1:50000 - FAIL len=24 reason=\"authentication failed\"");
    assert_eq!(
        client[3],
        "← 127.0.0.1:5555 - FAIL len=24 reason=\"authentication failed\" ✗ server refused: authentication failed"
    );
}
