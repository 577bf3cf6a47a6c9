//! End-to-end tests of the desktop window, driven as a person would: a
//! real `chat-server`, the real `chat-client` window on an X display (a
//! private Xvfb unless `DISPLAY` is set), keys typed and the mouse moved
//! with xdotool, and `chat-client --headless` processes on the other end.
//! The window's `--event-log` file shows what it displayed (the events,
//! and `window …` lines for each line drawn, the status with its
//! indicator's colour, the scroll position and the marker), so nothing
//! reads pixels.
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

// A server that sends what the protocol forbids.
#[path = "e2e/odd_server.rs"]
mod odd_server;

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
        let window = self.window_id(title);
        self.xdotool(&["windowfocus", "--sync", &window]);
        if !text.is_empty() {
            self.xdotool(&["type", "--delay", "10", "--", text]);
        }
        self.xdotool(&["key", "Return"]);
    }
}

impl Display {
    /// The id of the first window whose title matches `title`, once there is one.
    fn window_id(&self, title: &str) -> String {
        let found = self.xdotool(&["search", "--sync", "--name", title]);
        found.lines().next().unwrap_or_else(|| panic!("no window named {title:?}")).to_owned()
    }

    /// Turns the mouse wheel up `clicks` times over the point (x, y) of a window.
    fn wheel_up(&self, window: &str, (x, y): (i32, i32), clicks: u32) {
        let (x, y, clicks) = (x.to_string(), y.to_string(), clicks.to_string());
        self.xdotool(&["mousemove", "--window", window, &x, &y]);
        self.xdotool(&["click", "--repeat", &clicks, "--delay", "30", "4"]);
    }

