//! Integration tests of the wire protocol: the documented test vectors,
//! decoder robustness, the trace format, and the handshake over real loopback sockets.

mod decode;
mod handshake;
mod trace;
mod vectors;
