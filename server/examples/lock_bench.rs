//! How long the state lock is held per public message, with 10 and with
//! 10,000 registered users (10 of them online). `State` is plain data, so
//! this times exactly the work the server does under its lock: staging a
//! SEND, publishing it, and the delivery rounds that take it for the users
//! online. `make bench` runs it next to the load generator:
//!
//! ```sh
//! cargo run --release -p chat-server --example lock_bench
//! ```
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use chat_server::mail::Caps;
use chat_server::state::{Connection, Limits, LoginRequest, State};

/// A connection is its number here.
#[derive(Clone, Copy)]
struct Conn(u64);

impl Connection for Conn {
    fn id(&self) -> u64 {
        self.0
    }
}

fn main() {
    let messages = 50_000;
    for registered in [10, 10_000] {
        let mail = Caps { messages: 1_000_000, bytes: usize::MAX, store_bytes: usize::MAX };
        let limits = Limits { mail, max_users: usize::MAX, new_users_per_hour: u32::MAX, max_listed: 1000 };
        let mut state = State::new(limits, true);
        let from = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for n in 0..registered {
            let nick = format!("u{n}");
            let request = LoginRequest { nick: &nick, registered: false, last_seen: 0, register: Some([1; 32]), from };
            state.login(request, Conn(n), 0).expect("registers");
            if n >= 10 {
                state.logout(&nick, &Conn(n));
            }
        }
        let text = "x".repeat(100);
        let started = Instant::now();
        for id in 1..=messages {
            state.send("u0", id, "", &text, 0, false);
            let (_, ticket) = state.take_records();
            let published = state.publish(ticket);
            for conn in published.wake {
                state.take_mail(&format!("u{}", conn.0), &conn, 512);
            }
        }
        let per_message = started.elapsed().as_secs_f64() * 1e6 / messages as f64;
        let (_, online, stored, bytes) = state.counts();
        println!(
            "{{\"scenario\":\"lock\",\"registered\":{registered},\"online\":{online},\"messages\":{messages},\
             \"lock_us_per_message\":{per_message:.2},\"stored\":{stored},\"stored_bytes\":{bytes}}}"
        );
        println!(
            "lock with {registered:>6} registered: {per_message:.2} µs per public message, {stored} messages ({bytes} bytes) stored"
        );
    }
}
