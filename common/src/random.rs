//! Randomness for nonces and owner tokens, from the operating system.

use std::fs::File;
use std::io::{self, Read};

/// Returns `N` bytes from `/dev/urandom`, the kernel's CSPRNG.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut out = [0u8; N];
    File::open("/dev/urandom")?.read_exact(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ() {
        let a = super::random_bytes::<32>().unwrap();
        let b = super::random_bytes::<32>().unwrap();
        assert_ne!(a, b);
    }
}
