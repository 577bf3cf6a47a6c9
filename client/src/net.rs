//! The network thread: [`start`] spawns it and returns a [`Handle`] for
//! commands. It owns the state directory, the session, the reconnect timer
//! and the writing half of the connection; a [`link`](crate::link) thread
//! per connection does the connecting and reading and reports back through
//! the same channel the commands arrive on, so one `recv` waits for both.
//!
//! The thread never waits on the UI: events go out through the sink the UI
//! gave, which must not block (an mpsc `Sender`, fltk's `app::Sender`).

use std::fmt;
use std::io::{self, Write};
use std::mem;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chat_common::PING_INTERVAL;
use chat_common::auth::{Key, Sealer, token_verifier};
use chat_common::handshake::OwnerToken;
use chat_common::message::ClientMsg;
use chat_common::random::random_bytes;
use chat_common::trace::{Direction, Verdict};
use chat_common::validate::validate_nick;

use crate::config::Config;
use crate::link::{self, Dial, LinkEvent, server_label};
use crate::session::{Actions, Command, Event, Session};
use crate::store::{Chat, Store, StoreError};
use crate::trace::Tracer;
use crate::trouble::{Rejection, Trouble, plain_io};

/// How long [`Command::Quit`] waits for the outbox to empty.
pub const QUIT_GRACE: Duration = Duration::from_secs(5);
/// A write blocked this long (the server stopped reading) drops the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most inputs handled before the state is saved and frames are written,
/// so a flood of messages still gets acknowledged as it goes.
const MAX_BATCH: usize = 1000;

