//! The hmac-chat client: everything a client does except drawing, shared
//! by the headless mode and the desktop window so that tests exercise it
//! without a display.
//!
//! [`start`] spawns the network thread for one nickname on one server and
//! returns a [`Handle`]; the UI sends [`Command`]s through it and receives
//! [`Event`]s through a sink closure it provides (an mpsc `Sender` for the
//! headless mode, fltk's `app::Sender` for the window). The network thread
//! reconnects by itself, keeps unconfirmed messages in an outbox, drops
//! duplicates, and never waits on the UI.
//!
//! ```no_run
//! use chat_client::{Command, Config, Event, Parsed, start};
//! let Ok(Parsed::Run(config)) = Config::parse(["--nick".to_owned(), "ana".to_owned()], |_| None) else { return };
//! let key = chat_common::keyfile::load_key(&config.key_file).unwrap();
//! let (sender, events) = std::sync::mpsc::channel();
//! let handle = start(config, key, move |event| drop(sender.send(event))).unwrap();
//! handle.send(Command::Send { to: None, text: "hola".into() });
//! handle.send(Command::Quit);
//! for event in events {
//!     if event == Event::Stopped { break }
//! }
//! handle.wait();
//! ```
//!
//! The parts:
//! - [`config`]: the command-line flags both front ends accept.
//! - `input_line`: what a typed line asks for ([`parse_line`]), for both
//!   front ends.
//! - `event_line`: an [`Event`] as one tab-separated line ([`event_line`]),
//!   printed by the headless mode and logged by the window for tests.
//! - `net`: the network thread: [`start`], [`Handle`], the reconnect timer,
//!   writing frames, carrying out what the session decides.
//! - `link`: one connection's thread: connect, handshake, read and verify.
//! - `session`: the protocol logic, sans-IO; defines [`Command`] and [`Event`].
//! - `outbox`: messages typed and not yet confirmed, and client message ids.
//! - `shown`: how both front ends show characters the rules forbid that a
//!   server sends anyway ([`shown`], [`shown_event`]): escaped.
//! - `store`: the state directory (owner tokens, last id seen, outbox),
//!   one subdirectory per shared key and nickname.
//! - [`identity`]: moving a nickname's state to another computer.
//! - `trace`: frames as trace lines ([`TracedFrame`]), only while tracing
//!   is on, for `--trace` and the window's protocol pane.
//! - `trouble`: why there is no connection ([`Trouble`]), no login
//!   ([`Rejection`]) or no key ([`KeyTrouble`]), as values each front end
//!   puts in its own words.
//!
//! The `chat-client` binary adds `headless.rs` (stdin lines in, one event
//! line per event out) and `gui/` (the FLTK window, behind the `gui` feature).
//!
//! **Invariants:** the library draws nothing and prints nothing; a message
//! is reported to the UI at most once per id per state directory; an owner
//! token is made and on disk before the first LOGIN, and its acceptance is
//! on disk before anything else happens after the WELCOME that confirms
//! it; the shared key and tokens never appear in an event or a log.
#![forbid(unsafe_code)]

pub mod config;
mod event_line;
pub mod identity;
mod input_line;
mod link;
mod net;
mod outbox;
mod session;
mod shown;
mod store;
mod trace;
mod trouble;

pub use chat_common::auth::Key;
pub use chat_common::message::ChatMsg;
pub use config::{Config, IdentityMove, Language, Parsed};
pub use event_line::event_line;
pub use input_line::{Input, InputError, parse_line};
pub use net::{CommandSender, Handle, QUIT_GRACE, StartError, start};
pub use session::{Command, Event};
pub use shown::{Rules, shown, shown_event};
pub use store::StoreError;
pub use trace::TracedFrame;
pub use trouble::{KeyTrouble, Rejection, Trouble, Unreachable};
