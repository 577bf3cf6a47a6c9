//! Recomputes every test vector in `docs/PROTOCOL.md` and checks that the
//! document shows exactly these bytes, so the spec and the code cannot
//! drift apart.

use chat_common::auth::{self, Key, Sealer, SessionKeys};
use chat_common::message::{ChatMsg, ClientMsg, Handshake, ServerMsg};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The vectors, named as in PROTOCOL.md's "Test vectors" section.
pub fn compute() -> Vec<(&'static str, String)> {
    let key = Key(std::array::from_fn(|i| i as u8));
    let token = [0x33u8; 32];
    let mut hello = Vec::new();
    Handshake::Hello { version: 1, nonce: [0x11; 32], nick: "alice".into() }.encode(&mut hello);
    let mut challenge = Vec::new();
    Handshake::Challenge { nonce: [0x22; 32], registered: true }.encode(&mut challenge);
    let transcript = auth::transcript_hash(&hello, &challenge);
    let verifier = auth::token_verifier(&token);
    let keys = SessionKeys::derive(&key, Some(&verifier), &transcript);

    let mut login = Vec::new();
    let payload = {
        let mut p = Vec::new();
        ClientMsg::Login { last_seen: 41, register: None }.encode_payload(&mut p);
        p
    };
    Sealer::new(&keys.client_to_server).seal(
        ClientMsg::Login { last_seen: 41, register: None }.kind(),
        &payload,
        &mut login,
    );

    let msg = ServerMsg::Msg(ChatMsg {
        id: 42,
        time_ms: 1_795_830_283_007,
        from: "bob".into(),
        to: String::new(),
        text: "hola".into(),
    });
    let mut payload = Vec::new();
    msg.encode_payload(&mut payload);
    let mut server = Sealer::new(&keys.server_to_client);
    let mut ignored = Vec::new();
    let welcome = ServerMsg::Welcome { nick: "alice".into(), server_time_ms: 0 };
    let mut welcome_payload = Vec::new();
    welcome.encode_payload(&mut welcome_payload);
    server.seal(welcome.kind(), &welcome_payload, &mut ignored);
    let mut msg_frame = Vec::new();
    server.seal(msg.kind(), &payload, &mut msg_frame);

    vec![
        ("hello_frame", hex(&hello)),
        ("challenge_frame", hex(&challenge)),
        ("transcript_hash", hex(&transcript)),
        ("token_verifier", hex(&verifier)),
        ("client_to_server_key", hex(&keys.client_to_server)),
        ("server_to_client_key", hex(&keys.server_to_client)),
        ("client_proof_key", hex(&keys.client_proof)),
        ("server_proof_key", hex(&keys.server_proof)),
        ("client_proof", hex(&auth::proof(&keys.client_proof, &transcript))),
        ("server_proof", hex(&auth::proof(&keys.server_proof, &transcript))),
        ("login_frame_seq0", hex(&login)),
        ("msg_frame_seq1", hex(&msg_frame)),
    ]
}

#[test]
fn protocol_md_shows_the_vectors_the_code_computes() {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let missing: Vec<String> = compute()
        .into_iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .filter(|line| !doc.contains(line.as_str()))
        .collect();
    assert!(missing.is_empty(), "PROTOCOL.md lacks or differs on:\n{}", missing.join("\n"));
}
