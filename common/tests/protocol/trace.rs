//! The trace line format of docs/PROTOCOL.md, "Frame traces", checked
//! from outside: a whole session on the test vectors' inputs, failures,
//! every kind, hostile texts, any bytes, and no secret in any line.

use chat_common::auth::{self, Key, Sealer, SessionKeys, TAG_LEN};
use chat_common::error::{Error, ProtocolError};
use chat_common::message::{ChatMsg, ClientMsg, Handshake, ServerMsg, kind};
use chat_common::trace::{Direction, SHORT_BYTES, Seen, Verdict, handshake_line, kind_name, sealed_line};

/// The time of PROTOCOL.md's MSG vector: 2026-11-28T01:44:43.007Z.
const T0: u64 = 1_795_830_283_007;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seen(ms: u64, direction: Direction, peer: &str) -> Seen<'_> {
    Seen { unix_ms: T0 + ms, direction, peer }
}

fn handshake(message: Handshake) -> Vec<u8> {
    let mut frame = Vec::new();
    message.encode(&mut frame);
    frame
}

fn sealed(sealer: &mut Sealer, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = Vec::new();
    payload(&mut bytes);
    let mut frame = Vec::new();
    sealer.seal(kind, &bytes, &mut frame);
    frame
}

fn client(sealer: &mut Sealer, message: ClientMsg) -> Vec<u8> {
    sealed(sealer, message.kind(), |out| message.encode_payload(out))
}

fn server(sealer: &mut Sealer, message: ServerMsg) -> Vec<u8> {
    sealed(sealer, message.kind(), |out| message.encode_payload(out))
}

/// A whole session from the client's side, on PROTOCOL.md's test vector
/// inputs: (frame, sent by the client, handshake frame).
struct Session {
    key: Key,
    token: [u8; 32],
    keys: SessionKeys,
    frames: Vec<(Vec<u8>, bool, bool)>,
}

fn session() -> Session {
    let key = Key(std::array::from_fn(|i| i as u8));
    let token = [0x33; 32];
    let hello = handshake(Handshake::Hello { version: 1, nonce: [0x11; 32], nick: "alice".into() });
    let challenge = handshake(Handshake::Challenge { nonce: [0x22; 32], registered: true });
    let transcript = auth::transcript_hash(&hello, &challenge);
    let keys = SessionKeys::derive(&key, Some(&auth::token_verifier(&token)), &transcript);
    let proof = handshake(Handshake::Proof { tag: auth::proof(&keys.client_proof, &transcript) });
    let accept = handshake(Handshake::Accept { tag: auth::proof(&keys.server_proof, &transcript) });
    let (mut up, mut down) = (Sealer::new(&keys.client_to_server), Sealer::new(&keys.server_to_client));
    let msg = |id, text: &str| {
        ServerMsg::Msg(ChatMsg { id, time_ms: T0, from: "bob".into(), to: String::new(), text: text.into() })
    };
    let frames = vec![
        (hello, true, true),
        (challenge, false, true),
        (proof, true, true),
        (accept, false, true),
        (client(&mut up, ClientMsg::Login { last_seen: 41, register: None }), true, false),
        (server(&mut down, ServerMsg::Welcome { nick: "alice".into(), server_time_ms: T0 }), false, false),
        (server(&mut down, ServerMsg::Users { last: true, nicks: vec!["alice".into(), "bob".into()] }), false, false),
        (server(&mut down, msg(42, "hola")), false, false),
        (client(&mut up, ClientMsg::Ack { up_to: 42 }), true, false),
        (client(&mut up, ClientMsg::Send { client_id: 7, to: String::new(), text: "hello, bob".into() }), true, false),
        (server(&mut down, ServerMsg::Sent { client_id: 7, id: 43 }), false, false),
        (
            server(
                &mut down,
                ServerMsg::Msg(ChatMsg {
                    id: 43,
                    time_ms: T0 + 9,
                    from: "alice".into(),
                    to: String::new(),
                    text: "hello, bob".into(),
                }),
            ),
            false,
            false,
        ),
        (client(&mut up, ClientMsg::Ack { up_to: 43 }), true, false),
        (client(&mut up, ClientMsg::Ping), true, false),
        (server(&mut down, ServerMsg::Pong), false, false),
    ];
    Session { key, token, keys, frames }
}

