//! The shared key on disk: 32 random bytes written as 64 hex characters
//! and a newline, in a file of mode 0600. Like ssh with a private key,
//! [`load_key`] refuses a file that other users may read, and a key that
//! is not random enough to be secret. Errors name the file and state the
//! fact; what to do next differs between the server and a client, so each
//! program adds its own advice.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::auth::{KEY_LEN, Key};
use crate::random::random_bytes;

/// Why a key file could not be used.
#[derive(Debug)]
pub enum KeyFileError {
    /// There is no file at the path.
    Missing(PathBuf),
    /// The file exists but could not be read.
    Unreadable(PathBuf, io::Error),
    /// The file does not hold 64 hex characters.
    Malformed(PathBuf, String),
    /// Group or others have some access to the file (its mode is given).
    TooOpen(PathBuf, u32),
    /// The key is all one byte, a short pattern repeated, or counting
    /// bytes: anyone could guess it. The key is kept for one use only:
    /// rewriting a journal under a random key (`chat-server --rekey`).
    Patterned(PathBuf, Key),
    /// `create_key` refuses to overwrite an existing key.
    Exists(PathBuf),
    /// The new key could not be written.
    Unwritable(PathBuf, io::Error),
}

impl KeyFileError {
    /// The key file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Missing(path) | Self::Exists(path) => path,
            Self::Patterned(path, _) => path,
            Self::Unreadable(path, _) | Self::Unwritable(path, _) => path,
            Self::Malformed(path, _) => path,
            Self::TooOpen(path, _) => path,
        }
    }
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path().display();
        match self {
            Self::Missing(_) => write!(f, "{path}: no such file"),
            Self::Unreadable(_, err) => write!(f, "{path}: {err}"),
            Self::Malformed(_, why) => write!(f, "{path}: {why}; a key file holds 64 hex characters"),
            Self::TooOpen(_, mode) => write!(
                f,
                "{path}: mode {mode:04o} lets other users of this computer read the key; fix it with: chmod 600 {}",
                shell_quoted(self.path())
            ),
            Self::Patterned(..) => {
                write!(
                    f,
                    "{path}: not a random key (one byte repeated, a short pattern, or counting bytes): anyone could guess it"
                )
            }
            Self::Exists(_) => write!(f, "{path}: already exists; not overwriting a key"),
            Self::Unwritable(_, err) => write!(f, "{path}: cannot write key: {err}"),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// `path` as one shell word, so the `chmod` advice can be pasted as is.
fn shell_quoted(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,".contains(c);
    if text.chars().all(plain) { text } else { format!("'{}'", text.replace('\'', "'\\''")) }
}

/// Whether `key` is one byte repeated, a pattern of up to 16 bytes
/// repeated, or bytes counting by a fixed step (like the example key in
/// docs/PROTOCOL.md): a key someone typed or copied, not a random one. A
/// random key is any of these with a chance of about 2^-128.
fn is_patterned(key: &[u8; KEY_LEN]) -> bool {
    let repeats = (1..=16).any(|period| (period..KEY_LEN).all(|i| key[i] == key[i - period]));
    let step = key[1].wrapping_sub(key[0]);
    repeats || key.windows(2).all(|pair| pair[1].wrapping_sub(pair[0]) == step)
}

/// Reads the key at `path`.
pub fn load_key(path: &Path) -> Result<Key, KeyFileError> {
    let io_error = |err: io::Error| match err.kind() {
        io::ErrorKind::NotFound => KeyFileError::Missing(path.into()),
        io::ErrorKind::InvalidData => KeyFileError::Malformed(path.into(), "not text".into()),
        _ => KeyFileError::Unreadable(path.into(), err),
    };
    let mode = fs::metadata(path).map_err(io_error)?.permissions().mode() & 0o777;
    // SECURITY: a key file that group or others may access is refused, as ssh refuses such a private key.
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen(path.into(), mode));
    }
    let text = fs::read_to_string(path).map_err(io_error)?;
    let hex = text.trim_end();
    if !hex.is_ascii() {
        return Err(KeyFileError::Malformed(path.into(), "holds non-ASCII characters".into()));
    }
    if hex.len() != 2 * KEY_LEN {
        let why = format!("holds {} characters", hex.len());
        return Err(KeyFileError::Malformed(path.into(), why));
    }
    let mut key = [0u8; KEY_LEN];
    for (i, byte) in key.iter_mut().enumerate() {
        let pair = &hex[2 * i..2 * i + 2];
        *byte = u8::from_str_radix(pair, 16)
            .map_err(|_| KeyFileError::Malformed(path.into(), format!("{pair:?} is not hex")))?;
    }
    // SECURITY: an all-zero or patterned key is refused: anyone could guess it.
    if is_patterned(&key) {
        return Err(KeyFileError::Patterned(path.into(), Key(key)));
    }
    Ok(Key(key))
}

