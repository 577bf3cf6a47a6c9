//! A server that does not hold the key is reported, not trusted [P-9]: it
//! answers the handshake with a made-up ACCEPT, and the client says "fake
//! server", never logs in, and keeps trying.

use std::io::Write;
use std::net::TcpListener;
use std::thread;

use chat_common::frame::read_frame;
use chat_common::keyfile::create_key;
use chat_common::message::Handshake;

use crate::support::{PATIENCE, TestClient, temp_dir};

/// Plays the server side of the handshake without the key, `rounds` times.
fn serve_fake_handshakes(listener: TcpListener, rounds: usize) {
    for _ in 0..rounds {
        let Ok((mut stream, _)) = listener.accept() else { return };
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut frame = Vec::new();
        let mut out = Vec::new();
        if !matches!(read_frame(&mut stream, 1 << 16, &mut frame), Ok(true)) {
            continue;
        }
        Handshake::Challenge { nonce: [0x42; 32], registered: false }.encode(&mut out);
        let _ = stream.write_all(&out);
        if !matches!(read_frame(&mut stream, 1 << 16, &mut frame), Ok(true)) {
            continue;
        }
        out.clear();
        Handshake::Accept { tag: [0; 32] }.encode(&mut out);
        let _ = stream.write_all(&out);
        // The client must hang up now; wait until it does.
        let _ = read_frame(&mut stream, 1 << 16, &mut frame);
    }
}

#[test]
fn a_server_without_the_key_is_reported_as_fake_and_never_trusted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = thread::spawn(move || serve_fake_handshakes(listener, 2));
    let dir = temp_dir("fake");
    create_key(&dir.join("chat.key")).unwrap();

    let mut ana = TestClient::start(port, &dir.join("chat.key"), "ana", &dir.join("ana"));
    let first = ana.expect("disconnected\t");
    assert!(first.starts_with("disconnected\tfake server: "), "{first}");
    let second = ana.expect("disconnected\t");
    assert!(second.starts_with("disconnected\tfake server: "), "it tries again: {second}");
    fake.join().unwrap();
    assert!(ana.quit().success());
    assert!(ana.seen.iter().all(|line| !line.starts_with("connected")), "{:?}", ana.seen);
}
