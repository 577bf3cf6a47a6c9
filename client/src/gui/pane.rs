//! The protocol pane: a second window (F12, or the status row's button)
//! listing the current connection's frames as they go, one trace line each
//! (docs/PROTOCOL.md, "Frame traces"): sent frames (→) in blue, received
//! ones (←) in green, a refused one in red with its reason, and each new
//! connection under a separator of its own, since a reconnection is a new
//! session with new keys and numbers from 0. Selecting a frame shows its
//! bytes below, coloured by part (`hexdump.rs`). Widgets only: `app.rs`
//! hands it frames while it is shown, and the library makes none while it
//! is closed.

use std::collections::VecDeque;

use fltk::app::Sender;
use fltk::browser::HoldBrowser;
use fltk::enums::{Align, CallbackTrigger, Color, Font};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::prelude::*;
use fltk::text::{StyleTableEntryExt, TextAttr, TextBuffer, TextDisplay};
use fltk::window::Window;

use chat_client::TracedFrame;
use chat_common::trace::Direction;

use super::Message;
use super::format::label_text;
use super::hexdump::{REGIONS, Region, dump, summary};
use super::strings::{S, Texts};
use super::view::f12_toggles_the_pane;

/// Rows kept, and bytes of frames kept for showing; past either, the
/// oldest rows go, so a long or flooded session costs a bounded amount.
pub const MAX_ROWS: usize = 2000;
/// See [`MAX_ROWS`]: 8 MiB.
pub const MAX_BYTES: usize = 8 << 20;
/// The list's and the bytes' font size.
const SIZE: i32 = 13;

/// Colours: sent, received, refused, the connection separators.
const SENT: u32 = 0x1f62b0;
const RECEIVED: u32 = 0x1e8449;
const REFUSED: u32 = 0xb00020;
const SEPARATOR: u32 = 0x707070;

/// One row: how it looks (for the event log) and the frame behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// `sent`, `received`, `refused` or `connection`.
    pub tone: &'static str,
    /// What the row says.
    pub text: String,
}

/// The pane's window and what it lists.
pub struct Pane {
    window: Window,
    list: HoldBrowser,
    bytes_text: TextBuffer,
    bytes_styles: TextBuffer,
    note: Frame,
    /// The frame behind each row (`None` for a separator), oldest first.
    frames: VecDeque<Option<TracedFrame>>,
    /// The connection of the last frame listed.
    connection: Option<u64>,
    /// The frames' bytes kept, in all.
    bytes_kept: usize,
    texts: Texts,
}

/// The bytes' colours, in [`hexdump`](super::hexdump) style order: plain,
/// then each region's text on a light tint of it.
fn style_table() -> Vec<StyleTableEntryExt> {
    let entry = |color: u32, tint: u32, font: Font| StyleTableEntryExt {
        color: Color::from_hex(color),
        font,
        size: SIZE,
        attr: TextAttr::BgColor,
        bgcolor: Color::from_hex(tint),
    };
    let mut table = vec![entry(0x505050, 0xffffff, Font::Courier)];
    for region in REGIONS {
        table.push(match region {
            Region::Length => entry(0x6c2a8a, 0xf1e4f7, Font::CourierBold),
            Region::Seq => entry(0x9a4500, 0xfdebd9, Font::CourierBold),
            Region::Kind => entry(0x0b6b6b, 0xdcf3f3, Font::CourierBold),
            Region::Payload => entry(0x202020, 0xebebeb, Font::Courier),
            Region::Tag => entry(0x9c1c5c, 0xfbe3ef, Font::CourierBold),
        });
    }
    table
}

