//! Captures written by the test (classic pcap, raw IPv4, TCP on
//! 127.0.0.1), so every part of the dissector runs whoever runs the tests.

use super::*;

/// A pcap file being written (LINKTYPE_RAW: each record an IPv4 packet).
pub(crate) struct PcapWriter {
    pub(crate) bytes: Vec<u8>,
    pub(crate) micros: u32,
}

/// One TCP connection in a written capture.
pub(crate) struct Connection {
    pub(crate) client_port: u16,
    pub(crate) server_port: u16,
    /// The next sequence number of each side.
    pub(crate) client_seq: u32,
    pub(crate) server_seq: u32,
}

pub(crate) const SYN: u8 = 0x02;
pub(crate) const PSH_ACK: u8 = 0x18;
pub(crate) const ACK: u8 = 0x10;

impl PcapWriter {
    pub(crate) fn new() -> PcapWriter {
        let mut bytes = Vec::new();
        for word in
            [0xa1b2_c3d4u32.to_le_bytes(), [2, 0, 4, 0], [0; 4], [0; 4], 65535u32.to_le_bytes(), 101u32.to_le_bytes()]
        {
            bytes.extend_from_slice(&word);
        }
        PcapWriter { bytes, micros: 0 }
    }

    pub(crate) fn packet(&mut self, src_port: u16, dst_port: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
        let total = 40 + payload.len();
        let mut ip =
            vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1];
        let sum: u32 = ip.chunks(2).map(|pair| u32::from(pair[0]) << 8 | u32::from(pair[1])).sum();
        let checksum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&src_port.to_be_bytes());
        tcp.extend_from_slice(&dst_port.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        self.micros += 1000;
        for word in [0u32, self.micros, total as u32, total as u32] {
            self.bytes.extend_from_slice(&word.to_le_bytes());
        }
        self.bytes.extend_from_slice(&ip);
        self.bytes.extend_from_slice(&tcp);
        self.bytes.extend_from_slice(payload);
    }

    /// SYN, SYN-ACK, ACK.
    pub(crate) fn connect(&mut self, client_port: u16, server_port: u16) -> Connection {
        let (client_seq, server_seq) = (1000, 5000);
        self.packet(client_port, server_port, client_seq, 0, SYN, &[]);
        self.packet(server_port, client_port, server_seq, client_seq + 1, SYN | ACK, &[]);
        self.packet(client_port, server_port, client_seq + 1, server_seq + 1, ACK, &[]);
        Connection { client_port, server_port, client_seq: client_seq + 1, server_seq: server_seq + 1 }
    }

    /// One TCP segment carrying `payload`, from the client or the server.
    pub(crate) fn send(&mut self, conn: &mut Connection, from_client: bool, payload: &[u8]) {
        let len = payload.len() as u32;
        if from_client {
            self.packet(conn.client_port, conn.server_port, conn.client_seq, conn.server_seq, PSH_ACK, payload);
            conn.client_seq += len;
        } else {
            self.packet(conn.server_port, conn.client_port, conn.server_seq, conn.client_seq, PSH_ACK, payload);
            conn.server_seq += len;
        }
    }
}

/// PROTOCOL.md's test vectors, by name, read from the document itself.
pub(crate) fn protocol_md_vectors() -> BTreeMap<String, Vec<u8>> {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/PROTOCOL.md")).unwrap();
    doc.lines()
        .filter_map(|line| line.split_once(" = "))
        .filter(|(name, value)| {
            !name.contains(' ') && !value.is_empty() && value.chars().all(|c| c.is_ascii_hexdigit())
        })
        .map(|(name, value)| (name.to_string(), unhex(value)))
        .collect()
}

pub(crate) fn sealed(sealer: &mut Sealer, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    sealer.seal(kind, payload, &mut frame);
    frame
}

