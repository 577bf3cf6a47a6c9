//! The command-line flags shared by the headless mode and the GUI, parsed
//! with std alone. Parsing is pure (the environment comes in as a function)
//! so tests can cover every flag; `main` turns an error into one line on
//! stderr and exit code 2.

use std::path::PathBuf;
use std::time::Duration;

use chat_common::validate::validate_nick;
use chat_common::{DEFAULT_KEY_FILE, DEFAULT_PORT};

/// The usage text printed by `--help`: every flag, then the headless
/// mode's input commands and output lines (docs/HEADLESS.md has more).
pub const USAGE: &str = "\
usage: chat-client [--headless] [--nick NAME] [--host HOST] [--port PORT]
                   [--key-file FILE] [--state-dir DIR] [--retry-secs SECONDS]
                   [--lang en|es] [--trace] [--event-log FILE]
       chat-client --export-identity FILE --nick NAME [--key-file FILE] [--state-dir DIR]
       chat-client --import-identity FILE [--key-file FILE] [--state-dir DIR]

  --headless          no window: read lines from stdin, print events to stdout
  --nick NAME         nickname: 1-32 ASCII letters, digits, _ - . (needed with --headless)
  --host HOST         server host name or address (default 127.0.0.1)
  --port PORT         server port (default 5555)
  --key-file FILE     the shared key (default chat.key)
  --state-dir DIR     where owner tokens and unsent messages are kept, per key and nickname
                      (default $XDG_STATE_HOME/hmac-chat or ~/.local/state/hmac-chat)
  --retry-secs S      seconds between reconnection attempts, and before sending again
                      what the server could not store yet; decimals allowed (default 5)
  --lang en|es        the window's language (default: Spanish if LC_ALL, LC_MESSAGES
                      or LANG starts with es, else English); headless output is English
  --export-identity FILE
                      move NAME's identity (owner token, last message seen, unsent
                      messages) from this computer into FILE (mode 0600, never
                      overwritten); it cannot be used here until imported back
  --import-identity FILE
                      file the identity in FILE here; refuses to replace a different one
  --trace             show every frame sent and received on stderr, one line each
                      (docs/PROTOCOL.md, \"Frame traces\"); the window's F12 shows them too
  --event-log FILE    (for tests) the window also writes the events it shows to FILE,
                      one line each in the --headless output format, and what it draws
                      as lines starting with \"window\"
  --help              show this text

Headless input, one line each (the window takes the same):
  TEXT                a message to everyone
  /msg NICK TEXT      a direct message to NICK
  //TEXT              a message to everyone that starts with /
  /help               list the commands (on stderr)
  /quiet              (the window only) hide join and leave lines, or show them again
  /quit               send what is waiting (at most 5 s), then exit; so does end of input

Headless output, one line per event, fields separated by a tab; a backslash, tab
or newline inside a field is written \\\\, \\t, \\n, and any other character
the protocol forbids there (docs/HEADLESS.md) as \\u{XXXX}:
  connected NICK                  logged in
  users NICK,NICK,...             everyone online, ourselves included
  joined NICK                     someone came online
  left NICK                       someone went offline
  msg ID UNIX_MS FROM TO TEXT     a message; TO is * for everyone
  queued CLIENT_ID TO TEXT        ours, waiting for the server; TO is * for everyone
  sent CLIENT_ID ID               the server stored ours as message ID (0: stored before)
  retry CLIENT_ID REASON SECONDS  not stored yet; it and every later one go again in SECONDS
  failed CLIENT_ID REASON         refused for good; it is no longer waiting
  dropped COUNT LIMIT             COUNT messages to us were dropped unread (mailbox full at LIMIT)
  disconnected REASON SECONDS     no connection; the next attempt is in SECONDS
  rejected REASON                 the nickname was refused for good; exit code 1
  error REASON                    a problem that does not end the session
Exit codes: 0 normal end, 1 nickname rejected, 2 bad arguments, key file or identity file.";

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
    /// The window's language.
    pub language: Language,
    /// Move an identity out or in instead of chatting.
    pub identity: Option<IdentityMove>,
    /// `--trace`: every frame as a line on stderr.
    pub trace: bool,
}

/// The languages of the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    English,
    Spanish,
}

/// `--export-identity FILE` or `--import-identity FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityMove {
    Export(PathBuf),
    Import(PathBuf),
}

impl Language {
    /// `--lang`'s value.
    fn from_flag(value: &str) -> Result<Language, String> {
        match value {
            "en" => Ok(Language::English),
            "es" => Ok(Language::Spanish),
            _ => Err(format!("--lang: {value:?} is not a language here; use en or es")),
        }
    }

