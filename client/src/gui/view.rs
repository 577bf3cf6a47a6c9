//! The widgets, laid out with `Flex`: the start dialog and the chat window.
//! A [`Line`] is drawn through a text buffer and a parallel style buffer
//! (one style byte per text byte). No decisions here: callbacks only emit
//! a [`Message`], and `app.rs` says what to show.

use fltk::app::{self, Sender};
use fltk::browser::HoldBrowser;
use fltk::button::ReturnButton;
use fltk::enums::{Align, CallbackTrigger, Color, Event, Font, Key};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::input::Input;
use fltk::prelude::*;
use fltk::text::{StyleTableEntryExt, TextAttr, TextBuffer, TextDisplay, WrapMode};
use fltk::window::Window;

use chat_common::validate::nick_key;

use super::Message;
use super::format::{Line, PALETTE_LEN, Role, Tone, label_text, name_colour};

const TEXT_SIZE: i32 = 15;
/// Name colours, dark enough to read on white and on the tinted lines.
const PALETTE: [u32; PALETTE_LEN] = [0xc0392b, 0x1f62b0, 0x1e8449, 0x118c8c, 0xc85a00, 0x8e44ad, 0xb02a6e, 0x6d5d00];
/// Styles per tone: the five roles that are not names, then the palette.
const ROLES: usize = 5 + PALETTE_LEN;

/// The style byte of a part: `'A'` + its index in [`style_table`].
fn style(tone: Tone, role: Role) -> char {
    let role = match role {
        Role::Time => 0,
        Role::Text => 1,
        Role::Notice => 2,
        Role::Problem => 3,
        Role::Separator => 4,
        Role::Name(colour) => 5 + colour % PALETTE_LEN,
    };
    // At most 3 × 13 styles, so the byte stays below 127 as FLTK requires.
    char::from(b'A' + (tone as usize * ROLES + role) as u8)
}

/// Every style, in [`style`] order; own and direct lines are tinted to the right edge.
fn style_table() -> Vec<StyleTableEntryExt> {
    let tones = [(TextAttr::None, 0xffffff), (TextAttr::BgColorExt, 0xe6f0fb), (TextAttr::BgColorExt, 0xfcf1d6)];
    let mut roles = vec![(0x808080, Font::Helvetica), (0x202020, Font::Helvetica), (0x707070, Font::HelveticaItalic)];
    roles.extend([(0xb00020, Font::Helvetica), (0x1f62b0, Font::HelveticaBoldItalic)]);
    roles.extend(PALETTE.map(|colour| (colour, Font::HelveticaBold)));
    let entry = |(attr, bgcolor), (color, font)| StyleTableEntryExt {
        color: Color::from_hex(color),
        font,
        size: TEXT_SIZE,
        attr,
        bgcolor: Color::from_hex(bgcolor),
    };
    tones.into_iter().flat_map(|tone| roles.iter().map(move |&role| entry(tone, role))).collect()
}

/// The window callback also fires on Escape; only the close button closes.
fn on_close(window: &mut Window, sender: &Sender<Message>) {
    let sender = sender.clone();
    window.set_callback(move |_| {
        if app::event() == Event::Close {
            sender.send(Message::Close)
        }
    });
}

fn input(label: &str) -> Input {
    let mut input = Input::default().with_label(label);
    input.set_text_size(TEXT_SIZE);
    input.set_label_size(TEXT_SIZE);
    input
}

/// The start dialog: nickname, server, why we ask again, Connect.
pub struct Dialog {
    window: Window,
    nick: Input,
    server: Input,
    note: Frame,
}

impl Dialog {
    pub fn new(sender: &Sender<Message>) -> Dialog {
        let mut window = Window::default().with_size(420, 220).with_label("hmac-chat: connect").center_screen();
        let mut column = Flex::default_fill().column();
        // The left margin holds the inputs' labels.
        column.set_margins(100, 20, 20, 16);
        column.set_pad(10);
        let (nick, server) = (input("Nickname"), input("Server"));
        column.fixed(&nick, 32);
        column.fixed(&server, 32);
        let mut note = Frame::default().with_align(Align::Left | Align::Inside | Align::Wrap);
        note.set_label_color(Color::from_hex(0xb00020));
        let mut connect = ReturnButton::default().with_label("Connect");
        column.fixed(&connect, 34);
        column.end();
        window.end();
        connect.emit(sender.clone(), Message::Connect);
        on_close(&mut window, sender);
        Dialog { window, nick, server, note }
    }

    /// Shows these values, with `note` saying why we ask (again).
    pub fn ask(&mut self, nick: &str, server: &str, note: &str) {
        self.nick.set_value(nick);
        self.server.set_value(server);
        self.note.set_label(&label_text(note));
        self.window.show();
        let _ = self.nick.take_focus();
        // Selected, so typing replaces a refused nickname.
        let _ = self.nick.set_position(0);
        let _ = self.nick.set_mark(nick.len() as i32);
    }

    /// The nickname and the server typed.
    pub fn values(&self) -> (String, String) {
        (self.nick.value().trim().to_owned(), self.server.value())
    }

