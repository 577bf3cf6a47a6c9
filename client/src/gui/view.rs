//! The widgets, laid out with `Flex`: the start dialog and the chat
//! window (conversation and users, the "new messages below" marker, the
//! bar that offers to send a failed message again, the input line with its
//! hint and Send button, and the status row with its coloured indicator
//! and the protocol pane's button).
//! No decisions here: callbacks only emit a [`Message`], and `app.rs` says
//! what to show, in the language of the [`Texts`] given.

use fltk::app::{self, Sender};
use fltk::browser::HoldBrowser;
use fltk::button::{Button, ReturnButton};
use fltk::draw;
use fltk::enums::{Align, CallbackTrigger, Color, Event, Font, FrameType, Key};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::input::Input;
use fltk::prelude::*;
use fltk::window::Window;

use chat_common::validate::nick_key;

use super::Message;
use super::format::{label_text, name_colour};
use super::status::{Indicator, elide};
use super::strings::{S, Texts};
use super::transcript::{PALETTE, TEXT_SIZE, Transcript};

/// The status row's font size.
const STATUS_SIZE: i32 = 13;
/// The status row's height for one line of text; it takes two when needed.
const STATUS_ROW: i32 = 20;

/// The window callback also fires on Escape; only the close button closes.
fn on_close(window: &mut Window, sender: &Sender<Message>) {
    let sender = sender.clone();
    window.set_callback(move |_| {
        if app::event() == Event::Close {
            sender.send(Message::Close)
        }
    });
}

/// F12 anywhere in the window opens or closes the protocol pane (none of
/// its widgets takes that key).
pub fn f12_toggles_the_pane(window: &mut Window, sender: &Sender<Message>) {
    let keys = sender.clone();
    window.handle(move |_, event| {
        let f12 = matches!(event, Event::KeyDown | Event::Shortcut) && app::event_key() == Key::F12;
        if f12 {
            keys.send(Message::TogglePane);
        }
        f12
    });
}

fn input(label: &str) -> Input {
    let mut input = Input::default().with_label(label);
    input.set_text_size(TEXT_SIZE);
    input.set_label_size(TEXT_SIZE);
    input
}

fn button(label: &str, sender: &Sender<Message>, message: Message) -> Button {
    let mut button = Button::default().with_label(label);
    button.set_label_size(TEXT_SIZE - 1);
    button.emit(sender.clone(), message);
    button
}

/// The start dialog: nickname, server, key file, why we ask again, Connect.
pub struct Dialog {
    window: Window,
    nick: Input,
    server: Input,
    key_file: Input,
    note: Frame,
}

/// Which of the dialog's inputs gets the keyboard, its text selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Nick,
    KeyFile,
}

impl Dialog {
    pub fn new(sender: &Sender<Message>, texts: Texts) -> Dialog {
        let mut window = Window::default().with_size(560, 300).with_label(texts.get(S::DialogTitle)).center_screen();
        let mut column = Flex::default_fill().column();
        // The left margin holds the inputs' labels.
        column.set_margins(140, 20, 20, 16);
        column.set_pad(10);
        let (nick, server) = (input(texts.get(S::Nickname)), input(texts.get(S::Server)));
        let key_file = input(texts.get(S::KeyFile));
        column.fixed(&nick, 32);
        column.fixed(&server, 32);
        column.fixed(&key_file, 32);
        let mut note = Frame::default().with_align(Align::Left | Align::Inside | Align::Wrap);
        note.set_label_color(Color::from_hex(0xb00020));
        let mut connect = ReturnButton::default().with_label(texts.get(S::Connect));
        column.fixed(&connect, 34);
        column.end();
        window.end();
        connect.emit(sender.clone(), Message::Connect);
        on_close(&mut window, sender);
        // Open before connecting, the pane shows the handshake too.
        f12_toggles_the_pane(&mut window, sender);
        Dialog { window, nick, server, key_file, note }
    }

    /// Shows these values, with `note` saying why we ask (again).
    pub fn ask(&mut self, nick: &str, server: &str, key_file: &str, note: &str, field: Field) {
        self.nick.set_value(nick);
        self.server.set_value(server);
        self.key_file.set_value(key_file);
        self.say(note, field);
    }

    /// Keeps the values typed, with `note` saying what is wrong with them.
    pub fn say(&mut self, note: &str, field: Field) {
        self.note.set_label(&label_text(note));
        self.window.show();
        let input = match field {
            Field::Nick => &mut self.nick,
            Field::KeyFile => &mut self.key_file,
        };
        let _ = input.take_focus();
        // Selected, so typing replaces a refused value.
        let _ = input.set_position(0);
        let _ = input.set_mark(input.value().len() as i32);
    }

    /// The nickname, the server and the key file typed.
    pub fn values(&self) -> (String, String, String) {
        (self.nick.value().trim().to_owned(), self.server.value(), self.key_file.value().trim().to_owned())
    }

    pub fn hide(&mut self) {
        self.window.hide();
    }
}

