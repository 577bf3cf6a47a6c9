//! One-line logging to stderr, shared by both programs: UTC time, level,
//! who (a peer address or a nickname), what happened. Untrusted strings go
//! through [`Clip`]: escaped, and cut short with their length, so that no
//! peer decides how long a log line is.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// How serious a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Normal events: connections, logins, messages.
    Info,
    /// A peer misbehaved or a limit was hit.
    Warn,
    /// Something failed on our side.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "INFO ",
            Level::Warn => "WARN ",
            Level::Error => "ERROR",
        })
    }
}

/// Writes one line: `2026-11-28T01:58:44.123Z INFO  who event`.
pub fn log(level: Level, who: impl fmt::Display, event: fmt::Arguments<'_>) {
    // Formatted first, then written whole: stderr is unbuffered, so
    // formatting into it makes a system call per piece (about fifteen per
    // line, measured with strace).
    let line = format!("{} {level} {who} {event}\n", utc_timestamp(SystemTime::now()));
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Characters of an untrusted string that a log line shows.
pub const CLIP_CHARS: usize = 40;

/// An untrusted string as a log line shows it: escaped like `{:?}` (so
/// control characters cannot forge lines), and past [`CLIP_CHARS`]
/// characters cut, with its length in bytes.
pub struct Clip<'a>(pub &'a str);

impl fmt::Display for Clip<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(CLIP_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Formats a time as RFC 3339 UTC with milliseconds.
pub fn utc_timestamp(time: SystemTime) -> String {
    let ms = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's
/// `civil_from_days` (proleptic Gregorian calendar).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn untrusted_strings_are_escaped_and_cut_with_their_length() {
        assert_eq!(Clip("ana\n").to_string(), "\"ana\\n\"");
        let long = "x".repeat(65_536);
        assert_eq!(Clip(&long).to_string(), format!("{:?}… (65536 bytes)", "x".repeat(CLIP_CHARS)));
    }

    #[test]
    fn formats_known_instants() {
        let at = |ms: u64| utc_timestamp(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_795_830_283_007), "2026-11-28T01:44:43.007Z");
    }
}
