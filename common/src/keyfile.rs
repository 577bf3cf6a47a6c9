//! The shared key on disk: 32 random bytes written as 64 hex characters
//! and a newline, in a file of mode 0600. Errors name the file and say
//! what to do.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
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
    /// `create_key` refuses to overwrite an existing key.
    Exists(PathBuf),
    /// The new key could not be written.
    Unwritable(PathBuf, io::Error),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(path) => write!(f, "{}: no such file; run 'make key'", path.display()),
            Self::Unreadable(path, err) => write!(f, "{}: {err}", path.display()),
            Self::Malformed(path, why) => {
                write!(f, "{}: {why}; expected 64 hex characters (make a new one with 'make key')", path.display())
            }
            Self::Exists(path) => write!(f, "{}: already exists; not overwriting a key", path.display()),
            Self::Unwritable(path, err) => write!(f, "{}: cannot write key: {err}", path.display()),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// Reads the key at `path`.
pub fn load_key(path: &Path) -> Result<Key, KeyFileError> {
    let text = fs::read_to_string(path).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => KeyFileError::Missing(path.into()),
        io::ErrorKind::InvalidData => KeyFileError::Malformed(path.into(), "not text".into()),
        _ => KeyFileError::Unreadable(path.into(), err),
    })?;
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

    #[test]
    fn missing_and_malformed_files_say_what_to_do() {
        let path = temp_path("bad");
        let err = load_key(&path).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: no such file; run 'make key'", path.display()));
        fs::write(&path, "abcd\n").unwrap();
        assert!(load_key(&path).unwrap_err().to_string().contains("holds 4 characters"));
        fs::write(&path, "zz".repeat(32)).unwrap();
        assert!(load_key(&path).unwrap_err().to_string().contains("\"zz\" is not hex"));
        fs::remove_file(&path).unwrap();
    }
}
