//! The window's one [`Message`] type and the loop that handles it: the
//! start dialog's flow (ask, try, ask again with the reason on a
//! rejection), the chat window's input, and the network's [`Event`]s,
//! which the network thread sends through fltk's channel (whose `send`
//! wakes this thread). Nothing here blocks on the network.

use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use fltk::app::{self, Sender};

use chat_client::{Command, Config, Event, Handle, Key, start};
use chat_common::DEFAULT_PORT;
use chat_common::validate::validate_nick;

use super::format::{self, AwaySeparator, History, Link, Role, Status};
use super::login;
use super::view::{ChatWindow, Dialog};
use crate::headless::{event_line, parse_line};

/// Everything the loop handles. `app::channel` is one global queue, so
/// this is the only type ever sent on it.
pub enum Message {
    /// From the network thread of session number `session`.
    Net { session: u64, event: Event },
    /// The dialog's Connect (or Enter).
    Connect,
    /// The input line's Enter, or the Send button.
    Send,
    /// Up or Down in the input line.
    Recall(Recall),
    /// A double click in the users list.
    PickUser,
    /// Once a second, for the reconnect countdown.
    Tick,
    /// A window's close button.
    Close,
}

/// Which way Up/Down walks the input history.
pub enum Recall {
    Older,
    Newer,
}

/// Which window is up.
#[derive(PartialEq)]
enum Phase {
    /// The dialog waits for the user.
    Asking,
    /// The dialog waits for the first connection to succeed or fail.
    Connecting,
    /// The chat window.
    Chatting,
}

/// The state of the window.
struct App {
    /// The flags; nick, host and port are replaced by the dialog's values.
    config: Config,
    /// The shared key, for every new session.
    key: Key,
    sender: Sender<Message>,
    dialog: Dialog,
    chat: ChatWindow,
    phase: Phase,
    /// The network thread, until it reports [`Event::Stopped`].
    network: Option<Handle>,
    /// Number of the current network thread; events of older ones are stale.
    session: u64,
    status: Status,
    users: Vec<String>,
    away: AwaySeparator,
    history: History,
    /// `--event-log`: the events shown, in the headless line format.
    event_log: Option<File>,
    /// Seconds east of UTC, for message times.
    utc_offset: i64,
    /// The user closed the window; we exit when the network thread stops.
    closing: bool,
}

