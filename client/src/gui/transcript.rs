//! The conversation's widget: the lines of a [`Conversation`] drawn in a
//! `TextDisplay` through a text buffer and a parallel style buffer (one
//! style byte per text byte), each line wrapped by [`wrap`] to the
//! widget's width, and the scrolling that respects a reader: while the
//! user has scrolled up, new lines never move the view (the caller shows
//! a "new messages below" marker instead).
//!
//! FLTK applies a scroll when it next draws, so whether the end is in view
//! is asked after `app::flush()`; whether to follow the end is the user's
//! choice, kept in [`Transcript::follow`], and changed only by their
//! scrolling or by the marker.

use fltk::app;
use fltk::draw;
use fltk::enums::{Color, Font};
use fltk::prelude::*;
use fltk::text::{StyleTableEntryExt, TextAttr, TextBuffer, TextDisplay, WrapMode};

use super::conversation::{Change, Conversation};
use super::format::{Line, PALETTE_LEN, Role, Tone};
use super::wrap::wrap;

/// The conversation's font size.
pub const TEXT_SIZE: i32 = 15;
/// Name colours, dark enough to read on white and on the tinted lines.
pub const PALETTE: [u32; PALETTE_LEN] =
    [0xc0392b, 0x1f62b0, 0x1e8449, 0x118c8c, 0xc85a00, 0x8e44ad, 0xb02a6e, 0x6d5d00];
/// Styles per tone: the five roles that are not names, then the palette.
const ROLES: usize = 5 + PALETTE_LEN;
/// The tones, in [`style`] order.
const TONES: [Tone; 4] = [Tone::Public, Tone::Own, Tone::Direct, Tone::Pending];

fn role_index(role: Role) -> usize {
    match role {
        Role::Time => 0,
        Role::Text => 1,
        Role::Notice => 2,
        Role::Problem => 3,
        Role::Separator => 4,
        Role::Name(colour) => 5 + colour % PALETTE_LEN,
    }
}

/// The style byte of a part: `'A'` + its index in [`style_table`].
fn style(tone: Tone, role: Role) -> char {
    let tone = TONES.iter().position(|&t| t == tone).unwrap_or(0);
    // At most 4 × 13 styles, so the byte stays below 127 as FLTK requires.
    char::from(b'A' + (tone * ROLES + role_index(role)) as u8)
}

/// A role's font.
fn font(role: Role) -> Font {
    match role {
        Role::Time | Role::Text | Role::Problem => Font::Helvetica,
        Role::Notice => Font::HelveticaItalic,
        Role::Separator => Font::HelveticaBoldItalic,
        Role::Name(_) => Font::HelveticaBold,
    }
}

/// Every style, in [`style`] order; own and direct lines are tinted to
/// the right edge, pending ones are grey but for why they are not sent.
fn style_table() -> Vec<StyleTableEntryExt> {
    let roles: Vec<Role> = [Role::Time, Role::Text, Role::Notice, Role::Problem, Role::Separator]
        .into_iter()
        .chain((0..PALETTE_LEN).map(Role::Name))
        .collect();
    let colour = |tone: Tone, role: Role| match (tone, role) {
        (_, Role::Problem) => 0xb00020,
        (Tone::Pending, Role::Notice) => 0x7a7a7a,
        (Tone::Pending, _) => 0x9a9a9a,
        (_, Role::Time) => 0x808080,
        (_, Role::Text) => 0x202020,
        (_, Role::Notice) => 0x707070,
        (_, Role::Separator) => 0x1f62b0,
        (_, Role::Name(index)) => PALETTE[index % PALETTE_LEN],
    };
    let background = |tone: Tone| match tone {
        Tone::Public | Tone::Pending => (TextAttr::None, 0xffffff),
        Tone::Own => (TextAttr::BgColorExt, 0xe6f0fb),
        Tone::Direct => (TextAttr::BgColorExt, 0xfcf1d6),
    };
    let entry = |tone: Tone, role: Role| StyleTableEntryExt {
        color: Color::from_hex(colour(tone, role)),
        font: font(role),
        size: TEXT_SIZE,
        attr: background(tone).0,
        bgcolor: Color::from_hex(background(tone).1),
    };
    TONES.into_iter().flat_map(|tone| roles.iter().map(move |&role| entry(tone, role))).collect()
}