/// The chat window.
pub struct ChatWindow {
    window: Window,
    column: Flex,
    pub transcript: Transcript,
    users: HoldBrowser,
    /// "new messages below ↓": shown while lines arrive out of view.
    marker: Button,
    /// The oldest failed message and its two buttons.
    failed_row: Flex,
    failed_label: Frame,
    input: Input,
    status_row: Flex,
    indicator: Frame,
    status: Frame,
}

impl ChatWindow {
    pub fn new(sender: &Sender<Message>, texts: Texts) -> ChatWindow {
        let mut window = Window::default().with_size(900, 580).center_screen();
        window.size_range(480, 300, 0, 0);
        let mut column = Flex::default_fill().column();
        // The top margin holds the users list's label.
        column.set_margins(8, 26, 8, 4);
        column.set_pad(6);

        let mut row = Flex::default().row();
        row.set_pad(6);
        let transcript = Transcript::new();
        let mut users = HoldBrowser::default().with_label(texts.get(S::Online)).with_align(Align::TopLeft);
        users.set_text_size(TEXT_SIZE);
        row.fixed(&users, 150);
        row.end();

        let mut marker = button(texts.get(S::NewBelow), sender, Message::JumpToEnd);
        marker.set_color(Color::from_hex(0x1f62b0));
        marker.set_label_color(Color::White);
        column.fixed(&marker, 26);
        marker.hide();

        let mut failed_row = Flex::default().row();
        failed_row.set_pad(6);
        let mut failed_label = Frame::default().with_align(Align::Left | Align::Inside | Align::Clip);
        failed_label.set_label_color(Color::from_hex(0xb00020));
        failed_label.set_label_size(TEXT_SIZE - 1);
        let send_again = button(texts.get(S::SendAgain), sender, Message::SendAgain);
        let discard = button(texts.get(S::Discard), sender, Message::Discard);
        failed_row.fixed(&send_again, 110);
        failed_row.fixed(&discard, 100);
        failed_row.end();
        column.fixed(&failed_row, 30);
        failed_row.hide();

        let mut input_row = Flex::default().row();
        input_row.set_pad(6);
        let mut input = input("");
        // A plain button: Enter in the input sends already.
        let mut send = Button::default().with_label(texts.get(S::Send));
        send.set_label_size(TEXT_SIZE - 1);
        input_row.fixed(&send, 100);
        input_row.end();
        column.fixed(&input_row, 34);

        let mut status_row = Flex::default().row();
        status_row.set_pad(4);
        let mut indicator = Frame::default();
        status_row.fixed(&indicator, 14);
        let mut status = Frame::default().with_align(Align::Left | Align::Inside | Align::Wrap | Align::Clip);
        status.set_label_size(STATUS_SIZE);
        let mut frames = button(texts.get(S::PaneButton), sender, Message::TogglePane);
        frames.set_label_size(STATUS_SIZE - 1);
        frames.set_frame(FrameType::FlatBox);
        frames.set_label_color(Color::from_hex(0x1f62b0));
        frames.clear_visible_focus();
        status_row.fixed(&frames, 100);
        status_row.end();
        column.fixed(&status_row, STATUS_ROW);
        column.end();
        window.end();
        window.resizable(&column);

        // The hint, drawn over the empty input, cut with "…" if the window is narrow.
        let hint = texts.get(S::Placeholder);
        input.draw(move |input| {
            if input.value().is_empty() {
                draw::set_font(Font::HelveticaItalic, TEXT_SIZE);
                let fits = elide(hint, f64::from(input.w() - 16), draw::width);
                draw::set_draw_color(Color::from_hex(0x8a8a8a));
                let shown = fits.as_deref().unwrap_or(hint);
                draw::draw_text2(shown, input.x() + 8, input.y(), input.w() - 16, input.h(), Align::Left);
            }
        });
        input.set_trigger(CallbackTrigger::EnterKeyAlways);
        input.emit(sender.clone(), Message::Send);
        send.emit(sender.clone(), Message::Send);
        let keys = sender.clone();
        input.handle(move |_, event| {
            let up = event == Event::KeyDown && app::event_key() == Key::Up;
            if up {
                keys.send(Message::Recall);
            }
            up
        });
        // The indicator: a dot in the frame's colour.
        indicator.set_frame(FrameType::NoBox);
        indicator.draw(|frame| {
            draw::set_draw_color(frame.color());
            draw::draw_pie(frame.x() + 1, frame.y() + frame.h() / 2 - 6, 12, 12, 0.0, 360.0);
        });
        let clicks = sender.clone();
        users.set_callback(move |_| {
            if app::event_clicks() {
                clicks.send(Message::PickUser)
            }
        });
        // Scrolling by wheel, scrollbar or keys may leave or reach the end.
        let scrolls = sender.clone();
        let mut display = transcript.widget().clone();
        display.handle(move |display, event| {
            let keys = event == Event::KeyUp && display.has_focus();
            if keys || matches!(event, Event::MouseWheel | Event::Released | Event::Drag) {
                scrolls.send(Message::Scrolled);
            }
            false
        });
        on_close(&mut window, sender);
        f12_toggles_the_pane(&mut window, sender);
        ChatWindow {
            window,
            column,
            transcript,
            users,
            marker,
            failed_row,
            failed_label,
            input,
            status_row,
            indicator,
            status,
        }
    }

