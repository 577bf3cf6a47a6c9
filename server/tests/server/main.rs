//! Integration tests of `chat-server`: each starts the real binary on an
//! ephemeral port and talks to it over TCP through `chat-common`.

mod delivery;
mod durability;
mod handshake;
mod limits;
mod presence;
mod support;
