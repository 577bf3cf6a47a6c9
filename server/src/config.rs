//! Command-line flags and their defaults. Every limit the server enforces
//! is here, so `--help` is the complete list of them.

use std::path::PathBuf;
use std::time::Duration;

use chat_common::validate::validate_nick;
use chat_common::{DEFAULT_KEY_FILE, DEFAULT_PORT, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_FRAME_LEN, MAX_TEXT_LEN};

/// Stack of every thread the server starts: small, so that 10,000
/// connections (a thread each) fit in memory.
pub const THREAD_STACK: usize = 256 * 1024;

/// Everything the server needs to know to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on; 0 lets the system choose.
    pub port: u16,
    /// The shared key; created if missing, unless a journal needs the old one.
    pub key_file: PathBuf,
    /// Where the journal lives; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Log message texts too, not only their metadata.
    pub verbose: bool,
    /// Largest frame body accepted, in bytes.
    pub max_frame: usize,
    /// Largest message text accepted, in bytes.
    pub max_text: usize,
    /// Time from connect to the end of the handshake.
    pub handshake_timeout: Duration,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// Open connections, in any phase.
    pub max_conns: usize,
    /// Of those, connections still in the handshake.
    pub max_handshakes: usize,
    /// Open connections from one address (an IPv6 /64 counts as one).
    pub max_conns_per_ip: usize,
    /// Connections mid-handshake from one address.
    pub max_handshakes_per_ip: usize,
    /// Messages a user may fall behind (public and direct each) before the
    /// oldest are dropped.
    pub mailbox: usize,
    /// The same, in bytes.
    pub mailbox_bytes: usize,
    /// Bytes of undelivered messages kept in all; past it SENDs are refused.
    pub store_bytes: usize,
    /// Registered nicknames.
    pub max_users: usize,
    /// `--max-listed`: names in the online list; the rest are a count.
    pub max_listed: usize,
    /// New nicknames per address per hour.
    pub new_users_per_hour: u32,
    /// A nickname not logged in for this long is forgotten with its mail.
    pub forget_after: Duration,
    /// Control frames (SENT, PONG, ...) queued for a connection that does
    /// not read, before it is closed.
    pub max_control: usize,
    /// The same, in bytes.
    pub max_control_bytes: usize,
    /// How long a write may block before the connection is closed.
    pub write_timeout: Duration,
    /// Journal size from which compaction is considered, in bytes.
    pub compact_bytes: u64,
    /// Start even if a journal record is damaged: cut it off, keeping a copy.
    pub repair: bool,
    /// `--trace`: a nickname or `all`, whose frames are shown on stderr.
    pub trace: Option<String>,
    /// Rewrite the journal under the key in this file, then exit. (Boxed:
    /// a `PathBuf` would make `Parsed::Run` too large for clippy.)
    pub rekey: Option<Box<std::path::Path>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            key_file: DEFAULT_KEY_FILE.into(),
            data_dir: Some("chat-data".into()),
            verbose: false,
            max_frame: MAX_FRAME_LEN,
            max_text: MAX_TEXT_LEN,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_conns: 10_000,
            max_handshakes: 256,
            max_conns_per_ip: 512,
            max_handshakes_per_ip: 128,
            mailbox: 10_000,
            mailbox_bytes: 8 << 20,
            store_bytes: 256 << 20,
            max_users: 10_000,
            max_listed: 1_000,
            new_users_per_hour: 100,
            forget_after: Duration::from_secs(90 * 86_400),
            max_control: 4096,
            max_control_bytes: 1 << 20,
            write_timeout: Duration::from_secs(30),
            compact_bytes: 8 << 20,
            repair: false,
            trace: None,
            rekey: None,
        }
    }
}

/// The `--help` text.
pub const HELP: &str = "\
chat-server: the hmac-chat server

