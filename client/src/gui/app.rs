//! The loop that handles every [`Message`]: the dialog flow (ask, connect,
//! ask again with the reason after a rejection or for a key file that
//! cannot be used), the input line, the
//! library's [`Event`]s (which the network thread sends through fltk's
//! channel; its `send` wakes this thread), and a tick four times a second
//! for the countdown, the window's width and the scroll position. Nothing
//! here waits on the network.
//!
//! With `--event-log`, besides each event's headless line, the window logs
//! what it draws, for tests that cannot read pixels: `window line INDEX
//! KIND TEXT` for each line added or changed, `window status COLOUR TEXT`,
//! `window marker shown X Y W H` or `window marker hidden`, `window view
//! FIRST LINES` (the first line in view, and how many there are), and for
//! the protocol pane `window pane shown|hidden`, `window frame TONE LINE`
//! for each row listed and `window bytes ROW PARTS` for a frame selected.

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use fltk::app::{self, Sender};

use chat_client::{
    Command, Config, Event, Handle, Input, InputError, Key, KeyTrouble, StartError, TracedFrame, event_line,
    parse_line, shown_event, start,
};
use chat_common::keyfile::load_key;
use chat_common::validate::{validate_nick, validate_text};
use chat_common::{DEFAULT_PORT, MAX_TEXT_LEN};

use super::Message;
use super::conversation::{Change, Conversation, Kind};
use super::format::{self, Online};
use super::pane::Pane;
use super::status::{Link, Status, key_text, rejection_text, seconds_until, trouble_text};
use super::strings::{S, Texts};
use super::view::{ChatWindow, Dialog, Field};

/// In the state directory: the last nickname and server that connected.
const LAST_LOGIN_FILE: &str = "last-login";
/// Seconds between ticks.
const TICK_SECS: f64 = 0.25;

struct App {
    /// The flags; the dialog replaces nick, host and port.
    config: Config,
    /// The shared key; `None` until a key file could be used.
    key: Option<Key>,
    texts: Texts,
    sender: Sender<Message>,
    dialog: Dialog,
    chat: ChatWindow,
    /// The protocol pane (F12).
    pane: Pane,
    /// The network thread, until it reports [`Event::Stopped`].
    network: Option<Handle>,
    /// Number of the current network thread; older threads' events are stale.
    session: u64,
    status: Status,
    online: Online,
    conversation: Conversation,
    /// The last line sent, for Up.
    last_line: String,
    /// `--event-log`: the events shown, in the headless line format, and what is drawn.
    event_log: Option<File>,
    /// What the event log said last about the status, the view and the marker.
    logged: [String; 3],
    /// The status shown, and the width it was fitted to.
    shown_status: (String, i32),
    /// Seconds east of UTC, for message times.
    utc_offset: i64,
    /// The "new messages below" marker is shown.
    marker: bool,
    /// The user closed the window: exit when the network thread stops.
    closing: bool,
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// The checks the library makes before a message enters the outbox, made
/// here first so the window can say why in the user's language and keep
/// the line.
fn check(texts: Texts, to: Option<&str>, text: &str) -> Result<(), String> {
    if let Some(nick) = to.filter(|nick| validate_nick(nick).is_err()) {
        return Err(texts.fill(S::BadRecipient, &[("nick", &format!("{nick:?}"))]));
    }
    if text.len() > MAX_TEXT_LEN {
        let (len, max) = (text.len().to_string(), MAX_TEXT_LEN.to_string());
        return Err(texts.fill(S::TooLong, &[("len", &len), ("max", &max)]));
    }
    let Err(why) = validate_text(text, MAX_TEXT_LEN) else { return Ok(()) };
    // Name the character when one alone is the trouble ("x" keeps it from being blank).
    let alone = |c: &char| validate_text(&format!("x{c}"), MAX_TEXT_LEN).is_err();
    match text.chars().find(alone) {
        Some(c) => Err(texts.fill(S::ForbiddenChar, &[("char", &format!("U+{:04X}", u32::from(c)))])),
        None => Err(texts.fill(S::CannotSend, &[("why", &why)])),
    }
}

/// Runs the dialog and the chat window until the window is closed.
pub fn run(config: Config, key: Result<Key, KeyTrouble>, utc_offset: i64) -> ExitCode {
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
    let texts = Texts { language: config.language };
    let (sender, receiver) = app::channel::<Message>();
    let status = Status { nick: String::new(), server: String::new(), link: Link::Connecting, outbox: 0 };
    let (dialog, chat) = (Dialog::new(&sender, texts), ChatWindow::new(&sender, texts));
    let pane = Pane::new(&sender, texts);
    let ticks = sender.clone();
    app::add_timeout3(TICK_SECS, move |handle| {
        ticks.send(Message::Tick);
        app::repeat_timeout3(TICK_SECS, handle);
    });
    let mut state = App {
        config,
        key: key.as_ref().ok().cloned(),
        texts,
        sender,
        dialog,
        chat,
        pane,
        network: None,
        session: 0,
        status,
        online: Online::default(),
        conversation: Conversation::new(texts, "", utc_offset),
        last_line: String::new(),
        event_log,
        logged: Default::default(),
        shown_status: Default::default(),
        utc_offset,
        marker: false,
        closing: false,
    };
    match (state.config.nick.clone(), key) {
        // A key file that cannot be used is explained, and its path asked for.
        (_, Err(trouble)) => state.ask(&key_text(&trouble, texts), Field::KeyFile),
        (Some(nick), Ok(_)) => state.connect(nick, state.config.host.clone(), state.config.port),
        (None, Ok(_)) => state.ask("", Field::Nick),
    }
    while fltk_app.wait() {
        // Everything queued, not one per wake-up: wake-ups may be merged.
        while let Some(message) = receiver.recv() {
            state.handle(message);
        }
        state.show_changes();
    }
    state.finish()
}

impl App {
    /// Shows the dialog, prefilled with the last values used unless the
    /// flags say otherwise, and `note` saying why it asks (again).
    fn ask(&mut self, note: &str, field: Field) {
        let last = fs::read_to_string(self.config.state_dir.join(LAST_LOGIN_FILE));
        let (last_nick, last_server) = last.ok().and_then(|text| format::parse_last_login(&text)).unzip();
        let nick = self.config.nick.clone().or(last_nick).unwrap_or_default();
        let flags_server = format::server_text(&self.config.host, self.config.port);
        let default_server = self.config.host == "127.0.0.1" && self.config.port == DEFAULT_PORT;
        let server = last_server.filter(|_| default_server).unwrap_or(flags_server);
        self.chat.hide();
        let key_file = self.config.key_file.display().to_string();
        self.dialog.ask(&nick, &server, &key_file, note, field);
        self.log(&format!("window\tdialog\t{note}"));
    }

