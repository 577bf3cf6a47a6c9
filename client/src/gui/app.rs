//! The loop that handles every [`Message`]: the dialog flow
//! (ask, connect, ask again with the reason after a rejection), the input
//! line, and the library's [`Event`]s, which the network thread sends
//! through fltk's channel (its `send` wakes this thread). Nothing here
//! waits on the network.

use std::fs::{self, File};
use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use fltk::app::{self, Sender};

use chat_client::{Command, Config, Event, Handle, Key, event_line, parse_line, start};
use chat_common::DEFAULT_PORT;
use chat_common::validate::{nick_key, validate_nick};

use super::Message;
use super::format::{self, AwaySeparator, Link, Role, Status};
use super::view::{ChatWindow, Dialog};

/// In the state directory: the last nickname and server that connected.
const LAST_LOGIN_FILE: &str = "last-login";

struct App {
    /// The flags; the dialog replaces nick, host and port.
    config: Config,
    key: Key,
    sender: Sender<Message>,
    dialog: Dialog,
    chat: ChatWindow,
    /// The network thread, until it reports [`Event::Stopped`].
    network: Option<Handle>,
    /// Number of the current network thread; older threads' events are stale.
    session: u64,
    status: Status,
    users: Vec<String>,
    away: AwaySeparator,
    /// The last line sent, for Up.
    last_line: String,
    /// `--event-log`: the events shown, in the headless line format.
    event_log: Option<File>,
    /// Seconds east of UTC, for message times.
    utc_offset: i64,
    /// The user closed the window: exit when the network thread stops.
    closing: bool,
}

/// Runs the dialog and the chat window until the window is closed.
pub fn run(config: Config, key: Key, utc_offset: i64) -> ExitCode {
    let fltk_app = app::App::default().with_scheme(app::Scheme::Gtk);
    // Lighter than FLTK's default grey, so the white panes do not look sunken.
    app::background(0xee, 0xee, 0xee);
    let event_log = match config.event_log.as_ref().map(File::create).transpose() {
        Ok(file) => file,
        Err(err) => {
            eprintln!("chat-client: --event-log: {err}");
            return ExitCode::from(2);
        }
    };
    let (sender, receiver) = app::channel::<Message>();
    let status = Status { nick: String::new(), server: String::new(), link: Link::Connecting, outbox: 0 };
    let (dialog, chat) = (Dialog::new(&sender), ChatWindow::new(&sender));
    let mut state = App {
        config,
        key,
        sender,
        dialog,
        chat,
        network: None,
        session: 0,
        status,
        users: Vec::new(),
        away: AwaySeparator::default(),
        last_line: String::new(),
        event_log,
        utc_offset,
        closing: false,
    };
    match state.config.nick.clone() {
        Some(nick) => state.connect(nick, state.config.host.clone(), state.config.port),
        None => state.ask(""),
    }
    while fltk_app.wait() {
        // Everything queued, not one per wake-up: wake-ups may be merged.
        while let Some(message) = receiver.recv() {
            state.handle(message);
        }
    }
    state.finish()
}

impl App {
    /// Shows the dialog, prefilled with the last values used unless the
    /// flags say otherwise, and `note` saying why it asks (again).
    fn ask(&mut self, note: &str) {
        let last = fs::read_to_string(self.config.state_dir.join(LAST_LOGIN_FILE));
        let (last_nick, last_server) = last.ok().and_then(|text| format::parse_last_login(&text)).unzip();
        let nick = self.config.nick.clone().or(last_nick).unwrap_or_default();
        let flags_server = format::server_text(&self.config.host, self.config.port);
        let default_server = self.config.host == "127.0.0.1" && self.config.port == DEFAULT_PORT;
        let server = last_server.filter(|_| default_server).unwrap_or(flags_server);
        self.chat.hide();
        self.dialog.ask(&nick, &server, note);
    }