/// Runs the dialog and the chat window until the chat window is closed.
pub fn run(config: Config, key: Key, utc_offset: i64) -> ExitCode {
    let fltk_app = app::App::default().with_scheme(app::Scheme::Gtk);
    let event_log = match config.event_log.as_ref().map(File::create).transpose() {
        Ok(file) => file,
        Err(err) => {
            eprintln!("chat-client: {}: {err}", config.event_log.as_ref().map_or("?".into(), |path| path.display()));
            return ExitCode::from(2);
        }
    };
    let (sender, receiver) = app::channel::<Message>();
    let status = Status { nick: String::new(), server: String::new(), link: Link::Connecting, outbox: 0 };
    let mut state = App {
        dialog: Dialog::new(sender),
        chat: ChatWindow::new(sender),
        phase: Phase::Asking,
        network: None,
        session: 0,
        status,
        users: Vec::new(),
        away: AwaySeparator::default(),
        history: History::default(),
        event_log,
        utc_offset,
        closing: false,
        config,
        key,
        sender,
    };
    match state.config.nick.clone() {
        // Straight to the chat window; the dialog comes only on a rejection.
        Some(nick) => {
            if state.connect(nick, state.config.host.clone(), state.config.port) {
                state.show_chat();
            }
        }
        None => state.ask(""),
    }
    app::add_timeout3(1.0, move |timer| {
        sender.send(Message::Tick);
        app::repeat_timeout3(1.0, timer);
    });
    while fltk_app.wait() {
        // All that is queued, not one per wake-up: wake-ups may be merged.
        while let Some(message) = receiver.recv() {
            state.handle(message);
        }
    }
    state.finish()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

impl App {
    /// Shows the dialog, prefilled, with `note` saying why it asks (again).
    fn ask(&mut self, note: &str) {
        let flags_server = (self.config.host.clone(), self.config.port);
        let (mut nick, mut server) =
            (self.config.nick.clone().unwrap_or_default(), login::server_text(&flags_server.0, flags_server.1));
        // The last values used, unless the flags name a server.
        if let Some((last_nick, last_server)) = login::load_last(&self.config.state_dir) {
            if nick.is_empty() {
                nick = last_nick;
            }
            if flags_server == ("127.0.0.1".into(), DEFAULT_PORT) {
                server = last_server;
            }
        }
        self.phase = Phase::Asking;
        self.chat.hide();
        self.dialog.ask(&nick, &server, note);
    }

    /// Starts a network thread for `nick` on `host:port`; false (and the
    /// dialog says why) if it cannot start.
    fn connect(&mut self, nick: String, host: String, port: u16) -> bool {
        if let Some(old) = self.network.take() {
            // Only after a rejection, so it has stopped or is about to.
            old.send(Command::Quit);
            old.wait();
        }
        (self.config.nick, self.config.host, self.config.port) = (Some(nick.clone()), host.clone(), port);
        self.session += 1;
        let (sender, session) = (self.sender, self.session);
        let network = start(self.config.clone(), self.key.clone(), move |event| {
            sender.send(Message::Net { session, event });
        });
        let network = match network {
            Ok(network) => network,
            Err(err) => {
                self.ask(&err.to_string());
                return false;
            }
        };
        self.network = Some(network);
        let server = login::server_text(&host, port);
        self.status = Status { nick, server, link: Link::Connecting, outbox: 0 };
        self.users.clear();
        self.away = AwaySeparator::default();
        self.chat.clear();
        self.refresh_status();
        true
    }

    fn show_chat(&mut self) {
        self.phase = Phase::Chatting;
        self.chat.show();
        self.dialog.hide();
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Net { session, event } if session == self.session => self.on_event(event),
            Message::Net { .. } => {}
            Message::Connect => self.on_connect(),
            Message::Send => self.on_send(),
            Message::Recall(direction) => {
                let current = self.chat.input();
                let recalled = match direction {
                    Recall::Older => self.history.older(&current),
                    Recall::Newer => self.history.newer(),
                };
                if let Some(line) = recalled.map(str::to_owned) {
                    self.chat.set_input(&line);
                }
            }
            Message::PickUser => {
                if let Some(nick) = self.chat.picked_user().and_then(|index| self.users.get(index)) {
                    let line = format!("/msg {nick} ");
                    self.chat.set_input(&line);
                }
            }
            Message::Tick => {
                if matches!(self.status.link, Link::Retrying { .. }) {
                    self.refresh_status();
                }
            }
            Message::Close => self.on_close(),
        }
    }

    fn on_connect(&mut self) {
        if self.phase != Phase::Asking {
            return;
        }
        let (nick, server) = self.dialog.values();
        let checked = validate_nick(&nick).map_err(|why| format!("nickname: {why}"));
        match checked.and_then(|()| login::parse_server(&server)) {
            Ok((host, port)) => {
                if self.connect(nick, host, port) {
                    // The dialog stays until the server answers, to show a rejection.
                    self.phase = Phase::Connecting;
                    self.dialog.wait(&format!("connecting to {}…", self.status.server));
                }
            }
            Err(why) => self.dialog.ask(&nick, &server, &why),
        }
    }

    fn on_send(&mut self) {
        let line = self.chat.input();
        match parse_line(&line) {
            Ok(None) => {}
            Ok(Some(Command::Quit)) => self.on_close(),
            Ok(Some(command)) => {
                if let Some(network) = &self.network {
                    network.send(command);
                }
                self.history.push(line);
                self.chat.set_input("");
            }
            Err(why) => self.notice(Role::Problem, &why),
        }
    }

    /// First close: send what is waiting (the library allows it a few
    /// seconds), exit on [`Event::Stopped`]. A second close exits at once.
    fn on_close(&mut self) {
        match &self.network {
            Some(network) if !self.closing => {
                network.send(Command::Quit);
                self.closing = true;
                self.status.link = Link::Closing;
                self.refresh_status();
            }
            _ => {
                self.chat.hide();
                self.dialog.hide();
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        let first_answer = matches!(event, Event::Connected { .. } | Event::Disconnected { .. });
        if self.phase == Phase::Connecting && first_answer && !self.closing {
            self.show_chat();
        }
        match &event {
            Event::Connected { nick, server } => {
                self.status.nick = nick.clone();
                self.status.link = Link::Connected;
                self.away.reconnected();
                if let Err(err) = login::save_last(&self.config.state_dir, nick, server) {
                    eprintln!("chat-client: {}: {err}", self.config.state_dir.display());
                }
            }
            Event::Users(users) => {
                self.users = users.clone();
                format::sort_users(&mut self.users);
                self.chat.set_users(&self.users, &self.status.nick);
            }
            Event::Joined(nick) => {
                format::user_joined(&mut self.users, nick);
                self.chat.set_users(&self.users, &self.status.nick);
                self.notice(Role::Info, &format!("{nick} joined"));
            }
            Event::Left(nick) => {
                format::user_left(&mut self.users, nick);
                self.chat.set_users(&self.users, &self.status.nick);
                self.notice(Role::Info, &format!("{nick} left"));
            }
            Event::Message { msg, missed } => {
                if self.away.before_message(*missed) {
                    self.chat.append(&format::separator_line());
                }
                self.chat.append(&format::message_line(msg, &self.status.nick, self.utc_offset));
            }
            Event::Sent { .. } => {}
            Event::Outbox(count) => self.status.outbox = *count,
            Event::Disconnected { reason, retry_in } => {
                if self.status.link == Link::Connected {
                    self.notice(Role::Problem, &format!("connection lost: {reason}"));
                    self.users.clear();
                    self.chat.set_users(&self.users, &self.status.nick);
                }
                self.status.link = Link::Retrying { reason: reason.clone(), at: Instant::now() + *retry_in };
            }
            Event::Rejected { .. } if self.closing => {}
            Event::Rejected { reason } => {
                let note = format!("{} refused {:?}: {reason}", self.status.server, self.status.nick);
                self.ask(&note);
            }
            Event::Error { reason } => self.notice(Role::Problem, reason),
            Event::Stopped => {
                if let Some(network) = self.network.take() {
                    network.wait();
                }
                if self.closing {
                    self.on_close();
                }
            }
        }
        if self.closing {
            self.status.link = Link::Closing;
        }
        self.log(&event);
        self.refresh_status();
    }

    fn notice(&mut self, role: Role, text: &str) {
        self.chat.append(&format::notice_line(now_ms(), self.utc_offset, role, text));
    }

    fn refresh_status(&mut self) {
        self.chat.set_status(&self.status.line(Instant::now()));
        self.chat.set_title(&self.status.title());
    }

    /// Appends the event's headless line to the event log, if there is one.
    fn log(&mut self, event: &Event) {
        let (Some(file), Some(line)) = (&mut self.event_log, event_line(event)) else { return };
        if let Err(err) = writeln!(file, "{line}").and_then(|()| file.flush()) {
            eprintln!("chat-client: event log: {err}");
            self.event_log = None;
        }
    }

    /// After the windows are gone: let the network thread finish.
    fn finish(mut self) -> ExitCode {
        if let Some(network) = self.network.take() {
            // The library gives the outbox a few seconds at most.
            network.send(Command::Quit);
            network.wait();
        }
        if self.status.outbox > 0 {
            eprintln!(
                "chat-client: {} messages not sent yet; they are kept for the next run as {}",
                self.status.outbox, self.status.nick
            );
        }
        ExitCode::SUCCESS
    }
}