/// Writes a new random key to `path` (mode 0600), refusing to overwrite.
pub fn create_key(path: &Path) -> Result<Key, KeyFileError> {
    let key = random_bytes::<KEY_LEN>().map_err(|err| KeyFileError::Unwritable(path.into(), err))?;
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|err| match err.kind() {
            io::ErrorKind::AlreadyExists => KeyFileError::Exists(path.into()),
            _ => KeyFileError::Unwritable(path.into(), err),
        })?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(file, "{hex}").and_then(|()| file.sync_all()).map_err(|err| KeyFileError::Unwritable(path.into(), err))?;
    Ok(Key(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hmac-chat-keyfile-{}-{name}", std::process::id()));
        let _ = fs::remove_file(&dir);
        dir
    }

    #[test]
    fn created_key_loads_back_is_private_and_is_never_overwritten() {
        let path = temp_path("roundtrip");
        let key = create_key(&path).unwrap();
        assert_eq!(load_key(&path).unwrap(), key);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(create_key(&path), Err(KeyFileError::Exists(_))));
        assert_eq!(load_key(&path).unwrap(), key);
        fs::remove_file(&path).unwrap();
    }

    /// Writes `text` to `path` with mode 0600, as a key file should be.
    fn write_private(path: &Path, text: &str) {
        let _ = fs::remove_file(path);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    #[test]
    fn missing_and_malformed_files_state_the_fact_and_never_suggest_a_new_key() {
        let path = temp_path("bad");
        let err = load_key(&path).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: no such file", path.display()));
        assert_eq!(err.path(), path);
        write_private(&path, "abcd\n");
        assert!(load_key(&path).unwrap_err().to_string().contains("holds 4 characters"));
        write_private(&path, &"zz".repeat(32));
        let err = load_key(&path).unwrap_err().to_string();
        assert!(err.contains("\"zz\" is not hex"), "{err}");
        assert!(!err.contains("make"), "{err}");
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_key_file_others_may_read_is_refused_with_the_chmod_that_fixes_it() {
        let path = temp_path("open key");
        create_key(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = load_key(&path).unwrap_err();
            assert!(matches!(err, KeyFileError::TooOpen(_, m) if m == mode), "{mode:o}: {err}");
            let advice = format!("chmod 600 '{}'", path.display());
            assert!(err.to_string().ends_with(&advice), "{err}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load_key(&path).is_ok(), "read-only for the owner is fine");
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn an_all_zero_or_patterned_key_is_refused() {
        let path = temp_path("patterned");
        let counting: String = (0..32u8).map(|b| format!("{b:02x}")).collect();
        let down: String = (0..32u8).map(|b| format!("{:02x}", 200 - 3 * b)).collect();
        for hex in ["00".repeat(32), "ff".repeat(32), "0123".repeat(16), "deadbeef".repeat(8), counting, down] {
            write_private(&path, &format!("{hex}\n"));
            let err = load_key(&path).unwrap_err();
            assert!(matches!(err, KeyFileError::Patterned(..)), "{hex}: {err}");
        }
        let random = temp_path("random");
        assert!(!is_patterned(&create_key(&random).unwrap().0));
        fs::remove_file(&random).unwrap();
        fs::remove_file(&path).unwrap();
    }
}