/// The client's trace of [`session`], a millisecond apart.
fn client_trace(session: &Session) -> Vec<String> {
    let mut lines = Vec::new();
    for (n, (frame, sent, plain)) in session.frames.iter().enumerate() {
        let direction = if *sent { Direction::Sent } else { Direction::Received };
        let verdict = if *sent { Verdict::Sealed } else { Verdict::Verified };
        let seen = seen(n as u64, direction, "127.0.0.1:5555");
        lines.push(if *plain { handshake_line(&seen, frame, verdict) } else { sealed_line(&seen, frame, verdict) });
    }
    lines
}

/// The server's view of a SEND whose last bit was flipped on the way,
/// then of one whose recipient's length was flipped (its fields no longer
/// decode), then of the SEND replayed: docs/PROTOCOL.md shows the lines.
fn server_failures(session: &Session) -> Vec<String> {
    let mut send = session.frames[9].0.clone();
    let at = send.len() - TAG_LEN - 1;
    send[at] ^= 0x01;
    // Length prefix, seq, kind, client_id: then `to`'s u16 length (0 → 1).
    let mut recipient = session.frames[9].0.clone();
    recipient[4 + 8 + 1 + 8 + 1] ^= 0x01;
    let seen = seen(16, Direction::Received, "alice");
    let replay = ProtocolError::UnexpectedSequence { got: 2, want: 3 };
    vec![
        sealed_line(&seen, &send, Verdict::Failed(&ProtocolError::BadTag)),
        sealed_line(&seen, &recipient, Verdict::Failed(&ProtocolError::BadTag)),
        sealed_line(&seen, &session.frames[9].0, Verdict::Failed(&replay)),
    ]
}

#[test]
fn a_whole_sessions_trace_follows_the_documented_format() {
    let lines = client_trace(&session());
    let kinds: Vec<&str> = lines.iter().map(|line| line.split(' ').nth(4).unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "HELLO",
            "CHALLENGE",
            "PROOF",
            "ACCEPT",
            "LOGIN",
            "WELCOME",
            "USERS",
            "MSG",
            "ACK",
            "SEND",
            "SENT",
            "MSG",
            "ACK",
            "PING",
            "PONG"
        ]
    );
    // PROTOCOL.md's test vectors: the proofs and the LOGIN frame.
    assert!(lines[2].ends_with(" - PROOF len=33 tag=5504fd85… ✓"), "{}", lines[2]);
    assert!(lines[3].ends_with(" - ACCEPT len=33 tag=09e9711b… ✓"), "{}", lines[3]);
    assert!(lines[4].ends_with(" #0 LOGIN len=50 last_seen=41 register=no tag=3c414e38… ✓"), "{}", lines[4]);
    assert!(lines[6].contains(" #1 USERS len=56 last=yes nicks=[alice,bob] tag="), "{}", lines[6]);
    let msg = " #2 MSG len=70 id=42 time=2026-11-28T01:44:43.007Z from=bob to=* text=\"hola\" tag=";
    assert!(lines[7].contains(msg), "{}", lines[7]);
    assert!(lines[9].contains(" #2 SEND len=63 client_id=7 to=* text=\"hello, bob\" tag="), "{}", lines[9]);
    assert!(lines[10].contains(" #3 SENT len=57 client_id=7 id=43 tag="), "{}", lines[10]);
    assert!(lines[12].contains(" → 127.0.0.1:5555 #3 ACK len=49 up_to=43 tag="), "{}", lines[12]);
    assert!(lines[13].contains(" #4 PING len=41 tag=") && lines[14].contains(" #5 PONG len=41 tag="));
    for line in &lines {
        // TIME DIR PEER SEQ KIND len=N ...
        let columns: Vec<&str> = line.splitn(7, ' ').collect();
        let [time, arrow, peer, seq, kind, len, ..] = columns[..] else { panic!("too few columns: {line}") };
        assert!(time.len() == 12 && time.as_bytes()[2] == b':' && time.as_bytes()[8] == b'.', "{line}");
        assert!(arrow == "→" || arrow == "←", "{line}");
        assert_eq!(peer, "127.0.0.1:5555");
        assert!(seq == "-" || seq.strip_prefix('#').is_some_and(|n| n.parse::<u64>().is_ok()), "{line}");
        assert!((0..=u8::MAX).any(|k| kind_name(k) == Some(kind)), "{line}");
        assert!(len.strip_prefix("len=").is_some_and(|n| n.parse::<u32>().is_ok()), "{line}");
        if kind != "HELLO" && kind != "CHALLENGE" {
            assert!(line.ends_with(" ✓") && line.contains(" tag="), "{line}");
        }
    }
    let failures = server_failures(&session());
    assert!(failures[0].contains(" ← alice #2 SEND len=63 client_id=7 to=* text=\"hello, boc\" tag="));
    assert!(failures[0].ends_with("… ✗ bad tag"), "{}", failures[0]);
    assert!(failures[1].ends_with(" #2 SEND len=63 [malformed: truncated in text] tag=02cb118e… ✗ bad tag"));
    assert!(failures[2].ends_with("… ✗ wrong sequence number (got 2, expected 3)"), "{}", failures[2]);
}

