//! The widgets: the start dialog and the chat window, laid out with
//! `Flex`, and how a [`Line`] is drawn (a text buffer with a parallel style
//! buffer, one style byte per text byte). No decisions here: callbacks only
//! emit a [`Message`], and `app.rs` says what to show.

use fltk::app::{self, Sender};
use fltk::browser::HoldBrowser;
use fltk::button::{Button, ReturnButton};
use fltk::enums::{Align, CallbackTrigger, Color, Event, Font, FrameType, Key};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::input::Input;
use fltk::prelude::*;
use fltk::text::{StyleTableEntryExt, TextAttr, TextBuffer, TextDisplay, WrapMode};
use fltk::window::Window;

use chat_common::validate::nick_key;

use super::app::{Message, Recall};
use super::format::{Line, PALETTE_LEN, Role, Tone, label_text, name_colour};

/// Text size of the conversation, the input and the users list.
const TEXT_SIZE: i32 = 15;
/// The conversation keeps at most this many lines; older ones are dropped.
const MAX_LINES: i32 = 5000;

/// Name colours, dark enough to read on white and on the tinted lines.
const PALETTE: [(u8, u8, u8); PALETTE_LEN] = [
    (0xc0, 0x39, 0x2b), // red
    (0x1f, 0x62, 0xb0), // blue
    (0x1e, 0x84, 0x49), // green
    (0x8e, 0x44, 0xad), // purple
    (0xc8, 0x5a, 0x00), // orange
    (0x11, 0x8c, 0x8c), // teal
    (0xb0, 0x2a, 0x6e), // magenta
    (0x6d, 0x5d, 0x00), // olive
];

const TONES: [Tone; 3] = [Tone::Public, Tone::Own, Tone::Direct];
/// Roles other than names, in style-table order; names follow.
const PLAIN_ROLES: [Role; 5] = [Role::Time, Role::Text, Role::Info, Role::Problem, Role::Separator];
const ROLES_PER_TONE: usize = PLAIN_ROLES.len() + PALETTE_LEN;

fn rgb((red, green, blue): (u8, u8, u8)) -> Color {
    Color::from_rgb(red, green, blue)
}

/// The style byte of a part: `'A'` + its index in [`style_table`].
fn style_byte(tone: Tone, role: Role) -> u8 {
    let tone_index = TONES.iter().position(|&t| t == tone).unwrap_or(0);
    let role_index = match role {
        Role::Name(colour) => PLAIN_ROLES.len() + colour % PALETTE_LEN,
        other => PLAIN_ROLES.iter().position(|&r| r == other).unwrap_or(0),
    };
    // At most 3 × 13 = 39 styles, so the byte stays ASCII.
    b'A' + (tone_index * ROLES_PER_TONE + role_index) as u8
}

/// Every (tone, role) style, in [`style_byte`] order.
fn style_table() -> Vec<StyleTableEntryExt> {
    let mut table = Vec::new();
    for tone in TONES {
        let (attr, bgcolor) = match tone {
            Tone::Public => (TextAttr::None, Color::White),
            // The background runs to the right edge, so whole lines are tinted.
            Tone::Own => (TextAttr::BgColorExt, Color::from_rgb(0xe6, 0xf0, 0xfb)),
            Tone::Direct => (TextAttr::BgColorExt, Color::from_rgb(0xfc, 0xf1, 0xd6)),
        };
        let roles = PLAIN_ROLES.into_iter().chain((0..PALETTE_LEN).map(Role::Name));
        for role in roles {
            let (color, font) = match role {
                Role::Time => (Color::from_rgb(0x80, 0x80, 0x80), Font::Helvetica),
                Role::Text => (Color::from_rgb(0x20, 0x20, 0x20), Font::Helvetica),
                Role::Info => (Color::from_rgb(0x70, 0x70, 0x70), Font::HelveticaItalic),
                Role::Problem => (Color::from_rgb(0xb0, 0x00, 0x20), Font::Helvetica),
                Role::Separator => (Color::from_rgb(0x1f, 0x62, 0xb0), Font::HelveticaBoldItalic),
                Role::Name(colour) => (rgb(PALETTE[colour % PALETTE_LEN]), Font::HelveticaBold),
            };
            table.push(StyleTableEntryExt { color, font, size: TEXT_SIZE, attr, bgcolor });
        }
    }
    table
}

/// The window callback fires for Escape too; only the close button closes.
fn on_close(window: &mut Window, sender: Sender<Message>) {
    window.set_callback(move |_| {
        if app::event() == Event::Close {
            sender.send(Message::Close)
        }
    });
}

/// A left-aligned caption.
fn caption(text: &str) -> Frame {
    let mut frame = Frame::default().with_label(text).with_align(Align::Left | Align::Inside);
    frame.set_label_size(14);
    frame
}

