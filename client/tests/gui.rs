//! End-to-end tests of the desktop window, driven as a person would: a
//! real `chat-server`, the real `chat-client` window on an X display (a
//! private Xvfb unless `DISPLAY` is set), keys typed with xdotool, and
//! `chat-client --headless` processes on the other end. The window's
//! `--event-log` file shows what it displayed, so nothing reads pixels.
//!
//! Every child is killed when its guard drops, and every wait has a
//! deadline, so a broken window fails these tests instead of hanging them.
#![cfg(feature = "gui")]

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

// Shared with the end-to-end tests; not every helper there is used here.
#[allow(dead_code)]
#[path = "e2e/support.rs"]
mod support;

use support::{TestServer, line_channel, temp_dir};

/// The longest any single wait may take before it counts as a bug.
const PATIENCE: Duration = Duration::from_secs(15);

/// The tests type into whichever window has the focus, so they take turns
/// on the display.
static DISPLAY_TURN: Mutex<()> = Mutex::new(());

/// Kills and reaps its child when dropped.
struct Reaper(Child);

impl Reaper {
    /// Waits for the child to exit by itself, at most `PATIENCE`.
    fn wait_exit(&mut self, what: &str) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{what} did not exit within {PATIENCE:?}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a program, or fails saying how to install it.
fn spawn(command: &mut Command, program: &str) -> Reaper {
    match command.spawn() {
        Ok(child) => Reaper(child),
        Err(err) if err.kind() == ErrorKind::NotFound => panic!("{program} not found; run 'make deps'"),
        Err(err) => panic!("cannot start {program}: {err}"),
    }
}

/// The X display the windows open on: `DISPLAY`, or a private Xvfb.
struct Display {
    name: String,
    _xvfb: Option<Reaper>,
}

impl Display {
    fn open() -> Display {
        if let Some(name) = std::env::var("DISPLAY").ok().filter(|name| !name.is_empty()) {
            return Display { name, _xvfb: None };
        }
        // -displayfd: Xvfb picks a free display number and writes it to stdout.
        let mut command = Command::new("Xvfb");
        command.args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"]);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut xvfb = spawn(&mut command, "Xvfb");
        let lines = line_channel(xvfb.0.stdout.take().unwrap());
        let number = lines.recv_timeout(PATIENCE).expect("Xvfb did not say which display it opened");
        Display { name: format!(":{}", number.trim()), _xvfb: Some(xvfb) }
    }

    /// Runs `xdotool args` on this display and returns its output.
    fn xdotool(&self, args: &[&str]) -> String {
        let mut command = Command::new("xdotool");
        command.args(args).env("DISPLAY", &self.name).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = spawn(&mut command, "xdotool");
        let status = child.wait_exit(&format!("xdotool {args:?}"));
        let (mut out, mut err) = (String::new(), String::new());
        child.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(status.success(), "xdotool {args:?} failed: {err}");
        out
    }