#[test]
fn the_dissectors_sha256_hmac_and_hkdf_pass_their_self_test() {
    let script = lua_script();
    let output = tshark(&["-G", "protocols", "-X", &script, "-X", "lua_script1:selftest"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the self-test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("hmac-chat self-test: all "), "no self-test result:\n{stdout}\n{stderr}");
}

/// A capture written from PROTOCOL.md's test vectors, with the key file
/// and the preferences to read it.
pub(crate) struct Written {
    pub(crate) capture: PathBuf,
    /// `-o hmacchat.key_file:...`
    pub(crate) key_pref: [String; 2],
    /// `-o hmacchat.verifiers:Alice=...` (capitalised: nicknames compare case-insensitively).
    pub(crate) verifier_pref: [String; 2],
}

/// Five connections to port 5555, all on the vectors' handshake:
/// 0. the vectors' session: the HELLO split in three segments, WELCOME and
///    MSG in one, an ACK, then the MSG replayed;
/// 1. a SEND with a flipped bit;
/// 2. malformed frames under good tags (a text that is not UTF-8, a PING
///    with a trailing byte, a kind the client may not send, a USERS with
///    a flag of 2), a good UNLISTED, then a frame over the size limit;
/// 3. a CHALLENGE whose nonce is the HELLO's (a reflection);
/// 4. a HELLO of version 2, and the server's FAIL.
pub(crate) fn written_capture() -> Written {
    let v = protocol_md_vectors();
    for name in ["hello_frame", "challenge_frame", "client_proof", "server_proof", "login_frame_seq0", "msg_frame_seq1"]
    {
        assert!(v.contains_key(name), "PROTOCOL.md lacks the vector {name}");
    }
    let plain = |kind: u8, body: &[u8]| [&((body.len() + 1) as u32).to_be_bytes()[..], &[kind], body].concat();
    let c2s_key: [u8; 32] = v["client_to_server_key"].clone().try_into().unwrap();
    let s2c_key: [u8; 32] = v["server_to_client_key"].clone().try_into().unwrap();
    let payload = |message: Result<&ClientMsg, &ServerMsg>| {
        let mut out = Vec::new();
        match message {
            Ok(message) => message.encode_payload(&mut out),
            Err(message) => message.encode_payload(&mut out),
        }
        out
    };
    let welcome = ServerMsg::Welcome { nick: "alice".into(), server_time_ms: 1_795_830_283_000 };
    let welcome = sealed(&mut Sealer::new(&s2c_key), kind::WELCOME, &payload(Err(&welcome)));
    let ack = sealed(&mut Sealer::starting_at(&c2s_key, 1), kind::ACK, &payload(Ok(&ClientMsg::Ack { up_to: 42 })));
    let send = ClientMsg::Send { client_id: 1, to: String::new(), text: "flip me".into() };
    let mut flipped = sealed(&mut Sealer::starting_at(&c2s_key, 1), kind::SEND, &payload(Ok(&send)));
    flipped[20] ^= 0x04;
    let mut up = Sealer::starting_at(&c2s_key, 1);
    let bad_text = sealed(&mut up, kind::SEND, &[&1u64.to_be_bytes()[..], &[0, 0, 0, 2, 0xc3, 0x28]].concat());
    let trailing = sealed(&mut up, kind::PING, &[0]);
    let wrong_way = sealed(&mut up, kind::SENT, &[0; 16]);
    let mut down = Sealer::new(&s2c_key);
    let from_server = [
        sealed(&mut down, kind::WELCOME, &[0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 0]),
        sealed(&mut down, kind::USERS, &[2, 0, 0]),
        sealed(&mut down, kind::UNLISTED, &9000u64.to_be_bytes()),
    ];

    let mut pcap = PcapWriter::new();
    let hello = &v["hello_frame"];
    let handshake = |pcap: &mut PcapWriter, port: u16| {
        let mut conn = pcap.connect(port, 5555);
        // Split three ways, the first piece shorter than the length prefix.
        pcap.send(&mut conn, true, &hello[..2]);
        pcap.send(&mut conn, true, &hello[2..12]);
        pcap.send(&mut conn, true, &hello[12..]);
        pcap.send(&mut conn, false, &v["challenge_frame"]);
        pcap.send(&mut conn, true, &plain(kind::PROOF, &v["client_proof"]));
        pcap.send(&mut conn, false, &plain(kind::ACCEPT, &v["server_proof"]));
        pcap.send(&mut conn, true, &v["login_frame_seq0"]);
        conn
    };
    let mut conn = handshake(&mut pcap, 40000);
    pcap.send(&mut conn, false, &[&welcome[..], &v["msg_frame_seq1"]].concat());
    pcap.send(&mut conn, true, &ack);
    pcap.send(&mut conn, false, &v["msg_frame_seq1"]);
    let mut conn = handshake(&mut pcap, 40001);
    pcap.send(&mut conn, true, &flipped);
    let mut conn = handshake(&mut pcap, 40002);
    for frame in [&bad_text, &trailing, &wrong_way] {
        pcap.send(&mut conn, true, frame);
    }
    pcap.send(&mut conn, false, &from_server.concat());
    pcap.send(&mut conn, true, &[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    let mut conn = pcap.connect(40003, 5555);
    pcap.send(&mut conn, true, hello);
    let reflected = [&hello[4 + 2..4 + 34], &[1]].concat();
    pcap.send(&mut conn, false, &plain(kind::CHALLENGE, &reflected));
    let mut conn = pcap.connect(40004, 5555);
    let mut version_2 = hello.clone();
    version_2[5] = 2;
    pcap.send(&mut conn, true, &version_2);
    pcap.send(&mut conn, false, &plain(kind::FAIL, &[&[0, 19][..], b"unsupported version"].concat()));

    let dir = temp_dir("wireshark-vectors");
    let capture = dir.join("vectors.pcap");
    fs::write(&capture, &pcap.bytes).unwrap();
    fs::write(dir.join("chat.key"), format!("{}\n", hex(&(0..32).collect::<Vec<u8>>()))).unwrap();
    let verifier = hex(&token_verifier(&[0x33; 32]));
    assert_eq!(verifier, hex(&v["token_verifier"]));
    Written {
        capture,
        key_pref: ["-o".into(), format!("hmacchat.key_file:{}", dir.join("chat.key").display())],
        verifier_pref: ["-o".into(), format!("hmacchat.verifiers:Alice={verifier}")],
    }
}

pub(crate) fn in_stream(pdus: &[Pdu], stream: u32) -> Vec<&Pdu> {
    pdus.iter().filter(|p| p.stream == stream).collect()
}

#[test]
fn a_capture_of_the_protocol_md_vectors_decodes_with_every_tag_verified() {
    let written = written_capture();
    let pdus = decode(&written.capture, &[written.key_pref.clone(), written.verifier_pref].concat());
    let first = in_stream(&pdus, 0);
    let kinds: Vec<&str> = first.iter().map(|p| p.kind()).collect();
    assert_eq!(
        kinds,
        ["HELLO", "CHALLENGE", "PROOF", "ACCEPT", "LOGIN", "WELCOME", "MSG", "ACK", "MSG"],
        "{}",
        describe(&first)
    );
    assert_eq!(first[0].get("hmacchat.nick"), Some("alice"), "the HELLO split in three is put together");
    assert_eq!(first[1].get("hmacchat.keys"), Some("derived from the key file and the verifier for \"alice\""));
    for pdu in &first[2..8] {
        assert_eq!((pdu.status(), pdu.get("hmacchat.tag.verified")), ("verified", Some("1")), "{pdu:?}");
    }
    assert_eq!(first[4].get("hmacchat.last_seen"), Some("41"));
    let msg = first[6];
    assert_eq!(
        [msg.get("hmacchat.seq"), msg.get("hmacchat.id"), msg.get("hmacchat.from"), msg.get("hmacchat.text")],
        [Some("1"), Some("42"), Some("bob"), Some("hola")]
    );
    assert_eq!(first[5].packet, first[6].packet, "WELCOME and MSG came in one segment");
    let replay = first[8];
    assert_eq!(replay.status(), "verified", "a replayed frame carries a good tag");
    assert_eq!(replay.get("hmacchat.seq.expected"), Some("2"), "{replay:?}");
    assert!(replay.has("hmacchat.wrong_seq"), "no expert info for the replay: {replay:?}");

    // Without the verifier, the registered nickname's keys cannot be
    // derived; the sequence numbers are still checked.
    let pdus = decode(&written.capture, &written.key_pref);
    let first = in_stream(&pdus, 0);
    let keys = first[1].get("hmacchat.keys").unwrap_or_default();
    assert!(keys.starts_with("not derived: no verifier for the registered nickname \"alice\""), "{keys}");
    assert!(first[1].has("hmacchat.unchecked"));
    assert!(first.iter().all(|p| !p.has("hmacchat.tag.verified")), "{}", describe(&first));
    assert!(first[4].status().starts_with("not checked"), "{:?}", first[4]);
    assert_eq!(first[8].get("hmacchat.seq.expected"), Some("2"), "{:?}", first[8]);
}

#[test]
fn each_tampering_in_a_written_capture_is_reported() {
    let written = written_capture();
    let pdus = decode(&written.capture, &[written.key_pref.clone(), written.verifier_pref].concat());

    let flipped = in_stream(&pdus, 1);
    let bent = flipped.last().unwrap();
    assert_eq!((bent.kind(), bent.status(), bent.get("hmacchat.tag.verified")), ("SEND", "bad tag", Some("0")));
    assert!(bent.has("hmacchat.bad_tag"), "no expert info for the bad tag: {bent:?}");
    assert!(flipped[..flipped.len() - 1].iter().all(|p| p.status() == "verified" || !p.has("hmacchat.tag")));

    let malformed = in_stream(&pdus, 2);
    let problems: Vec<(&str, &str, &str)> = malformed[5..]
        .iter()
        .map(|p| (p.kind(), p.status(), p.get("hmacchat.malformed").unwrap_or_default()))
        .collect();
    let wanted = [
        ("SEND", "verified", "Malformed: invalid UTF-8 in text"),
        ("PING", "verified", "Malformed: 1 trailing bytes"),
        ("SENT", "verified", "Malformed: unknown kind for this direction; the receiver closes [P-15]"),
        ("WELCOME", "verified", ""),
        ("USERS", "verified", "Malformed: last flag is 2"),
        ("UNLISTED", "verified", ""),
        ("?", "", "Frame too long (2147483647 bytes, max 65536): the receiver closes the connection [P-2]"),
    ];
    assert_eq!(problems, wanted, "{}", describe(&malformed));
    assert_eq!(malformed[10].get("hmacchat.unlisted"), Some("9000"), "{:?}", malformed[10]);

    let reflected = in_stream(&pdus, 3);
    assert_eq!(reflected[1].kind(), "CHALLENGE");
    assert!(reflected[1].has("hmacchat.reflected"), "{:?}", reflected[1]);

    let refused = in_stream(&pdus, 4);
    assert_eq!((refused[0].get("hmacchat.version"), refused[1].kind()), (Some("2"), "FAIL"));
    assert!(refused.iter().all(|p| p.has("hmacchat.refused")), "{}", describe(&refused));
    assert_eq!(refused[1].get("hmacchat.reason"), Some("unsupported version"));
}

#[test]
fn the_verifier_command_in_wireshark_md_prints_the_verifier() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/WIRESHARK.md")).unwrap();
    let line = doc.lines().find(|line| line.starts_with("python3 -c '")).expect("WIRESHARK.md shows a python3 command");
    let script = line.split('\'').nth(1).unwrap();
    let token_file = temp_dir("wireshark-token").join("token");
    fs::write(&token_file, format!("{}\naccepted\n", "33".repeat(32))).unwrap();
    let output = Command::new("python3").args(["-c", script]).arg(&token_file).output();
    let output = output.expect("python3 is needed (make deps)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // PROTOCOL.md's token_verifier, for a token of 32 bytes of 0x33.
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), hex(&protocol_md_vectors()["token_verifier"]));
}