    /// Loads the key file typed in the dialog, unless it is the one loaded
    /// already; says what is wrong with it otherwise.
    fn use_key_file(&mut self, typed: &str) -> Result<(), String> {
        let path = PathBuf::from(typed);
        if self.key.is_some() && path == self.config.key_file {
            return Ok(());
        }
        self.config.key_file = path;
        match load_key(&self.config.key_file) {
            Ok(key) => {
                self.key = Some(key);
                Ok(())
            }
            Err(err) => {
                self.key = None;
                Err(key_text(&KeyTrouble::new(&err, std::env::current_dir().ok().as_deref()), self.texts))
            }
        }
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
        // The conversation starts afresh before the new thread's first event.
        self.conversation = Conversation::new(self.texts, &nick, self.utc_offset);
        self.chat.transcript.clear();
        let (sender, session) = (self.sender.clone(), self.session);
        let Some(key) = self.key.clone() else { return self.ask("", Field::KeyFile) };
        let started = start(self.config.clone(), key, move |event| {
            sender.send(Message::Net { session, event });
        });
        let why = match started {
            Ok(network) => {
                network.set_trace(self.config.trace || self.pane.shown());
                self.network = Some(network);
                None
            }
            Err(StartError::State(err)) if err.is_locked() => {
                Some(self.texts.fill(S::AlreadyRunning, &[("nick", &nick)]))
            }
            Err(StartError::State(err)) if err.is_exported() => Some(self.texts.fill(S::Exported, &[("nick", &nick)])),
            Err(err) => Some(self.texts.fill(S::CannotStart, &[("reason", &err.to_string())])),
        };
        if let Some(why) = why {
            return self.ask(&why, Field::Nick);
        }
        self.status = Status { nick, server: format::server_text(&host, port), link: Link::Connecting, outbox: 0 };
        self.online = Online::default();
        self.chat.set_users(&[], "", self.texts.get(S::Online));
        self.set_marker(false);
        self.chat.show();
        self.dialog.hide();
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Net { session, event } if session == self.session => self.on_event(event),
            Message::Net { .. } => {}
            Message::Connect => {
                let (nick, server, key_file) = self.dialog.values();
                let (why, field) = match (validate_nick(&nick), format::parse_server(&server)) {
                    (Err(_), _) => (self.texts.get(S::BadNick).to_owned(), Field::Nick),
                    (Ok(()), None) => (self.texts.fill(S::BadServer, &[("text", &format!("{server:?}"))]), Field::Nick),
                    (Ok(()), Some((host, port))) => match self.use_key_file(&key_file) {
                        Ok(()) => return self.connect(nick, host, port),
                        Err(why) => (why, Field::KeyFile),
                    },
                };
                self.dialog.say(&why, field);
                self.log(&format!("window\tdialog\t{why}"));
            }
            Message::Send => self.on_send(),
            Message::Recall => {
                let line = self.last_line.clone();
                self.chat.set_input(&line);
            }
            Message::PickUser => {
                if let Some(nick) = self.chat.picked_user().and_then(|index| self.online.names.get(index)) {
                    let line = format!("/msg {nick} ");
                    self.chat.set_input(&line);
                }
            }
            Message::Close => self.on_close(),
            Message::Tick => self.on_tick(),
            Message::Scrolled => {
                self.chat.transcript.follow = self.chat.transcript.end_in_view();
                if self.chat.transcript.follow {
                    self.set_marker(false);
                }
            }
            Message::JumpToEnd => {
                self.chat.focus_input();
                self.chat.transcript.follow = true;
                self.chat.transcript.scroll_to_end();
                self.set_marker(false);
            }
            Message::TogglePane => self.toggle_pane(),
            Message::PickFrame => {
                if let Some((row, parts)) = self.pane.show_selected() {
                    self.log(&format!("window\tbytes\t{row}\t{parts}"));
                }
            }
            Message::SendAgain | Message::Discard => {
                self.chat.focus_input();
                let Some(failed) = self.conversation.first_failed() else { return };
                self.conversation.discard(failed.client_id);
                if let (Message::SendAgain, Some(network)) = (message, &self.network) {
                    network.send(Command::Send { to: failed.to, text: failed.text });
                }
            }
        }
    }

