//! Idle timeout, PING, and the connection limit.

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use chat_common::message::{ClientMsg, ServerMsg};

use crate::support::{PATIENCE, TestServer};

/// [P-26] Silence closes a connection; PING keeps it open.
#[test]
fn a_silent_connection_is_closed_and_a_pinging_one_is_not() {
    let server = TestServer::start(&["--idle-secs", "1"]);
    let (mut quiet, _) = server.register("quiet");
    let (mut chatty, _) = server.register("chatty");
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(400));
        chatty.send(&ClientMsg::Ping);
    }
    assert!(quiet.is_closed_by_server());
    server.wait_log(&["quiet", "disconnected", "idle for 1s"]);
    chatty.recv_until(|m| (*m == ServerMsg::Pong).then_some(()));
    assert!(!server.log_text().contains("chatty disconnected"));
}

#[test]
fn connections_past_the_limit_are_closed_at_once_and_slots_come_back() {
    let server = TestServer::start(&["--max-conns", "2"]);
    let (first, _) = server.register("one");
    let (_second, _) = server.register("two");
    let mut third = TcpStream::connect(server.addr).unwrap();
    third.set_read_timeout(Some(PATIENCE)).unwrap();
    server.wait_log(&["connection refused: limit of 2 connections reached"]);
    let mut byte = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut third, &mut byte).unwrap_or(0), 0);
    drop(first);
    server.wait_log(&["one", "disconnected"]);
    server.register("three");
}