    /// The language the locale asks for: the first of `LC_ALL`,
    /// `LC_MESSAGES` and `LANG` that is set (POSIX's order); Spanish if it
    /// starts with `es` (`es_ES.UTF-8`, `es_MX`), else English.
    fn from_locale(env: &dyn Fn(&str) -> Option<String>) -> Language {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"].into_iter().find_map(|name| env(name).filter(|v| !v.is_empty()));
        match locale {
            Some(locale) if locale.starts_with("es") => Language::Spanish,
            _ => Language::English,
        }
    }
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
            language: Language::English,
            identity: None,
            trace: false,
        };
        let (mut state_dir, mut language) = (None, None);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            // Both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
                _ => (arg, None),
            };
            if matches!(flag.as_str(), "--help" | "-h" | "--headless" | "--trace") {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value"));
                }
                match flag.as_str() {
                    "--headless" => config.headless = true,
                    "--trace" => config.trace = true,
                    _ => return Ok(Parsed::Help),
                }
                continue;
            }
            let known = [
                "--nick",
                "--host",
                "--port",
                "--key-file",
                "--state-dir",
                "--retry-secs",
                "--event-log",
                "--lang",
                "--export-identity",
                "--import-identity",
            ];
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
                "--lang" => language = Some(Language::from_flag(&value)?),
                "--export-identity" | "--import-identity" if config.identity.is_some() => {
                    return Err(format!("{flag}: give one of --export-identity and --import-identity, once"));
                }
                "--export-identity" => config.identity = Some(IdentityMove::Export(PathBuf::from(value))),
                "--import-identity" => config.identity = Some(IdentityMove::Import(PathBuf::from(value))),
                _ => config.retry = parse_retry(&value)?,
            }
        }
        match &config.identity {
            Some(_) if config.headless => return Err("--headless chats; moving an identity is a run of its own".into()),
            Some(IdentityMove::Export(_)) if config.nick.is_none() => {
                return Err("--export-identity needs --nick NAME".into());
            }
            _ if config.headless && config.nick.is_none() => return Err("--headless needs --nick NAME".into()),
            _ => {}
        }
        config.language = language.unwrap_or_else(|| Language::from_locale(&env));
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
            "--lang=es",
            "--trace",
        ]);
        assert!(config.headless);
        assert_eq!(config.nick.as_deref(), Some("alice"));
        assert_eq!((config.host.as_str(), config.port), ("example.org", 6000));
        assert_eq!(config.key_file, PathBuf::from("k.key"));
        assert_eq!(config.state_dir, PathBuf::from("/tmp/s"));
        assert_eq!(config.retry, Duration::from_millis(200));
        assert_eq!(config.event_log, Some(PathBuf::from("/tmp/events")));
        assert_eq!(config.language, Language::Spanish);
        assert_eq!(config.identity, None);
        assert!(config.trace && !run(&[]).trace);
        let export = run(&["--export-identity", "ana.id", "--nick", "ana"]);
        assert_eq!(export.identity, Some(IdentityMove::Export(PathBuf::from("ana.id"))));
        let import = run(&["--import-identity=ana.id"]);
        assert_eq!(import.identity, Some(IdentityMove::Import(PathBuf::from("ana.id"))));
    }

    #[test]
    fn the_language_comes_from_the_flag_then_the_locale() {
        let language = |args: &[&str], vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let env = move |name: &str| {
                let found = vars.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
                found.or_else(|| (name == "HOME").then(|| "/home/ana".to_owned()))
            };
            match Config::parse(args.iter().map(|arg| arg.to_string()), env) {
                Ok(Parsed::Run(config)) => config.language,
                other => panic!("{args:?}: {other:?}"),
            }
        };
        assert_eq!(language(&[], &[]), Language::English);
        assert_eq!(language(&[], &[("LANG", "es_ES.UTF-8")]), Language::Spanish);
        assert_eq!(language(&[], &[("LANG", "es_ES.UTF-8"), ("LC_ALL", "C")]), Language::English);
        assert_eq!(language(&[], &[("LANG", "en_GB.UTF-8"), ("LC_MESSAGES", "es_MX")]), Language::Spanish);
        assert_eq!(language(&[], &[("LC_ALL", ""), ("LANG", "es_AR")]), Language::Spanish, "empty means unset");
        assert_eq!(language(&["--lang", "en"], &[("LANG", "es_ES.UTF-8")]), Language::English);
        assert_eq!(language(&["--lang", "es"], &[]), Language::Spanish);
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
            (&["--trace=all"], "--trace takes no value"),
            (&["--host="], "--host: the host is empty"),
            (&["--lang", "fr"], "--lang: \"fr\" is not a language here; use en or es"),
            (&["--export-identity", "f"], "--export-identity needs --nick NAME"),
            (&["--import-identity", "f", "--export-identity", "g"], "--export-identity: give one of"),
            (&["--headless", "--nick", "a", "--import-identity", "f"], "--headless chats;"),
        ];
        for (args, want) in cases {
            let err = parse(args).unwrap_err();
            assert!(err.starts_with(want), "{args:?}: {err}");
            assert!(!err.contains('\n'), "{args:?}: {err}");
        }
    }
}