/// Why the network thread could not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration names no nickname.
    NoNickname,
    /// The nickname is not valid; says why.
    BadNickname(String),
    /// The state directory or one of its files cannot be used.
    State(StoreError),
    /// The operating system would not start a thread.
    Thread(io::Error),
    /// No randomness for a new owner token.
    Random(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoNickname => write!(f, "no nickname given"),
            Self::BadNickname(why) => write!(f, "{why}"),
            Self::State(err) => write!(f, "{err}"),
            Self::Thread(err) => write!(f, "cannot start the network thread: {err}"),
            Self::Random(err) => write!(f, "cannot read /dev/urandom for a new owner token: {err}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<StoreError> for StartError {
    fn from(err: StoreError) -> Self {
        Self::State(err)
    }
}

/// What the network thread waits for: the UI's commands, and reports from
/// the connection thread of a given generation (older ones are ignored).
enum Input {
    Command(Command),
    Link(u64, LinkEvent),
}

/// Sends commands to the network thread; cheap to clone, never blocks.
#[derive(Clone)]
pub struct CommandSender(Sender<Input>);

impl CommandSender {
    /// Hands a command to the network thread (ignored once it has stopped).
    pub fn send(&self, command: Command) {
        let _ = self.0.send(Input::Command(command));
    }
}

/// The running network thread. Dropping the handle does not stop it:
/// send [`Command::Quit`], then [`Handle::wait`].
pub struct Handle {
    /// Where commands go.
    commands: CommandSender,
    /// Joined by [`Handle::wait`].
    thread: JoinHandle<()>,
    /// Tracing on or off, read by the threads for every frame.
    trace: Arc<AtomicBool>,
}

impl Handle {
    /// Hands a command to the network thread; never blocks.
    pub fn send(&self, command: Command) {
        self.commands.send(command);
    }

    /// A sender for another thread (e.g. one reading standard input).
    pub fn sender(&self) -> CommandSender {
        self.commands.clone()
    }

    /// Turns frame traces ([`Event::Frame`]) on or off, from the next frame.
    pub fn set_trace(&self, on: bool) {
        self.trace.store(on, Ordering::Relaxed);
    }

    /// Waits for the network thread to end (after [`Event::Stopped`]).
    pub fn wait(self) {
        // A panic there has already been printed; there is nothing to add.
        let _ = self.thread.join();
    }
}

/// Starts the network thread for `config`'s nickname and server. It
/// connects at once and keeps reconnecting until [`Command::Quit`] or a
/// final rejection; `sink` receives every [`Event`], [`Event::Stopped`] last.
pub fn start(config: Config, key: Key, sink: impl Fn(Event) + Send + 'static) -> Result<Handle, StartError> {
    let nick = config.nick.ok_or(StartError::NoNickname)?;
    validate_nick(&nick).map_err(StartError::BadNickname)?;
    let fingerprint = key.fingerprint();
    let chat = Chat { fingerprint: &fingerprint, address: Some((&config.host, config.port)) };
    let store = Store::open(&config.state_dir, chat, &nick)?;
    // [P-19] The token is made and saved before the first login, so a
    // registration whose WELCOME is lost still belongs to this client.
    let token = match store.load_token()? {
        Some(token) => token,
        None => {
            let token = OwnerToken { token: random_bytes().map_err(StartError::Random)?, accepted: false };
            store.save_token(&token)?;
            token
        }
    };
    let (outbox, last_seen) = (store.load_outbox()?, store.load_last_seen()?);
    let session = Session::new(server_label(&config.host, config.port), outbox, last_seen, config.retry);
    let (sender, inputs) = mpsc::channel();
    let trace = Arc::new(AtomicBool::new(config.trace));
    let driver = Driver {
        session,
        store,
        tracer: Tracer::new(trace.clone(), server_label(&config.host, config.port), 1),
        dial: Dial { host: config.host, port: config.port, key, nick, token },
        retry: config.retry,
        sink,
        sender: sender.clone(),
        inputs,
        generation: 0,
        link: Link::Down { retry_at: Instant::now() },
        quit_by: None,
    };
    let thread = thread::Builder::new().name("chat-session".into()).spawn(move || driver.run());
    Ok(Handle { commands: CommandSender(sender), thread: thread.map_err(StartError::Thread)?, trace })
}

/// The connection as the session thread sees it.
enum Link {
    /// No connection; the next attempt is due then.
    Down { retry_at: Instant },
    /// A connection thread is connecting; its socket once TCP is up.
    Connecting { stream: Option<TcpStream> },
    /// Logged in (or logging in): we write here.
    Up { stream: TcpStream, sealer: Sealer, last_write: Instant },
}

struct Driver<F> {
    /// The protocol logic.
    session: Session,
    /// Where the session's state is saved.
    store: Store,
    /// Traces the current connection's frames while tracing is on.
    tracer: Tracer,
    /// What each connection thread needs; the token is updated on WELCOME.
    dial: Dial,
    /// Time between connection attempts.
    retry: Duration,
    /// The UI's event sink.
    sink: F,
    /// Cloned into each connection thread.
    sender: Sender<Input>,
    /// Commands and connection reports.
    inputs: Receiver<Input>,
    /// Number of the current connection; reports from older ones are stale.
    generation: u64,
    /// The current connection.
    link: Link,
    /// Set by Quit: stop when the outbox is empty or at this time.
    quit_by: Option<Instant>,
}

impl<F: Fn(Event)> Driver<F> {
    fn run(mut self) {
        if !self.session.outbox.is_empty() {
            self.session.queued_events().into_iter().for_each(|event| (self.sink)(event));
            (self.sink)(Event::Outbox(self.session.outbox.len()));
        }
        loop {
            let now = Instant::now();
            if self.quit_by.is_some_and(|quit_by| self.session.outbox.is_empty() || now >= quit_by) {
                break;
            }
            match &self.link {
                Link::Down { retry_at } if now >= *retry_at => self.connect(),
                // [P-26] Keep an idle connection alive.
                Link::Up { last_write, .. } if now >= *last_write + PING_INTERVAL => self.write(&[ClientMsg::Ping]),
                _ => {}
            }
            let first = match self.next_wake() {
                Some(wake) => self.inputs.recv_timeout(wake.saturating_duration_since(now)),
                None => self.inputs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let mut actions = Actions::default();
            let mut rejected = None;
            // None after a timeout (disconnection cannot happen as we hold a
            // sender): an empty batch, which sends an ACK that fell due.
            let mut next = first.ok();
            let mut handled = 0;
            while let Some(input) = next {
                if let Err(reason) = self.handle(input, &mut actions) {
                    rejected = Some(reason);
                    break;
                }
                handled += 1;
                next = if handled < MAX_BATCH { self.inputs.try_recv().ok() } else { None };
            }
            self.session.finish_batch(Instant::now(), &mut actions);
            self.apply(actions);
            if let Some(reason) = rejected {
                (self.sink)(Event::Rejected { reason });
                break;
            }
        }
        self.close_link();
        (self.sink)(Event::Stopped);
    }

    /// When the loop must wake up even if no input arrives.
    fn next_wake(&self) -> Option<Instant> {
        let link_wake = match &self.link {
            Link::Down { retry_at } => Some(*retry_at),
            Link::Up { last_write, .. } => Some(*last_write + PING_INTERVAL),
            Link::Connecting { .. } => None,
        };
        [link_wake, self.quit_by, self.session.wake_due()].into_iter().flatten().min()
    }

    /// Handles one input; `Err(reason)` when the login is refused for good.
    fn handle(&mut self, input: Input, actions: &mut Actions) -> Result<(), Rejection> {
        let event = match input {
            Input::Command(Command::Send { to, text }) => {
                self.session.on_send(to, text, actions);
                return Ok(());
            }
            Input::Command(Command::Quit) => {
                self.quit_by.get_or_insert(Instant::now() + QUIT_GRACE);
                // Unsent messages get one more try now rather than at the next retry.
                if let Link::Down { retry_at } = &mut self.link {
                    *retry_at = Instant::now();
                }
                return Ok(());
            }
            Input::Link(generation, _) if generation != self.generation => {
                if let Input::Link(_, LinkEvent::Connected(stream)) = input {
                    let _ = stream.shutdown(Shutdown::Both);
                }
                return Ok(());
            }
            Input::Link(_, event) => event,
        };
        match event {
            LinkEvent::Connected(stream) => self.link = Link::Connecting { stream: Some(stream) },
            LinkEvent::Ready(sealer, registered) => {
                if let Link::Connecting { stream: Some(stream) } =
                    mem::replace(&mut self.link, Link::Connecting { stream: None })
                {
                    // The link thread is done writing; from here the timeout is ours.
                    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
                    self.link = Link::Up { stream, sealer, last_write: Instant::now() };
                    let register = (!registered).then(|| token_verifier(&self.dial.token.token));
                    self.session.on_linked(register, actions);
                }
            }
            LinkEvent::Message(message) => {
                if let Err(reason) = self.session.on_server(message, actions) {
                    self.session.on_unlinked(actions);
                    return Err(reason);
                }
            }
            LinkEvent::Refused(rejection) => return Err(rejection),
            // Out at once, before the events the frame leads to.
            LinkEvent::Frame(traced) => (self.sink)(Event::Frame(traced)),
            LinkEvent::Down(trouble) => self.drop_link(trouble, actions),
        }
        Ok(())
    }

    /// Saves, reports and sends what a batch produced, in that order.
    fn apply(&mut self, actions: Actions) {
        if actions.token_accepted {
            self.dial.token.accepted = true;
            if let Err(err) = self.store.save_token(&self.dial.token) {
                let reason = format!("cannot record that the server accepted our owner token: {err}");
                (self.sink)(Event::Error { reason });
            }
        }
        let mut saved = Ok(());
        if actions.save_last_seen {
            saved = self.store.save_last_seen(self.session.last_seen);
        }
        if actions.save_outbox {
            saved = saved.and(self.store.save_outbox(&self.session.outbox));
        }
        if let Err(err) = saved {
            (self.sink)(Event::Error { reason: format!("cannot save the state: {err}") });
        }
        for event in actions.events {
            (self.sink)(event);
        }
        if !actions.send.is_empty() {
            self.write(&actions.send);
        }
    }

    /// Seals and writes messages in one write; a failure drops the connection.
    fn write(&mut self, messages: &[ClientMsg]) {
        let Link::Up { stream, sealer, last_write } = &mut self.link else {
            return;
        };
        let mut frames = Vec::new();
        let mut payload = Vec::new();
        // Where each frame starts, while tracing.
        let mut starts = Vec::new();
        let tracing = self.tracer.is_on();
        for message in messages {
            payload.clear();
            message.encode_payload(&mut payload);
            if tracing {
                starts.push(frames.len());
            }
            sealer.seal(message.kind(), &payload, &mut frames);
        }
        match (&*stream).write_all(&frames) {
            Ok(()) => {
                *last_write = Instant::now();
                let ends = starts.iter().skip(1).copied().chain([frames.len()]);
                for (start, end) in starts.iter().zip(ends) {
                    let traced = self.tracer.frame(Direction::Sent, &frames[*start..end], false, Verdict::Sealed);
                    traced.into_iter().for_each(|traced| (self.sink)(Event::Frame(traced)));
                }
            }
            Err(err) => {
                let mut actions = Actions::default();
                self.drop_link(Trouble::Lost(format!("cannot send to the server: {}", plain_io(&err))), &mut actions);
                actions.events.into_iter().for_each(|event| (self.sink)(event));
            }
        }
    }

    /// Starts a connection thread for the next generation.
    fn connect(&mut self) {
        self.link = Link::Connecting { stream: None };
        let (sender, generation) = (self.sender.clone(), self.generation);
        let dial = self.dial.clone();
        let report = move |event| sender.send(Input::Link(generation, event)).is_ok();
        // Connections are numbered from 1; a failed attempt takes a number too.
        self.tracer = self.tracer.numbered(generation + 1);
        let tracer = self.tracer.clone();
        let spawned = thread::Builder::new()
            .name(format!("chat-link-{generation}"))
            .spawn(move || link::run(dial, tracer, report));
        if let Err(err) = spawned {
            let mut actions = Actions::default();
            self.drop_link(Trouble::Local(format!("cannot start a connection thread: {err}")), &mut actions);
            actions.events.into_iter().for_each(|event| (self.sink)(event));
        }
    }

    /// Ends the current connection, if any; its thread's reports go stale.
    fn close_link(&mut self) {
        if let Link::Connecting { stream: Some(stream) } | Link::Up { stream, .. } = &self.link {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.generation += 1;
    }

    /// The connection is gone: schedule the next attempt and say when.
    fn drop_link(&mut self, reason: Trouble, actions: &mut Actions) {
        self.close_link();
        self.session.on_unlinked(actions);
        self.link = Link::Down { retry_at: Instant::now() + self.retry };
        actions.events.push(Event::Disconnected { reason, retry_in: self.retry });
    }
}