/// The width of `text` in `role`'s font.
fn measure(role: Role, text: &str) -> f64 {
    draw::set_font(font(role), TEXT_SIZE);
    draw::width(text)
}

/// A line as buffer text and styles: wrapped rows joined by newlines.
fn render(line: &Line, width: f64) -> (String, String) {
    let (mut text, mut styles) = (String::new(), String::new());
    for (number, row) in wrap(line, width, &measure).iter().enumerate() {
        if number > 0 {
            text.push('\n');
            styles.push(style(line.tone, Role::Text));
        }
        for (role, part) in row {
            text.push_str(part);
            styles.extend(std::iter::repeat_n(style(line.tone, *role), part.len()));
        }
    }
    (text, styles)
}

/// The conversation's display and what is drawn in it.
pub struct Transcript {
    display: TextDisplay,
    text: TextBuffer,
    styles: TextBuffer,
    /// Each line's text and styles as drawn, `None` while hidden.
    rendered: Vec<Option<(String, String)>>,
    /// The width the lines were wrapped for.
    wrapped_for: f64,
    /// Keep the end in view as lines come (the user has not scrolled up).
    pub follow: bool,
}

impl Transcript {
    /// An empty display.
    pub fn new() -> Transcript {
        let (text, styles) = (TextBuffer::default(), TextBuffer::default());
        let mut display = TextDisplay::default();
        display.set_buffer(text.clone());
        display.set_highlight_data_ext(styles.clone(), style_table());
        // A safety net only: lines are wrapped to fit before they get here.
        display.wrap_mode(WrapMode::AtBounds, 0);
        Transcript { display, text, styles, rendered: Vec::new(), wrapped_for: 0.0, follow: true }
    }

    /// The widget, for layout and event handling.
    pub fn widget(&self) -> &TextDisplay {
        &self.display
    }

    /// The width lines should wrap to now: the text area, less the
    /// scrollbar, the borders and FLTK's margins (about 10 pixels), with a
    /// few pixels to spare so FLTK's own wrapping never has to step in.
    fn width(&self) -> f64 {
        match self.display.window() {
            Some(window) if window.shown() && self.display.w() > 100 => {
                f64::from(self.display.w() - app::scrollbar_size() - 24)
            }
            // Not laid out yet: no wrapping until it is (see `rewrap_if_resized`).
            _ => f64::MAX,
        }
    }

    /// Where line `index` starts in the buffer, if it shows.
    fn start_of(&self, index: usize) -> Option<i32> {
        self.rendered[index].as_ref()?;
        let before = self.rendered[..index].iter().flatten();
        Some(before.map(|(text, _)| text.len() as i32 + 1).sum())
    }

    /// Draws what changed. Returns whether a line was added out of view
    /// (the user is reading further up), for the marker.
    pub fn apply(&mut self, conversation: &Conversation, changes: &[Change]) -> bool {
        let mut added = false;
        for change in changes {
            match *change {
                // Already drawn by an earlier `All` of the same batch.
                Change::Added(index) if index < self.rendered.len() => {}
                Change::Added(index) => {
                    let shown =
                        conversation.shows(index).then(|| render(&conversation.entries()[index].line, self.width()));
                    if let Some((text, styles)) = &shown {
                        // A newline ends the line before; its style never shows.
                        let first = self.rendered.iter().flatten().next().is_none();
                        let (newline, newline_style) = if first { ("", "") } else { ("\n", "B") };
                        self.text.append(&format!("{newline}{text}"));
                        self.styles.append(&format!("{newline_style}{styles}"));
                        added = true;
                    }
                    self.rendered.push(shown);
                }
                Change::Changed(index) => {
                    let (Some(start), true) = (self.start_of(index), conversation.shows(index)) else {
                        self.redraw_all(conversation);
                        continue;
                    };
                    let end = start + self.rendered[index].as_ref().map_or(0, |(text, _)| text.len() as i32);
                    let (text, styles) = render(&conversation.entries()[index].line, self.width());
                    self.text.replace(start, end, &text);
                    self.styles.replace(start, end, &styles);
                    self.rendered[index] = Some((text, styles));
                }
                Change::All => self.redraw_all(conversation),
            }
        }
        if added && self.follow {
            self.scroll_to_end();
        }
        added && !self.follow
    }