    pub fn show(&mut self) {
        self.window.show();
        let _ = self.input.take_focus();
    }

    pub fn hide(&mut self) {
        self.window.hide();
    }

    pub fn set_title(&mut self, title: &str) {
        self.window.set_label(title);
    }

    /// The status row: the indicator's colour and the sentence, on two
    /// lines if it needs them, shortened with "…" if two are not enough;
    /// the whole of it is then a tooltip.
    pub fn set_status(&mut self, indicator: Indicator, text: &str) {
        let colour = match indicator {
            Indicator::Connected => 0x1e8449,
            Indicator::Connecting => 0xe0a000,
            Indicator::Offline => 0xc0392b,
            Indicator::Closing => 0x909090,
        };
        self.indicator.set_color(Color::from_hex(colour));
        let width = f64::from(self.status.w() - 8);
        let measure = |text: &str| {
            draw::set_font(Font::Helvetica, STATUS_SIZE);
            draw::width(text)
        };
        let (lines, shown) = match self.window.shown() {
            false => (1, None),
            true if measure(text) <= width => (1, None),
            // Wrapping breaks at spaces, so two lines hold a little less than twice one.
            true => (2, elide(text, 1.8 * width, measure)),
        };
        self.status.set_tooltip(if shown.is_some() { text } else { "" });
        self.status.set_label(&label_text(shown.as_deref().unwrap_or(text)));
        let height = STATUS_ROW + (lines - 1) * (STATUS_SIZE + 4);
        if self.status_row.h() != height {
            self.column.fixed(&self.status_row, height);
            self.relayout();
        }
        self.window.redraw();
    }

    /// The status sentence's width, to fit it again when it changes.
    pub fn status_width(&self) -> i32 {
        self.status.w()
    }

    /// Shows or hides the "new messages below" marker; its place in the
    /// window when shown (for the event log: tests click it).
    pub fn set_marker(&mut self, shown: bool) -> Option<(i32, i32, i32, i32)> {
        if shown != self.marker.visible() {
            if shown {
                self.marker.show()
            } else {
                self.marker.hide()
            }
            self.column.layout();
        }
        shown.then(|| (self.marker.x(), self.marker.y(), self.marker.w(), self.marker.h()))
    }

    /// Shows the oldest failed message with its buttons, or hides the row.
    pub fn set_failed(&mut self, label: Option<&str>) {
        match label {
            Some(label) => {
                self.failed_row.show();
                self.relayout();
                // Cut with "…" to fit; the whole of it is the tooltip.
                let measure = |text: &str| {
                    draw::set_font(Font::Helvetica, TEXT_SIZE - 1);
                    draw::width(text)
                };
                let fits = elide(label, f64::from(self.failed_label.w() - 8), measure);
                self.failed_label.set_label(&label_text(fits.as_deref().unwrap_or(label)));
                self.failed_label.set_tooltip(label);
            }
            None => {
                self.failed_row.hide();
                self.relayout();
            }
        }
    }

    /// Lays the rows out again after one appeared or went, keeping the
    /// end of the conversation in view if it was followed.
    fn relayout(&mut self) {
        self.column.layout();
        self.window.redraw();
        if self.transcript.follow {
            self.transcript.scroll_to_end();
        }
    }

    /// Shows the online users, each name in its colour, `me` in bold.
    /// Shows `users` (`me` in bold) under `label`.
    pub fn set_users(&mut self, users: &[String], me: &str, label: &str) {
        if self.users.label() != label {
            self.users.set_label(label);
            // The label is drawn above the list, on the window.
            self.window.redraw();
        }
        self.users.clear();
        for nick in users {
            let bold = if nick_key(nick) == nick_key(me) { "@b" } else { "" };
            let colour = Color::from_hex(PALETTE[name_colour(nick)]).bits();
            // `@.` ends the format codes, so the name shows as it is.
            self.users.add(&format!("@C{colour}{bold}@.{nick}"));
        }
    }

    /// The 0-based index of the selected user.
    pub fn picked_user(&self) -> Option<usize> {
        usize::try_from(self.users.value()).ok()?.checked_sub(1)
    }

    pub fn input(&self) -> String {
        self.input.value()
    }

    /// Replaces the input's text; the cursor goes to the end.
    pub fn set_input(&mut self, text: &str) {
        self.input.set_value(text);
        // Focus first: taking it while Up is down puts the cursor at the start.
        if !self.input.has_focus() {
            let _ = self.input.take_focus();
        }
        let end = text.len() as i32;
        let _ = self.input.set_position(end);
        let _ = self.input.set_mark(end);
    }

    /// Gives the keyboard back to the input (after a button took it).
    pub fn focus_input(&mut self) {
        let _ = self.input.take_focus();
    }

    /// Keeps the input's text, selected, so the next keystroke replaces
    /// it instead of adding to it.
    pub fn select_input(&mut self) {
        let _ = self.input.take_focus();
        let _ = self.input.set_position(0);
        let _ = self.input.set_mark(self.input.value().len() as i32);
    }
}
