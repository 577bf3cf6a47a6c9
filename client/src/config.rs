//! The command-line flags shared by the headless mode and the GUI, parsed
//! with std alone. Parsing is pure (the environment comes in as a function)
//! so tests can cover every flag; `main` turns an error into one line on
//! stderr and exit code 2.

use std::path::PathBuf;
use std::time::Duration;

use chat_common::validate::validate_nick;
use chat_common::{DEFAULT_KEY_FILE, DEFAULT_PORT};

/// The usage text printed by `--help`.
pub const USAGE: &str = "\
usage: chat-client [--headless] [--nick NAME] [--host HOST] [--port PORT]
                   [--key-file FILE] [--state-dir DIR] [--retry-secs SECONDS]
                   [--event-log FILE]

  --headless          no window: read lines from stdin, print events to stdout
  --nick NAME         nickname: 1-32 ASCII letters, digits, _ - . (needed with --headless)
  --host HOST         server host (default 127.0.0.1)
  --port PORT         server port (default 5555)
  --key-file FILE     the shared key (default chat.key)
  --state-dir DIR     where owner tokens and unsent messages are kept
                      (default $XDG_STATE_HOME/hmac-chat or ~/.local/state/hmac-chat)
  --retry-secs S      seconds between reconnection attempts, decimals allowed (default 5)
  --event-log FILE    (for tests) the window also writes the events it shows to FILE,
                      one line each in the --headless output format
  --help              show this text";

/// Default seconds between reconnection attempts (the original's).
pub const DEFAULT_RETRY: Duration = Duration::from_secs(5);

/// Everything the flags say.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Run without a window.
    pub headless: bool,
    /// The nickname; the GUI may ask for it when absent.
    pub nick: Option<String>,
    /// The server's host name or address.
    pub host: String,
    /// The server's TCP port.
    pub port: u16,
    /// The shared key file.
    pub key_file: PathBuf,
    /// Where tokens, the last message id seen and the outbox are kept.
    pub state_dir: PathBuf,
    /// Time between reconnection attempts.
    pub retry: Duration,
    /// The window writes the events it shows here, in the headless line
    /// format, so tests can observe it without reading pixels.
    pub event_log: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Run with this configuration.
    Run(Config),
    /// Print [`USAGE`] and exit.
    Help,
}

/// The default state directory, per the XDG base directory specification.
fn default_state_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let nonempty = |name: &str| env(name).filter(|value| !value.is_empty());
    if let Some(state_home) = nonempty("XDG_STATE_HOME") {
        return Some(PathBuf::from(state_home).join("hmac-chat"));
    }
    nonempty("HOME").map(|home| PathBuf::from(home).join(".local/state/hmac-chat"))
}

