//! End-to-end tests of issue 4: a real `chat-server` process and real
//! `chat-client --headless` processes, talking over loopback. Tests 1–5
//! are the five of issue 4; `outbox_survives` covers a client restart and
//! `fake_server` a server that does not hold the key.
#![forbid(unsafe_code)]

mod attack_lab;
mod chaos;
mod fake_server;
mod impostor;
mod offline;
mod outbox_survives;
mod proxy;
mod restart;
mod support;
mod three_clients;