impl Pane {
    pub fn new(sender: &Sender<Message>, texts: Texts) -> Pane {
        let mut window = Window::default().with_size(980, 560).with_label(texts.get(S::PaneTitle));
        window.size_range(480, 300, 0, 0);
        let mut column = Flex::default_fill().column();
        column.set_margins(8, 8, 8, 8);
        column.set_pad(6);
        let mut list = HoldBrowser::default();
        list.set_text_size(SIZE);
        // Light, so a selected row keeps its colour (a refused frame stays red).
        list.set_selection_color(Color::from_hex(0xcfe0f5));
        let mut note = Frame::default().with_align(Align::Left | Align::Inside | Align::Clip);
        note.set_label_size(SIZE);
        note.set_label_color(Color::from_hex(SEPARATOR));
        note.set_label(&label_text(texts.get(S::PaneHint)));
        column.fixed(&note, 20);
        let (bytes_text, bytes_styles) = (TextBuffer::default(), TextBuffer::default());
        let mut bytes = TextDisplay::default();
        bytes.set_buffer(bytes_text.clone());
        bytes.set_highlight_data_ext(bytes_styles.clone(), style_table());
        bytes.set_text_font(Font::Courier);
        bytes.set_text_size(SIZE);
        column.fixed(&bytes, 200);
        column.end();
        window.end();
        window.resizable(&column);

        // A click or the arrow keys: any change of selection shows its bytes.
        list.set_trigger(CallbackTrigger::Changed);
        list.emit(sender.clone(), Message::PickFrame);
        let closes = sender.clone();
        window.set_callback(move |_| closes.send(Message::TogglePane));
        f12_toggles_the_pane(&mut window, sender);
        let frames = VecDeque::new();
        Pane { window, list, bytes_text, bytes_styles, note, frames, connection: None, bytes_kept: 0, texts }
    }

    pub fn shown(&self) -> bool {
        self.window.shown()
    }

    /// Opens the pane, empty: it lists frames from now on.
    pub fn show(&mut self) {
        self.list.clear();
        self.frames.clear();
        (self.connection, self.bytes_kept) = (None, 0);
        self.bytes_text.set_text("");
        self.bytes_styles.set_text("");
        self.note.set_label(&label_text(self.texts.get(S::PaneHint)));
        self.window.show();
    }

    pub fn hide(&mut self) {
        self.window.hide();
    }

    /// Lists a frame, under a separator if it opens a connection; returns
    /// the rows added. The end stays in view unless a row is selected.
    pub fn add(&mut self, frame: TracedFrame) -> Vec<Row> {
        let mut rows = Vec::new();
        if self.connection != Some(frame.connection) {
            self.connection = Some(frame.connection);
            let text = self.texts.fill(S::PaneConnection, &[("n", &frame.connection.to_string())]);
            rows.push(Row { tone: "connection", text });
        }
        let tone = match (frame.failed, frame.direction) {
            (true, _) => "refused",
            (false, Direction::Sent) => "sent",
            (false, Direction::Received) => "received",
        };
        rows.push(Row { tone, text: frame.line.clone() });
        for row in &rows {
            let (colour, style) = match row.tone {
                "connection" => (SEPARATOR, "@b@i"),
                "refused" => (REFUSED, "@b@f"),
                "sent" => (SENT, "@f"),
                _ => (RECEIVED, "@f"),
            };
            // `@.` ends the format codes: the line shows as it is.
            self.list.add(&format!("{style}@C{}@.{}", Color::from_hex(colour).bits(), row.text));
            let behind = (row.tone != "connection").then(|| frame.clone());
            self.bytes_kept += behind.as_ref().map_or(0, |frame| frame.bytes.len());
            self.frames.push_back(behind);
        }
        while self.frames.len() > MAX_ROWS || self.bytes_kept > MAX_BYTES {
            let gone = self.frames.pop_front().flatten();
            self.bytes_kept -= gone.map_or(0, |frame| frame.bytes.len());
            self.list.remove(1);
        }
        if self.list.value() == 0 {
            self.list.bottom_line(self.list.size());
        }
        rows
    }

    /// Shows the selected frame's bytes; returns its row (from 0) and its
    /// parts in words, for the event log.
    pub fn show_selected(&mut self) -> Option<(usize, String)> {
        let row = usize::try_from(self.list.value()).ok()?.checked_sub(1)?;
        let frame = self.frames.get(row)?.as_ref()?;
        let names = [S::Length, S::Seq, S::Kind, S::Payload, S::Tag].map(|key| self.texts.get(key));
        let shown = dump(&frame.bytes, frame.handshake, names);
        self.bytes_text.set_text(&shown.text);
        self.bytes_styles.set_text(&shown.styles);
        self.note.set_label(&label_text(&frame.line));
        Some((row, summary(&frame.bytes, frame.handshake)))
    }
}
