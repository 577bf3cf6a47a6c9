//! The desktop window (FLTK), behind the default `gui` feature. It only
//! draws and forwards input: the protocol, reconnecting and the outbox are
//! the library's, which runs on its own thread and reaches this one through
//! fltk's channel.
//!
//! The parts: `app.rs` (the one message type, the loop, the dialog flow),
//! `view.rs` (widgets and drawing), `format.rs` (what the lines, the status
//! bar and the title say, and reading the dialog's values; unit-tested).

mod app;
mod format;
mod view;

use std::process::{Command, ExitCode};

use chat_client::{Config, Key};

/// Runs the window until it is closed; the exit code for the process.
pub fn run(config: Config, key: Key) -> ExitCode {
    app::run(config, key, local_utc_offset())
}

/// Seconds east of UTC here, now, for showing message times in local time.
/// std has no time zones, and the rules in /etc/localtime take a parser
/// of their own, so `date` (which honours `TZ`) is asked once; UTC if it
/// cannot answer. A daylight-saving change during a run shifts the times
/// by an hour until the next start.
fn local_utc_offset() -> i64 {
    let output = Command::new("date").arg("+%z").output();
    let text = output.ok().filter(|output| output.status.success()).map(|output| output.stdout);
    text.and_then(|stdout| format::parse_utc_offset(&String::from_utf8_lossy(&stdout))).unwrap_or(0)
}