    /// Starts a network thread for `nick` on `host:port` and shows the chat.
    fn connect(&mut self, nick: String, host: String, port: u16) {
        if let Some(old) = self.network.take() {
            // Only after a rejection, so it has stopped or is about to.
            old.send(Command::Quit);
            old.wait();
        }
        (self.config.nick, self.config.host, self.config.port) = (Some(nick.clone()), host.clone(), port);
        self.session += 1;
        let (sender, session) = (self.sender.clone(), self.session);
        let started = start(self.config.clone(), self.key.clone(), move |event| {
            sender.send(Message::Net { session, event });
        });
        match started {
            Ok(network) => self.network = Some(network),
            Err(err) => return self.ask(&err.to_string()),
        }
        self.status = Status { nick, server: format::server_text(&host, port), link: Link::Connecting, outbox: 0 };
        (self.users, self.away) = (Vec::new(), AwaySeparator::default());
        self.chat.clear();
        self.chat.set_users(&[], "");
        self.refresh_status();
        self.chat.show();
        self.dialog.hide();
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Net { session, event } if session == self.session => self.on_event(event),
            Message::Net { .. } => {}
            Message::Connect => {
                let (nick, server) = self.dialog.values();
                let checked = validate_nick(&nick).map_err(|why| format!("nickname: {why}"));
                match checked.and_then(|()| format::parse_server(&server)) {
                    Ok((host, port)) => self.connect(nick, host, port),
                    Err(why) => self.dialog.ask(&nick, &server, &why),
                }
            }
            Message::Send => self.on_send(),
            Message::Recall => {
                let line = self.last_line.clone();
                self.chat.set_input(&line);
            }
            Message::PickUser => {
                if let Some(nick) = self.chat.picked_user().and_then(|index| self.users.get(index)) {
                    let line = format!("/msg {nick} ");
                    self.chat.set_input(&line);
                }
            }
            Message::Close => self.on_close(),
        }
    }

    /// Enter: a message, `/msg nick text`, or `/quit`, as in the headless mode.
    fn on_send(&mut self) {
        let line = self.chat.input();
        match parse_line(&line) {
            Ok(None) => {}
            Ok(Some(Command::Quit)) => self.on_close(),
            Ok(Some(command)) => {
                if let Some(network) = &self.network {
                    network.send(command);
                }
                self.last_line = line;
                self.chat.set_input("");
            }
            Err(why) => self.notice(Role::Problem, &why),
        }
    }

    /// The first close sends what is waiting (the library gives it a few
    /// seconds) and exits on [`Event::Stopped`]; a second one exits now.
    fn on_close(&mut self) {
        match &self.network {
            Some(network) if !self.closing => {
                network.send(Command::Quit);
                (self.closing, self.status.link) = (true, Link::Closing);
                self.refresh_status();
            }
            _ => {
                self.chat.hide();
                self.dialog.hide();
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match &event {
            Event::Connected { nick, server } => {
                if matches!(self.status.link, Link::Retrying { .. }) {
                    self.notice(Role::Notice, &format!("connected to {server}"));
                }
                (self.status.nick, self.status.link) = (nick.clone(), Link::Connected);
                self.away.reconnected();
                let saved = fs::write(self.config.state_dir.join(LAST_LOGIN_FILE), format!("{nick}\n{server}\n"));
                if let Err(err) = saved {
                    eprintln!("chat-client: {}: {err}", self.config.state_dir.join(LAST_LOGIN_FILE).display());
                }
            }
            Event::Users(users) => self.users = users.clone(),
            Event::Joined(nick) => {
                self.users.push(nick.clone());
                self.notice(Role::Notice, &format!("{nick} joined"));
            }
            Event::Left(nick) => {
                self.users.retain(|user| nick_key(user) != nick_key(nick));
                self.notice(Role::Notice, &format!("{nick} left"));
            }
            Event::Message { msg, missed } => {
                if self.away.before_message(*missed) {
                    self.chat.append(&format::separator_line());
                }
                self.chat.append(&format::message_line(msg, &self.status.nick, self.utc_offset));
            }
            Event::Sent { .. } | Event::Stopped => {}
            Event::Outbox(count) => self.status.outbox = *count,
            Event::Disconnected { reason, retry_in } => {
                if self.status.link == Link::Connected {
                    self.notice(Role::Problem, &format!("connection lost: {reason}"));
                    self.users.clear();
                }
                self.status.link = Link::Retrying { reason: reason.clone(), retry_in: *retry_in };
            }
            Event::Rejected { .. } if self.closing => {}
            Event::Rejected { reason } => self.ask(&format!("cannot log in as {:?}: {reason}", self.status.nick)),
            Event::Error { reason } => self.notice(Role::Problem, reason),
        }
        if event == Event::Stopped {
            if let Some(network) = self.network.take() {
                network.wait();
            }
            if self.closing {
                self.on_close();
            }
        }
        if self.closing {
            self.status.link = Link::Closing;
        }
        if matches!(event, Event::Users(_) | Event::Joined(_) | Event::Left(_) | Event::Disconnected { .. }) {
            format::sort_users(&mut self.users);
            self.chat.set_users(&self.users, &self.status.nick);
        }
        self.refresh_status();
        if let (Some(file), Some(line)) = (&mut self.event_log, event_line(&event)) {
            // One write per line, so a reader never sees half of one. A test
            // aid: a failure shows up as a missing line there.
            let _ = file.write_all(format!("{line}\n").as_bytes());
        }
    }

    fn notice(&mut self, role: Role, text: &str) {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64);
        self.chat.append(&format::notice_line(now_ms, self.utc_offset, role, text));
    }

    fn refresh_status(&mut self) {
        self.chat.set_title_and_status(&self.status.title(), &self.status.line());
    }

    /// After the windows are gone: let the network thread finish.
    fn finish(mut self) -> ExitCode {
        if let Some(network) = self.network.take() {
            // The library gives the outbox a few seconds at most.
            network.send(Command::Quit);
            network.wait();
        }
        if self.status.outbox > 0 {
            let (count, nick) = (self.status.outbox, &self.status.nick);
            eprintln!("chat-client: {count} messages not sent yet; they are kept for {nick}'s next run");
        }
        ExitCode::SUCCESS
    }
}