    /// Waits for a window whose title matches `title`, gives it the
    /// keyboard, and types `text` followed by Enter.
    fn type_line(&self, title: &str, text: &str) {
        let found = self.xdotool(&["search", "--sync", "--name", title]);
        let window = found.lines().next().unwrap_or_else(|| panic!("no window named {title:?}"));
        self.xdotool(&["windowfocus", "--sync", window]);
        if !text.is_empty() {
            self.xdotool(&["type", "--delay", "10", "--", text]);
        }
        self.xdotool(&["key", "Return"]);
    }
}

/// A `chat-client --headless`.
struct Headless {
    _child: Reaper,
    stdin: ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Headless {
    fn start(server: &TestServer, nick: &str, dir: &Path) -> Headless {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat-client"));
        command.args(["--headless", "--nick", nick, "--port", &server.port.to_string(), "--retry-secs", "0.2"]);
        command.arg("--key-file").arg(server.key_file()).arg("--state-dir").arg(dir.join(nick));
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = spawn(&mut command, "chat-client --headless");
        let stdin = child.0.stdin.take().unwrap();
        let lines = line_channel(child.0.stdout.take().unwrap());
        Headless { _child: child, stdin, lines, seen: Vec::new() }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
    }

    /// Waits for an output line that starts with `start` and ends with `end`.
    fn expect(&mut self, start: &str, end: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.seen.iter().any(|line| line.starts_with(start) && line.ends_with(end)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line {start:?}…{end:?} within {PATIENCE:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }
}

/// The window, with its event log.
struct Window {
    child: Reaper,
    event_log: PathBuf,
    stderr: PathBuf,
}

impl Window {
    /// Starts the window on `display`; `args` adds flags such as `--nick`.
    fn start(display: &Display, server: &TestServer, state_dir: &Path, args: &[&str]) -> Window {
        fs::create_dir_all(state_dir).unwrap();
        let (event_log, stderr) = (state_dir.join("events.log"), state_dir.join("stderr.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat-client"));
        command.args(args).args(["--port", &server.port.to_string(), "--retry-secs", "0.2"]);
        command.arg("--key-file").arg(server.key_file()).arg("--state-dir").arg(state_dir);
        command.arg("--event-log").arg(&event_log).env("DISPLAY", &display.name);
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(File::create(&stderr).unwrap());
        Window { child: spawn(&mut command, "chat-client"), event_log, stderr }
    }

    /// Waits until the event log has a line that starts with `start` and
    /// ends with `end`.
    fn expect(&mut self, start: &str, end: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = fs::read_to_string(&self.event_log).unwrap_or_default();
            if log.lines().any(|line| line.starts_with(start) && line.ends_with(end)) {
                return;
            }
            let exited = self.child.0.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let stderr = fs::read_to_string(&self.stderr).unwrap_or_default();
                panic!(
                    "the window never showed {start:?}…{end:?} (exit: {exited:?}); it showed:\n{log}\nstderr:\n{stderr}"
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn typed_lines_reach_others_and_their_messages_appear_in_the_window() {
    let _turn = DISPLAY_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = temp_dir("chat");
    let server = TestServer::start();
    let display = Display::open();
    let mut bob = Headless::start(&server, "bob", &dir);
    bob.expect("connected\tbob", "");
    let mut window = Window::start(&display, &server, &dir.join("gui_ana"), &["--nick", "gui_ana"]);
    window.expect("connected\tgui_ana", "");
    bob.expect("joined\tgui_ana", "");

    display.type_line("gui_ana", "hello from the window");
    bob.expect("msg\t", "\tgui_ana\t*\thello from the window");
    display.type_line("gui_ana", "/msg bob just for you");
    bob.expect("msg\t", "\tgui_ana\tbob\tjust for you");
    // The window shows its own messages as the server's echo.
    window.expect("msg\t", "\tgui_ana\tbob\tjust for you");

    bob.say("hello, window");
    window.expect("msg\t", "\tbob\t*\thello, window");

    // /quit closes the window the way its close button does.
    display.type_line("gui_ana", "/quit");
    assert!(window.child.wait_exit("the window").success());
    bob.expect("left\tgui_ana", "");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_rejected_nickname_is_asked_for_again_and_the_dialog_remembers_the_last_one() {
    let _turn = DISPLAY_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = temp_dir("dialog");
    let server = TestServer::start();
    let display = Display::open();
    let mut bob = Headless::start(&server, "bob", &dir);
    bob.expect("connected\tbob", "");

    // This state directory holds no owner token for bob.
    let state_dir = dir.join("gui");
    let mut window = Window::start(&display, &server, &state_dir, &["--nick", "bob"]);
    window.expect("rejected\tnickname belongs to another user", "");
    // The dialog selects the refused nickname, so typing replaces it.
    display.type_line("hmac-chat: connect", "gui_carol");
    window.expect("connected\tgui_carol", "");
    bob.expect("joined\tgui_carol", "");
    display.type_line("gui_carol", "/quit");
    assert!(window.child.wait_exit("the window").success());

    // Without --nick the dialog offers the last nickname; Enter connects.
    let mut window = Window::start(&display, &server, &state_dir, &[]);
    display.type_line("hmac-chat: connect", "");
    window.expect("connected\tgui_carol", "");
    display.type_line("gui_carol", "/quit");
    assert!(window.child.wait_exit("the window").success());
    fs::remove_dir_all(&dir).unwrap();
}