Usage: chat-server [OPTIONS]

  --host HOST              address to listen on [default: 127.0.0.1]
  --port PORT              port to listen on; 0 picks a free one [default: 5555]
  --key-file PATH          shared key; created if missing, unless the journal
                           needs the old one [default: chat.key]
  --data-dir DIR           journal directory [default: chat-data]
  --memory                 keep everything in memory, as the original did
                           (same as --data-dir \"\"): a restart loses users and mail
  -v, --verbose            log message texts, not only their metadata
  --trace NICK|all         show every frame of NICK's connections (or of all) on
                           stderr, one line each (docs/PROTOCOL.md, \"Frame traces\")
  --max-frame BYTES        largest frame accepted [default: 65536]
  --max-text BYTES         largest message text [default: 4096]
  --handshake-secs S       time to finish the handshake, from connect [default: 10]
  --idle-secs S            close a connection silent this long [default: 60]
  --max-conns N            open connections [default: 10000]
  --max-handshakes N       of those, connections mid-handshake [default: 256]
  --max-conns-per-ip N     open connections from one address (an IPv6 /64
                           is one address) [default: 512]
  --max-handshakes-per-ip N  connections mid-handshake from one address [default: 128]
  --mailbox N              messages a user may fall behind, public and direct
                           each; then the oldest go, and the user is told [default: 10000]
  --mailbox-bytes BYTES    the same in bytes [default: 8388608]
  --store-bytes BYTES      undelivered messages kept in all; past it SENDs are
                           refused until there is room again [default: 268435456]
  --max-users N            registered nicknames [default: 10000]
  --max-listed N           names in the online list; the rest are shown as a
                           count [default: 1000]
  --new-users-per-hour N   new nicknames from one address per hour [default: 100]
  --forget-after-days D    forget a nickname, and its mail, not logged in for
                           D days [default: 90]
  --max-control N          replies queued for a client that does not read,
                           before it is disconnected [default: 4096]
  --max-control-bytes BYTES  the same in bytes [default: 1048576]
  --write-timeout-secs S   close a connection whose write blocks this long [default: 30]
  --compact-bytes BYTES    rewrite the journal once it is this big and 4 times
                           its size after the last rewrite [default: 8388608]
  --repair                 start even if a journal record is damaged: cut the
                           journal there, after copying it to journal.damaged-TIME
  --rekey NEW_KEY_FILE     rewrite the journal under the key in NEW_KEY_FILE
                           (made if missing), keeping users and mail, then exit
  -h, --help               print this help

Ctrl+C stops the server at once; nothing acknowledged is lost.";

/// What the command line asks for.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // Made once, at start.
pub enum Parsed {
    /// Run with this configuration.
    Run(Config),
    /// Print [`HELP`] and exit.
    Help,
}

fn number<T>(flag: &str, value: &str, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match value.parse::<T>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("{flag}: expected a whole number of at least {min}, got {value:?}")),
    }
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    match value.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{flag}: expected seconds between 0 and 86400, got {value:?}")),
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut config = Config::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, mut inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg.clone(), None),
        };
        let flag = flag.as_str();
        // `--flag VALUE` or `--flag=VALUE`.
        let mut value = || inline.take().or_else(|| args.next()).ok_or_else(|| format!("{flag}: missing value"));
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-v" | "--verbose" => config.verbose = true,
            "--memory" => config.data_dir = None,
            "--host" => config.host = value()?,
            "--port" => config.port = number(flag, &value()?, 0)?,
            "--key-file" => config.key_file = value()?.into(),
            "--data-dir" => config.data_dir = Some(value()?).filter(|dir| !dir.is_empty()).map(PathBuf::from),
            "--max-frame" => config.max_frame = number(flag, &value()?, 1024)?,
            "--max-text" => config.max_text = number(flag, &value()?, 1)?,
            "--handshake-secs" => config.handshake_timeout = seconds(flag, &value()?)?,
            "--idle-secs" => config.idle_timeout = seconds(flag, &value()?)?,
            "--max-conns" => config.max_conns = number(flag, &value()?, 1)?,
            "--max-handshakes" => config.max_handshakes = number(flag, &value()?, 1)?,
            "--max-conns-per-ip" => config.max_conns_per_ip = number(flag, &value()?, 1)?,
            "--max-handshakes-per-ip" => config.max_handshakes_per_ip = number(flag, &value()?, 1)?,
            "--mailbox" => config.mailbox = number(flag, &value()?, 1)?,
            "--mailbox-bytes" => config.mailbox_bytes = number(flag, &value()?, 1024)?,
            "--store-bytes" => config.store_bytes = number(flag, &value()?, 1024)?,
            "--max-users" => config.max_users = number(flag, &value()?, 1)?,
            "--max-listed" => config.max_listed = number(flag, &value()?, 1)?,
            "--new-users-per-hour" => config.new_users_per_hour = number(flag, &value()?, 1)?,
            "--forget-after-days" => config.forget_after = Duration::from_secs(number(flag, &value()?, 1u64)? * 86_400),
            "--max-control" => config.max_control = number(flag, &value()?, 16)?,
            "--max-control-bytes" => config.max_control_bytes = number(flag, &value()?, 1024)?,
            "--compact-bytes" => config.compact_bytes = number(flag, &value()?, 1024)?,
            "--write-timeout-secs" => config.write_timeout = seconds(flag, &value()?)?,
            "--repair" => config.repair = true,
            "--trace" => {
                let who = value()?;
                if who != "all" {
                    validate_nick(&who).map_err(|why| format!("--trace: {why}; give a nickname or all"))?;
                }
                config.trace = Some(who);
            }
            "--rekey" => config.rekey = Some(PathBuf::from(value()?).into()),
            name => {
                let hint = if name.starts_with('-') { "unknown flag" } else { "unexpected argument" };
                return Err(format!("{hint} {name:?}; see --help"));
            }
        }
    }
    // A text must fit in a frame with its MSG header and tag.
    let largest_text = config.max_frame.saturating_sub(200);
    if config.max_text > largest_text {
        return Err(format!("--max-text {} does not fit in --max-frame {}", config.max_text, config.max_frame));
    }
    Ok(Parsed::Run(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(config) => Ok(config),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn defaults_match_the_documented_limits() {
        let config = run(&[]).unwrap();
        assert_eq!((config.host.as_str(), config.port), ("127.0.0.1", 5555));
        assert_eq!((config.max_frame, config.max_text, config.mailbox), (65536, 4096, 10_000));
        assert_eq!((config.max_conns, config.max_handshakes), (10_000, 256));
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let config = run(&["--port", "0", "--idle-secs=0.5", "--data-dir", "", "-v"]).unwrap();
        assert_eq!(config.port, 0);
        assert_eq!(config.idle_timeout, Duration::from_millis(500));
        assert!(config.data_dir.is_none() && config.verbose);
    }

    #[test]
    fn docs_flags_md_shows_this_help() {
        assert!(include_str!("../../docs/FLAGS.md").contains(HELP), "update docs/FLAGS.md from --help");
    }

    #[test]
    fn bad_input_is_one_clear_line() {
        assert_eq!(run(&["--nope"]).unwrap_err(), "unknown flag \"--nope\"; see --help");
        assert_eq!(run(&["--port"]).unwrap_err(), "--port: missing value");
        assert!(run(&["--port", "70000"]).unwrap_err().starts_with("--port: expected a whole number"));
        assert!(run(&["--idle-secs", "-1"]).unwrap_err().starts_with("--idle-secs: expected seconds"));
        assert!(run(&["--max-text", "65536"]).unwrap_err().contains("does not fit"));
        assert!(run(&["--trace", "a b"]).unwrap_err().starts_with("--trace: nickname may not contain ' '"));
        assert_eq!(run(&["--trace=all"]).unwrap().trace.as_deref(), Some("all"));
        assert_eq!(run(&["--help"]).unwrap_err(), "help");
    }
}