    /// Enter: a message, a command, or a mistake to fix. The input is
    /// cleared once the line is taken; a refused line stays, selected, so
    /// that typing replaces it instead of adding to it.
    fn on_send(&mut self) {
        let line = self.chat.input();
        let refused = match parse_line(&line) {
            Ok(None) => return,
            Ok(Some(Input::Help)) => {
                self.texts.get(S::Help).lines().for_each(|row| self.conversation.notice(Kind::Notice, row, now_ms()));
                None
            }
            Ok(Some(Input::Quiet)) => {
                self.conversation.set_quiet(!self.conversation.quiet);
                let said = if self.conversation.quiet { S::QuietOn } else { S::QuietOff };
                self.conversation.notice(Kind::Notice, self.texts.get(said), now_ms());
                None
            }
            Ok(Some(Input::Command(Command::Quit))) => return self.on_close(),
            Ok(Some(Input::Command(Command::Send { to, text }))) => match check(self.texts, to.as_deref(), &text) {
                Err(why) => Some(why),
                Ok(()) => {
                    if let Some(network) = &self.network {
                        network.send(Command::Send { to, text });
                    }
                    self.last_line = line;
                    None
                }
            },
            Err(InputError::MsgUsage) => Some(self.texts.get(S::MsgUsage).to_owned()),
            Err(InputError::Unknown(name)) => Some(self.texts.fill(S::UnknownCommand, &[("name", &name)])),
        };
        match refused {
            None => self.chat.set_input(""),
            Some(why) => {
                self.conversation.notice(Kind::Problem, &why, now_ms());
                self.chat.select_input();
            }
        }
    }

