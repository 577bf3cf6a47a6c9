//! Randomness for nonces, owner tokens and salts, from the operating
//! system. `/dev/urandom` is opened once and kept: a handshake must not
//! need a file descriptor of its own when a busy server has none to spare.

use std::fs::File;
use std::io::{self, Read};
use std::sync::OnceLock;

static URANDOM: OnceLock<File> = OnceLock::new();

/// `/dev/urandom`, opened on the first call and kept for the process. A
/// server calls it at start, so that later draws cannot fail to open it.
pub fn source() -> io::Result<&'static File> {
    if let Some(file) = URANDOM.get() {
        return Ok(file);
    }
    let file = File::open("/dev/urandom")?;
    // Two threads may race to open it: one file is kept, the other closed.
    Ok(URANDOM.get_or_init(|| file))
}

/// Returns `N` bytes from `/dev/urandom`, the kernel's CSPRNG.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut out = [0u8; N];
    let mut file = source()?;
    file.read_exact(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ_and_share_one_descriptor() {
        let a = super::random_bytes::<32>().unwrap();
        let b = super::random_bytes::<32>().unwrap();
        assert_ne!(a, b);
        assert!(std::ptr::eq(super::source().unwrap(), super::source().unwrap()));
    }
}