    /// Clicks the left button at the point (x, y) of a window.
    fn click(&self, window: &str, (x, y): (i32, i32)) {
        self.xdotool(&["mousemove", "--window", window, &x.to_string(), &y.to_string()]);
        self.xdotool(&["click", "1"]);
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
    /// Starts the window on `display` in English; `args` adds flags such
    /// as `--nick`, and wins over the usual ones.
    fn start(display: &Display, server: &TestServer, state_dir: &Path, args: &[&str]) -> Window {
        let english = [&["--lang", "en"], args].concat();
        Window::start_with_env(display, server.port, &server.key_file(), state_dir, &english, &[])
    }

    /// Starts the window with these flags and environment variables, and
    /// no locale variables from the test's own environment.
    fn start_with_env(
        display: &Display,
        port: u16,
        key_file: &Path,
        state_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Window {
        fs::create_dir_all(state_dir).unwrap();
        let (event_log, stderr) = (state_dir.join("events.log"), state_dir.join("stderr.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat-client"));
        command.args(["--port", &port.to_string(), "--retry-secs", "0.2"]).args(args);
        command.arg("--key-file").arg(key_file).arg("--state-dir").arg(state_dir);
        command.arg("--event-log").arg(&event_log).env("DISPLAY", &display.name);
        for name in ["LC_ALL", "LC_MESSAGES", "LANG"] {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(File::create(&stderr).unwrap());
        Window { child: spawn(&mut command, "chat-client"), event_log, stderr }
    }

    /// Every line of the event log so far.
    fn log(&self) -> Vec<String> {
        fs::read_to_string(&self.event_log).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// Waits until the event log has a line for which `wanted` holds, and
    /// returns the first such line.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.log();
            if let Some(line) = log.iter().find(|line| wanted(line)) {
                return line.clone();
            }
            let exited = self.child.0.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let stderr = fs::read_to_string(&self.stderr).unwrap_or_default();
                panic!(
                    "the window never showed {what} (exit: {exited:?}); it showed:\n{}\nstderr:\n{stderr}",
                    log.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the event log has a line that starts with `start` and
    /// ends with `end`.
    fn expect(&mut self, start: &str, end: &str) {
        self.wait_for(&format!("{start:?}…{end:?}"), |line| line.starts_with(start) && line.ends_with(end));
    }

    /// [`Window::view`] once it has stayed the same for half a second
    /// (the window logs it four times a second when it changes).
    fn settled_view(&self) -> (usize, usize) {
        let deadline = Instant::now() + PATIENCE;
        let mut last = self.view();
        loop {
            thread::sleep(Duration::from_millis(500));
            let now = self.view();
            if let Some(view) = now.filter(|_| now == last) {
                return view;
            }
            assert!(Instant::now() < deadline, "the view never settled: {now:?}");
            last = now;
        }
    }

    /// The fields of the last `window view` line: the first line in view
    /// and how many lines there are.
    fn view(&self) -> Option<(usize, usize)> {
        let log = self.log();
        let last = log.iter().rev().find(|line| line.starts_with("window\tview\t"))?;
        let fields: Vec<&str> = last.split('\t').collect();
        Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
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

/// The number in "next try in N s", from a `window status` line.
fn countdown(line: &str) -> Option<u64> {
    let rest = line.split("next try in ").nth(1)?;
    rest.split(' ').next()?.parse().ok()
}

#[test]
fn a_message_typed_while_the_server_is_down_shows_pending_then_confirmed_and_the_status_counts_down_in_red() {
    let _turn = DISPLAY_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = temp_dir("pending");
    let server = TestServer::start();
    let port = server.port;
    let display = Display::open();
    let mut window =
        Window::start(&display, &server, &dir.join("gui_ana"), &["--nick", "gui_ana", "--retry-secs", "3"]);
    window.expect("window\tstatus\tgreen\tconnected to 127.0.0.1:", " as gui_ana");

    let server_dir = server.kill();
    window.wait_for("a red status counting down", |line| {
        line.starts_with("window\tstatus\tred\toffline · next try in ") && countdown(line).is_some()
    });
    display.type_line("gui_ana", "typed while the server is down");
    let pending = window.wait_for("the typed message, greyed", |line| {
        line.starts_with("window\tline\t") && line.ends_with(": typed while the server is down  · sending…")
    });
    let fields: Vec<&str> = pending.split('\t').collect();
    assert_eq!(fields[3], "sending", "{pending}");
    // The countdown goes down, a second at a time, in red, with the message waiting.
    let waiting =
        |line: &str| line.starts_with("window\tstatus\tred\t") && line.contains("1 message waiting to be sent");
    window.wait_for("the countdown with the message waiting", |line| waiting(line) && countdown(line) == Some(2));
    window.wait_for("the countdown at 1 s", |line| waiting(line) && countdown(line) == Some(1));
    let red: Vec<u64> = window
        .log()
        .iter()
        .filter(|line| line.starts_with("window\tstatus\tred\t"))
        .filter_map(|line| countdown(line))
        .collect();
    assert!(red.windows(2).all(|pair| pair[0] >= pair[1] || pair[1] == 3), "the countdown only goes down: {red:?}");
    let reason = window.wait_for("why it is offline, in plain words", |line| {
        line.starts_with("window\tstatus\t") && line.contains("server not reachable at 127.0.0.1:")
    });
    assert!(reason.contains("(is the server running?)") && !reason.contains("os error"), "{reason}");

    let _server = TestServer::start_in(server_dir, port);
    window.expect("window\tstatus\tgreen\tconnected to 127.0.0.1:", " as gui_ana");
    // The same line, now an ordinary message.
    window.expect(&format!("window\tline\t{}\tmessage\t", fields[2]), ": typed while the server is down");
    window.expect("msg\t", "\tgui_ana\t*\ttyped while the server is down");
    display.type_line("gui_ana", "/quit");
    assert!(window.child.wait_exit("the window").success());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scrolled_up_the_view_stays_put_during_a_burst_and_the_marker_jumps_to_the_end() {
    let _turn = DISPLAY_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = temp_dir("scroll");
    let server = TestServer::start();
    let display = Display::open();
    let mut bob = Headless::start(&server, "bob", &dir);
    bob.expect("connected\tbob", "");
    let mut window = Window::start(&display, &server, &dir.join("gui_ana"), &["--nick", "gui_ana"]);
    window.expect("connected\tgui_ana", "");
    for number in 1..=60 {
        bob.say(&format!("first burst {number}"));
    }
    window.expect("msg\t", "\tfirst burst 60");
    let ana = display.window_id("gui_ana");
    display.wheel_up(&ana, (300, 200), 10);
    window.wait_for("the view scrolled up", |line| {
        line.starts_with("window\tview\t")
            && line.split('\t').nth(2).and_then(|first| first.parse::<usize>().ok()) < Some(20)
    });
    let (first, lines) = window.settled_view();

    for number in 1..=40 {
        bob.say(&format!("second burst {number}"));
    }
    window.expect("msg\t", "\tsecond burst 40");
    let marker = window.wait_for("the marker", |line| line.starts_with("window\tmarker\tshown\t"));
    window.wait_for("the view after the burst", |line| {
        line.starts_with("window\tview\t") && line.ends_with(&format!("\t{}", lines + 40))
    });
    assert_eq!(window.view(), Some((first, lines + 40)), "the view did not move");

    let place: Vec<i32> = marker.split('\t').skip(3).map(|field| field.parse().unwrap()).collect();
    display.click(&ana, (place[0] + place[2] / 2, place[1] + place[3] / 2));
    window.wait_for("the marker gone", |line| line == "window\tmarker\thidden");
    window.wait_for("the end in view", |line| {
        line.starts_with("window\tview\t")
            && line.split('\t').nth(2).and_then(|first| first.parse::<usize>().ok()) > Some(lines)
    });
    display.type_line("gui_ana", "/quit");
    assert!(window.child.wait_exit("the window").success());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_window_speaks_spanish_under_a_spanish_locale() {
    let _turn = DISPLAY_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = temp_dir("spanish");
    let server = TestServer::start();
    let display = Display::open();
    let state = dir.join("gui_es");
    let spanish = [("LANG", "es_ES.UTF-8")];
    let mut window =
        Window::start_with_env(&display, server.port, &server.key_file(), &state, &["--nick", "gui_es"], &spanish);
    window.expect("window\tstatus\tgreen\tconectado a 127.0.0.1:", " como gui_es");
    display.window_id("gui_es .* conectado .* hmac-chat");
    let mut bob = Headless::start(&server, "bob", &dir);
    bob.expect("connected\tbob", "");
    window.wait_for("bob's arrival in Spanish", |line| {
        line.starts_with("window\tline\t") && line.ends_with(" bob ha entrado")
    });
    display.type_line("gui_es", "/mgs bob hola");
    window.wait_for("the mistake explained in Spanish", |line| {
        line.starts_with("window\tline\t")
            && line.contains("\tproblem\t")
            && line.contains("orden desconocida /mgs; /help muestra las órdenes")
    });
    display.type_line("gui_es", "/quit");
    assert!(window.child.wait_exit("the window").success());
    // The event lines stay English and machine-readable.
    assert!(window.log().iter().any(|line| line == "connected\tgui_es"));
    fs::remove_dir_all(&dir).unwrap();
}

impl Display {
    /// Gives the keyboard to the window whose title matches `title` and
    /// presses `key` (an xdotool key name, such as `F12` or `Up`).
    fn press(&self, title: &str, key: &str) {
        let window = self.window_id(title);
        self.xdotool(&["windowfocus", "--sync", &window]);
        self.xdotool(&["key", key]);
    }
}

#[test]
fn f12_opens_the_protocol_pane_which_lists_each_frame_as_it_goes_and_shows_its_bytes() {
    let _turn = DISPLAY_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = temp_dir("pane");
    let server = TestServer::start();
    let display = Display::open();
    let mut window = Window::start(&display, &server, &dir.join("gui_ana"), &["--nick", "gui_ana"]);
    window.expect("connected\tgui_ana", "");
    // Nothing is traced while the pane is closed.
    display.type_line("gui_ana", "before the pane");
    window.expect("msg\t", "\tgui_ana\t*\tbefore the pane");

    display.press("gui_ana", "F12");
    window.expect("window\tpane\tshown", "");
    display.type_line("gui_ana", "watch this frame");
    let is_send = |line: &str| {
        line.starts_with("window\tframe\tsent\t")
            && line.contains(" → 127.0.0.1:")
            && line.contains(" SEND len=69 client_id=2 to=* text=\"watch this frame\" tag=")
            && line.ends_with(" ✓")
    };
    window.wait_for("the SEND in the pane", is_send);
    let is_sent =
        |line: &str| line.starts_with("window\tframe\treceived\t") && line.contains(" SENT len=57 client_id=2 ");
    window.wait_for("its SENT in the pane", is_sent);
    let log = window.log();
    let frames: Vec<&String> = log.iter().filter(|line| line.starts_with("window\tframe\t")).collect();
    assert!(frames[0].starts_with("window\tframe\tconnection\t— connection 1"), "{frames:?}");
    assert!(!frames.iter().any(|line| line.contains("before the pane")), "{frames:?}");
    let (send, sent) = (log.iter().position(|line| is_send(line)), log.iter().position(|line| is_sent(line)));
    assert!(send < sent, "the SEND is listed before its SENT");

    // The arrow keys select a frame; its bytes are shown by part.
    display.press("hmac-chat: protocol", "Down");
    let bytes = window.wait_for("a frame's bytes", |line| line.starts_with("window\tbytes\t"));
    assert!(bytes.contains("\tlength 0..4 seq 4..12 kind 12..13 payload 13.."), "{bytes}");

    // Closed again, the pane lists nothing more.
    display.press("hmac-chat: protocol", "F12");
    window.expect("window\tpane\thidden", "");
    display.type_line("gui_ana", "after the pane");
    window.expect("msg\t", "\tgui_ana\t*\tafter the pane");
    assert!(!window.log().iter().any(|line| line.starts_with("window\tframe\t") && line.contains("after the pane")));
    display.type_line("gui_ana", "/quit");
    assert!(window.child.wait_exit("the window").success());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_key_file_is_explained_in_the_dialog_whose_key_path_can_be_changed() {
    let _turn = DISPLAY_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = temp_dir("key");
    let server = TestServer::start();
    let display = Display::open();
    let missing = dir.join("missing.key");
    let state = dir.join("gui_key");
    let args = ["--nick", "gui_key", "--lang", "en"];
    let mut window = Window::start_with_env(&display, server.port, &missing, &state, &args, &[]);
    let note = window.wait_for("the dialog, saying why", |line| line.starts_with("window\tdialog\t"));
    let said = format!("window\tdialog\tno key file at {}: copy the server's chat.key there", missing.display());
    assert!(note.starts_with(&said), "{note}");
    assert!(!note.contains("make") && !note.contains("new key"), "{note}");
    // No connection is tried without a key.
    assert!(!window.log().iter().any(|line| line.starts_with("disconnected\t") || line.starts_with("connected\t")));

    // The key field has the keyboard, its text selected: typing replaces it.
    display.type_line("hmac-chat: connect", server.key_file().to_str().unwrap());
    window.expect("connected\tgui_key", "");
    display.type_line("gui_key", "/quit");
    assert!(window.child.wait_exit("the window").success());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_window_shows_what_a_server_should_not_send_escaped_and_keeps_one_row_per_line() {
    let _turn = DISPLAY_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = temp_dir("odd");
    let key_file = dir.join("chat.key");
    let key = chat_common::keyfile::create_key(&key_file).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    odd_server::serve_odd(listener, key);
    let display = Display::open();
    let args = ["--nick", "gui_odd", "--lang", "en"];
    let mut window = Window::start_with_env(&display, port, &key_file, &dir.join("gui_odd"), &args, &[]);
    window.expect("error\tnine: ", "");
    let shown =
        window.wait_for("the odd error shown", |line| line.starts_with("window\tline\t") && line.contains("nine: "));
    assert!(shown.ends_with("nine: bad\\u{1b}[0m\\u{202e}reason"), "{shown}");
    let lines: Vec<String> = window.log().into_iter().filter(|line| line.starts_with("window\tline\t")).collect();
    for line in &lines {
        // The log's own tabs aside, nothing the rules forbid is drawn.
        assert!(line.chars().all(|c| c == '\t' || !chat_common::validate::is_forbidden_in_text(c)), "{line:?}");
    }
    let drawn = |tag: &str| lines.iter().find(|line| line.contains(tag)).cloned().unwrap_or_default();
    assert!(drawn("four: ").ends_with(" m\\u{430}llory: four: evil\\u{202e}gpj.exe"), "{}", drawn("four: "));
    assert!(drawn("two: ").ends_with(": two: cr\\roverwritten"), "{}", drawn("two: "));
    assert!(drawn("three: ").ends_with(": three: new\\nline\\ttab"), "{}", drawn("three: "));
    assert!(
        drawn("eight: ").ends_with("a\u{301}\u{302}\u{303}\u{304}\\u{305}\\u{306}\\u{307}\\u{308}"),
        "{}",
        drawn("eight: ")
    );
    assert!(drawn(" joined").contains("new\\nline joined"), "{}", drawn(" joined"));
    window.child.0.kill().unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn past_the_servers_list_limit_the_window_counts_the_others_and_does_not_announce_them() {
    let _turn = DISPLAY_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = temp_dir("listed");
    let server = TestServer::start_with(&["--max-listed", "1"]);
    let display = Display::open();
    let mut bob = Headless::start(&server, "bob", &dir);
    bob.expect("connected\tbob", "");
    let mut window = Window::start(&display, &server, &dir.join("gui_ana"), &["--nick", "gui_ana"]);
    window.wait_for("the count under the label", |line| line == "window\tusers\tOnline, and 1 more\tbob");
    bob.expect("unlisted\t1", "");

    // bob leaves: gui_ana moves into the list, which is whole again.
    bob.say("/quit");
    window.wait_for("the list without a count", |line| line == "window\tusers\tOnline\tgui_ana");
    let announced: Vec<String> = window.log().into_iter().filter(|line| line.contains("\tpresence\t")).collect();
    assert!(announced.is_empty(), "a room past the limit announces no one: {announced:?}");
    fs::remove_dir_all(&dir).unwrap();
}