    /// Draws every line again (lines hidden or shown, a new width),
    /// keeping the first line in view where it was unless following.
    pub fn redraw_all(&mut self, conversation: &Conversation) {
        let first = if self.follow { None } else { self.first_shown() };
        self.wrapped_for = self.width();
        self.rendered = (0..conversation.entries().len())
            .map(|index| {
                conversation.shows(index).then(|| render(&conversation.entries()[index].line, self.wrapped_for))
            })
            .collect();
        let shown: Vec<&(String, String)> = self.rendered.iter().flatten().collect();
        let text: Vec<&str> = shown.iter().map(|(text, _)| text.as_str()).collect();
        let styles: Vec<&str> = shown.iter().map(|(_, styles)| styles.as_str()).collect();
        self.text.set_text(&text.join("\n"));
        self.styles.set_text(&styles.join("B"));
        match first {
            Some(index) => {
                let rows_before: usize =
                    self.rendered[..index].iter().flatten().map(|(text, _)| text.matches('\n').count() + 1).sum();
                self.display.scroll(rows_before as i32 + 1, 0);
            }
            None => self.scroll_to_end(),
        }
    }

    /// Wraps everything again if the width changed since the last time.
    pub fn rewrap_if_resized(&mut self, conversation: &Conversation) {
        if (self.width() - self.wrapped_for).abs() >= 1.0 {
            self.redraw_all(conversation);
        }
    }

    /// Empties the display, for a new nickname.
    pub fn clear(&mut self) {
        self.text.set_text("");
        self.styles.set_text("");
        self.rendered.clear();
        self.follow = true;
    }

    /// Brings the end into view (when FLTK next draws).
    pub fn scroll_to_end(&mut self) {
        self.display.set_insert_position(self.text.length());
        self.display.show_insert_position();
    }

    /// Whether the last line is in view, once pending scrolls are drawn.
    pub fn end_in_view(&self) -> bool {
        app::flush();
        self.text.length() == 0 || self.display.position_to_xy(self.text.length()) != (0, 0)
    }

    /// The first line whose start is in view, once pending scrolls are drawn.
    pub fn first_shown(&self) -> Option<usize> {
        app::flush();
        let mut start = 0;
        for (index, rendered) in self.rendered.iter().enumerate() {
            let Some((text, _)) = rendered else { continue };
            if self.display.position_to_xy(start) != (0, 0) {
                return Some(index);
            }
            start += text.len() as i32 + 1;
        }
        None
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
        let bytes: Vec<char> =
            TONES.iter().flat_map(|&tone| roles.iter().map(move |&role| style(tone, role))).collect();
        let expected: Vec<char> = (0..table.len()).map(|index| char::from(b'A' + index as u8)).collect();
        assert_eq!(bytes, expected);
        assert!(expected.iter().all(|&byte| (byte as u32) < 127));
        assert_eq!(style(Tone::Public, Role::Text), 'B', "the newline's style between lines");
        assert_eq!(table[usize::from(style(Tone::Direct, Role::Name(2)) as u8 - b'A')].attr, TextAttr::BgColorExt);
        assert_eq!(table[usize::from(style(Tone::Own, Role::Time) as u8 - b'A')].attr, TextAttr::BgColorExt);
        let pending = &table[usize::from(style(Tone::Pending, Role::Name(2)) as u8 - b'A')];
        assert_eq!(pending.color, Color::from_hex(0x9a9a9a), "a pending line is grey, names too");
    }
}