fn parse_retry(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value.parse().map_err(|_| format!("--retry-secs: {value:?} is not a number of seconds"))?;
    // At least 10 ms so a client never spins; at most a day.
    if !(0.01..=86_400.0).contains(&seconds) {
        return Err(format!("--retry-secs: {value} is out of range (0.01 to 86400)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl Config {
    /// Parses the arguments (without the program name). `env` looks up
    /// environment variables. The error is one line, without the program
    /// name in front.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Parsed, String> {
        let mut config = Config {
            headless: false,
            nick: None,
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            key_file: PathBuf::from(DEFAULT_KEY_FILE),
            state_dir: PathBuf::new(),
            retry: DEFAULT_RETRY,
            event_log: None,
        };
        let mut state_dir = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            // Both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
                _ => (arg, None),
            };
            if matches!(flag.as_str(), "--help" | "-h" | "--headless") {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value"));
                }
                if flag == "--headless" {
                    config.headless = true;
                    continue;
                }
                return Ok(Parsed::Help);
            }
            let known = ["--nick", "--host", "--port", "--key-file", "--state-dir", "--retry-secs", "--event-log"];
            if !known.contains(&flag.as_str()) {
                return Err(format!("unknown flag {flag:?}; try --help"));
            }
            let Some(value) = inline.or_else(|| args.next()) else {
                return Err(format!("{flag} needs a value"));
            };
            match flag.as_str() {
                "--nick" => {
                    validate_nick(&value).map_err(|why| format!("--nick: {why}"))?;
                    config.nick = Some(value);
                }
                "--host" if value.is_empty() => return Err("--host: the host is empty".into()),
                "--host" => config.host = value,
                "--port" => {
                    config.port = value
                        .parse()
                        .ok()
                        .filter(|&port| port != 0)
                        .ok_or_else(|| format!("--port: {value:?} is not a port number (1 to 65535)"))?;
                }
                "--key-file" => config.key_file = PathBuf::from(value),
                "--state-dir" => state_dir = Some(PathBuf::from(value)),
                "--event-log" => config.event_log = Some(PathBuf::from(value)),
                _ => config.retry = parse_retry(&value)?,
            }
        }
        if config.headless && config.nick.is_none() {
            return Err("--headless needs --nick NAME".into());
        }
        config.state_dir = match state_dir.or_else(|| default_state_dir(&env)) {
            Some(dir) => dir,
            None => return Err("no state directory: give --state-dir DIR, or set XDG_STATE_HOME or HOME".into()),
        };
        Ok(Parsed::Run(config))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_flags_md_shows_this_help() {
        assert!(include_str!("../../docs/FLAGS.md").contains(super::USAGE), "update docs/FLAGS.md from --help");
    }

    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        let env = |name: &str| (name == "HOME").then(|| "/home/ana".to_owned());
        Config::parse(args.iter().map(|arg| arg.to_string()), env)
    }

    fn run(args: &[&str]) -> Config {
        match parse(args) {
            Ok(Parsed::Run(config)) => config,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_original() {
        let config = run(&[]);
        assert!(!config.headless);
        assert_eq!(config.nick, None);
        assert_eq!((config.host.as_str(), config.port), ("127.0.0.1", 5555));
        assert_eq!(config.key_file, PathBuf::from("chat.key"));
        assert_eq!(config.state_dir, PathBuf::from("/home/ana/.local/state/hmac-chat"));
        assert_eq!(config.retry, Duration::from_secs(5));
    }

    #[test]
    fn every_flag_is_read_in_both_spellings() {
        let config = run(&[
            "--headless",
            "--nick",
            "alice",
            "--host=example.org",
            "--port",
            "6000",
            "--key-file=k.key",
            "--state-dir",
            "/tmp/s",
            "--retry-secs=0.2",
            "--event-log",
            "/tmp/events",
        ]);
        assert!(config.headless);
        assert_eq!(config.nick.as_deref(), Some("alice"));
        assert_eq!((config.host.as_str(), config.port), ("example.org", 6000));
        assert_eq!(config.key_file, PathBuf::from("k.key"));
        assert_eq!(config.state_dir, PathBuf::from("/tmp/s"));
        assert_eq!(config.retry, Duration::from_millis(200));
        assert_eq!(config.event_log, Some(PathBuf::from("/tmp/events")));
    }

    #[test]
    fn xdg_state_home_wins_over_home() {
        let env = |name: &str| match name {
            "XDG_STATE_HOME" => Some("/xdg".to_owned()),
            "HOME" => Some("/home/ana".to_owned()),
            _ => None,
        };
        let Ok(Parsed::Run(config)) = Config::parse(Vec::new(), env) else { panic!() };
        assert_eq!(config.state_dir, PathBuf::from("/xdg/hmac-chat"));
        assert!(Config::parse(Vec::new(), |_| None).unwrap_err().contains("no state directory"));
    }

    #[test]
    fn help_is_not_an_error() {
        assert_eq!(parse(&["--nick", "a", "--help"]), Ok(Parsed::Help));
        assert_eq!(parse(&["-h"]), Ok(Parsed::Help));
    }

    #[test]
    fn bad_flags_and_values_are_one_clear_line() {
        let cases: &[(&[&str], &str)] = &[
            (&["--frobnicate"], "unknown flag \"--frobnicate\"; try --help"),
            (&["--nick"], "--nick needs a value"),
            (&["--nick", "has space"], "--nick: nickname may not contain ' '"),
            (&["--port", "0"], "--port: \"0\" is not a port number (1 to 65535)"),
            (&["--port", "70000"], "--port: \"70000\" is not a port number"),
            (&["--retry-secs", "soon"], "--retry-secs: \"soon\" is not a number of seconds"),
            (&["--retry-secs", "0"], "--retry-secs: 0 is out of range"),
            (&["--retry-secs", "NaN"], "--retry-secs: NaN is out of range"),
            (&["--headless"], "--headless needs --nick NAME"),
            (&["--headless=yes"], "--headless takes no value"),
            (&["--host="], "--host: the host is empty"),
        ];
        for (args, want) in cases {
            let err = parse(args).unwrap_err();
            assert!(err.starts_with(want), "{args:?}: {err}");
            assert!(!err.contains('\n'), "{args:?}: {err}");
        }
    }
}
