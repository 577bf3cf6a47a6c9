//! End-to-end tests of issue 4: a real `chat-server` process and real
//! `chat-client --headless` processes, talking over loopback. Tests 1–5
//! are the five of issue 4; `outbox_survives` covers a client restart,
//! `fake_server` a server that does not hold the key, `identity` a
//! nickname across addresses and computers, and `retry` (against
//! `scripted_server`) a server that cannot store messages for a while.
#![forbid(unsafe_code)]

mod attack_lab;
mod chaos;
mod fake_server;
mod identity;
mod impostor;
mod key_file;
mod odd_server;
mod odd_texts;
mod offline;
mod outbox_survives;
mod proxy;
mod restart;
mod retry;
mod scripted_server;
mod support;
mod three_clients;
mod trace;
