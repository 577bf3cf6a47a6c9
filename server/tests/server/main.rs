//! Integration tests of `chat-server`: each starts the real binary on an
//! ephemeral port and talks to it over TCP through `chat-common`. Tests
//! name the `[P-n]` statements of docs/PROTOCOL.md that they prove.

mod adversarial;
mod classmates;
mod delivery;
mod docs;
mod durability;
mod handshake;
mod layers;
mod limits;
mod operator;
mod presence;
mod support;
mod textbook;
mod trace;