/// The start dialog: nickname, server, a line for what went wrong, Connect.
pub struct Dialog {
    window: Window,
    nick: Input,
    server: Input,
    note: Frame,
    connect: ReturnButton,
}

impl Dialog {
    /// Builds the dialog, hidden.
    pub fn new(sender: Sender<Message>) -> Dialog {
        let mut window = Window::default().with_size(400, 290).with_label("hmac-chat: connect").center_screen();
        let mut column = Flex::default_fill().column();
        column.set_margins(20, 16, 20, 16);
        column.set_pad(6);
        let mut title = Frame::default().with_label("Join the chat").with_align(Align::Left | Align::Inside);
        title.set_label_size(20);
        title.set_label_font(Font::HelveticaBold);
        column.fixed(&title, 34);
        column.fixed(&caption("Nickname"), 20);
        let mut nick = Input::default();
        nick.set_text_size(TEXT_SIZE);
        column.fixed(&nick, 32);
        column.fixed(&caption("Server (host:port)"), 20);
        let mut server = Input::default();
        server.set_text_size(TEXT_SIZE);
        column.fixed(&server, 32);
        let mut note = Frame::default().with_align(Align::Left | Align::Inside | Align::Wrap);
        note.set_label_size(14);
        let mut buttons = Flex::default().row();
        Frame::default();
        let mut connect = ReturnButton::default().with_label("Connect");
        connect.set_label_size(TEXT_SIZE);
        buttons.fixed(&connect, 120);
        buttons.end();
        column.fixed(&buttons, 34);
        column.end();
        window.end();
        connect.emit(sender, Message::Connect);
        on_close(&mut window, sender);
        Dialog { window, nick, server, note, connect }
    }

    /// Shows the dialog with these values and `note` (why we ask again).
    pub fn ask(&mut self, nick: &str, server: &str, note: &str) {
        self.nick.set_value(nick);
        self.server.set_value(server);
        self.note.set_label(&label_text(note));
        self.note.set_label_color(Color::from_rgb(0xb0, 0x00, 0x20));
        for widget in [self.nick.as_base_widget(), self.server.as_base_widget(), self.connect.as_base_widget()] {
            widget.clone().activate();
        }
        self.window.show();
        let _ = self.nick.take_focus();
        // Selected, so typing replaces a rejected nickname.
        let _ = self.nick.set_position(0);
        let _ = self.nick.set_mark(nick.len() as i32);
    }

    /// Greys the dialog out while the first connection is tried.
    pub fn wait(&mut self, note: &str) {
        self.note.set_label(&label_text(note));
        self.note.set_label_color(Color::from_rgb(0x50, 0x50, 0x50));
        for widget in [self.nick.as_base_widget(), self.server.as_base_widget(), self.connect.as_base_widget()] {
            widget.clone().deactivate();
        }
    }

    /// The nickname and server typed.
    pub fn values(&self) -> (String, String) {
        (self.nick.value().trim().to_owned(), self.server.value())
    }

    pub fn hide(&mut self) {
        self.window.hide();
    }
}

/// The chat window: conversation and users side by side, the input line,
/// the status bar.
pub struct ChatWindow {
    window: Window,
    conversation: TextDisplay,
    /// The conversation's text.
    text: TextBuffer,
    /// One style byte per byte of `text`.
    styles: TextBuffer,
    /// Lines in `text`, counted as they are added rather than recounted.
    lines: i32,
    users: HoldBrowser,
    input: Input,
    status: Frame,
}

impl ChatWindow {
    /// Builds the window, hidden.
    pub fn new(sender: Sender<Message>) -> ChatWindow {
        let mut window = Window::default().with_size(900, 580).center_screen();
        window.size_range(480, 300, 0, 0);
        let mut column = Flex::default_fill().column();
        column.set_margin(8);
        column.set_pad(6);

        let mut body = Flex::default().row();
        body.set_pad(6);
        let text = TextBuffer::default();
        let styles = TextBuffer::default();
        let mut conversation = TextDisplay::default();
        conversation.set_buffer(text.clone());
        conversation.set_highlight_data_ext(styles.clone(), style_table());
        conversation.set_text_size(TEXT_SIZE);
        conversation.wrap_mode(WrapMode::AtBounds, 0);
        conversation.set_color(Color::White);
        let mut side = Flex::default().column();
        side.set_pad(2);
        let online = caption("Online");
        side.fixed(&online, 22);
        let mut users = HoldBrowser::default();
        users.set_text_size(TEXT_SIZE);
        users.set_color(Color::White);
        side.end();
        body.fixed(&side, 170);
        body.end();

        let mut bottom = Flex::default().row();
        bottom.set_pad(6);
        let mut input = Input::default();
        input.set_text_size(TEXT_SIZE);
        let mut send = Button::default().with_label("Send");
        send.set_label_size(TEXT_SIZE);
        bottom.fixed(&send, 90);
        bottom.end();
        column.fixed(&bottom, 34);

        let mut status = Frame::default().with_align(Align::Left | Align::Inside);
        status.set_label_size(13);
        status.set_label_color(Color::from_rgb(0x40, 0x40, 0x40));
        status.set_frame(FrameType::FlatBox);
        column.fixed(&status, 20);
        column.end();
        window.end();
        window.resizable(&column);

        input.set_trigger(CallbackTrigger::EnterKeyAlways);
        input.emit(sender, Message::Send);
        send.emit(sender, Message::Send);
        input.handle(move |_, event| match (event, app::event_key()) {
            (Event::KeyDown, Key::Up) => {
                sender.send(Message::Recall(Recall::Older));
                true
            }
            (Event::KeyDown, Key::Down) => {
                sender.send(Message::Recall(Recall::Newer));
                true
            }
            _ => false,
        });
        users.set_callback(move |_| {
            if app::event_clicks() {
                sender.send(Message::PickUser)
            }
        });
        on_close(&mut window, sender);
        ChatWindow { window, conversation, text, styles, lines: 0, users, input, status }
    }

