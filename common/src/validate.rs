//! What makes a nickname or a message text acceptable. The server enforces
//! these rules; the client checks them first to give a quicker answer.

use crate::MAX_NICK_LEN;

/// Checks a nickname: 1–32 ASCII letters, digits, `_`, `-` or `.`.
///
/// ASCII only, on purpose: look-alike letters from other scripts (Cyrillic
/// `а` for Latin `a`) would let one user pose as another.
pub fn validate_nick(nick: &str) -> Result<(), String> {
    if nick.is_empty() {
        return Err("nickname is empty".into());
    }
    if nick.len() > MAX_NICK_LEN {
        return Err(format!("nickname is longer than {MAX_NICK_LEN} characters"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if let Some(bad) = nick.chars().find(|c| !allowed(*c)) {
        return Err(format!("nickname may not contain {bad:?}; use ASCII letters, digits, _ - ."));
    }
    Ok(())
}

/// The form nicknames are compared in: `Alice` and `alice` are one user.
pub fn nick_key(nick: &str) -> String {
    nick.to_ascii_lowercase()
}

/// Checks a message text: 1 to `max_len` bytes of UTF-8, no control
/// characters, no bidirectional overrides or isolates (they let a text
/// disguise what it says, CVE-2021-42574).
pub fn validate_text(text: &str, max_len: usize) -> Result<(), String> {
    if text.is_empty() {
        return Err("message is empty".into());
    }
    if text.len() > max_len {
        return Err(format!("message is {} bytes, more than the limit of {max_len}", text.len()));
    }
    let bidi = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if let Some(bad) = text.chars().find(|c| c.is_control() || bidi(*c)) {
        return Err(format!("message contains the forbidden character {bad:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_nicknames_and_rejects_the_rest() {
        for good in ["alice", "Bob_2", "x", "a.b-c", &"n".repeat(32)] {
            assert_eq!(validate_nick(good), Ok(()), "{good}");
        }
        for bad in ["", "has space", "аlice", "tab\t", "a/b", &"n".repeat(33)] {
            assert!(validate_nick(bad).is_err(), "{bad:?}");
        }
        assert_eq!(nick_key("Alice"), nick_key("aLICE"));
    }

    #[test]
    fn rejects_control_and_bidi_characters_and_long_texts() {
        assert_eq!(validate_text("hola, ¿qué tal? 👋", 4096), Ok(()));
        for bad in ["", "bell\u{7}", "new\nline", "evil\u{202E}txt", "iso\u{2066}late"] {
            assert!(validate_text(bad, 4096).is_err(), "{bad:?}");
        }
        assert!(validate_text(&"é".repeat(2049), 4096).is_err());
    }
}
