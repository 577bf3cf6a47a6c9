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
    if let Some(bad) = nick.chars().find(|c| !is_nick_char(*c)) {
        return Err(format!("nickname may not contain {bad:?}; use ASCII letters, digits, _ - ."));
    }
    Ok(())
}

/// Whether a nickname may hold `c` [P-18]: an ASCII letter or digit, `_`,
/// `-` or `.`.
pub fn is_nick_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Whether a text may never hold `c` [P-21]: C0 and C1 controls and DEL,
/// the line and paragraph separators, bidirectional marks, embeddings,
/// overrides and isolates, and the invisible tag characters. (Combining
/// marks are allowed, a few in a row: see [`is_combining_mark`].)
pub fn is_forbidden_in_text(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{200E}' | '\u{200F}')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{E0000}'..='\u{E007F}')
}

/// Whether `c` is a combining mark of the blocks [P-21] counts: at most
/// [`MAX_COMBINING_RUN`] of them may follow one another.
pub fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}')
        || matches!(c, '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// The form nicknames are compared in: `Alice` and `alice` are one user.
pub fn nick_key(nick: &str) -> String {
    nick.to_ascii_lowercase()
}

/// Most combining marks allowed in a row: enough for any language's
/// accents, too few to stack "Zalgo" text over the lines around it.
pub const MAX_COMBINING_RUN: usize = 4;

/// Checks a message text [P-21]: 1 to `max_len` bytes of UTF-8, not only
/// whitespace, without the characters that let a text hide or disguise
/// what it says, or break the display around it:
/// - C0 and C1 control characters and DEL (U+0000–U+001F, U+007F–U+009F);
/// - the line and paragraph separators U+2028 and U+2029;
/// - bidirectional marks, embeddings, overrides and isolates (U+061C,
///   U+200E, U+200F, U+202A–U+202E, U+2066–U+2069; CVE-2021-42574);
/// - the invisible tag characters U+E0000–U+E007F;
/// - more than [`MAX_COMBINING_RUN`] combining marks in a row, from the
///   combining blocks U+0300–U+036F, U+1AB0–U+1AFF, U+1DC0–U+1DFF,
///   U+20D0–U+20FF and U+FE20–U+FE2F.
pub fn validate_text(text: &str, max_len: usize) -> Result<(), String> {
    if text.len() > max_len {
        return Err(format!("message is {} bytes, more than the limit of {max_len}", text.len()));
    }
    if text.trim().is_empty() {
        return Err("message is empty or only spaces".into());
    }
    let mut run = 0;
    for c in text.chars() {
        if is_forbidden_in_text(c) {
            return Err(format!("message contains the forbidden character U+{:04X}", u32::from(c)));
        }
        run = if is_combining_mark(c) { run + 1 } else { 0 };
        if run > MAX_COMBINING_RUN {
            return Err(format!("message has more than {MAX_COMBINING_RUN} combining marks in a row"));
        }
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
        for good in ["hola, ¿qué tal? 👋", "tiê\u{0323}\u{0302}ng Việt", "a\u{0301}\u{0302}\u{0303}\u{0304}", "👩‍👩‍👧 zwj"]
        {
            assert_eq!(validate_text(good, 4096), Ok(()), "{good:?}");
        }
        let bad = [
            "",
            " \u{3000}\t",
            "bell\u{7}",
            "new\nline",
            "del\u{7f}",
            "c1\u{85}",
            "sep\u{2028}",
            "para\u{2029}",
            "evil\u{202E}txt",
            "iso\u{2066}late",
            "lrm\u{200E}",
            "rlm\u{200F}",
            "alm\u{061C}",
            "tag\u{E0041}",
            "zalgo a\u{0301}\u{0302}\u{0303}\u{0304}\u{0305}",
        ];
        for bad in bad {
            assert!(validate_text(bad, 4096).is_err(), "{bad:?}");
        }
        assert!(validate_text(&"é".repeat(2049), 4096).is_err());
        assert_eq!(validate_text("x\u{202E}", 10), Err("message contains the forbidden character U+202E".into()));
    }
}
