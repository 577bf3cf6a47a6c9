//! `chat-server`: flags → key → bind → serve. Exit code 2 for bad flags or
//! an unusable key file, 1 if the server cannot listen.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use chat_common::keyfile::{KeyFileError, create_key, load_key};
use chat_server::Server;
use chat_server::config::{self, HELP, Parsed};

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
    let key = match load_key(&config.key_file) {
        Ok(key) => key,
        Err(KeyFileError::Missing(path)) => match create_key(&path) {
            Ok(key) => {
                eprintln!("chat-server: created a new shared key in {}; every client needs a copy", path.display());
                key
            }
            Err(err) => {
                eprintln!("chat-server: {err}");
                return ExitCode::from(2);
            }
        },
        Err(err) => {
            eprintln!("chat-server: {err}");
            return ExitCode::from(2);
        }
    };
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
