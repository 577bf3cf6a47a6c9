//! The desktop window (FLTK), behind the default `gui` feature. Not
//! written yet: this stub keeps the default build working until the GUI
//! replaces it.

use std::process::ExitCode;

use chat_client::{Config, Key};

/// Runs the window until it is closed; the exit code for the process.
pub fn run(_config: Config, _key: Key) -> ExitCode {
    eprintln!("chat-client: the GUI is not written yet; use --headless");
    ExitCode::from(2)
}