    pub fn hide(&mut self) {
        self.window.hide();
    }
}

/// The chat window: conversation and users side by side, then the input
/// line and the status bar.
pub struct ChatWindow {
    window: Window,
    conversation: TextDisplay,
    text: TextBuffer,
    /// One style byte per byte of `text`.
    styles: TextBuffer,
    /// We asked to scroll to the end. FLTK scrolls when it next draws, so
    /// until then the end looks scrolled off although the user did nothing.
    end_requested: bool,
    users: HoldBrowser,
    input: Input,
    status: Frame,
}

impl ChatWindow {
    pub fn new(sender: &Sender<Message>) -> ChatWindow {
        let mut window = Window::default().with_size(900, 580).center_screen();
        window.size_range(480, 300, 0, 0);
        let mut column = Flex::default_fill().column();
        // The top margin holds the users list's label.
        column.set_margins(8, 26, 8, 4);
        column.set_pad(6);
        let mut row = Flex::default().row();
        row.set_pad(6);
        let (text, styles) = (TextBuffer::default(), TextBuffer::default());
        let mut conversation = TextDisplay::default();
        conversation.set_buffer(text.clone());
        conversation.set_highlight_data_ext(styles.clone(), style_table());
        conversation.wrap_mode(WrapMode::AtBounds, 0);
        let mut users = HoldBrowser::default().with_label("Online").with_align(Align::TopLeft);
        users.set_text_size(TEXT_SIZE);
        row.fixed(&users, 150);
        row.end();
        let mut input = input("");
        column.fixed(&input, 34);
        let mut status = Frame::default().with_align(Align::Left | Align::Inside);
        status.set_label_size(13);
        column.fixed(&status, 20);
        column.end();
        window.end();
        window.resizable(&column);

        input.set_trigger(CallbackTrigger::EnterKeyAlways);
        input.emit(sender.clone(), Message::Send);
        let keys = sender.clone();
        input.handle(move |_, event| {
            let up = event == Event::KeyDown && app::event_key() == Key::Up;
            if up {
                keys.send(Message::Recall);
            }
            up
        });
        let clicks = sender.clone();
        users.set_callback(move |_| {
            if app::event_clicks() {
                clicks.send(Message::PickUser)
            }
        });
        on_close(&mut window, sender);
        ChatWindow { window, conversation, text, styles, end_requested: false, users, input, status }
    }

    pub fn show(&mut self) {
        self.window.show();
        let _ = self.input.take_focus();
    }

    pub fn hide(&mut self) {
        self.window.hide();
    }

    pub fn set_title_and_status(&mut self, title: &str, status: &str) {
        self.window.set_label(title);
        self.status.set_label(&label_text(status));
    }

    /// Empties the conversation, for a new nickname.
    pub fn clear(&mut self) {
        self.text.set_text("");
        self.styles.set_text("");
    }

    /// Adds a line at the bottom, and scrolls to it unless the user has
    /// scrolled up.
    pub fn append(&mut self, line: &Line) {
        let end = self.text.length();
        // Drawing clears the damage, and with it our pending request;
        // position_to_xy gives (0, 0) for a position scrolled out of view.
        let follow = !self.window.shown()
            || (self.end_requested && self.conversation.damage())
            || self.conversation.position_to_xy(end) != (0, 0);
        // The newline ends the previous line; its style never shows.
        let (mut text, mut styles) = if end > 0 { ("\n".to_owned(), "B".to_owned()) } else { Default::default() };
        for (role, part) in &line.parts {
            text.push_str(part);
            styles.extend(std::iter::repeat_n(style(line.tone, *role), part.len()));
        }
        self.text.append(&text);
        self.styles.append(&styles);
        if follow {
            self.conversation.set_insert_position(self.text.length());
            self.conversation.show_insert_position();
            self.end_requested = true;
        }
    }

    /// Shows the online users, each name in its colour, `me` in bold.
    pub fn set_users(&mut self, users: &[String], me: &str) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_style_byte_names_its_entry_in_the_table() {
        let table = style_table();
        let roles = [Role::Time, Role::Text, Role::Notice, Role::Problem, Role::Separator];
        let roles: Vec<Role> = roles.into_iter().chain((0..PALETTE_LEN).map(Role::Name)).collect();
        let bytes: Vec<char> = [Tone::Public, Tone::Own, Tone::Direct]
            .iter()
            .flat_map(|&tone| roles.iter().map(move |&role| style(tone, role)))
            .collect();
        let expected: Vec<char> = (0..table.len()).map(|index| char::from(b'A' + index as u8)).collect();
        assert_eq!(bytes, expected);
        assert_eq!(style(Tone::Public, Role::Text), 'B', "the newline's style in append");
        assert_eq!(table[usize::from(style(Tone::Direct, Role::Name(2)) as u8 - b'A')].attr, TextAttr::BgColorExt);
        assert_eq!(table[usize::from(style(Tone::Own, Role::Time) as u8 - b'A')].attr, TextAttr::BgColorExt);
    }
}
