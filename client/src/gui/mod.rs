//! The desktop window (FLTK), behind the default `gui` feature. It only
//! draws and forwards input: the protocol, reconnecting and the outbox are
//! the library's, which runs on its own thread and reaches this one through
//! fltk's channel.
//!
//! The parts, each unit-tested where it decides something:
//! - this file: the one [`Message`] type. It lives here, not in `app.rs`,
//!   so that `view.rs` (whose callbacks emit it) and `app.rs` (which uses
//!   the view) form no import cycle.
//! - `app.rs`: the loop, the dialog flow, events → what to show.
//! - `conversation.rs`: the lines, our messages from typed to stored.
//! - `format.rs`: what a line is made of; the users list; `host:port`.
//! - `status.rs`: the status bar's indicator and sentence, the countdown.
//! - `strings.rs`: every text in English and Spanish.
//! - `wrap.rs`: long lines into rows with a hanging indent.
//! - `view.rs`: the widgets, no decisions; `transcript.rs`: the
//!   conversation's widget and its scrolling; `pane.rs`: the protocol
//!   pane (F12), every frame as it goes, and `hexdump.rs` (pure) a
//!   frame's bytes by part.

mod app;
mod conversation;
mod format;
mod hexdump;
mod pane;
mod status;
mod strings;
mod transcript;
mod view;
mod wrap;

use std::process::{Command, ExitCode};

use chat_client::{Config, Event, Key, KeyTrouble};

/// Everything the loop handles. `app::channel` is one global queue, so
/// this is the only type ever sent on it.
#[derive(Clone)]
pub enum Message {
    /// From the network thread number `session`.
    Net { session: u64, event: Event },
    /// The dialog's Connect button, or Enter in the dialog.
    Connect,
    /// Enter in the input line.
    Send,
    /// Up in the input line.
    Recall,
    /// A double click in the users list.
    PickUser,
    /// A window's close button.
    Close,
    /// Four times a second: the countdown, the width, the scroll position.
    Tick,
    /// The user scrolled the conversation.
    Scrolled,
    /// The "new messages below" marker was clicked.
    JumpToEnd,
    /// "Send again" for the failed message shown.
    SendAgain,
    /// "Discard" for the failed message shown.
    Discard,
    /// F12, or the status row's button: open or close the protocol pane.
    TogglePane,
    /// A frame was selected in the protocol pane.
    PickFrame,
}

/// Runs the window until it is closed; the exit code for the process. A
/// key file that cannot be used is explained in the dialog, where its
/// path can be changed.
pub fn run(config: Config, key: Result<Key, KeyTrouble>) -> ExitCode {
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
