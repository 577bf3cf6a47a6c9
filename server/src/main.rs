//! `chat-server`: flags → key → bind → serve (or `--rekey`). Exit code 2
//! for bad flags or an unusable key file, 1 if the server cannot start
//! (the data directory is in use, the journal is damaged or under another
//! key, the port is taken).
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use chat_common::auth::Key;
use chat_common::keyfile::{KeyFileError, create_key, load_key};
use chat_server::Server;
use chat_server::config::{self, Config, HELP, Parsed};
use chat_server::journal::{self, Journal};

fn main() -> ExitCode {
    let config = match config::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::Help) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("chat-server: {message}");
            return ExitCode::from(2);
        }
    };
    let key = match server_key(&config) {
        Ok(key) => key,
        Err(message) => {
            eprintln!("chat-server: {message}");
            return ExitCode::from(2);
        }
    };
    if let Some(new_key_file) = &config.rekey {
        return rekey(&config, &key, new_key_file);
    }
    let server = match Server::bind(config, key) {
        Ok(server) => server,
        Err(message) => {
            eprintln!("chat-server: {message}");
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(err) => eprintln!("chat-server: listening, but cannot tell where: {err}"),
    }
    let _ = std::io::stdout().flush();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chat-server: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the shared key, or makes one if there is none and no journal that
/// needs the old one. The error is one line, with the server's advice.
fn server_key(config: &Config) -> Result<Key, String> {
    let path = &config.key_file;
    match load_key(path) {
        Ok(key) => Ok(key),
        Err(err @ KeyFileError::Missing(_)) if config.rekey.is_some() => {
            Err(format!("{err}; --rekey needs the key the journal was written under"))
        }
        Err(KeyFileError::Missing(_)) => {
            let dir = config.data_dir.as_deref();
            if let Some((dir, fingerprint)) = dir.and_then(|dir| Some((dir, journal::written_under(dir)?))) {
                return Err(format!(
                    "{}: no such file, and {} was written under the key with fingerprint {fingerprint}; \
                     not making a new key, which could not read it. Pass --key-file with that key (probably \
                     the chat.key in the folder the server was first started from), or give another \
                     --data-dir to start with no users",
                    path.display(),
                    dir.join(journal::FILE_NAME).display()
                ));
            }
            let key = create_key(path).map_err(|err| err.to_string())?;
            eprintln!("chat-server: created a new shared key in {}; every client needs a copy", path.display());
            Ok(key)
        }
        // --rekey reads it once more, to move the journal away from it.
        Err(KeyFileError::Patterned(_, key)) if config.rekey.is_some() => Ok(key),
        Err(err @ KeyFileError::Patterned(..)) => Err(format!(
            "{err}. Move it away and start again: the server makes a random key when there is none; \
             if it has a journal already, move that to a random key with: chat-server --key-file {} \
             --rekey new.key",
            path.display()
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// `--rekey NEW_KEY_FILE`: rewrites the journal under the new key (made if
/// missing), then says what to do next.
fn rekey(config: &Config, old: &Key, new_key_file: &Path) -> ExitCode {
    let Some(dir) = &config.data_dir else {
        eprintln!("chat-server: --rekey: there is no journal with --memory");
        return ExitCode::from(2);
    };
    let new = match load_key(new_key_file) {
        Err(KeyFileError::Missing(_)) => create_key(new_key_file),
        loaded => loaded,
    };
    let new = match new {
        Ok(new) if new == *old => {
            eprintln!("chat-server: --rekey: {} holds the key the journal already uses", new_key_file.display());
            return ExitCode::from(2);
        }
        Ok(new) => new,
        Err(err) => {
            eprintln!("chat-server: --rekey: {err}");
            return ExitCode::from(2);
        }
    };
    match Journal::rekey(dir, old, &new) {
        Ok(records) => {
            println!(
                "{}: {records} records rewritten under the key in {} (fingerprint {}; was {}).\n\
                 Start the server with --key-file {} (or move that file to {}), and give every client a copy: \
                 nicknames and owner tokens stay valid, the old key no longer works.",
                dir.join(journal::FILE_NAME).display(),
                new_key_file.display(),
                new.fingerprint(),
                old.fingerprint(),
                new_key_file.display(),
                config.key_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("chat-server: {err}");
            ExitCode::FAILURE
        }
    }
}