    pub fn show(&mut self) {
        self.window.show();
        self.scroll_to_end();
        let _ = self.input.take_focus();
    }

    pub fn hide(&mut self) {
        self.window.hide();
    }

    pub fn set_title(&mut self, title: &str) {
        self.window.set_label(title);
    }

    pub fn set_status(&mut self, status: &str) {
        self.status.set_label(&label_text(status));
    }

    /// Empties the conversation and the users list, for a new nickname.
    pub fn clear(&mut self) {
        self.text.set_text("");
        self.styles.set_text("");
        self.lines = 0;
        self.users.clear();
    }

    /// Whether the last line is on screen, i.e. the user has not scrolled up.
    fn at_end(&self) -> bool {
        // position_to_xy gives (0, 0) for a position scrolled out of view.
        self.text.length() == 0 || self.conversation.position_to_xy(self.text.length()) != (0, 0)
    }

    fn scroll_to_end(&mut self) {
        self.conversation.set_insert_position(self.text.length());
        self.conversation.show_insert_position();
    }

    /// Adds a line at the bottom; follows it if the view was at the end.
    pub fn append(&mut self, line: &Line) {
        let follow = !self.window.shown() || self.at_end();
        let (mut text, mut styles) = (String::new(), String::new());
        if self.lines > 0 {
            // The newline ends the previous line; its style does not show.
            text.push('\n');
            styles.push(char::from(style_byte(Tone::Public, Role::Text)));
        }
        for (role, part) in &line.parts {
            text.push_str(part);
            let style = char::from(style_byte(line.tone, *role));
            styles.extend(std::iter::repeat_n(style, part.len()));
        }
        self.text.append(&text);
        self.styles.append(&styles);
        self.lines += 1;
        if self.lines > MAX_LINES {
            let first_line_end = self.text.line_end(0) + 1;
            self.text.remove(0, first_line_end);
            self.styles.remove(0, first_line_end);
            self.lines -= 1;
        }
        if follow {
            self.scroll_to_end();
        }
    }

    /// Shows the online users, `me` in bold, each name in its colour.
    pub fn set_users(&mut self, users: &[String], me: &str) {
        self.users.clear();
        for nick in users {
            let bold = if nick_key(nick) == nick_key(me) { "@b" } else { "" };
            let colour = rgb(PALETTE[name_colour(nick)]).bits();
            // `@.` ends the format codes, so the name is shown as it is.
            self.users.add(&format!("@C{colour}{bold}@.{nick}"));
        }
    }

    /// The 0-based index of the selected user, if any.
    pub fn picked_user(&self) -> Option<usize> {
        usize::try_from(self.users.value()).ok()?.checked_sub(1)
    }

    pub fn input(&self) -> String {
        self.input.value()
    }

    /// Replaces the input's text, with the cursor at the end and focus on it.
    pub fn set_input(&mut self, text: &str) {
        self.input.set_value(text);
        let end = text.len() as i32;
        let _ = self.input.set_position(end);
        let _ = self.input.set_mark(end);
        let _ = self.input.take_focus();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_style_byte_names_its_entry_in_the_table() {
        let table = style_table();
        let mut bytes = Vec::new();
        for tone in TONES {
            for role in PLAIN_ROLES.into_iter().chain((0..PALETTE_LEN).map(Role::Name)) {
                bytes.push(style_byte(tone, role));
            }
        }
        let expected: Vec<u8> = (0..table.len()).map(|index| b'A' + index as u8).collect();
        assert_eq!(bytes, expected);
        // FLTK accepts fewer than 127 styles; style bytes must stay ASCII letters and punctuation.
        assert!(table.len() < 60);
        assert_eq!(table[usize::from(style_byte(Tone::Direct, Role::Name(2)) - b'A')].attr, TextAttr::BgColorExt);
    }
}