    /// The first close sends what is waiting (the library gives it a few
    /// seconds) and exits on [`Event::Stopped`]; a second one exits now.
    fn on_close(&mut self) {
        match &self.network {
            Some(network) if !self.closing => {
                network.send(Command::Quit);
                (self.closing, self.status.link) = (true, Link::Closing);
            }
            _ => {
                self.chat.hide();
                self.dialog.hide();
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        let (texts, now) = (self.texts, now_ms());
        // The log keeps the event exactly; the window shows what the
        // server should not have sent escaped (`shown.rs`).
        let line = event_line(&event);
        let event = shown_event(event);
        match &event {
            Event::Connected { nick, server } => {
                if matches!(self.status.link, Link::Offline { .. }) {
                    self.conversation.notice(Kind::Notice, &texts.fill(S::ConnectedAgain, &[("server", server)]), now);
                }
                (self.status.nick, self.status.link) = (nick.clone(), Link::Connected);
                self.conversation.reconnected();
                let saved = fs::write(self.config.state_dir.join(LAST_LOGIN_FILE), format!("{nick}\n{server}\n"));
                if let Err(err) = saved {
                    eprintln!("chat-client: {}: {err}", self.config.state_dir.join(LAST_LOGIN_FILE).display());
                }
            }
            Event::Users(_) | Event::Joined(_) | Event::Left(_) | Event::Unlisted(_) => {
                let told = self.online.follow(&event);
                match &event {
                    Event::Joined(nick) if told => {
                        self.conversation.notice(Kind::Presence, &texts.fill(S::Joined, &[("nick", nick)]), now)
                    }
                    Event::Left(nick) if told => {
                        self.conversation.notice(Kind::Presence, &texts.fill(S::Left, &[("nick", nick)]), now)
                    }
                    _ => {}
                }
            }
            Event::Message { msg, missed } => self.conversation.message(msg, *missed),
            Event::Queued { client_id, to, text } => self.conversation.queued(*client_id, to.as_deref(), text, now),
            Event::Sent { client_id, id } => self.conversation.sent(*client_id, *id),
            Event::Retry { client_id, reason, retry_in } => {
                let secs = seconds_until(Instant::now() + *retry_in, Instant::now());
                self.conversation.held(*client_id, reason, secs);
            }
            Event::Failed { client_id, reason } => self.conversation.failed(*client_id, reason),
            Event::Dropped { count, limit } => {
                let (count, limit) = (count.to_string(), limit.to_string());
                let text = texts.fill(S::Dropped, &[("count", &count), ("limit", &limit)]);
                self.conversation.notice(Kind::Problem, &text, now);
            }
            Event::Outbox(count) => self.status.outbox = *count,
            Event::Disconnected { reason, retry_in } => {
                if self.status.link == Link::Connected {
                    let why = trouble_text(reason, texts);
                    self.conversation.notice(Kind::Problem, &texts.fill(S::ConnectionLost, &[("reason", &why)]), now);
                }
                self.online.follow(&event);
                self.status.link = Link::Offline { reason: reason.clone(), retry_at: Instant::now() + *retry_in };
            }
            Event::Rejected { .. } if self.closing => {}
            Event::Rejected { reason } => {
                let (nick, why) = (format!("{:?}", self.status.nick), rejection_text(reason, texts));
                self.ask(&texts.fill(S::CannotLogIn, &[("nick", &nick), ("reason", &why)]), Field::Nick);
            }
            Event::Error { reason } => self.conversation.notice(Kind::Problem, reason, now),
            Event::Frame(frame) => return self.on_frame(frame.clone()),
            Event::Stopped => {}
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
        if matches!(
            event,
            Event::Users(_) | Event::Joined(_) | Event::Left(_) | Event::Unlisted(_) | Event::Disconnected { .. }
        ) {
            let label = self.online.label(texts);
            self.chat.set_users(&self.online.names, &self.status.nick, &label);
            self.log(&format!("window\tusers\t{label}\t{}", self.online.names.join(",")));
        }
        if let Some(line) = line {
            self.log(&line);
        }
    }

    /// F12: the protocol pane opens (and the library starts tracing) or
    /// closes (and it stops, unless `--trace` wants every frame anyway).
    fn toggle_pane(&mut self) {
        if self.pane.shown() {
            self.pane.hide();
        } else {
            self.pane.show();
        }
        if let Some(network) = &self.network {
            network.set_trace(self.config.trace || self.pane.shown());
        }
        let line = format!("window\tpane\t{}", if self.pane.shown() { "shown" } else { "hidden" });
        self.log(&line);
    }

    /// A frame from the library: on stderr with `--trace`, and in the
    /// protocol pane while it is shown.
    fn on_frame(&mut self, frame: TracedFrame) {
        if self.config.trace {
            eprintln!("{}", frame.line);
        }
        if self.pane.shown() {
            for row in self.pane.add(frame) {
                self.log(&format!("window\tframe\t{}\t{}", row.tone, row.text));
            }
        }
    }

    /// Draws what changed in the conversation, the marker, the failed
    /// message's row and the status, after a batch of messages.
    fn show_changes(&mut self) {
        let changes = self.conversation.take_changes();
        for change in &changes {
            if let Change::Added(index) | Change::Changed(index) = *change {
                let entry = &self.conversation.entries()[index];
                let line = format!("window\tline\t{index}\t{}\t{}", entry.kind.name(), entry.line.text());
                self.log(&line);
            }
        }
        if self.chat.transcript.apply(&self.conversation, &changes) {
            self.set_marker(true);
        }
        if !changes.is_empty() {
            let failed = self.conversation.first_failed().map(|failed| {
                let values = [("text", failed.text.as_str()), ("reason", failed.reason.as_str())];
                match &failed.to {
                    Some(nick) => self.texts.fill(S::FailedBarTo, &[values[0], values[1], ("nick", nick.as_str())]),
                    None => self.texts.fill(S::FailedBar, &values),
                }
            });
            self.chat.set_failed(failed.as_deref());
        }
        self.refresh_status();
    }

    /// The countdown, a new width, and the user reaching the end by
    /// scrolling (the scrollbar's drag may not reach our handler).
    fn on_tick(&mut self) {
        self.chat.transcript.rewrap_if_resized(&self.conversation);
        match (self.chat.transcript.follow, self.chat.transcript.end_in_view()) {
            (false, true) => {
                self.chat.transcript.follow = true;
                self.set_marker(false);
            }
            // The conversation got shorter (a row appeared, the window shrank).
            (true, false) => self.chat.transcript.scroll_to_end(),
            _ => {}
        }
        if self.event_log.is_some() {
            let first = self.chat.transcript.first_shown().map_or("-".into(), |index| index.to_string());
            let view = format!("window\tview\t{first}\t{}", self.conversation.entries().len());
            self.log_change(1, view);
        }
    }

    fn set_marker(&mut self, shown: bool) {
        if shown == self.marker {
            return;
        }
        self.marker = shown;
        let line = match self.chat.set_marker(shown) {
            Some((x, y, w, h)) => format!("window\tmarker\tshown\t{x}\t{y}\t{w}\t{h}"),
            None => "window\tmarker\thidden".into(),
        };
        self.log_change(2, line);
    }

    fn refresh_status(&mut self) {
        let now = Instant::now();
        let (indicator, text) = self.status.line(now, self.texts);
        let line = format!("window\tstatus\t{}\t{text}", indicator.name());
        let shown = (line.clone(), self.chat.status_width());
        if shown != self.shown_status {
            self.chat.set_title(&self.status.title(now, self.texts));
            self.chat.set_status(indicator, &text);
            self.shown_status = shown;
            self.log_change(0, line);
        }
    }

    /// Logs `line` if it differs from the last line of its kind.
    fn log_change(&mut self, kind: usize, line: String) {
        if line != self.logged[kind] {
            self.log(&line);
            self.logged[kind] = line;
        }
    }

    fn log(&mut self, line: &str) {
        if let Some(file) = &mut self.event_log {
            // One write per line, so a reader never sees half of one. A test
            // aid: a failure shows up as a missing line there.
            let _ = file.write_all(format!("{line}\n").as_bytes());
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
            let (count, nick) = (self.status.outbox, &self.status.nick);
            eprintln!("chat-client: {count} messages not sent yet; they are kept for {nick}'s next run");
        }
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_client::Language;

    #[test]
    fn a_message_the_library_would_refuse_is_explained_before_it_is_sent() {
        let (english, spanish) = (Texts { language: Language::English }, Texts { language: Language::Spanish });
        assert_eq!(check(english, None, "hola, ¿qué tal? à la café"), Ok(()));
        assert_eq!(check(english, Some("bob"), "spaces are fine"), Ok(()));
        assert_eq!(
            check(english, None, "evil\u{202E}txt").unwrap_err(),
            "message not sent: it contains a character that cannot be sent (U+202E)"
        );
        assert!(
            check(spanish, None, &"é".repeat(2049)).unwrap_err().starts_with("mensaje no enviado: tiene 4098 bytes")
        );
        assert_eq!(
            check(english, Some("no body"), "hi").unwrap_err(),
            "message not sent: \"no body\" is not a valid nickname"
        );
        let zalgo = format!("a{}", "\u{0301}".repeat(9));
        assert!(check(english, None, &zalgo).unwrap_err().starts_with("message not sent: message has more than"));
    }
}
