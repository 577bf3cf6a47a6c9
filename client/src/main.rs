//! The `chat-client` program: flags → key file → the headless mode, the
//! window, or moving an identity. Bad flags, a bad key file or a refused
//! identity move: one line on stderr, exit code 2 (the window shows a bad
//! key file in its dialog instead, with the path to change).
#![forbid(unsafe_code)]

#[cfg(feature = "gui")]
mod gui;
mod headless;

use std::io::Write;
use std::process::ExitCode;

use chat_client::config::USAGE;
use chat_client::{Config, IdentityMove, Key, KeyTrouble, Parsed, identity};
use chat_common::keyfile::load_key;

/// Exit code for bad arguments or an unusable key file.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // std::env::args would panic on an argument that is not UTF-8.
    let args: Result<Vec<String>, _> = std::env::args_os().skip(1).map(|arg| arg.into_string()).collect();
    let parsed = match args {
        Ok(args) => Config::parse(args, |name| std::env::var(name).ok()),
        Err(arg) => Err(format!("argument {arg:?} is not UTF-8")),
    };
    let config = match parsed {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::Help) => {
            // Not println!, which panics when stdout is a closed pipe (`--help | head -1`).
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("chat-client: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // A client never makes a key: the only one that works is the server's.
    let key = load_key(&config.key_file).map_err(|err| KeyTrouble::new(&err, std::env::current_dir().ok().as_deref()));
    if !config.headless && config.identity.is_none() {
        // The window explains a key file that cannot be used, and asks for another.
        return run_window(config, key);
    }
    let key = match key {
        Ok(key) => key,
        Err(trouble) => {
            eprintln!("chat-client: {trouble}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(moving) = &config.identity {
        let moved = match moving {
            IdentityMove::Export(file) => identity::export(&config, &key, file),
            IdentityMove::Import(file) => identity::import(&config, &key, file),
        };
        return match moved {
            Ok(done) => {
                eprintln!("chat-client: {done}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("chat-client: {err}");
                ExitCode::from(EXIT_USAGE)
            }
        };
    }
    headless::run(config, key)
}

#[cfg(feature = "gui")]
fn run_window(config: Config, key: Result<Key, KeyTrouble>) -> ExitCode {
    gui::run(config, key)
}

#[cfg(not(feature = "gui"))]
fn run_window(_config: Config, _key: Result<Key, KeyTrouble>) -> ExitCode {
    eprintln!("chat-client: this build has no window (built without the gui feature); use --headless --nick NAME");
    ExitCode::from(EXIT_USAGE)
}