#[test]
fn protocol_md_shows_the_trace_of_a_whole_session() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md")).unwrap();
    let session = session();
    let lines = [client_trace(&session), server_failures(&session)].concat();
    let missing: Vec<&String> = lines.iter().filter(|line| !doc.contains(line.as_str())).collect();
    assert!(missing.is_empty(), "PROTOCOL.md lacks these trace lines:\n{}", lines.join("\n"));
}

#[test]
fn no_line_contains_the_key_the_token_or_a_derived_key() {
    let session = session();
    let mut lines = client_trace(&session);
    // A registering LOGIN too, and failures with their reasons.
    let verifier = auth::token_verifier(&session.token);
    let mut sealer = Sealer::new(&session.keys.client_to_server);
    let register = client(&mut sealer, ClientMsg::Login { last_seen: 0, register: Some(verifier) });
    let at = seen(0, Direction::Received, "alice");
    lines.push(sealed_line(&at, &register, Verdict::Verified));
    lines.push(sealed_line(&at, &register, Verdict::Failed(&ProtocolError::BadTag)));
    lines.push(handshake_line(&at, &session.frames[2].0, Verdict::Failed(&Error::AuthFailed)));
    assert!(lines[lines.len() - 3].contains(&format!("verifier={}…", &hex(&verifier)[..8])));

    let secrets = [
        ("key", session.key.0),
        ("token", session.token),
        ("client-to-server key", session.keys.client_to_server),
        ("server-to-client key", session.keys.server_to_client),
        ("client proof key", session.keys.client_proof),
        ("server proof key", session.keys.server_proof),
    ];
    for line in &lines {
        for (name, secret) in &secrets {
            // Not even four bytes of it, at any offset.
            for window in secret.windows(SHORT_BYTES) {
                assert!(!line.contains(&hex(window)), "a trace line shows part of the {name}: {line}");
            }
        }
        assert!(!line.contains(&hex(&verifier)), "a trace line shows the whole verifier: {line}");
    }
}

#[test]
fn failures_show_their_reason_after_the_tag() {
    let session = session();
    let login = &session.frames[4].0;
    let at = seen(0, Direction::Received, "alice");
    let bad_tag = sealed_line(&at, login, Verdict::Failed(&ProtocolError::BadTag));
    assert!(bad_tag.ends_with(" #0 LOGIN len=50 last_seen=41 register=no tag=3c414e38… ✗ bad tag"), "{bad_tag}");
    let replay = ProtocolError::UnexpectedSequence { got: 0, want: 1 };
    let replayed = sealed_line(&at, login, Verdict::Failed(&replay));
    assert!(replayed.ends_with("tag=3c414e38… ✗ wrong sequence number (got 0, expected 1)"), "{replayed}");
    let proof = handshake_line(&at, &session.frames[2].0, Verdict::Failed(&Error::AuthFailed));
    assert!(proof.ends_with("PROOF len=33 tag=5504fd85… ✗ authentication failed (wrong key or owner token)"));
    let unchecked = sealed_line(&at, login, Verdict::Unchecked);
    assert!(unchecked.ends_with("tag=3c414e38… ?"), "{unchecked}");
    let version = handshake(Handshake::Hello { version: 2, nonce: [1; 32], nick: "x".into() });
    let refused = handshake_line(&at, &version, Verdict::Failed(&ProtocolError::UnsupportedVersion { got: 2 }));
    assert!(refused.ends_with("HELLO len=37 version=2 nonce=01010101… nick=x ✗ unsupported protocol version 2"));
}

#[test]
fn every_server_kind_shows_its_fields() {
    let mut sealer = Sealer::new(&[9; 32]);
    let at = seen(0, Direction::Received, "127.0.0.1:5555");
    let mut line = |message: ServerMsg| sealed_line(&at, &server(&mut sealer, message), Verdict::Verified);
    let cases = [
        (ServerMsg::Reject { reason: "nickname taken".into() }, " REJECT len=57 reason=\"nickname taken\" tag="),
        (ServerMsg::Joined { nicks: vec!["carol".into()] }, " JOINED len=50 nicks=[carol] tag="),
        (ServerMsg::Left { nicks: vec!["bob".into(), "carol".into()] }, " LEFT len=55 nicks=[bob,carol] tag="),
        (
            ServerMsg::Error { client_id: 3, reason: "unknown recipient".into() },
            " ERROR len=68 client_id=3 reason=\"unknown recipient\" tag=",
        ),
        (ServerMsg::Retry { client_id: 4, reason: "full".into() }, " RETRY len=55 client_id=4 reason=\"full\" tag="),
        (ServerMsg::Dropped { count: 5, limit: 10_000 }, " DROPPED len=57 count=5 limit=10000 tag="),
        (ServerMsg::Unlisted { count: 9_000 }, " UNLISTED len=49 count=9000 tag="),
    ];
    for (message, wanted) in cases {
        let shown = line(message);
        assert!(shown.contains(wanted), "{shown}\nlacks {wanted}");
    }
    let many: Vec<String> = (0..20).map(|n| format!("user{n}")).collect();
    let shown = line(ServerMsg::Users { last: false, nicks: many });
    assert!(shown.contains(" last=no nicks=[user0,user1,user2,user3,user4,user5,user6,user7,… (20 names)] "));
    let fail = handshake(Handshake::Fail { reason: "authentication failed".into() });
    assert!(handshake_line(&at, &fail, Verdict::Unchecked).ends_with(" FAIL len=24 reason=\"authentication failed\""));
}

#[test]
fn texts_are_cut_with_their_length_and_escaped_onto_one_line() {
    let mut sealer = Sealer::new(&[9; 32]);
    let at = seen(0, Direction::Received, "alice");
    let long = "Lorem ipsum dolor sit amet, consectetur adipiscing elit".to_string();
    let send = ClientMsg::Send { client_id: 1, to: "bob".into(), text: long.clone() };
    let shown = sealed_line(&at, &client(&mut sealer, send), Verdict::Verified);
    assert!(shown.contains(" to=bob text=\"Lorem ipsum dolor sit amet, cons\"… (55 bytes) tag="), "{shown}");
    let hostile = "a\nb\u{202e}c\"d";
    let send = ClientMsg::Send { client_id: 2, to: "x y".into(), text: hostile.into() };
    let shown = sealed_line(&at, &client(&mut sealer, send), Verdict::Verified);
    assert!(shown.contains(r#" to="x y" text="a\nb\u{202e}c\"d" "#), "{shown}");
    let peer = Seen { peer: "evil\npeer", ..at };
    let shown = sealed_line(&peer, &client(&mut sealer, ClientMsg::Ping), Verdict::Verified);
    assert!(shown.contains(r#" ← "evil\npeer" #2 PING"#), "{shown}");
}

#[test]
fn any_bytes_make_one_line_and_never_panic() {
    let session = session();
    let at = seen(0, Direction::Received, "alice");
    for (frame, _, plain) in &session.frames {
        let mut variants: Vec<Vec<u8>> = (0..frame.len()).map(|cut| frame[..cut].to_vec()).collect();
        for byte in 0..frame.len() {
            for bit in [0x01, 0x80] {
                let mut bent = frame.clone();
                bent[byte] ^= bit;
                variants.push(bent);
            }
        }
        for bytes in &variants {
            for line in [
                handshake_line(&at, bytes, Verdict::Unchecked),
                sealed_line(&at, bytes, Verdict::Failed(&ProtocolError::BadTag)),
            ] {
                assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
            }
        }
        // A handshake frame read as sealed (or the reverse) says so.
        let misread = if *plain {
            sealed_line(&at, frame, Verdict::Unchecked)
        } else {
            handshake_line(&at, frame, Verdict::Unchecked)
        };
        assert!(misread.contains("[malformed: ") || misread.contains("[frame too short"), "{misread}");
    }
    let short = sealed_line(&at, &[0, 0, 0, 5, 1, 2, 3, 4, 5], Verdict::Unchecked);
    assert!(short.ends_with(" - ? len=5 [frame too short (5 bytes, min 41)]"), "{short}");
    let empty = handshake_line(&at, &[], Verdict::Unchecked);
    assert!(empty.ends_with(" - ? len=? [malformed: truncated in kind]"), "{empty}");
    let trailing = handshake_line(&at, &[0, 0, 0, 3, kind::PROOF, 1, 2], Verdict::Unchecked);
    assert!(trailing.ends_with(" - PROOF len=3 [malformed: truncated in tag]"), "{trailing}");
}

#[test]
fn a_frame_the_decoders_refuse_shows_why_instead_of_its_fields() {
    let mut sealer = Sealer::new(&[9; 32]);
    let at = seen(0, Direction::Received, "127.0.0.1:5555");
    let mut bytes = Vec::new();
    ChatMsg { id: 5, time_ms: T0, from: "bob".into(), to: String::new(), text: "hola".into() }.write(&mut bytes);
    let last = bytes.len() - 1;
    bytes[last] = 0xff; // "hol\xff" is not UTF-8.
    let mut frame = Vec::new();
    sealer.seal(kind::MSG, &bytes, &mut frame);
    let shown = sealed_line(&at, &frame, Verdict::Verified);
    assert!(shown.contains(" #0 MSG len=70 [malformed: invalid UTF-8 in text] tag="), "{shown}");
    assert!(!shown.contains("id=") && !shown.contains("from="), "no partial fields: {shown}");
    let mut trailing = Vec::new();
    sealer.seal(kind::PONG, b"x", &mut trailing);
    let shown = sealed_line(&at, &trailing, Verdict::Verified);
    assert!(shown.contains(" #1 PONG len=42 [malformed: 1 trailing bytes] tag="), "{shown}");
    let mut client_kind = Vec::new();
    sealer.seal(kind::HELLO, b"", &mut client_kind);
    let shown = sealed_line(&at, &client_kind, Verdict::Verified);
    assert!(shown.contains(" #2 HELLO len=41 [malformed: unknown frame kind 0x01] tag="), "{shown}");
    let mut unknown = Vec::new();
    sealer.seal(0x2c, b"", &mut unknown);
    assert!(
        sealed_line(&at, &unknown, Verdict::Verified)
            .contains(" #3 0x2c len=41 [malformed: unknown frame kind 0x2c] tag=")
    );
}
